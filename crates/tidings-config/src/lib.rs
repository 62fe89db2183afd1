//! The tidings TOML config: it describes the routing tree (edX's
//! `EVENT_TRACKING_BACKENDS`) and the collector, and builds them.
//!
//! Loading is pure: the whole file is parsed and every node validated
//! without I/O, and every mistake is reported together, each with the path
//! of the offending entry (`backends.spade.processors[0].patterns`). Only
//! then does [`Config::build`] start sinks and workers.
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
//! assert_eq!(paths, ["backends.other.processors[0].patterns[0]", "backends.out.type"]);
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
//! max_batch_age_seconds }`) and `dead_letter` (`"none"` or a backend
//! table), plus its own options.
//!
//! Unset, `when_full` is `backpressure` in a tree a worker feeds
//! ([`Config::build`], the collector's) and `drop_newest` for the stages
//! application threads feed ([`Config::build_fed_by`] with
//! [`Feed::Callers`], a tracker's); a sink that keeps every event writes
//! the events it gives up on to a file under [`DEFAULT_DEAD_LETTER_DIR`]. Third-party crates add sink and processor types with
//! [`Registry::register_sink`] and [`Registry::register_processor`].

mod build;
mod error;
mod options;
mod path;
mod registry;
mod stock;
mod tree;

pub use build::{Pipeline, Stage, StageKind, StageMetrics};
pub use error::{ConfigError, ConfigErrorKind, ConfigErrors};
pub use options::{AckMode, CollectorCatalog, CollectorOptions, Feed};
pub use path::ConfigPath;
pub use registry::{Delivery, ProcessorType, Registry, SinkType};
pub use stock::{
    PropertyAllowlistOptions, PropertyAllowlistType, RegexFilterOptions, RegexFilterType,
};
pub use tree::{Config, DEFAULT_DEAD_LETTER_DIR};

/// Parses and validates a config, without I/O.
///
/// # Errors
///
/// [`ConfigErrors`] listing every mistake with its path.
pub fn load(text: &str, registry: &Registry) -> Result<Config, ConfigErrors> {
    tree::parse(text, registry)
}

/// Reads, parses and validates the config file at `path`.
///
/// # Errors
///
/// [`ConfigErrors`] when the file cannot be read or has mistakes.
pub fn load_file(
    path: impl AsRef<std::path::Path>,
    registry: &Registry,
) -> Result<Config, ConfigErrors> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            "",
            ConfigErrorKind::Syntax,
            format!("cannot read config file {}: {e}", path.display()),
        )
    })?;
    load(&text, registry)
}
