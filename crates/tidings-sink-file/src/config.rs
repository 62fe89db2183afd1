//! The config types of this crate (feature `config`): what a config file's
//! `type = ...` names, its options, their defaults and checks, and how
//! the sink is built from them. `tidings-config` registers them.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{DEFAULT_ROLL_EVENTS, DEFAULT_ROLL_SECONDS, FileSink};
use serde::Deserialize;
use tidings_core::{BoxError, Sink};

use tidings_core::{Delivery, SinkType};

/// `type = "file"`: `path` (required), `roll_events`, `roll_seconds`, `gzip`.
#[derive(Debug)]
pub struct FileType;

/// The options of `file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOptions {
    path: PathBuf,
    #[serde(default = "roll_events")]
    roll_events: u64,
    #[serde(default = "roll_seconds")]
    roll_seconds: u64,
    #[serde(default)]
    gzip: bool,
}

fn roll_events() -> u64 {
    DEFAULT_ROLL_EVENTS
}

fn roll_seconds() -> u64 {
    DEFAULT_ROLL_SECONDS
}

impl SinkType for FileType {
    const NAME: &'static str = "file";
    type Options = FileOptions;

    fn validate(options: &FileOptions) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if options.roll_events == 0 {
            problems.push(("roll_events".to_owned(), "must be at least 1".to_owned()));
        }
        if options.roll_seconds == 0 {
            problems.push(("roll_seconds".to_owned(), "must be at least 1".to_owned()));
        }
        if options.path.as_os_str().is_empty() {
            problems.push(("path".to_owned(), "must not be empty".to_owned()));
        }
        problems
    }

    fn resolve_paths(options: &mut FileOptions, dir: &std::path::Path) {
        if options.path.is_relative() {
            options.path = dir.join(&options.path);
        }
    }

    fn preflight(options: &FileOptions) -> Vec<(String, String)> {
        match crate::probe_directory(&options.path) {
            Ok(()) => Vec::new(),
            Err(message) => vec![("path".to_owned(), message)],
        }
    }

    fn build(options: &FileOptions, _delivery: &Delivery) -> Result<Arc<dyn Sink>, BoxError> {
        let sink = FileSink::builder(&options.path)
            .roll_events(options.roll_events)
            .roll_seconds(options.roll_seconds)
            .gzip(options.gzip)
            .build()?;
        Ok(Arc::new(sink))
    }

    fn describe(options: &FileOptions) -> String {
        format!(
            "path={} roll_events={} roll_seconds={} gzip={}",
            options.path.display(),
            options.roll_events,
            options.roll_seconds,
            options.gzip
        )
    }
}
