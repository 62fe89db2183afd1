//! [`SinkType`]: how a sink crate makes its sink configurable from a
//! config file (`type = "NAME"` in a `[backends.*]` table), and the
//! [`Delivery`] settings the framework decides for it; [`BackendType`], the
//! same for a plain synchronous [`Backend`]. The config crate
//! (`tidings-config`) reads the file and calls these; a sink crate
//! implements them behind its own `config` feature, next to its options.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::{Backend, BoxError, Sink};

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

/// A plain backend type that config files can name with `type = "NAME"`:
/// a synchronous [`Backend`] put in the tree as it is, with no queue,
/// batching, retry or dead letters of the framework's.
///
/// Its `send` runs on the thread that sends to its router: the emitting
/// thread under a `router`, the worker under an `async_router`. It suits
/// what costs no I/O (counting, sampling into memory, handing events to the
/// application's own logger); anything slower belongs in a [`SinkType`],
/// which the framework queues and retries. Its table takes `type` and its
/// own options only.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use serde::Deserialize;
/// use tidings_core::{Backend, BackendType, BoxError, Event, SendError};
///
/// /// `type = "count"`: counts the events it is given.
/// struct CountType;
///
/// #[derive(Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct CountOptions { label: String }
///
/// #[derive(Debug, Default)]
/// struct Count(AtomicU64);
///
/// impl Backend for Count {
///     fn send(&self, _event: Event) -> Result<(), SendError> {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         Ok(())
///     }
/// }
///
/// impl BackendType for CountType {
///     const NAME: &'static str = "count";
///     type Options = CountOptions;
///     fn build(_options: &CountOptions) -> Result<Arc<dyn Backend>, BoxError> {
///         Ok(Arc::new(Count::default()))
///     }
///     fn describe(options: &CountOptions) -> String {
///         format!("label={}", options.label)
///     }
/// }
/// ```
///
/// Register it with `tidings_config::Registry::register_backend`.
pub trait BackendType: Send + Sync + 'static {
    /// The name used in `type = "..."`.
    const NAME: &'static str;
    /// The backend's options (every key of its table but `type`), only
    /// ever shown through [`BackendType::describe`].
    type Options: DeserializeOwned + Send + Sync + 'static;

    /// Checks what serde cannot, without any I/O: each problem is the key
    /// (relative to the backend's table) and a message.
    fn validate(options: &Self::Options) -> Vec<(String, String)> {
        let _ = options;
        Vec::new()
    }

    /// Resolves the relative paths among the options against `dir`, the
    /// directory of the config file. The default does nothing.
    fn resolve_paths(options: &mut Self::Options, dir: &std::path::Path) {
        let _ = (options, dir);
    }

    /// Builds the backend.
    ///
    /// # Errors
    ///
    /// Any error that keeps the backend from starting.
    fn build(options: &Self::Options) -> Result<Arc<dyn Backend>, BoxError>;

    /// A one-line summary for `tidings check`, without secrets.
    fn describe(options: &Self::Options) -> String;

    /// Why the backend may lose an event its `send` accepted, if it may,
    /// for the "after 202" line of `tidings check` and the collector's
    /// start-up banner. The framework cannot see what a plain backend
    /// keeps, so the default says so; return `None` from a backend that
    /// keeps (or hands on synchronously) every event it accepts.
    fn may_drop(options: &Self::Options) -> Option<String> {
        let _ = options;
        Some(format!(
            "a plain `{}` backend: what it keeps once `send` returns is its own",
            Self::NAME
        ))
    }
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
