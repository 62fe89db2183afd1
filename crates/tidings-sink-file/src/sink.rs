//! `FileSink`: JSON lines into rolling files, written under a temporary name
//! and renamed atomically once complete.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use tidings_core::{Sink, SinkError, async_trait};
use tidings_event::{Event, Lease, Timestamp};

use crate::names::{TMP_SUFFIX, file_name, is_gzip};
use crate::recover::recover_orphans;

/// Default for [`FileSinkBuilder::roll_events`].
pub const DEFAULT_ROLL_EVENTS: u64 = 10_000;
/// Default for [`FileSinkBuilder::roll_seconds`].
pub const DEFAULT_ROLL_SECONDS: u64 = 60;

/// The file sink could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The directory could not be created or read.
    #[error("cannot use directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// What the OS reported.
        #[source]
        source: io::Error,
    },
    /// `roll_events` is zero.
    #[error("roll_events must be at least 1")]
    ZeroRollEvents,
}

/// Builds a [`FileSink`]. Created by [`FileSink::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct FileSinkBuilder {
    path: PathBuf,
    roll_events: u64,
    roll_seconds: u64,
    gzip: bool,
    #[cfg(feature = "s3")]
    upload: Option<crate::store::ObjectTarget>,
}

impl FileSinkBuilder {
    /// Uploads each finished file to `target` and then removes it here, so
    /// that the directory only stages files (feature `s3`). A failed
    /// upload is retried at the next roll check (every second at most);
    /// what is staged when the process stops is uploaded by the next sink
    /// on the directory. The roll rules are the same.
    #[cfg(feature = "s3")]
    pub fn upload_to(mut self, target: crate::store::ObjectTarget) -> Self {
        self.upload = Some(target);
        self
    }

    /// Rolls to a new file after exactly this many events. Defaults to 10 000.
    pub fn roll_events(mut self, events: u64) -> Self {
        self.roll_events = events;
        self
    }

    /// Rolls to a new file once the current one is this many seconds old,
    /// even without new events. Defaults to 60.
    pub fn roll_seconds(mut self, seconds: u64) -> Self {
        self.roll_seconds = seconds;
        self
    }

    /// Compresses files with gzip (`.jsonl.gz`). Defaults to false.
    pub fn gzip(mut self, gzip: bool) -> Self {
        self.gzip = gzip;
        self
    }

    /// Creates the directory if needed and finishes or quarantines the
    /// temporary files a crash left behind.
    ///
    /// # Errors
    ///
    /// [`FileError`] when the directory cannot be created or read.
    pub fn build(self) -> Result<FileSink, FileError> {
        if self.roll_events == 0 {
            return Err(FileError::ZeroRollEvents);
        }
        let dir_error = |source| FileError::Directory {
            path: self.path.clone(),
            source,
        };
        fs::create_dir_all(&self.path).map_err(dir_error)?;
        recover_orphans(&self.path, self.gzip).map_err(dir_error)?;
        Ok(FileSink {
            dir: self.path,
            roll_events: self.roll_events,
            roll_after: Duration::from_secs(self.roll_seconds),
            gzip: self.gzip,
            state: Mutex::new(State::default()),
            #[cfg(feature = "s3")]
            upload: self.upload.map(crate::store::Uploader::new),
        })
    }
}

#[derive(Debug)]
struct OpenFile {
    tmp: PathBuf,
    done: PathBuf,
    file: File,
    len: u64,
    events: u64,
    opened: Instant,
    /// Leases of the events written since the last fsync (one per run of
    /// events sharing one): kept until the file is synced, so that the
    /// collector's durable mode keeps its log of them until they are on disk.
    unsynced: Vec<Lease>,
}

impl OpenFile {
    fn hold_leases(&mut self, events: &[Event]) {
        for event in events {
            let lease = event.lease();
            if lease.is_held() && !self.unsynced.last().is_some_and(|l| l.same_as(lease)) {
                self.unsynced.push(lease.clone());
            }
        }
    }
}

#[derive(Debug, Default)]
struct State {
    open: Option<OpenFile>,
    seq: u64,
}

/// Writes events as JSON lines into files that roll after `roll_events`
/// events or `roll_seconds`, whichever comes first (the blog's writer).
///
/// A file is written as `NAME.tmp`; when it rolls it is fsynced and renamed
/// to `NAME`, so a reader never sees a partial file, and names (which start
/// with the UTC time the file was opened) sort by time. Each batch is
/// appended with one write (one gzip member when compressing): a failed write
/// is cut off again, so a retried batch is never half-written. Accepted
/// batches survive a crash of the process (they are in the OS); they are on
/// disk once their file rolls or the sink is flushed, and until then the
/// sink keeps the events' [`Lease`]s (so the collector's durable mode keeps
/// them in its write-ahead log). At start, temporary
/// files left by a crash are finished (their complete lines kept) or, when
/// damaged, moved to `quarantine/` after their complete lines are saved.
#[derive(Debug)]
pub struct FileSink {
    dir: PathBuf,
    roll_events: u64,
    roll_after: Duration,
    gzip: bool,
    state: Mutex<State>,
    #[cfg(feature = "s3")]
    upload: Option<std::sync::Arc<crate::store::Uploader>>,
}

