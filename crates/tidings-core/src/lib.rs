//! The tidings contract: what every sink, processor, source and instrumented
//! library depends on, with no async runtime, regex engine or HTTP stack.
//!
//! - the event ([`Event`], [`EventId`], [`EventName`], the wire format) and
//!   its settlement ([`Lease`]);
//! - [`Backend`], which receives events on the emitting thread, and its
//!   errors; [`BoxError`];
//! - [`Processor`], one step that keeps, changes or drops an event;
//! - [`Sink`], which delivers batches from a delivery engine's worker, and
//!   [`SinkError`];
//! - what a delivery stage reports ([`MetricsSnapshot`], [`DropReason`]);
//! - [`SinkType`], how a sink is named and built from a config file;
//! - [`RedactedUrl`], how every crate shows a URL;
//! - the emit and context API: [`emit`], [`enter_context`], and
//!   [`Dispatch`], which an application installs as the default.
//!
//! An instrumented library calls [`emit`] and leaves the backends to the
//! application, as a library calls `tracing`'s macros and leaves the
//! subscriber to the application:
//!
//! ```
//! use serde_json::json;
//! use tidings_core::Dispatch;
//! use tidings_test::RecordingBackend;
//!
//! // In the library:
//! fn fetch(url: &str) {
//!     let _ = tidings_core::emit("http.request", json!({ "url": url }));
//! }
//!
//! // In the application (or a test):
//! let recorder = RecordingBackend::new();
//! let _default = tidings_core::set_default(&Dispatch::new(recorder.clone()).into_dyn());
//! fetch("https://example.com/");
//! assert_eq!(recorder.names(), ["http.request"]);
//! ```
//!
//! The delivery engine (queues, batching, retry, the async router) is
//! `tidings-routing`; the stock processors are `tidings-processors`; the
//! `tidings` facade puts them together.

mod backend;
mod config;
mod dispatch;
mod global;
mod processor;
mod processor_error;
mod redact;
mod sink;
mod source;
mod stage;
mod topology;
mod undelivered;

pub use async_trait::async_trait;
pub use backend::{Backend, BoxError, DrainError, SendError};
pub use config::{BackendType, Delivery, SinkType};
pub use dispatch::{DEFAULT_DRAIN_TIMEOUT, Dispatch, EmitCheck, EmitError};
pub use global::{
    DefaultGuard, FlushGuard, SetGlobalError, emit, init, set_default, try_init, with_default,
};
pub use processor::{FnProcessor, Interest, Processor, Verdict, processor_fn};
pub use processor_error::ProcessorError;
pub use redact::RedactedUrl;
pub use sink::{Sink, SinkError, SinkErrorKind};
pub use source::{
    Outcome, Settlements, Source, SourceError, SourceMetrics, SourceType, UNDECODABLE, undecodable,
};
pub use stage::{DropReason, LastError, MetricsSnapshot};
/// The context crate, for items not re-exported at the top level.
pub use tidings_context as context;
pub use tidings_context::{
    Context, ContextGuard, GlobalContextGuard, IntoContextMap, WithContext, WithContextExt,
    current as current_context, enter as enter_context, enter_global as enter_global_context,
    exit as exit_context, exit_global as exit_global_context, in_scope as in_context,
};
/// The event crate, for items not re-exported at the top level.
pub use tidings_event as event;
pub use tidings_event::{
    DataError, Event, EventId, EventName, Lease, Limits, Map, NameError, Timestamp, Value,
    WireError, decode,
};
pub use topology::Topology;
pub use undelivered::Undelivered;
pub(crate) use undelivered::report;
