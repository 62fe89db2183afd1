//! `DiskBuffer`: what an [`AsyncRouter`](super::AsyncRouter) accepted,
//! kept on disk until every branch below it has settled it.

use std::sync::Mutex;

use tidings_event::{Event, FailureStreak, StreakLog};
use tidings_wal::{AppendError, Replay, Wal, WalError, WalOptions, WalStats};

use crate::{DropReason, SendError};

/// An on-disk copy of an [`AsyncRouter`](super::AsyncRouter)'s queue (as
/// Vector's disk buffers): each event `send` accepts is written to a
/// write-ahead log ([`tidings_wal`]) before it is queued, and stays there
/// until every branch of the tree below has delivered it, dead-lettered
/// it or dropped it under a counted reason. What a crash or `kill -9` of
/// the application left is handed on again, before anything new, when a
/// router is next built on the same directory; sinks remove the copies
/// delivered twice by event id.
///
/// The queue in memory still holds every event, so
/// [`AsyncRouterBuilder::queue_capacity`](super::AsyncRouterBuilder::queue_capacity)
/// still bounds the router; the buffer refuses events past its
/// [`WalOptions::max_bytes`] as a full queue does.
///
/// With [`SyncMode::Write`](tidings_wal::SyncMode::Write) (what `buffer = { type =
/// "disk" }` in a config uses) an accepted event survives the process,
/// and `send` waits for one write to the operating system; with
/// [`SyncMode::Fsync`](tidings_wal::SyncMode::Fsync) it survives the machine too,
/// and `send` waits for an fsync. Should the disk fail, events are queued
/// in memory only, with a warning, rather than refused.
#[derive(Debug)]
pub struct DiskBuffer {
    wal: Wal,
    /// What an earlier run left, until the router's worker takes it.
    replay: Mutex<Option<Replay>>,
    failing: FailureStreak,
}

/// Why the buffer refused events: for the router's answer and its counter.
pub(crate) struct Refused {
    pub(crate) error: SendError,
    pub(crate) reason: DropReason,
}

impl DiskBuffer {
    /// Opens the buffer in `options.dir()`, created if missing. Only one
    /// buffer (in any process) can use a directory at a time.
    ///
    /// # Errors
    ///
    /// [`WalError`] when the directory cannot be created or read, is in
    /// use, or the writer thread cannot start.
    pub fn open(options: WalOptions) -> Result<Self, WalError> {
        let (wal, replay) = Wal::open(options)?;
        Ok(Self {
            wal,
            replay: Mutex::new(Some(replay)),
            failing: FailureStreak::default(),
        })
    }

    /// What the buffer holds and has done: events written, bytes on disk,
    /// events replayed after a restart.
    #[must_use]
    pub fn stats(&self) -> WalStats {
        self.wal.stats()
    }

    /// The events an earlier run left, once.
    pub(crate) fn take_replay(&self) -> Option<Replay> {
        self.replay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Writes `events` (all or none) before they are queued.
    pub(crate) fn persist(&self, events: &mut [Event]) -> Result<(), Refused> {
        let error = match self.wal.append_blocking(events) {
            Ok(()) => {
                if let Some(failures) = self.failing.succeeded() {
                    tracing::info!(target: "tidings::buffer", failures, "the disk buffer writes again after {failures} failed writes");
                }
                return Ok(());
            }
            Err(error) => error,
        };
        let (error, reason) = match error {
            AppendError::Full { .. } => (SendError::QueueFull, DropReason::QueueFull),
            AppendError::Closed => (SendError::Closed, DropReason::Shutdown),
            AppendError::TooLarge { .. } => (SendError::failed(error), DropReason::TooLarge),
            // Nothing was written; losing the events would be worse than
            // keeping them in memory only.
            _ => {
                self.warn_unbuffered(&error);
                return Ok(());
            }
        };
        Err(Refused { error, reason })
    }

    fn warn_unbuffered(&self, error: &AppendError) {
        match self.failing.failed() {
            StreakLog::First => {
                tracing::warn!(target: "tidings::buffer", %error, "cannot write to the disk buffer; events are queued in memory only, and a crash now would lose them (while writes keep failing, a summary is logged every 30 s)");
            }
            StreakLog::Reminder {
                failures,
                suppressed,
            } => {
                tracing::warn!(target: "tidings::buffer", %error, failures, suppressed, "the disk buffer still cannot write: {failures} failed writes so far");
            }
            _ => {}
        }
    }

    /// Keeps settled events' segments from now on: for a drain that may
    /// drop events, or a router dropped without one.
    pub(crate) fn hold(&self) {
        self.wal.hold_deletions();
    }

    /// Ends [`DiskBuffer::hold`] after a drain that lost nothing.
    pub(crate) fn release(&self) {
        self.wal.release_deletions();
    }

    /// Closes the log (the open segment is fsynced under `SyncMode::Write`).
    pub(crate) fn close(&self) {
        self.wal.close();
    }
}
