//! tidings: emit named, context-aware events; filter, validate and scrub
//! them with processors; route them through a tree of backends to sinks.
//!
//! This is the facade most applications import. It re-exports the pieces
//! (`tidings-core`, the contract; `tidings-processors`; `tidings-routing`,
//! the delivery engine) and adds the [`Tracker`], which builds a routing
//! tree and installs it as the default. Sink authors and instrumented
//! libraries depend on `tidings-core` alone instead of this crate.
//!
//! ```
//! use serde_json::json;
//! use tidings::{Tracker, RegexFilter};
//! use tidings_test::RecordingBackend;
//!
//! let recorder = RecordingBackend::new();
//! let tracker = Tracker::builder()
//!     .processor(RegexFilter::allowlist([r"navigation\."])?)
//!     .backend("memory", recorder.clone())
//!     .build()?;
//!
//! let _user = tidings::enter_context("user", json!({"user_id": 10938}));
//! tracker.emit("navigation.request", json!({"url": "http://www.edx.org/some/path/1"}))?;
//! tracker.emit("debug.tick", json!({}))?; // filtered out
//!
//! let events = recorder.events();
//! assert_eq!(events.len(), 1);
//! assert_eq!(events[0].context()["user_id"], 10938);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The global default tracker
//!
//! Libraries call [`emit`] without holding a tracker; the application
//! installs one once with [`init`] or [`try_init`] and keeps the returned
//! [`FlushGuard`] alive until it exits. With no tracker installed, [`emit`]
//! is a no-op costing a few nanoseconds. Tests use [`set_default`] to install
//! a tracker for the current thread only.

mod global;
mod named;
mod tracker;

pub use global::{init, set_default, try_init};
pub use named::{register_tracker, tracker, tracker_names, unregister_tracker};
/// The TOML config (feature `config`): what [`Tracker::from_config_str`]
/// reads, and the registry third-party sink and processor types join.
#[cfg(feature = "config")]
pub use tidings_config::{ConfigError, ConfigErrors, ProcessorType, Registry, SinkType};
pub use tidings_core::{
    Backend, BoxError, Context, ContextGuard, DEFAULT_DRAIN_TIMEOUT, DefaultGuard, Dispatch,
    DrainError, DropReason, EmitError, Event, EventId, EventName, FlushGuard, GlobalContextGuard,
    Interest, IntoContextMap, Limits, Map, MetricsSnapshot, NameError, Processor, ProcessorError,
    SendError, SetGlobalError, Sink, SinkError, SinkErrorKind, Timestamp, Topology, Undelivered,
    Value, Verdict, WireError, WithContext, WithContextExt, async_trait, current_context, decode,
    emit, enter_context, enter_global_context, exit_context, exit_global_context, in_context,
    processor_fn, with_default,
};
pub use tidings_processors::{
    AllowlistError, EngineError, FilterMode, NameFilter, PatternError, PropertyAllowlist,
    RegexFilter,
};
pub use tidings_routing::{
    AsyncRouter, AsyncRouterBuilder, BatchConfig, BatchKey, BuildError, DiskBuffer,
    DispatchAttempt, IntoBackend, ListenerId, ProcessorsOn, RetryPolicy, RouterStats,
    RoutingBackend, RoutingBackendBuilder, SinkBackend, SinkBackendBuilder, SinkBuildError,
    SpawnError, WhenFull,
};
pub use tracker::{Tracker, TrackerBuilder};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

/// The examples of docs/migrating.md, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/migrating.md")]
struct MigratingDoctests;

/// The event catalog (feature `catalog`, default): declared events,
/// validation, PII marks, typed events and handlers.
#[cfg(feature = "catalog")]
#[doc(inline)]
pub use tidings_catalog as catalog;
#[cfg(feature = "catalog")]
pub use tidings_catalog::TypedEvent;

/// The stock sinks, each behind the cargo feature of its name.
///
/// | feature | module | sinks |
/// |---|---|---|
/// | `console` (default) | `sinks::console` | JSON lines or pretty JSON on stdout/stderr |
/// | `file` | `sinks::file` | rolling JSON-lines files, gzip, compaction |
/// | `http` | `sinks::http` | Spade-like batched ingest, flume form posts, generic JSON |
/// | `postgres` | `sinks::postgres` | PostgreSQL, deduplicated by id |
/// | `amqp` | `sinks::amqp` | RabbitMQ with publisher confirms |
/// | `nats` | `sinks::nats` | NATS JetStream, deduplicated by message id |
pub mod sinks {
    #[cfg(feature = "amqp")]
    #[doc(inline)]
    pub use tidings_sink_amqp as amqp;
    #[cfg(feature = "console")]
    #[doc(inline)]
    pub use tidings_sink_console as console;
    #[cfg(feature = "file")]
    #[doc(inline)]
    pub use tidings_sink_file as file;
    #[cfg(feature = "http")]
    #[doc(inline)]
    pub use tidings_sink_http as http;
    #[cfg(feature = "nats")]
    #[doc(inline)]
    pub use tidings_sink_nats as nats;
    #[cfg(feature = "postgres")]
    #[doc(inline)]
    pub use tidings_sink_postgres as postgres;
}

/// The underlying crates, for items not re-exported at the top level.
pub mod crates {
    pub use tidings_core as core;
    pub use tidings_core::{context, event};
    pub use tidings_processors as processors;
    pub use tidings_routing as routing;
}

/// The traits and types most programs need: `use tidings::prelude::*;`.
pub mod prelude {
    pub use tidings_core::WithContextExt as _;

    pub use crate::{Backend, Event, EventName, Processor, Tracker, Verdict};
}
