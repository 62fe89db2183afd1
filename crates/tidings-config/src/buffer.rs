//! `buffer = { type = "disk", ... }` of an `async_router`: its queue kept
//! on disk too ([`tidings_routing::DiskBuffer`]).

use std::path::PathBuf;

use serde::Deserialize;
use tidings_routing::DiskBuffer;
use tidings_wal::{SyncMode, WalError, WalOptions};

use crate::{ConfigError, ConfigErrorKind, ConfigPath};

/// An `async_router`'s `buffer` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BufferOptions {
    #[serde(rename = "type")]
    kind: BufferKind,
    path: Option<PathBuf>,
    max_bytes: Option<u64>,
    sync: Option<SyncName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum BufferKind {
    Memory,
    Disk,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SyncName {
    Write,
    Fsync,
}

impl BufferOptions {
    /// The mistakes a valid table cannot have: a disk buffer without a
    /// path, disk keys on a memory buffer.
    pub(crate) fn check(&self, at: &ConfigPath) -> Vec<ConfigError> {
        let at = at.key("buffer");
        let mut errors = Vec::new();
        match self.kind {
            BufferKind::Disk if self.path.is_none() => errors.push(ConfigError::new(
                at.key("path"),
                ConfigErrorKind::Missing,
                "a disk buffer needs `path`, the directory that keeps the queued events",
            )),
            BufferKind::Memory => {
                for (key, set) in [
                    ("path", self.path.is_some()),
                    ("max_bytes", self.max_bytes.is_some()),
                    ("sync", self.sync.is_some()),
                ] {
                    if set {
                        errors.push(ConfigError::new(
                            at.key(key),
                            ConfigErrorKind::Invalid,
                            format!("`{key}` is for `type = \"disk\"`; a memory buffer takes no other key"),
                        ));
                    }
                }
            }
            BufferKind::Disk => {}
        }
        errors
    }

    /// The log's options, for a disk buffer.
    fn wal_options(&self) -> Option<WalOptions> {
        let path = self
            .path
            .as_ref()
            .filter(|_| self.kind == BufferKind::Disk)?;
        let mut options = WalOptions::new(path).sync(match self.sync {
            Some(SyncName::Fsync) => SyncMode::Fsync,
            None | Some(SyncName::Write) => SyncMode::Write,
        });
        if let Some(max) = self.max_bytes {
            options = options.max_bytes(max);
        }
        Some(options)
    }

    /// Opens the disk buffer, if this is one.
    pub(crate) fn open(&self) -> Result<Option<DiskBuffer>, WalError> {
        self.wal_options().map(DiskBuffer::open).transpose()
    }

    /// As `tidings check` prints it: `buffer=disk(path=…, max_bytes=…,
    /// sync=write)`, or nothing for memory.
    pub(crate) fn describe(&self) -> Option<String> {
        let options = self.wal_options()?;
        let sync = match self.sync {
            Some(SyncName::Fsync) => "fsync",
            _ => "write",
        };
        Some(format!(
            "buffer=disk(path={}, max_bytes={}, sync={sync})",
            options.dir().display(),
            self.max_bytes.unwrap_or(tidings_wal::DEFAULT_MAX_BYTES),
        ))
    }
}
