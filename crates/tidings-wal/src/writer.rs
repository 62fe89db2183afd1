//! The writer thread: group commit (one write and one fsync for every
//! append waiting), segment rotation, the byte budget.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use tidings_event::{FailureStreak, StreakLog};
use tokio::sync::oneshot;

use crate::error::AppendError;
use crate::options::{SyncMode, WalOptions};
use crate::record::HEADER;
use crate::segment::{Retirer, SegmentLease, file_name};

/// The most bytes one group commit writes.
const GROUP_BYTES: usize = 8 * 1024 * 1024;

/// What an append hears back: the lease of the segment now holding it.
pub(crate) type Reply = Result<Arc<SegmentLease>, AppendError>;

/// What the writer thread is asked to do.
pub(crate) enum Msg {
    /// Append a record.
    Append(Job),
    /// Delete the segments settled since ([`Retirer`]).
    Retire,
    /// Finish the appends already sent, close the segment and end.
    Close,
}

/// One append waiting for the writer: a framed record.
pub(crate) struct Job {
    pub(crate) record: Vec<u8>,
    pub(crate) events: u64,
    pub(crate) reply: ReplyTo,
}

/// Where an append waits for its answer: a task, or a thread that blocks.
pub(crate) enum ReplyTo {
    Task(oneshot::Sender<Reply>),
    Thread(std::sync::mpsc::SyncSender<Reply>),
}

impl ReplyTo {
    fn send(self, reply: Reply) {
        // The appender may have gone (a cancelled future): nothing to tell.
        match self {
            Self::Task(sender) => drop(sender.send(reply)),
            Self::Thread(sender) => drop(sender.send(reply)),
        }
    }
}

struct Active {
    file: File,
    /// Holds the segment's size too (`bytes`), kept current here.
    lease: Arc<SegmentLease>,
    opened: Instant,
}

impl Active {
    fn size(&self) -> u64 {
        self.lease.bytes.load(Ordering::SeqCst)
    }
}

pub(crate) struct Writer {
    options: WalOptions,
    next_seq: u64,
    active: Option<Active>,
    retirer: Arc<Retirer>,
    jobs: Receiver<Msg>,
    /// The current streak of failed group commits, for the log.
    failing: FailureStreak,
}

impl Writer {
    pub(crate) fn new(
        options: WalOptions,
        next_seq: u64,
        retirer: Arc<Retirer>,
        jobs: Receiver<Msg>,
    ) -> Self {
        Self {
            options,
            next_seq,
            active: None,
            retirer,
            jobs,
            failing: FailureStreak::default(),
        }
    }

