//! What the live view keeps besides the tap, all of it bounded: events
//! received per name in 10-second buckets over the last 10 minutes, and
//! the last refused requests with their reasons.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::{Value, json};
use tidings_event::Timestamp;

/// The length of a rate bucket, in seconds.
pub(crate) const BUCKET_SECONDS: i64 = 10;
/// Buckets kept: ten minutes.
const BUCKETS: usize = 60;
/// Names counted apart in one bucket; events of further names are counted
/// together as `other`, so a client inventing names cannot grow the table.
pub(crate) const MAX_NAMES: usize = 40;
/// Refused requests kept.
pub(crate) const MAX_REFUSALS: usize = 100;
/// The longest path or message kept for a refused request, in bytes.
const MAX_TEXT: usize = 300;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `text` cut to at most `max` bytes, on a character boundary.
pub(crate) fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[derive(Debug)]
struct Bucket {
    /// Unix seconds, a multiple of [`BUCKET_SECONDS`].
    start: i64,
    counts: HashMap<Box<str>, u64>,
    other: u64,
}

/// Events received per name, per bucket.
#[derive(Debug, Default)]
pub(crate) struct Rates {
    buckets: Mutex<VecDeque<Bucket>>,
}

impl Rates {
    /// Counts the events of one request, received at `now`.
    pub(crate) fn count<'a>(&self, now: Timestamp, names: impl IntoIterator<Item = &'a str>) {
        let start = bucket_start(now);
        let mut buckets = lock(&self.buckets);
        if buckets.back().is_none_or(|b| b.start < start) {
            buckets.push_back(Bucket {
                start,
                counts: HashMap::new(),
                other: 0,
            });
        }
        let oldest = start - BUCKET_SECONDS * BUCKETS as i64;
        while buckets.front().is_some_and(|b| b.start <= oldest) {
            buckets.pop_front();
        }
        // A clock stepping back counts into the newest bucket.
        let Some(bucket) = buckets.back_mut() else {
            return;
        };
        for name in names {
            if let Some(n) = bucket.counts.get_mut(name) {
                *n += 1;
            } else if bucket.counts.len() < MAX_NAMES {
                bucket.counts.insert(name.into(), 1);
            } else {
                bucket.other += 1;
            }
        }
    }

    /// The buckets of the last ten minutes as of `now`, oldest first
    /// (buckets without events are left out).
    pub(crate) fn to_json(&self, now: Timestamp) -> Value {
        let oldest = bucket_start(now) - BUCKET_SECONDS * BUCKETS as i64;
        let buckets: Vec<Value> = lock(&self.buckets)
            .iter()
            .filter(|b| b.start > oldest)
            .map(|b| json!({"start": b.start, "counts": b.counts, "other": b.other}))
            .collect();
        json!({
            "bucket_seconds": BUCKET_SECONDS,
            "window_seconds": BUCKET_SECONDS * BUCKETS as i64,
            "buckets": buckets,
        })
    }
}

fn bucket_start(at: Timestamp) -> i64 {
    let seconds = at.unix_micros().div_euclid(1_000_000);
    seconds - seconds.rem_euclid(BUCKET_SECONDS)
}

/// One refused request.
#[derive(Debug)]
struct Refusal {
    at: Timestamp,
    method: String,
    /// The path only: a query may hold a write key.
    path: String,
    status: u16,
    reason: &'static str,
    message: String,
}

/// The last [`MAX_REFUSALS`] refused requests.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    recent: Mutex<VecDeque<Refusal>>,
}

impl Refusals {
    /// Keeps a refused request (the oldest kept goes when full).
    pub(crate) fn push(
        &self,
        method: &str,
        path: &str,
        status: u16,
        reason: &'static str,
        message: &str,
    ) {
        let refusal = Refusal {
            at: Timestamp::now(),
            method: cut(method, 16),
            path: cut(path, MAX_TEXT),
            status,
            reason,
            message: cut(message, MAX_TEXT),
        };
        let mut recent = lock(&self.recent);
        if recent.len() >= MAX_REFUSALS {
            recent.pop_front();
        }
        recent.push_back(refusal);
    }

    /// The refused requests kept, newest first.
    pub(crate) fn to_json(&self) -> Value {
        let recent = lock(&self.recent);
        Value::Array(
            recent
                .iter()
                .rev()
                .map(|r| {
                    json!({
                        "at": r.at,
                        "method": r.method,
                        "path": r.path,
                        "status": r.status,
                        "reason": r.reason,
                        "message": r.message,
                    })
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_micros(seconds * 1_000_000)
    }

    #[test]
    fn rates_are_bucketed_bounded_and_forgotten() {
        let rates = Rates::default();
        rates.count(at(1_000), ["a", "b", "a"]);
        rates.count(at(1_005), ["a"]);
        rates.count(at(1_012), ["b"]);
        let json = rates.to_json(at(1_012));
        assert_eq!(
            json["buckets"],
            json!([
                {"start": 1_000, "counts": {"a": 3, "b": 1}, "other": 0},
                {"start": 1_010, "counts": {"b": 1}, "other": 0},
            ])
        );
        let names: Vec<String> = (0..MAX_NAMES + 5).map(|i| format!("n{i}")).collect();
        rates.count(at(1_020), names.iter().map(String::as_str));
        let json = rates.to_json(at(1_020));
        assert_eq!(json["buckets"][2]["other"], 5);
        assert_eq!(
            json["buckets"][2]["counts"].as_object().unwrap().len(),
            MAX_NAMES
        );
        // Ten minutes later the old buckets are gone.
        rates.count(at(1_020 + 600), ["c"]);
        let json = rates.to_json(at(1_020 + 600));
        assert_eq!(
            json["buckets"],
            json!([{"start": 1_620, "counts": {"c": 1}, "other": 0}])
        );
        assert_eq!(lock(&rates.buckets).len(), 1);
    }

    #[test]
    fn refusals_keep_the_newest_first_and_cut_long_text() {
        let refusals = Refusals::default();
        for i in 0..MAX_REFUSALS + 3 {
            refusals.push("POST", &format!("/{i}"), 400, "bad_request", "bad");
        }
        refusals.push("GET", &"x".repeat(1000), 404, "not_found", "no such route");
        let json = refusals.to_json();
        let list = json.as_array().unwrap();
        assert_eq!(list.len(), MAX_REFUSALS);
        assert_eq!(list[0]["reason"], "not_found");
        assert!(list[0]["path"].as_str().unwrap().len() <= MAX_TEXT + 3);
        assert_eq!(list[1]["path"], format!("/{}", MAX_REFUSALS + 2));
    }

    #[test]
    fn cut_respects_characters() {
        assert_eq!(cut("héllo", 2), "h…");
        assert_eq!(cut("hello", 5), "hello");
    }
}
