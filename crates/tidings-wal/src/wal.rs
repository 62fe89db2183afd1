//! `Wal`: open, append, hold deletions, close.

use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use tidings_event::{Event, Lease, write_json_array};
use tokio::sync::oneshot;

use crate::error::{AppendError, WalError};
use crate::options::WalOptions;
use crate::record::{FRAME_LEN, MAX_PAYLOAD, frame};
use crate::replay::Replay;
use crate::segment::{Retirer, SegmentLease, list};
use crate::stats::{Counters, WalStats};
use crate::writer::{Job, Msg, ReplyTo, Writer};

/// A first guess at an event's size in a record; the buffer grows past it
/// as needed (measuring each event first would encode it twice).
const ESTIMATED_EVENT_BYTES: usize = 512;

/// A write-ahead log of events in a directory of segment files.
///
/// [`Wal::append`] returns once its events are written and fsynced; appends
/// made at the same time share one write and one fsync (group commit). Each
/// event comes back holding a [`Lease`] on its segment, and a segment is
/// deleted when the writer has moved past it and no event from it (nor any
/// copy of one) is alive: when every sink has delivered or dropped its copy.
/// What is left on disk after a crash is read back by the [`Replay`] that
/// [`Wal::open`] returns.
#[derive(Debug)]
pub struct Wal {
    /// `None` once closed.
    open: Mutex<Option<Open>>,
    retirer: Arc<Retirer>,
    options: WalOptions,
}

/// What an open log holds.
#[derive(Debug)]
struct Open {
    jobs: Sender<Msg>,
    writer: JoinHandle<()>,
    /// The directory's `LOCK` file, locked while the log is open.
    _lock: std::fs::File,
}

