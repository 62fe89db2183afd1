//! `WalOptions`: where the log lives and how large it may grow.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default for [`WalOptions::max_bytes`]: 1 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024 * 1024;
/// Default for [`WalOptions::segment_bytes`]: 16 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
/// Default for [`WalOptions::segment_age`]: 1 s.
pub const DEFAULT_SEGMENT_AGE: Duration = Duration::from_secs(1);

/// Options of a [`Wal`](crate::Wal).
#[derive(Debug, Clone)]
pub struct WalOptions {
    pub(crate) dir: PathBuf,
    pub(crate) max_bytes: u64,
    pub(crate) segment_bytes: u64,
    pub(crate) segment_age: Duration,
}

impl WalOptions {
    /// A log in directory `dir` (created if missing), with the defaults.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            max_bytes: DEFAULT_MAX_BYTES,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            segment_age: DEFAULT_SEGMENT_AGE,
        }
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
