//! Routing for tidings: the [`Backend`] trait that receives events, and
//! [`RoutingBackend`], which runs a processor chain and then fans each event
//! out to named backends (edX `event-tracking`'s `RoutingBackend`).
//!
//! This is the delivery engine: [`SinkBackend`] (a bounded queue, batching,
//! retry, dead letters and accounting in front of a [`Sink`]),
//! [`AsyncRouter`], and the synchronous [`RoutingBackend`]. The traits they
//! implement and call (`Backend`, `Sink`, `Processor`) live in
//! `tidings-core`, which is all a sink author depends on.
//!
//! ```
//! use std::sync::Arc;
//! use serde_json::json;
//! use tidings_event::{Event, EventName};
//! use tidings_processors::RegexFilter;
//! use tidings_routing::{Backend, RoutingBackend};
//! use tidings_test::RecordingBackend;
//!
//! let audit = RecordingBackend::new();
//! let public = RecordingBackend::new();
//! let root = RoutingBackend::builder()
//!     .backend("audit", audit.clone())
//!     .backend(
//!         "public",
//!         RoutingBackend::builder()
//!             .processor(RegexFilter::blocklist([r"debug\."])?)
//!             .backend("out", public.clone())
//!             .build()?,
//!     )
//!     .build()?;
//!
//! root.send(Event::new(EventName::new("debug.tick")?, json!({})))?;
//! root.send(Event::new(EventName::new("page.view")?, json!({})))?;
//! assert_eq!(audit.names(), ["debug.tick", "page.view"]);
//! assert_eq!(public.names(), ["page.view"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Architecture invariants
//!
//! - [`Backend::send`] runs on the emitting thread: it must never block on
//!   I/O. Backends that do I/O hand events to a worker through a bounded
//!   queue. The one exception is asked for: an [`AsyncRouter`] with a
//!   [`DiskBuffer`] waits for the event's write to disk.
//! - One backend failing or panicking never stops the others; every failure
//!   is counted in [`RouterStats`].

mod delivery;
mod router;

pub use delivery::*;
pub use router::{
    AsBackend, AsSink, BranchStats, BuildError, IntoBackend, RouterStats, RoutingBackend,
    RoutingBackendBuilder,
};
/// The contract, defined in `tidings-core` and re-exported here.
pub use tidings_core::{
    Backend, BoxError, DrainError, DropReason, LastError, MetricsSnapshot, SendError, Sink,
    SinkError, SinkErrorKind, Source, SourceError, SourceMetrics, Topology, async_trait,
};
/// The disk buffer's options and figures, from `tidings-wal`.
pub use tidings_wal::{SyncMode, WalOptions, WalStats};