impl Wal {
    /// Opens the log in `options.dir()` (created if missing) and starts its
    /// writer. The segments already there are returned as a [`Replay`], to
    /// hand their events on again; new appends go to new segments.
    ///
    /// # Errors
    ///
    /// [`WalError`] when the directory cannot be created or read, or the
    /// writer thread cannot start.
    pub fn open(options: WalOptions) -> Result<(Self, Replay), WalError> {
        let dir_error = |source| WalError::Dir {
            path: options.dir.clone(),
            source,
        };
        let mut dir = std::fs::DirBuilder::new();
        dir.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700); // events may hold personal data
        dir.create(&options.dir).map_err(dir_error)?;
        let lock = lock(&options.dir)?;
        let existing = list(&options.dir).map_err(dir_error)?;
        let counters = Counters::default();
        for (_, _, bytes) in &existing {
            counters.opened_segment(*bytes);
        }
        let next_seq = existing.last().map_or(1, |(seq, _, _)| seq + 1);
        let retirer = Arc::new(Retirer::new(counters));
        let (sender, receiver) = mpsc::channel();
        retirer.set_writer(sender.clone());
        let writer = Writer::new(options.clone(), next_seq, retirer.clone(), receiver);
        let handle = std::thread::Builder::new()
            .name("tidings-wal".to_owned())
            .spawn(move || writer.run())
            .map_err(WalError::Spawn)?;
        let replay = Replay::new(existing, retirer.clone());
        Ok((
            Self {
                open: Mutex::new(Some(Open {
                    jobs: sender,
                    writer: handle,
                    _lock: lock,
                })),
                retirer,
                options,
            },
            replay,
        ))
    }

    /// Writes `events` as one record and waits until it is fsynced (or
    /// written, under [`SyncMode::Write`](crate::SyncMode::Write)); then every event
    /// holds a lease on its segment. All of them are in the log or none is.
    ///
    /// # Errors
    ///
    /// [`AppendError`]: the log is over its byte budget, the write or fsync
    /// failed, the append is too large, or the log is closed.
    pub async fn append(&self, events: &mut [Event]) -> Result<(), AppendError> {
        let (reply, answer) = oneshot::channel();
        self.submit(events, ReplyTo::Task(reply))?;
        let segment = answer.await.map_err(|_| AppendError::Closed)??;
        set_leases(events, segment);
        Ok(())
    }

    /// [`Wal::append`] for a thread that is not a task: blocks the calling
    /// thread until the record is written (an application's `emit`). Safe
    /// to call from inside an async runtime, where it blocks that worker
    /// for the write.
    ///
    /// # Errors
    ///
    /// As [`Wal::append`].
    pub fn append_blocking(&self, events: &mut [Event]) -> Result<(), AppendError> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.submit(events, ReplyTo::Thread(reply))?;
        let segment = answer.recv().map_err(|_| AppendError::Closed)??;
        set_leases(events, segment);
        Ok(())
    }

    /// Hands the writer a record of `events`, to answer through `reply`.
    fn submit(&self, events: &[Event], reply: ReplyTo) -> Result<(), AppendError> {
        let job = Job {
            record: encode(events)?,
            events: events.len() as u64,
            reply,
        };
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let open = open.as_ref().ok_or(AppendError::Closed)?;
        open.jobs
            .send(Msg::Append(job))
            .map_err(|_| AppendError::Closed)
    }

    /// What the log holds and has done.
    #[must_use]
    pub fn stats(&self) -> WalStats {
        self.retirer.counters.snapshot()
    }

    /// The log's options.
    #[must_use]
    pub fn options(&self) -> &WalOptions {
        &self.options
    }

    /// From now on, segments whose events are all settled stay on disk
    /// until [`Wal::release_deletions`]. For a shutdown: an event dropped
    /// because a drain ran out of time is settled too, yet must keep its
    /// place in the log; so hold deletions, drain, and release them only
    /// if nothing was dropped. Never released, the segments are replayed at
    /// the next start.
    pub fn hold_deletions(&self) {
        self.retirer.hold();
    }

    /// Ends [`Wal::hold_deletions`]: deletes the segments settled meanwhile
    /// and returns how many there were.
    pub fn release_deletions(&self) -> usize {
        self.retirer.release()
    }

    /// How many settled segments are kept by [`Wal::hold_deletions`] now.
    #[must_use]
    pub fn held_deletions(&self) -> usize {
        self.retirer.held_count()
    }

    /// Refuses further appends, waits for the writer to finish the appends
    /// already sent, closes the open segment and unlocks the directory.
    /// Idempotent.
    pub fn close(&self) {
        let open = self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(Open {
            jobs,
            writer,
            _lock,
        }) = open
        {
            // The writer ends once the appends already sent are done (the
            // retirer holds a sender too, so it is told, not disconnected).
            let _ = jobs.send(Msg::Close);
            let _ = writer.join();
            // Normally done by the writer as it ends; again here should it
            // have panicked, so that nothing settled stays queued.
            self.retirer.writer_gone();
        }
    }
}

/// Gives each of `events` a lease on the segment now holding them.
fn set_leases(events: &mut [Event], segment: Arc<SegmentLease>) {
    let lease = Lease::new(segment);
    for event in events {
        event.set_lease(lease.clone());
    }
}

/// Locks `dir` for this log: two writers would reuse segment numbers and
/// replay each other's events. The lock goes with the process (even one
/// killed with `kill -9`).
fn lock(dir: &std::path::Path) -> Result<std::fs::File, WalError> {
    let path = dir.join("LOCK");
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&path).map_err(|source| WalError::Dir {
        path: path.clone(),
        source,
    })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(WalError::Locked {
            path: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(WalError::Dir { path, source }),
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.close();
    }
}

/// One record: the events as a JSON array in their wire format, written
/// straight into the frame (one pass, no copy).
fn encode(events: &[Event]) -> Result<Vec<u8>, AppendError> {
    let mut record = Vec::with_capacity(FRAME_LEN + 2 + ESTIMATED_EVENT_BYTES * events.len());
    match frame(&mut record, |out| write_json_array(events, out)) {
        Some(_) => Ok(record),
        None => Err(AppendError::TooLarge {
            bytes: events.iter().map(Event::encoded_len).sum(),
            max: MAX_PAYLOAD,
        }),
    }
}
