//! Delivery counters: received, delivered, retried, dropped by reason, and
//! the gauges of what is still pending.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tidings_event::{FailureStreak, StreakLog, Timestamp};

/// The longest [`LastError::message`] kept, in bytes.
const MAX_ERROR_LEN: usize = 500;

/// Why events were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DropReason {
    /// The queue was full (`when_full` refused or displaced the event).
    QueueFull,
    /// The event alone is larger than a batch may be, or the receiver refused
    /// it as too large (413) on its own.
    TooLarge,
    /// Every retry failed.
    RetriesExhausted,
    /// The receiver refused the batch for good (a non-retryable error).
    NonRetryable,
    /// The batch grew older than the retry policy's `max_batch_age`.
    Expired,
    /// Shutdown's deadline passed before the event was delivered, or the
    /// event arrived after shutdown.
    Shutdown,
    /// The receiver refused the event for what it contains (a PostgreSQL
    /// data error, an HTTP 400 or 422): the batch was split until the
    /// events at fault were found, and this is one of them.
    Invalid,
}

impl DropReason {
    /// Every reason, in a stable order.
    pub const ALL: [DropReason; 7] = [
        Self::QueueFull,
        Self::TooLarge,
        Self::RetriesExhausted,
        Self::NonRetryable,
        Self::Expired,
        Self::Shutdown,
        Self::Invalid,
    ];

    /// The reason's name in metrics and logs, such as `queue_full`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::TooLarge => "too_large",
            Self::RetriesExhausted => "retries_exhausted",
            Self::NonRetryable => "non_retryable",
            Self::Expired => "expired",
            Self::Shutdown => "shutdown",
            Self::Invalid => "invalid",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The live counters of one delivery stage.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) received: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) batches: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    dead_lettered: [AtomicU64; DropReason::ALL.len()],
    /// Events taken off the queue and not yet delivered or dropped.
    pub(crate) buffered: AtomicU64,
    pub(crate) buffered_bytes: AtomicU64,
    /// Drops, for the log.
    drops: FailureStreak,
    /// The last failed attempt and the current retry pause.
    health: Mutex<Health>,
}

/// What a status page shows besides the counters.
#[derive(Debug, Default)]
struct Health {
    last_error: Option<LastError>,
    paused_until: Option<Timestamp>,
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn sub(counter: &AtomicU64, n: usize) {
        counter.fetch_sub(n as u64, Ordering::Relaxed);
    }

    /// Counts `n` dropped events; the first drop of a stage warns, then a
    /// summary every 30 s while drops go on.
    pub(crate) fn dropped(&self, name: &str, reason: DropReason, n: usize) {
        if n == 0 {
            return;
        }
        self.dropped[reason.index()].fetch_add(n as u64, Ordering::Relaxed);
        match self.drops.failed() {
            StreakLog::First => tracing::warn!(
                target: "tidings::delivery",
                backend = name,
                %reason,
                events = n,
                "dropping events; the metrics count every drop, and a summary is logged every 30 s while drops go on"
            ),
            StreakLog::Reminder { failures, .. } => tracing::warn!(
                target: "tidings::delivery",
                backend = name,
                %reason,
                drops = failures,
                "still dropping events: {failures} drops so far (by reason in tidings_backend_dropped_total)"
            ),
            _ => {}
        }
    }

