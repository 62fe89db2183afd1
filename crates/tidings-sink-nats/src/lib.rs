//! The NATS JetStream sink: each event is published, in the tidings wire
//! format, to a subject made from its name, with its id as `Nats-Msg-Id`
//! so the stream's duplicate window drops what a retried batch sends again.
//!
//! ```no_run
//! use std::time::Duration;
//! use tidings_routing::{Backend, SinkBackend};
//! use tidings_sink_nats::NatsSink;
//!
//! let sink = NatsSink::builder()
//!     .url("nats://127.0.0.1:4222")
//!     .subject("events.{name}") // `page view` → `events.page_view`
//!     .stream("EVENTS")
//!     .create_stream(true) // capturing `events.>`
//!     .duplicate_window_seconds(120)
//!     .build()?; // connects here, on the sink's own I/O thread
//! let backend = SinkBackend::builder("nats", sink).build()?;
//! # backend.shutdown(Duration::from_secs(1))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Delivery
//!
//! `send_batch` publishes up to `max_in_flight` messages (256) before
//! waiting for the oldest acknowledgement, and succeeds once every message
//! of the batch is acknowledged; an acknowledgement marked `duplicate` (the
//! event was stored by an earlier attempt) counts as delivered. A publish
//! or acknowledgement that fails or takes longer than `ack_timeout_ms`
//! (5000) fails the batch as retryable, and the engine retries all of it:
//! within the stream's duplicate window every event is stored once.
//! `build` warns (target `tidings::sink::nats`) when that window is shorter
//! than the retry horizon it is given.
//!
//! # Threads and connections
//!
//! The async-nats client runs on a thread owned by the sink, with a
//! current-thread tokio runtime (I/O and time drivers); `build` starts it
//! and connects there, failing fast, with the URL shown without
//! credentials, when the server cannot be reached. The delivery worker's
//! runtime only awaits the results. After a connection loss the client
//! reconnects by itself (attempts at most 0.5 s apart, forever); publishes
//! meanwhile fail as retryable within the ack timeout instead of hanging.
//! `shutdown` flushes the connection and stops the thread.
//!
//! # Subjects
//!
//! `{name}` in the template is replaced by the event name. Whitespace,
//! control characters, `*` and `>` in a name become `_`, and so does an
//! empty token (`.a..b` → `_.a._.b`); see [`SubjectTemplate`].

mod builder;
#[cfg(feature = "config")]
mod config;
mod connection;
mod error;
mod io;
mod settle;
mod sink;
mod source;
mod subject;

pub use builder::{
    DEFAULT_ACK_TIMEOUT_MS, DEFAULT_DUPLICATE_WINDOW_SECONDS, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_RETRY_HORIZON, DEFAULT_SUBJECT, DEFAULT_URL, NatsSinkBuilder, duplicate_window_warning,
};
#[cfg(feature = "config")]
pub use config::{NatsOptions, NatsSourceOptions, NatsSourceType, NatsType};
pub use error::NatsError;
pub use sink::NatsSink;
pub use source::{
    DEFAULT_ACK_WAIT_MS, DEFAULT_CONSUMER, DEFAULT_MAX_ACK_PENDING, NatsSource, NatsSourceBuilder,
};
pub use subject::SubjectTemplate;
pub use tidings_core::UNDECODABLE;