    /// Commits groups and deletes settled segments until told to close (or
    /// every sender is gone), then closes the segment.
    pub(crate) fn run(mut self) {
        let mut group = Vec::new();
        let mut closing = false;
        while !closing {
            let first = match &self.active {
                Some(active) => {
                    let left = self
                        .options
                        .segment_age
                        .saturating_sub(active.opened.elapsed());
                    match self.jobs.recv_timeout(left) {
                        Ok(msg) => msg,
                        Err(RecvTimeoutError::Timeout) => {
                            self.close_active();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match self.jobs.recv() {
                    Ok(msg) => msg,
                    Err(_) => break,
                },
            };
            let (mut bytes, mut retire) = (0, false);
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Append(job) => {
                        bytes += job.record.len();
                        group.push(job);
                    }
                    Msg::Retire => retire = true,
                    Msg::Close => closing = true,
                }
                if bytes < GROUP_BYTES && !closing {
                    next = self.jobs.try_recv().ok();
                }
            }
            if !group.is_empty() {
                self.commit(&mut group);
            }
            // After the commit: the appends waiting for their fsync (and
            // their 202) never wait for an unlink.
            if retire {
                self.retirer.delete_pending();
            }
        }
        self.close_active();
        self.retirer.writer_gone();
    }

    fn close_active(&mut self) {
        // Under `SyncMode::Write` the segment's records are not yet on disk for
        // sure: fsync it as it closes. Dropping the writer's lease retires
        // the segment at once if no event from it is alive any more.
        let Some(active) = self.active.take() else {
            return;
        };
        if self.options.sync != SyncMode::Write {
            return;
        }
        match active.file.sync_data() {
            Ok(()) => self.retirer.counters.fsynced(),
            Err(error) => {
                tracing::warn!(target: "tidings::wal", path = %active.lease.path().display(), %error, "cannot fsync a closing write-ahead log segment; its events survive a crash of this process, maybe not of the machine")
            }
        }
    }

    /// Writes and syncs the group's records that fit the budget, then
    /// answers every append of the group.
    fn commit(&mut self, group: &mut Vec<Job>) {
        if self.active.as_ref().is_some_and(|a| {
            a.size() >= self.options.segment_bytes || a.opened.elapsed() >= self.options.segment_age
        }) {
            self.close_active();
        }
        let counters = self.retirer.counters.clone();
        let mut live = counters.live_bytes();
        let mut buf = Vec::with_capacity(group.iter().map(|j| j.record.len()).sum());
        let mut accepted = Vec::with_capacity(group.len());
        for job in group.drain(..) {
            let len = job.record.len() as u64;
            if len > self.options.max_bytes {
                // Would never fit, however much is delivered: not worth a retry.
                job.reply.send(Err(AppendError::TooLarge {
                    bytes: job.record.len(),
                    max: usize::try_from(self.options.max_bytes).unwrap_or(usize::MAX),
                }));
                continue;
            }
            if live + len > self.options.max_bytes {
                counters.refused_full();
                job.reply.send(Err(AppendError::Full {
                    max_bytes: self.options.max_bytes,
                }));
                continue;
            }
            live += len;
            buf.extend_from_slice(&job.record);
            accepted.push((job.events, job.reply));
        }
        if accepted.is_empty() {
            return;
        }
        let sync = self.options.sync;
        let result = self.open_if_needed().and_then(|active| {
            let mut written = active.file.write_all(&buf);
            if sync == SyncMode::Fsync && written.is_ok() {
                written = active.file.sync_data();
                if written.is_ok() {
                    counters.fsynced();
                }
            }
            written.map_err(|e| (active.lease.path().to_path_buf(), e))
        });
        match result {
            Ok(()) => {
                if let Some(failures) = self.failing.succeeded() {
                    tracing::info!(target: "tidings::wal", failures, "write-ahead log writes succeed again after {failures} failed group commits");
                }
                let active = self.active.as_mut().expect("opened above");
                active
                    .lease
                    .bytes
                    .fetch_add(buf.len() as u64, Ordering::SeqCst);
                counters.wrote(buf.len() as u64);
                let events = accepted.iter().map(|(n, _)| n).sum();
                counters.synced(accepted.len() as u64, events);
                for (_, reply) in accepted {
                    reply.send(Ok(active.lease.clone()));
                }
            }
            Err((path, error)) => {
                match self.failing.failed() {
                    StreakLog::First => {
                        tracing::warn!(target: "tidings::wal", path = %path.display(), %error, "write-ahead log write failed; the appends of this group are refused (while writes keep failing, a summary is logged every 30 s)")
                    }
                    StreakLog::Reminder {
                        failures,
                        suppressed,
                    } => {
                        tracing::warn!(target: "tidings::wal", path = %path.display(), %error, failures, suppressed, "write-ahead log writes still fail: {failures} failed group commits so far, {suppressed} not logged since the last line")
                    }
                    _ => {
                        tracing::debug!(target: "tidings::wal", path = %path.display(), %error, "write-ahead log write failed")
                    }
                }
                counters.failed(accepted.len() as u64);
                // Part of the group may be on disk: account for it, and
                // start a new segment rather than trust this one.
                if let Some(active) = self.active.take()
                    && let Ok(meta) = active.file.metadata()
                {
                    let grown = meta.len().saturating_sub(active.size());
                    counters.wrote(grown);
                    active.lease.bytes.store(meta.len(), Ordering::SeqCst);
                }
                let error = AppendError::Io {
                    path,
                    source: Arc::new(error),
                };
                for (_, reply) in accepted {
                    reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// The open segment, creating the next one (header written, file and
    /// directory synced) if there is none.
    fn open_if_needed(&mut self) -> Result<&mut Active, (PathBuf, std::io::Error)> {
        if self.active.is_none() {
            let path = self.options.dir.join(file_name(self.next_seq));
            let file = create_segment(&path).map_err(|e| (path.clone(), e))?;
            self.next_seq += 1;
            let size = HEADER.len() as u64;
            self.retirer.counters.opened_segment(size);
            self.active = Some(Active {
                file,
                lease: SegmentLease::new(path, size, self.retirer.clone()),
                opened: Instant::now(),
            });
        }
        Ok(self.active.as_mut().expect("set above"))
    }
}

fn create_segment(path: &std::path::Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600); // events may hold personal data
    let mut file = options.open(path)?;
    let written = file
        .write_all(HEADER)
        .and_then(|()| file.sync_data())
        .and_then(|()| sync_dir(path));
    if let Err(error) = written {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(error);
    }
    Ok(file)
}

/// Makes a new file's directory entry durable.
fn sync_dir(path: &std::path::Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}