    /// Counts `n` events handed to the dead-letter destination.
    pub(crate) fn dead_lettered(&self, reason: DropReason, n: usize) {
        self.dead_lettered[reason.index()].fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Remembers a failed attempt of the sink, as the stage's last error.
    pub(crate) fn failed(&self, error: &dyn fmt::Display) {
        let mut message = error.to_string();
        if message.len() > MAX_ERROR_LEN {
            let mut end = MAX_ERROR_LEN;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        self.health().last_error = Some(LastError {
            at: Timestamp::now(),
            message,
        });
    }

    /// The worker waits `wait` before trying again (`None`: it tries now).
    pub(crate) fn paused(&self, wait: Option<Duration>) {
        self.health().paused_until = wait.map(|wait| {
            let wait = i64::try_from(wait.as_micros()).unwrap_or(i64::MAX);
            Timestamp::from_unix_micros(Timestamp::now().unix_micros().saturating_add(wait))
        });
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn snapshot(&self, name: &str, queued: usize, waiting: usize) -> MetricsSnapshot {
        let (last_error, paused_until) = {
            let health = self.health();
            (health.last_error.clone(), health.paused_until)
        };
        MetricsSnapshot {
            name: name.to_owned(),
            received: self.received.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            dropped: DropReason::ALL.map(|r| (r, self.dropped[r.index()].load(Ordering::Relaxed))),
            dead_lettered: DropReason::ALL
                .map(|r| (r, self.dead_lettered[r.index()].load(Ordering::Relaxed))),
            queued: queued as u64,
            waiting: waiting as u64,
            buffered: self.buffered.load(Ordering::Relaxed),
            buffered_bytes: self.buffered_bytes.load(Ordering::Relaxed),
            last_error,
            paused_until,
        }
    }
}

/// A sink's latest failed attempt ([`MetricsSnapshot::last_error`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LastError {
    /// When the attempt failed.
    pub at: Timestamp,
    /// The sink's error, as displayed (cut at 500 bytes).
    pub message: String,
}

/// A point-in-time copy of a delivery stage's counters.
///
/// At every quiet point
/// `received == delivered + dropped_total() + dead_lettered_total() + pending()`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// The stage's name (the backend's name in the tree).
    pub name: String,
    /// Events offered to the stage, accepted or not.
    pub received: u64,
    /// Events delivered: written by the sink, or handed on by a router.
    pub delivered: u64,
    /// Event deliveries attempted again after a retryable failure.
    pub retried: u64,
    /// Batches the sink accepted.
    pub batches: u64,
    /// Events dropped, by reason.
    pub dropped: [(DropReason, u64); DropReason::ALL.len()],
    /// Events the sink gave up on and handed to its dead-letter
    /// destination, by reason (never counted as dropped as well).
    pub dead_lettered: [(DropReason, u64); DropReason::ALL.len()],
    /// Events waiting in the queue.
    pub queued: u64,
    /// Senders waiting for room in the full queue
    /// ([`WhenFull::Block`](crate::WhenFull::Block),
    /// [`WhenFull::Backpressure`](crate::WhenFull::Backpressure)), each
    /// holding one event. Not yet counted as received here: a sender that
    /// is another stage's worker still counts its event as its own.
    pub waiting: u64,
    /// Events taken off the queue and not yet delivered or dropped
    /// (batching, in flight, waiting to retry).
    pub buffered: u64,
    /// Bytes of the events being batched, before compression.
    pub buffered_bytes: u64,
    /// The sink's latest failed attempt, kept after it recovers (compare
    /// its time with the deliveries since). `None` for a stage whose sink
    /// never failed, and for async routers.
    pub last_error: Option<LastError>,
    /// While the worker waits to retry a failed batch (backoff, or the
    /// receiver's `Retry-After`), when it tries again; the whole sink waits
    /// meanwhile.
    pub paused_until: Option<Timestamp>,
}

impl MetricsSnapshot {
    /// Events dropped for `reason`.
    #[must_use]
    pub fn dropped(&self, reason: DropReason) -> u64 {
        count(&self.dropped, reason)
    }

    /// Events dropped for any reason.
    #[must_use]
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|(_, n)| n).sum()
    }

    /// Events dead-lettered for `reason`.
    #[must_use]
    pub fn dead_lettered(&self, reason: DropReason) -> u64 {
        count(&self.dead_lettered, reason)
    }

    /// Events dead-lettered for any reason.
    #[must_use]
    pub fn dead_lettered_total(&self) -> u64 {
        self.dead_lettered.iter().map(|(_, n)| n).sum()
    }

    /// Events received and neither delivered, dropped nor dead-lettered
    /// yet: queued, or taken by the worker (batching, in flight, waiting to
    /// retry).
    #[must_use]
    ///
    /// The queue and the worker's batch are read one after the other, so
    /// an event moving from one to the other could be seen in both; the
    /// stage's accounting (received − delivered − dropped − dead-lettered)
    /// bounds the sum, so an event is never counted twice.
    pub fn pending(&self) -> u64 {
        let accounted = self.delivered + self.dropped_total() + self.dead_lettered_total();
        (self.queued + self.buffered).min(self.received.saturating_sub(accounted))
    }
}

fn count(counts: &[(DropReason, u64)], reason: DropReason) -> u64 {
    counts
        .iter()
        .find(|(r, _)| *r == reason)
        .map_or(0, |(_, n)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_never_counts_an_event_moving_from_queue_to_batch_twice() {
        let metrics = Metrics::default();
        Metrics::add(&metrics.received, 27);
        // The queue read before the worker took one event, its batch after.
        metrics.buffered.store(1, Ordering::Relaxed);
        assert_eq!(metrics.snapshot("s", 27, 0).pending(), 27);
        // At a quiet point the two agree.
        assert_eq!(metrics.snapshot("s", 26, 0).pending(), 27);
        Metrics::add(&metrics.delivered, 1);
        metrics.buffered.store(0, Ordering::Relaxed);
        assert_eq!(metrics.snapshot("s", 26, 0).pending(), 26);
    }
}
