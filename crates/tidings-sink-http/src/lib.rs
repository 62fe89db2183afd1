//! The HTTP sinks of tidings: Spade-like batched ingest ([`SpadeSink`]),
//! flume form posts ([`FlumeSink`]), generic JSON ([`HttpJsonSink`]) and
//! Segment's batch API ([`SegmentSink`]), all sending through one
//! [`HttpClient`].
//!
//! ```
//! use std::time::Duration;
//! use tidings_routing::{Backend, BatchConfig, RetryPolicy, SinkBackend};
//! use tidings_sink_http::{HttpClient, SpadeSink};
//!
//! let client = HttpClient::builder().request_timeout(Duration::from_secs(5)).build()?;
//! let sink = SpadeSink::builder()
//!     .url("http://127.0.0.1:9000/track")
//!     .client(client)
//!     .build()?;
//! assert_eq!(sink.url_provider().current_url().as_deref(), Some("http://127.0.0.1:9000/…"));
//!
//! // Batching, retries, Retry-After pauses and 413 splitting are the
//! // SinkBackend's; the sink makes one attempt per call.
//! let backend = SinkBackend::builder("spade", sink)
//!     .batch(BatchConfig::default().with_max_events(50))
//!     .retry(RetryPolicy::default().with_max_attempts(5))
//!     .build()?;
//! // Hand `backend` to a router or tracker; here nothing was sent.
//! backend.shutdown(Duration::from_secs(1))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The [`SegmentSink`] forwards events to Segment, RudderStack or another
//! tidings collector as `/v1/batch` requests:
//!
//! ```
//! use tidings_event::{Event, EventName, Timestamp};
//! use tidings_sink_http::SegmentSink;
//!
//! let sink = SegmentSink::builder()
//!     .url("https://api.segment.io/v1/batch")
//!     .write_key("WRITE_KEY")
//!     .build()?;
//! assert!(!format!("{sink:?}").contains("WRITE_KEY"));
//!
//! // An event that did not come from a Segment client becomes a track.
//! let event = Event::new(EventName::new("page.view")?, serde_json::json!({"url": "/"}));
//! let message: serde_json::Value = serde_json::from_slice(&sink.message(&event))?;
//! assert_eq!(message["type"], "track");
//! assert_eq!(message["event"], "page.view");
//! assert_eq!(message["properties"], serde_json::json!({"url": "/"}));
//! assert_eq!(message["messageId"], event.id().to_string());
//! assert_eq!(message["anonymousId"], event.id().to_string());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What the sinks do, and what they leave to `SinkBackend`
//!
//! Each sink implements [`tidings_core::Sink`]: one `send_batch` call is
//! one attempt. Failures are classified for the
//! `SinkBackend` (tidings-routing)'s retry policy: `408`,
//! `429` and `5xx` answers are retryable (with their `Retry-After`, in
//! seconds or as an HTTP date), `413` splits the batch, other statuses drop
//! it; connection failures, resets and timeouts are retryable.
//!
//! The [`HttpClient`] runs requests on an I/O thread of its own, so one
//! client (and its connection pool) serves every sink that is given a clone
//! of it, whatever runtime or worker thread the sinks run on. URLs and header values may carry
//! credentials: they never appear in error messages, logs or `Debug`
//! output, where a URL is shown as `scheme://host:port` only.

mod client;
#[cfg(feature = "config")]
mod config;
mod endpoint;
mod error;
mod flume;
mod json;
mod properties;
mod segment;
mod spade;

pub use client::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_POOL_IDLE_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, HttpClient,
    HttpClientBuilder, HttpResponse, MAX_ANSWER_BYTES, RequestError, parse_retry_after,
};
#[cfg(feature = "config")]
pub use config::{
    FlumeOptions, FlumeType, HttpOptions, HttpType, SegmentOptions, SegmentType, SpadeOptions,
    SpadeType,
};
pub use error::BuildError;
pub use flume::{FlumeSink, FlumeSinkBuilder, PartialDelivery};
pub use json::{HttpJsonSink, HttpJsonSinkBuilder};
pub use segment::{
    DEFAULT_USER_ID_CONTEXT_KEY, MAX_MESSAGE_BYTES, MAX_REQUEST_BYTES, SegmentLimitError,
    SegmentSink, SegmentSinkBuilder,
};
pub use spade::{DEFAULT_REFRESH_INTERVAL, SpadeSink, SpadeSinkBuilder, UrlProvider};
