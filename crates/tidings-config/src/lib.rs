//! The tidings TOML config: it describes the routing tree (edX's
//! `EVENT_TRACKING_BACKENDS`) and the collector, and builds them.
//!
//! Loading is pure but for reading catalog files: the whole file is
//! parsed and every node validated, and every mistake is reported
//! together, in the order of the file, each with its line and column, the
//! quoted path of the offending entry (`backends.spade.processors[0].patterns`),
//! the keys the table takes and the nearest one to a typo (via
//! `tidings-toml`). [`Config::preflight`] checks what needs the machine
//! (directories that must be created) without changing it; only
//! [`Config::build`] starts sinks and workers. Relative paths resolve
//! against the config file's directory ([`load_file`]).
//!
//! ```
//! use tidings_config::{load, Registry};
//!
//! let config = load(r#"
//!     [[processors]]
//!     type = "regex_filter"
//!     filter = "allowlist"
//!     patterns = ['^edx\.', '^navigation\.']
//!
//!     [backends.out]
//!     type = "console"
//!     format = "json"
//!     max_events = 50
//! "#, &Registry::default())?;
//! assert!(config.to_string().contains("out: console format=json"));
//!
//! let errors = load(r#"
//!     [backends.out]
//!     type = "consol"
//!     [backends.other]
//!     type = "router"
//!     [[backends.other.processors]]
//!     type = "regex_filter"
//!     filter = "allowlist"
//!     patterns = ['(']
//! "#, &Registry::default()).unwrap_err();
//! let paths: Vec<&str> = errors.errors().iter().map(|e| e.path.as_str()).collect();
//! assert_eq!(paths, ["backends.out.type", "backends.other.processors[0].patterns[0]"]);
//! assert!(errors.errors()[0].to_string().starts_with(
//!     "line 3, column 5: `backends.out.type`: unknown backend type \"consol\"; \
//!      did you mean \"console\"? The backend types are: router, async_router, "
//! ));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Types
//!
//! `router` and `async_router` take `processors` and `backends`;
//! `async_router` adds `queue_capacity`, `when_full` (`backpressure`,
//! `drop_newest`, `drop_oldest`, `block`) and `block_timeout_ms`. Every sink
//! type takes the delivery keys `queue_capacity`, `when_full`,
//! `block_timeout_ms`, `max_events`, `max_bytes`, `flush_interval_ms`,
//! `retry` (`"none"` or `{ max_attempts, initial_backoff_ms, max_backoff_ms,
//! max_batch_age_seconds }`), `batch_key` (paths such as
//! `context.project_id`), `requeue_failed`, `log_dispatch` and
//! `dead_letter` (`"none"` or a backend table), plus its own options.
//!
//! Unset, `when_full` is `backpressure` in a tree a worker feeds
//! ([`Config::build`], the collector's) and `drop_newest` for the stages
//! application threads feed ([`Config::build_fed_by`] with
//! [`Feed::Callers`], a tracker's); a sink that keeps every event writes
//! the events it gives up on to a file under [`DEFAULT_DEAD_LETTER_DIR`]. Third-party crates add sink and processor types with
//! [`Registry::register_sink`] and [`Registry::register_processor`].

mod buffer;
mod build;
mod error;
mod options;
mod path;
mod print;
mod registry;
mod stock;
mod tree;

pub use build::{NamedSource, Pipeline, Stage, StageKind, StageMetrics};
pub use error::{ConfigError, ConfigErrorKind, ConfigErrors, Location};
pub use options::{
    AckMode, ClientIp, CollectorCatalog, CollectorOptions, CollectorUi, Feed, parse_listen,
};
pub use path::ConfigPath;
pub use registry::{ProcessorType, Registry};
pub use stock::log::{DEFAULT_MAX_EVENT_BYTES, LOG_TARGET, LogOptions, LogType};
pub use stock::{
    NameFilterOptions, NameFilterType, PropertyAllowlistOptions, PropertyAllowlistType,
    RegexFilterOptions, RegexFilterType,
};
/// The sink side of the registry, defined in `tidings-core` so that a sink
/// crate implements it without depending on this crate.
pub use tidings_core::{BackendType, Delivery, SinkType, SourceType};
/// Whether a directory can be created and written (the `file` sink's and
/// the collector's write-ahead log's preflight).
#[cfg(feature = "file")]
pub use tidings_sink_file::probe_directory;
pub use tidings_tower::TrustedProxies;
pub use tree::{Config, DEFAULT_DEAD_LETTER_DIR, SinkSummary};

/// Parses and validates a config, without I/O.
///
/// # Errors
///
/// [`ConfigErrors`] listing every mistake with its path.
pub fn load(text: &str, registry: &Registry) -> Result<Config, ConfigErrors> {
    tree::parse(text, registry, None)
}

/// Reads, parses and validates the config file at `path`. Relative paths
/// in it (a file sink's `path`, a catalog, `wal_path`, dead letters)
/// resolve against the file's directory, not the working directory.
///
/// # Errors
///
/// [`ConfigErrors`] when the file has mistakes, or cannot be read (kind
/// `Build`: the machine's problem, not the file's).
pub fn load_file(
    path: impl AsRef<std::path::Path>,
    registry: &Registry,
) -> Result<Config, ConfigErrors> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            "",
            ConfigErrorKind::Build,
            format!("cannot read config file {}: {e}", path.display()),
        )
    })?;
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    tree::parse(&text, registry, Some(dir))
}
