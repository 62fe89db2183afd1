//! Segment files, and their retirement once no event read from them is alive.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use crate::stats::Counters;
use crate::writer::Msg;

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
///
/// A segment is settled where the last event from it is dropped: on a
/// sink's worker, or on an emitting thread inside a queue's lock (an event
/// displaced by `drop_oldest`). So the file is not deleted there: it is
/// queued for the writer thread, which deletes it between group commits.
/// Once the writer is gone (the log closed), the thread that settles a
/// segment deletes it.
#[derive(Debug)]
pub(crate) struct Retirer {
    held: Mutex<Option<Vec<(PathBuf, u64)>>>,
    /// Settled segments the writer has yet to delete.
    pending: Mutex<Vec<(PathBuf, u64)>>,
    /// Wakes the writer to delete what is pending.
    writer: OnceLock<Sender<Msg>>,
    /// The writer has ended: whoever settles a segment deletes it.
    writer_gone: AtomicBool,
    pub(crate) counters: Counters,
}

impl Retirer {
    pub(crate) fn new(counters: Counters) -> Self {
        Self {
            held: Mutex::new(None),
            pending: Mutex::new(Vec::new()),
            writer: OnceLock::new(),
            writer_gone: AtomicBool::new(false),
            counters,
        }
    }

    /// Sends settled segments to the writer behind `writer` from now on.
    pub(crate) fn set_writer(&self, writer: Sender<Msg>) {
        let _ = self.writer.set(writer);
    }

    /// The writer has ended: deletes what it left pending, and makes every
    /// later settlement delete its segment where it happens.
    pub(crate) fn writer_gone(&self) {
        self.writer_gone.store(true, Ordering::SeqCst);
        self.delete_pending();
    }

    /// Deletes the settled segments queued for the writer.
    pub(crate) fn delete_pending(&self) {
        let pending =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        for (path, bytes) in pending {
            self.delete(&path, bytes);
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
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((path, bytes));
        // Pushed before the writer's state is read: a writer that ends
        // after this read deletes it in `writer_gone`.
        let woken = !self.writer_gone.load(Ordering::SeqCst)
            && self
                .writer
                .get()
                .is_some_and(|w| w.send(Msg::Retire).is_ok());
        if !woken {
            self.delete_pending();
        }
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    fn segment(dir: &Path, name: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, b"segment").unwrap();
        path
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tidings-wal-retire-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_thread_that_settles_a_segment_only_asks_the_writer_to_delete_it() {
        let dir = scratch("asks");
        let path = segment(&dir, "1.wal");
        let retirer = Arc::new(Retirer::new(Counters::default()));
        let (writer, inbox) = mpsc::channel();
        retirer.set_writer(writer);
        drop(SegmentLease::new(path.clone(), 7, retirer.clone()));
        assert!(path.exists(), "deleted on the settling thread");
        assert!(matches!(inbox.try_recv(), Ok(Msg::Retire)));
        retirer.delete_pending(); // what the writer does on `Retire`
        assert!(!path.exists());
        assert_eq!(retirer.counters.snapshot().retired_segments, 1);
    }

    #[test]
    fn once_the_writer_is_gone_the_settling_thread_deletes_and_nothing_is_left_pending() {
        let dir = scratch("gone");
        let (early, late) = (segment(&dir, "1.wal"), segment(&dir, "2.wal"));
        let retirer = Arc::new(Retirer::new(Counters::default()));
        let (writer, inbox) = mpsc::channel();
        retirer.set_writer(writer);
        // Settled while the writer ran, not yet deleted when it ends.
        drop(SegmentLease::new(early.clone(), 7, retirer.clone()));
        assert!(early.exists());
        retirer.writer_gone();
        assert!(!early.exists(), "left pending by the writer");
        drop(inbox);
        drop(SegmentLease::new(late.clone(), 7, retirer.clone()));
        assert!(!late.exists());
        assert_eq!(retirer.counters.snapshot().retired_segments, 2);
    }

    #[test]
    fn held_deletions_wait_for_release_whatever_the_writer() {
        let dir = scratch("held");
        let path = segment(&dir, "1.wal");
        let retirer = Arc::new(Retirer::new(Counters::default()));
        retirer.hold();
        retirer.writer_gone();
        drop(SegmentLease::new(path.clone(), 7, retirer.clone()));
        assert!(path.exists());
        assert_eq!(retirer.release(), 1);
        assert!(!path.exists());
    }
}
