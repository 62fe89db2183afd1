//! `type = "log"`: a plain backend writing each event, as one JSON line,
//! to the application's log through `tracing`, as edX's `LoggerBackend`
//! does with Python's logging.

use std::sync::Arc;

use serde::Deserialize;
use tidings_core::{Backend, BackendType, BoxError, SendError};
use tidings_event::Event;

/// The target of the log records: filter on it (`RUST_LOG=tidings::events=info`).
pub const LOG_TARGET: &str = "tidings::events";

/// Default for `max_event_bytes`.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 50_000;

/// `type = "log"`: `level` (`info`), `logger` (a name put in every record),
/// `max_event_bytes` (50 000).
#[derive(Debug)]
pub struct LogType;

/// The options of `log`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogOptions {
    #[serde(default)]
    level: Level,
    #[serde(default = "logger")]
    logger: String,
    #[serde(default = "max_event_bytes")]
    max_event_bytes: usize,
}

fn logger() -> String {
    "tracking".to_owned()
}

fn max_event_bytes() -> usize {
    DEFAULT_MAX_EVENT_BYTES
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

/// Writes events to the log; an event over `max` bytes is not written,
/// and a warning says which (edX drops it silently).
#[derive(Debug)]
struct LogBackend {
    level: Level,
    logger: String,
    max: usize,
}

impl Backend for LogBackend {
    fn send(&self, event: Event) -> Result<(), SendError> {
        let json = event.to_json_bytes();
        if json.len() > self.max {
            tracing::warn!(target: LOG_TARGET, logger = %self.logger, name = %event.name(), id = %event.id(), bytes = json.len(), max_event_bytes = self.max, "event over max_event_bytes: not logged");
            return Ok(());
        }
        let line = String::from_utf8_lossy(&json);
        let logger = &self.logger;
        match self.level {
            Level::Debug => tracing::debug!(target: LOG_TARGET, %logger, "{line}"),
            Level::Info => tracing::info!(target: LOG_TARGET, %logger, "{line}"),
            Level::Warn => tracing::warn!(target: LOG_TARGET, %logger, "{line}"),
            Level::Error => tracing::error!(target: LOG_TARGET, %logger, "{line}"),
        }
        Ok(())
    }
}

impl BackendType for LogType {
    const NAME: &'static str = "log";
    type Options = LogOptions;

    fn validate(options: &LogOptions) -> Vec<(String, String)> {
        if options.max_event_bytes == 0 {
            vec![(
                "max_event_bytes".to_owned(),
                "must be at least 1".to_owned(),
            )]
        } else {
            Vec::new()
        }
    }

    fn build(options: &LogOptions) -> Result<Arc<dyn Backend>, BoxError> {
        Ok(Arc::new(LogBackend {
            level: options.level,
            logger: options.logger.clone(),
            max: options.max_event_bytes,
        }))
    }

    fn describe(options: &LogOptions) -> String {
        format!(
            "level={:?} logger={} max_event_bytes={}",
            options.level, options.logger, options.max_event_bytes
        )
        .to_lowercase()
    }

    fn may_drop(options: &LogOptions) -> Option<String> {
        Some(format!(
            "events over {} bytes are not logged; the log is the application's, kept as its subscriber keeps it",
            options.max_event_bytes
        ))
    }
}
