//! The rolling file sink: events as JSON lines, one file per roll (after
//! `roll_events` events or `roll_seconds`, whichever first), optionally gzip,
//! written under a temporary name and renamed atomically; and [`compact`],
//! which merges the small files of each hour or day into one.
//!
//! ```
//! use tidings_routing::{Backend, SinkBackend};
//! use tidings_sink_file::FileSink;
//!
//! let dir = std::env::temp_dir().join(format!("tidings-doc-{}", std::process::id()));
//! let sink = FileSink::builder(&dir).roll_events(10_000).roll_seconds(60).gzip(true).build()?;
//! let backend = SinkBackend::builder("logs", sink).build()?;
//! # backend.shutdown(std::time::Duration::from_secs(1))?;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod compact;
#[cfg(feature = "config")]
mod config;
mod names;
#[cfg(feature = "config")]
mod probe;
mod recover;
mod sink;
#[cfg(feature = "s3")]
mod store;

pub use compact::{CompactReport, Period, PeriodError, compact};
#[cfg(feature = "config")]
pub use config::{FileOptions, FileType};
#[cfg(feature = "config")]
pub use probe::probe_directory;
pub use sink::{DEFAULT_ROLL_EVENTS, DEFAULT_ROLL_SECONDS, FileError, FileSink, FileSinkBuilder};
#[cfg(feature = "s3")]
pub use store::{ObjectTarget, StoreError, StoreOptions};
