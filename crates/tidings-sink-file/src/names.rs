//! File names: they start with the UTC time the file was opened, so they
//! sort by time, and end in `.jsonl` or `.jsonl.gz` (`.tmp` while open).

use std::path::Path;

use tidings_event::Timestamp;

/// The suffix of files still being written.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// `20261124T190908.123456Z` for a timestamp.
pub(crate) fn compact_time(at: Timestamp) -> String {
    at.to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect()
}

/// `events-20261124T190908.123456Z-<pid>-<seq>.jsonl[.gz]`.
pub(crate) fn file_name(at: Timestamp, seq: u64, gzip: bool) -> String {
    format!(
        "events-{}-{}-{seq:06}.jsonl{}",
        compact_time(at),
        std::process::id(),
        if gzip { ".gz" } else { "" }
    )
}

/// Whether `name` is a finished event file.
pub(crate) fn is_finished(name: &str) -> bool {
    name.starts_with("events-") && (name.ends_with(".jsonl") || name.ends_with(".jsonl.gz"))
}

pub(crate) fn is_gzip(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.trim_end_matches(TMP_SUFFIX).ends_with(".gz")
}

/// The period a finished file belongs to: the first `len` characters of its
/// time (`YYYYMMDDTHH` for hours, `YYYYMMDD` for days).
pub(crate) fn period_of(name: &str, len: usize) -> Option<&str> {
    let time = name.strip_prefix("events-")?;
    let key = time.get(..len)?;
    key.bytes()
        .enumerate()
        .all(|(i, b)| {
            if i == 8 {
                b == b'T'
            } else {
                b.is_ascii_digit()
            }
        })
        .then_some(key)
}

/// `("bucket", "prefix")` of `s3://bucket/prefix`.
pub(crate) fn split_s3_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then_some((bucket, prefix.trim_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_time_and_carry_their_period() {
        let a = file_name("2026-11-24T19:09:08.123456Z".parse().unwrap(), 1, true);
        let b = file_name("2026-11-24T19:10:00.000000Z".parse().unwrap(), 0, false);
        assert!(a < b);
        assert!(
            a.starts_with("events-20261124T190908.123456Z-") && a.ends_with("-000001.jsonl.gz"),
            "{a}"
        );
        assert!(is_finished(&a) && is_finished(&b) && !is_finished(&format!("{a}{TMP_SUFFIX}")));
        assert_eq!(period_of(&a, 11), Some("20261124T19"));
        assert_eq!(period_of(&a, 8), Some("20261124"));
        assert_eq!(period_of("events-garbage.jsonl", 11), None);
    }

    #[test]
    fn s3_urls_split_into_bucket_and_prefix() {
        assert_eq!(split_s3_url("s3://b/p/q/"), Some(("b", "p/q")));
        assert_eq!(split_s3_url("s3://b"), Some(("b", "")));
        assert_eq!(split_s3_url("s3:///p"), None);
        assert_eq!(split_s3_url("/tmp/x"), None);
    }
}
