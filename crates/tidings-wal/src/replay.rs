//! `Replay`: the events an earlier run left in the log, segment by segment.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use tidings_event::{Event, Lease, Limits, WireError, decode};

use crate::record::{FRAME_LEN, Item, scan};
use crate::segment::{Retirer, SegmentLease};

/// Deeper than any event the collector accepts (64) inside a record's array.
const REPLAY_MAX_DEPTH: usize = 120;

/// The events of one record's payload (as [`scan`] finds them), decoded
/// as a replay decodes them: without the collector's size limits, which
/// they passed when they were accepted.
///
/// # Errors
///
/// [`WireError`] when the payload is not a JSON array of events.
pub fn decode_record(payload: &[u8]) -> Result<Vec<Event>, WireError> {
    let limits = Limits::default()
        .with_max_bytes(usize::MAX)
        .with_max_events(usize::MAX)
        .with_max_depth(REPLAY_MAX_DEPTH);
    decode(payload, &limits)
}

/// The events left in the log by an earlier run, one record (one append)
/// at a time, oldest first; returned by [`Wal::open`](crate::Wal::open).
///
/// Each batch holds leases on its segment like appended events do, so a
/// replayed segment is deleted once its events are settled. Damaged bytes
/// (a torn tail from a crash mid-write, a bad checksum) are skipped,
/// logged and counted in [`WalStats`](crate::WalStats), never fatal; an
/// intact record that does not decode as events is also copied to
/// `quarantine/` next to the segments. A segment that cannot be read is
/// logged and left on disk.
///
/// Dropping a `Replay` before the end leaves the segment it was reading
/// (even if its last batch was taken: that batch may not have been handed
/// on), and those after it, on disk for the next start.
#[derive(Debug)]
pub struct Replay {
    segments: VecDeque<(u64, PathBuf, u64)>,
    current: Option<Current>,
    retirer: Arc<Retirer>,
}

#[derive(Debug)]
struct Current {
    lease: Arc<SegmentLease>,
    bytes: Vec<u8>,
    /// The payloads' ranges in `bytes`, in order, not yet handed out.
    records: VecDeque<(usize, std::ops::Range<usize>)>,
}

impl Replay {
    pub(crate) fn new(segments: Vec<(u64, PathBuf, u64)>, retirer: Arc<Retirer>) -> Self {
        Self {
            segments: segments.into(),
            current: None,
            retirer,
        }
    }

    /// Segments not yet read (the one being read included).
    #[must_use]
    pub fn segments_left(&self) -> usize {
        self.segments.len() + usize::from(self.current.is_some())
    }

    /// Opens the next readable segment, recording its damaged regions.
    fn open_next(&mut self) -> Option<Current> {
        while let Some((_, path, size)) = self.segments.pop_front() {
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(error) => {
                    tracing::error!(target: "tidings::wal", path = %path.display(), %error, "cannot read a write-ahead log segment; left on disk");
                    continue;
                }
            };
            let mut records = VecDeque::new();
            for item in scan(&bytes) {
                match item {
                    Item::Record { offset, payload } => {
                        let start = offset + FRAME_LEN;
                        records.push_back((offset, start..start + payload.len()));
                    }
                    Item::Damaged { offset, len } => {
                        self.damaged(&path, offset, len, "torn or corrupt bytes");
                    }
                }
            }
            let lease = SegmentLease::new(path, size, self.retirer.clone());
            return Some(Current {
                lease,
                bytes,
                records,
            });
        }
        None
    }

    fn damaged(&self, path: &std::path::Path, offset: usize, len: usize, what: &str) {
        tracing::warn!(target: "tidings::wal", path = %path.display(), offset, len, "skipped {what} in a write-ahead log segment");
        self.retirer.counters.damaged(len as u64);
    }
}

impl Iterator for Replay {
    type Item = Vec<Event>;

    fn next(&mut self) -> Option<Vec<Event>> {
        loop {
            if self.current.is_none() {
                self.current = Some(self.open_next()?);
            }
            let current = self.current.as_mut().expect("set above");
            let Some((offset, range)) = current.records.pop_front() else {
                // Done with this segment: its events (if any) hold its lease now.
                self.current = None;
                continue;
            };
            match decode_record(&current.bytes[range.clone()]) {
                Ok(mut events) => {
                    let lease = Lease::new(current.lease.clone());
                    for event in &mut events {
                        event.set_lease(lease.clone());
                    }
                    self.retirer.counters.replayed(events.len() as u64);
                    return Some(events);
                }
                Err(error) => {
                    let path = current.lease.path().to_path_buf();
                    let kept = quarantine(&path, offset, &current.bytes[range.clone()]);
                    let what = format!("a record that is not events ({error}; kept as {kept})");
                    self.damaged(&path, offset, range.len(), &what);
                }
            }
        }
    }
}

/// Saves an intact record that does not decode (a later version's
/// stricter rules, say) under `quarantine/` next to the segments, as
/// `SEGMENT-OFFSET.json`, before its segment is retired; returns where (or
/// why not), for the log.
fn quarantine(segment: &std::path::Path, offset: usize, payload: &[u8]) -> String {
    let Some(dir) = segment.parent().map(|d| d.join("quarantine")) else {
        return "nowhere: the segment has no directory".to_owned();
    };
    let name = segment
        .file_stem()
        .map_or_else(|| "segment".into(), |s| s.to_string_lossy());
    let path = dir.join(format!("{name}-{offset}.json"));
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, payload)) {
        Ok(()) => path.display().to_string(),
        Err(error) => format!("nowhere: cannot write {}: {error}", path.display()),
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        if let Some(current) = &self.current {
            current.lease.pin();
        }
    }
}