/// Appends `chunk` to `file` (cut back to `len` on failure).
fn append(file: &mut File, len: &mut u64, chunk: &[u8]) -> io::Result<()> {
    match file.write_all(chunk) {
        Ok(()) => {
            *len += chunk.len() as u64;
            Ok(())
        }
        Err(error) => {
            let _ = file.set_len(*len);
            Err(error)
        }
    }
}

/// Fsyncs `dir`, so a rename in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Makes `tmp` durable and renames it to `done`.
pub(crate) fn commit(file: &File, tmp: &Path, done: &Path) -> io::Result<()> {
    file.sync_all()?;
    fs::rename(tmp, done)?;
    sync_dir(done.parent().unwrap_or(Path::new(".")))
}

/// Gzips `lines` as one member.
pub(crate) fn gzip_member(lines: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(lines.len() / 4 + 64),
        Compression::fast(),
    );
    encoder.write_all(lines)?;
    encoder.finish()
}

fn io_error(what: &str, path: &Path, error: &io::Error) -> SinkError {
    // Space may come back, and a file system may recover: retry.
    SinkError::retryable(format!("{what} {}: {error}", path.display()))
}

impl FileSink {
    /// A builder writing into the directory `path`.
    pub fn builder(path: impl Into<PathBuf>) -> FileSinkBuilder {
        FileSinkBuilder {
            path: path.into(),
            roll_events: DEFAULT_ROLL_EVENTS,
            roll_seconds: DEFAULT_ROLL_SECONDS,
            gzip: false,
            #[cfg(feature = "s3")]
            upload: None,
        }
    }

    /// The directory written into.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn open(&self, state: &mut State) -> Result<OpenFile, SinkError> {
        state.seq += 1;
        let name = file_name(Timestamp::now(), state.seq, self.gzip);
        let done = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}{TMP_SUFFIX}"));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&tmp)
            .map_err(|e| io_error("cannot create", &tmp, &e))?;
        Ok(OpenFile {
            tmp,
            done,
            file,
            len: 0,
            events: 0,
            opened: Instant::now(),
            unsynced: Vec::new(),
        })
    }

    fn roll(open: OpenFile) -> Result<(), SinkError> {
        commit(&open.file, &open.tmp, &open.done)
            .map_err(|e| io_error("cannot finish", &open.tmp, &e))
    }

    fn write_lines(&self, open: &mut OpenFile, lines: &[u8]) -> Result<(), SinkError> {
        let chunk = if self.gzip {
            gzip_member(lines).map_err(|e| io_error("cannot compress for", &open.tmp, &e))?
        } else {
            lines.to_vec()
        };
        append(&mut open.file, &mut open.len, &chunk)
            .map_err(|e| io_error("cannot write", &open.tmp, &e))
    }

    /// Rolls the open file if it is older than `roll_seconds`; whether it
    /// did.
    fn roll_if_old(&self, state: &mut State) -> Result<bool, SinkError> {
        if state
            .open
            .as_ref()
            .is_some_and(|f| f.opened.elapsed() >= self.roll_after)
            && let Some(open) = state.open.take()
        {
            Self::roll(open)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Writes `batch`, rolling as needed; whether a file was finished.
    fn write_batch(&self, batch: &[Event]) -> Result<bool, SinkError> {
        let mut state = self.lock();
        let mut rolled = self.roll_if_old(&mut state)?;
        let mut rest = batch;
        while !rest.is_empty() {
            let mut open = match state.open.take() {
                Some(open) => open,
                None => self.open(&mut state)?,
            };
            let room = (self.roll_events - open.events) as usize;
            let (now, later) = rest.split_at(room.min(rest.len()));
            let mut lines = Vec::with_capacity(now.len() * 256);
            for event in now {
                event.write_json(&mut lines);
                lines.push(b'\n');
            }
            if let Err(error) = self.write_lines(&mut open, &lines) {
                state.open = Some(open);
                return Err(error);
            }
            open.hold_leases(now);
            open.events += now.len() as u64;
            if open.events >= self.roll_events {
                Self::roll(open)?;
                rolled = true;
            } else {
                state.open = Some(open);
            }
            rest = later;
        }
        Ok(rolled)
    }

    /// Starts uploading the finished files, when they go to an object
    /// store.
    fn upload(&self) {
        #[cfg(feature = "s3")]
        if let Some(upload) = &self.upload {
            upload.start(&self.dir);
        }
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn send_batch(&self, batch: &[Event]) -> Result<(), SinkError> {
        if self.write_batch(batch)? {
            self.upload();
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), SinkError> {
        let mut state = self.lock();
        if let Some(open) = &mut state.open {
            open.file
                .sync_data()
                .map_err(|e| io_error("cannot sync", &open.tmp, &e))?;
            open.unsynced.clear();
        }
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), SinkError> {
        let open = self.lock().open.take();
        if let Some(open) = open {
            Self::roll(open)?;
        }
        #[cfg(feature = "s3")]
        if let Some(upload) = &self.upload {
            upload.finish(&self.dir).await;
        }
        Ok(())
    }

    /// Files have no request size to respect: batches are not measured.
    fn size_hint(&self, _event: &Event) -> usize {
        0
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some((self.roll_after / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)))
    }

    async fn tick(&self) -> Result<(), SinkError> {
        self.roll_if_old(&mut self.lock())?;
        // Also retries what an earlier upload could not send.
        self.upload();
        Ok(())
    }
}

/// Whether `path` holds gzip data, judging by its name.
pub(crate) fn path_is_gzip(path: &Path) -> bool {
    is_gzip(path)
}
