//! Segment files, and their retirement once no event read from them is alive.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::stats::Counters;

/// The file name of segment `seq`: zero-padded, so names sort as numbers.
pub(crate) fn file_name(seq: u64) -> String {
    format!("{seq:020}.wal")
}

/// The segments in `dir`, oldest first, with their sizes. Other files are ignored.
pub(crate) fn list(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf, u64)>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".wal"))
            .filter(|n| n.len() == 20)
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        segments.push((seq, entry.path(), entry.metadata()?.len()));
    }
    segments.sort_unstable_by_key(|(seq, _, _)| *seq);
    Ok(segments)
}

/// How many segments `dir` holds (events a log there has not delivered),
/// without opening or locking it; 0 when there is no such directory.
///
/// # Errors
///
/// When the directory exists but cannot be read.
pub fn segments_in(dir: &Path) -> std::io::Result<usize> {
    match list(dir) {
        Ok(segments) => Ok(segments.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Deletes settled segments, or keeps them aside while deletions are held.
#[derive(Debug)]
pub(crate) struct Retirer {
    held: Mutex<Option<Vec<(PathBuf, u64)>>>,
    pub(crate) counters: Counters,
}

impl Retirer {
    pub(crate) fn new(counters: Counters) -> Self {
        Self {
            held: Mutex::new(None),
            counters,
        }
    }

    fn held(&self) -> MutexGuard<'_, Option<Vec<(PathBuf, u64)>>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A segment of `bytes` bytes at `path` is settled: delete it, unless
    /// deletions are held.
    fn settled(&self, path: PathBuf, bytes: u64) {
        let mut held = self.held();
        if let Some(held) = held.as_mut() {
            held.push((path, bytes));
            return;
        }
        drop(held);
        self.delete(&path, bytes);
    }

    fn delete(&self, path: &Path, bytes: u64) {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                // Kept on disk: replayed (and deduplicated by id) at the next start.
                tracing::warn!(target: "tidings::wal", path = %path.display(), %error, "cannot delete a settled segment");
                return;
            }
        }
        self.counters.retired(bytes);
    }

    pub(crate) fn hold(&self) {
        self.held().get_or_insert_with(Vec::new);
    }

    /// Ends holding and deletes what was held; returns how many segments.
    pub(crate) fn release(&self) -> usize {
        let held = self.held().take().unwrap_or_default();
        let count = held.len();
        for (path, bytes) in held {
            self.delete(&path, bytes);
        }
        count
    }

    pub(crate) fn held_count(&self) -> usize {
        self.held().as_ref().map_or(0, Vec::len)
    }
}

/// Held by the writer while a segment is open and by every event written
/// to or replayed from it; its drop retires the segment.
#[derive(Debug)]
pub(crate) struct SegmentLease {
    path: PathBuf,
    /// The segment's size on disk, kept current by its writer.
    pub(crate) bytes: AtomicU64,
    /// A pinned segment is never deleted by this process.
    pinned: AtomicBool,
    retirer: Arc<Retirer>,
}

impl SegmentLease {
    pub(crate) fn new(path: PathBuf, bytes: u64, retirer: Arc<Retirer>) -> Arc<Self> {
        Arc::new(Self {
            path,
            bytes: AtomicU64::new(bytes),
            pinned: AtomicBool::new(false),
            retirer,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the segment on disk whatever happens to its events (its
    /// records were not all handed on).
    pub(crate) fn pin(&self) {
        self.pinned.store(true, Ordering::SeqCst);
    }
}

impl Drop for SegmentLease {
    fn drop(&mut self) {
        if !self.pinned.load(Ordering::SeqCst) {
            let bytes = self.bytes.load(Ordering::SeqCst);
            self.retirer.settled(std::mem::take(&mut self.path), bytes);
        }
    }
}
