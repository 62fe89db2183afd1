//! The RabbitMQ sink's errors, and which broker failures are permanent.

use lapin::ErrorKind;
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use tidings_core::SinkError;

/// The AMQP sink's options are inconsistent or invalid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `url` is not an `amqp://` or `amqps://` URL.
    #[error("invalid AMQP url {url}: {reason}")]
    Url {
        /// The URL, password replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `routing_key` is not a valid template.
    #[error("invalid routing_key template {template:?}: {reason}")]
    RoutingKey {
        /// The template.
        template: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An exchange, queue or key is longer than AMQP allows.
    #[error("{option} is {len} bytes long, AMQP allows at most 255")]
    TooLong {
        /// The option (`exchange`, `queue`, `binding_key`, `routing_key`).
        option: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// `queue` or `binding_key` is set without `declare = true`, or
    /// `binding_key` without `queue`.
    #[error("{option} requires {requires}")]
    Requires {
        /// The option set.
        option: &'static str,
        /// What it needs.
        requires: &'static str,
    },
    /// `declare = true` with the default exchange (`""`), which cannot be declared.
    #[error("declare = true needs a named exchange; the default exchange \"\" cannot be declared")]
    DeclareDefaultExchange,
    /// `publish_timeout_ms` is zero.
    #[error("publish_timeout_ms must be at least 1")]
    ZeroTimeout,
}

impl BuildError {
    /// The option at fault, as a config file names it (`url`,
    /// `routing_key`, `publish_timeout_ms`, ...): every variant says which.
    #[must_use]
    pub fn option(&self) -> &'static str {
        match self {
            Self::Url { .. } => "url",
            Self::RoutingKey { .. } => "routing_key",
            Self::TooLong { option, .. } | Self::Requires { option, .. } => option,
            Self::DeclareDefaultExchange => "exchange",
            Self::ZeroTimeout => "publish_timeout_ms",
        }
    }
}

/// Why a batch was not delivered; the source of the [`SinkError`] that
/// [`AmqpSink`](crate::AmqpSink) returns. Messages name the broker by its redacted URL and
/// never contain its password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// Connecting, opening the confirm channel or declaring the topology
    /// failed.
    #[error("AMQP broker {url}: cannot {step}: {reason}")]
    Setup {
        /// What was being done.
        step: &'static str,
        /// The broker, password redacted.
        url: String,
        /// What the client library reported.
        reason: String,
        /// Whether the broker refused for good (access, missing or
        /// conflicting exchange or queue).
        permanent: bool,
    },
    /// A publish or its confirm failed (connection or channel lost, or the
    /// broker closed the channel).
    #[error("cannot publish to exchange {exchange:?} on AMQP broker {url}: {reason}")]
    Publish {
        /// The exchange.
        exchange: String,
        /// The broker, password redacted.
        url: String,
        /// What the client library reported.
        reason: String,
        /// Whether the broker refused for good (access, missing exchange).
        permanent: bool,
    },
    /// The broker answered `basic.nack` for some messages.
    #[error("AMQP broker {url} refused (nack) {nacked} of {total} events on exchange {exchange:?}")]
    Nacked {
        /// The exchange.
        exchange: String,
        /// The broker, password redacted.
        url: String,
        /// Messages nacked.
        nacked: usize,
        /// Messages in the batch.
        total: usize,
    },
    /// Mandatory messages were returned: no queue is bound for their routing key.
    #[error(
        "{returned} of {total} events were returned unroutable by exchange {exchange:?} on AMQP broker {url} (first routing key {routing_key:?}: {reply})"
    )]
    Returned {
        /// The exchange.
        exchange: String,
        /// The broker, password redacted.
        url: String,
        /// Messages returned.
        returned: usize,
        /// Messages in the batch.
        total: usize,
        /// The routing key of the first returned message.
        routing_key: String,
        /// The broker's reply (`312 NO_ROUTE`).
        reply: String,
    },
    /// An event's routing key would be longer than AMQP allows.
    #[error(
        "routing key for event {event_id} ({len} bytes) is longer than AMQP allows (255 bytes)"
    )]
    RoutingKeyTooLong {
        /// The event.
        event_id: String,
        /// The key's length in bytes.
        len: usize,
    },
    /// The broker did not answer within `publish_timeout_ms`.
    #[error("no answer from AMQP broker {url} within {timeout_ms} ms while {stage}")]
    Timeout {
        /// The broker, password redacted.
        url: String,
        /// The timeout.
        timeout_ms: u64,
        /// What was under way.
        stage: &'static str,
    },
}

/// Whether `error` is a refusal that lasts until the broker's configuration
/// changes.
pub(crate) fn is_permanent(error: &lapin::Error) -> bool {
    match error.kind() {
        ErrorKind::ProtocolError(amqp) => matches!(
            amqp.kind(),
            AMQPErrorKind::Soft(
                AMQPSoftError::ACCESSREFUSED
                    | AMQPSoftError::NOTFOUND
                    | AMQPSoftError::PRECONDITIONFAILED
            )
        ),
        _ => false,
    }
}

impl DeliveryError {
    /// How the delivery engine should treat this failure.
    pub(crate) fn into_sink_error(self) -> SinkError {
        match &self {
            DeliveryError::Setup { permanent, .. } | DeliveryError::Publish { permanent, .. }
                if *permanent =>
            {
                SinkError::fatal(self)
            }
            DeliveryError::Returned { .. } => SinkError::fatal(self),
            DeliveryError::RoutingKeyTooLong { .. } => SinkError::too_large(self),
            _ => SinkError::retryable(self),
        }
    }

    /// Whether the connection must be dropped: after anything but a clean
    /// broker answer (confirms all received), its state is unknown.
    pub(crate) fn breaks_session(&self) -> bool {
        !matches!(
            self,
            DeliveryError::Nacked { .. }
                | DeliveryError::Returned { .. }
                | DeliveryError::RoutingKeyTooLong { .. }
        )
    }
}
