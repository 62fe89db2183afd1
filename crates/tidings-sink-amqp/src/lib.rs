//! The AMQP 0-9-1 (RabbitMQ) sink: every event published as a persistent,
//! mandatory JSON message with publisher confirms, reconnecting after the
//! broker or the network drops.
//!
//! A batch is published as pipelined publishes, then every confirm is
//! awaited: it is delivered only when the broker acked every message and
//! returned none. The routing key comes from a template (`events.{name}`),
//! the `message_id` is the event id, so consumers can remove the duplicates
//! that a retried batch may bring (AMQP does not deduplicate). See
//! [`AmqpSink`] for how failures are classified.
//!
//! Building the sink does no I/O; it connects on its first batch, on the
//! delivery worker's runtime:
//!
//! ```
//! use tidings_routing::{Backend, SinkBackend};
//! use tidings_sink_amqp::AmqpSink;
//!
//! let sink = AmqpSink::builder()
//!     .url("amqp://app:secret@127.0.0.1:5672/%2f")
//!     .exchange("tidings.events")
//!     .routing_key("events.{name}")
//!     .publish_timeout_ms(5_000)
//!     .build()?;
//! assert_eq!(sink.redacted_url(), "amqp://***@127.0.0.1:5672/…");
//! assert!(!format!("{sink:?}").contains("secret"));
//! let backend = SinkBackend::builder("rabbitmq", sink).build()?;
//! # backend.shutdown(std::time::Duration::from_secs(1))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod builder;
#[cfg(feature = "config")]
mod config;
mod connection;
mod error;
mod routing_key;
mod sink;
mod source;
mod url;

pub use builder::{
    AmqpSinkBuilder, DEFAULT_BINDING_KEY, DEFAULT_EXCHANGE, DEFAULT_PUBLISH_TIMEOUT_MS,
    DEFAULT_ROUTING_KEY, DEFAULT_URL,
};
#[cfg(feature = "config")]
pub use config::{AmqpOptions, AmqpSourceOptions, AmqpSourceType, AmqpType};
pub use error::{BuildError, DeliveryError};
pub use sink::AmqpSink;
pub use source::{AmqpSource, AmqpSourceBuilder, DEFAULT_PREFETCH};
pub use tidings_core::UNDECODABLE;
