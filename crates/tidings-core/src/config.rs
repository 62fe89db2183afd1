//! [`SinkType`]: how a sink crate makes its sink configurable from a
//! config file (`type = "NAME"` in a `[backends.*]` table), and the
//! [`Delivery`] settings the framework decides for it. The config crate
//! (`tidings-config`) reads the file and calls these; a sink crate
//! implements them behind its own `config` feature, next to its options.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::{BoxError, Sink};

/// A sink type that config files can name with `type = "NAME"`.
///
/// The options are the sink's own keys of its table, deserialized with
/// serde (use `#[serde(deny_unknown_fields)]` so typos are reported). The
/// delivery keys every sink takes (`queue_capacity`, `when_full`,
/// `max_events`, `max_bytes`, `flush_interval_ms`, `retry`, ...) are handled
/// by the framework and never reach `Options`.
pub trait SinkType: Send + Sync + 'static {
    /// The name used in `type = "..."`.
    const NAME: &'static str;
    /// The sink's options. They may hold secrets (passwords in URLs, auth
    /// headers), so they are only ever shown through [`SinkType::describe`].
    type Options: DeserializeOwned + Send + Sync + 'static;

    /// Checks what serde cannot, without any I/O. Each problem is the key
    /// (relative to the sink's table, empty for the table itself) and a
    /// message.
    fn validate(options: &Self::Options) -> Vec<(String, String)> {
        let _ = options;
        Vec::new()
    }

    /// Resolves the relative paths among the options (files, directories)
    /// against `dir`, the directory of the config file: a config means the
    /// same wherever `tidings` is started from. The default does nothing.
    fn resolve_paths(options: &mut Self::Options, dir: &std::path::Path) {
        let _ = (options, dir);
    }

    /// Checks what needs the machine but changes nothing on it, such as a
    /// directory that cannot be created, so that `tidings check` fails
    /// exactly when `serve` would. Each problem is the key and a message.
    fn preflight(options: &Self::Options) -> Vec<(String, String)> {
        let _ = options;
        Vec::new()
    }

    /// Builds the sink. May connect or open files. `delivery` is how the
    /// framework will batch and retry for it, for sinks whose own settings
    /// depend on that (a deduplication window must outlast the retries).
    ///
    /// # Errors
    ///
    /// Any error that keeps the sink from starting.
    fn build(options: &Self::Options, delivery: &Delivery) -> Result<Arc<dyn Sink>, BoxError>;

    /// A one-line summary for `tidings check` and `Debug` output, such as
    /// `url=http://host:port/… table=events`. It must not show secrets.
    fn describe(options: &Self::Options) -> String;
}

/// How the framework delivers to a sink built from config, from the
/// delivery keys of its table, for sinks whose own settings depend on it
/// (a deduplication window must outlast the retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// The most events in one batch (`max_events`).
    pub max_events: usize,
    /// The most bytes in one batch, before compression (`max_bytes`).
    pub max_bytes: usize,
    /// How long a failed batch is retried before it is given up on: the
    /// retry policy's horizon (`retry`, `max_batch_age_seconds`).
    pub retry_horizon: Duration,
}

impl Delivery {
    /// The delivery settings of a sink.
    #[must_use]
    pub const fn new(max_events: usize, max_bytes: usize, retry_horizon: Duration) -> Self {
        Self {
            max_events,
            max_bytes,
            retry_horizon,
        }
    }
}
