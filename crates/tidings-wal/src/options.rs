//! `WalOptions`: where the log lives and how large it may grow.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default for [`WalOptions::max_bytes`]: 1 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024 * 1024;
/// Default for [`WalOptions::segment_bytes`]: 16 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
/// Default for [`WalOptions::segment_age`]: 1 s.
pub const DEFAULT_SEGMENT_AGE: Duration = Duration::from_secs(1);

/// When an append is answered: what it survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SyncMode {
    /// Once its record is written and fsynced: it survives a crash of the
    /// machine. The default, and what the collector's `ack = "durable"`
    /// uses before it answers 202.
    #[default]
    Fsync,
    /// Once its record is written to the operating system: it survives a
    /// crash or `kill -9` of the process, not a crash of the machine. Each
    /// segment is fsynced when it is closed (at
    /// [`WalOptions::segment_age`] at the latest), which bounds what a
    /// power loss can take. An append then costs a write, not an fsync:
    /// for an application's emit path.
    Write,
}

/// Options of a [`Wal`](crate::Wal).
#[derive(Debug, Clone)]
pub struct WalOptions {
    pub(crate) dir: PathBuf,
    pub(crate) max_bytes: u64,
    pub(crate) segment_bytes: u64,
    pub(crate) segment_age: Duration,
    pub(crate) sync: SyncMode,
}

impl WalOptions {
    /// A log in directory `dir` (created if missing), with the defaults.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            max_bytes: DEFAULT_MAX_BYTES,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            segment_age: DEFAULT_SEGMENT_AGE,
            sync: SyncMode::Fsync,
        }
    }

    /// When appends are answered. Defaults to [`SyncMode::Fsync`].
    #[must_use]
    pub fn sync(mut self, sync: SyncMode) -> Self {
        self.sync = sync;
        self
    }

    /// The most bytes the segments on disk may hold; appends past it fail
    /// with [`AppendError::Full`](crate::AppendError::Full) until delivered
    /// events free room. Defaults to 1 GiB.
    #[must_use]
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The size at which a segment is closed and a new one started.
    /// Defaults to 16 MiB.
    #[must_use]
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes.max(1);
        self
    }

    /// The age at which a segment is closed, so that it can be deleted as
    /// soon as its events are delivered. Defaults to 1 s.
    #[must_use]
    pub fn segment_age(mut self, age: Duration) -> Self {
        self.segment_age = age.max(Duration::from_millis(1));
        self
    }

    /// The log's directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
