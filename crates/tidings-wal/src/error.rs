//! Errors of opening the log and of appending to it.

use std::path::PathBuf;
use std::sync::Arc;

/// The log could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// The directory could not be created or read.
    #[error("cannot use write-ahead log directory {}: {source}", .path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another process (or another `Wal` of this one) has the directory open.
    #[error("write-ahead log directory {} is in use by another process", .path.display())]
    Locked {
        /// The directory.
        path: PathBuf,
    },
    /// The writer thread could not be started.
    #[error("cannot start the write-ahead log writer: {0}")]
    Spawn(std::io::Error),
}

/// An append was not made durable: none of its events are in the log.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The segments on disk already hold `max_bytes`: retry once events
    /// are delivered and their segments retired.
    #[error("the write-ahead log is full ({max_bytes} bytes not yet delivered)")]
    Full {
        /// The log's byte budget.
        max_bytes: u64,
    },
    /// One append alone is larger than a record may be, or than the
    /// log's whole byte budget.
    #[error("an append of {bytes} bytes is larger than the write-ahead log takes ({max} bytes)")]
    TooLarge {
        /// The encoded size of the append.
        bytes: usize,
        /// The most the log takes in one append.
        max: usize,
    },
    /// Writing or syncing the segment failed (a full disk, say).
    #[error("cannot write write-ahead log segment {}: {source}", .path.display())]
    Io {
        /// The segment.
        path: PathBuf,
        /// Why.
        source: Arc<std::io::Error>,
    },
    /// The log was closed.
    #[error("the write-ahead log is closed")]
    Closed,
}

impl AppendError {
    /// Whether the same append may succeed later (every error but
    /// [`AppendError::TooLarge`]).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::TooLarge { .. })
    }
}
