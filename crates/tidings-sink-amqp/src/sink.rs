//! `AmqpSink`: each batch published with publisher confirms, one persistent,
//! mandatory message per event, on a connection made lazily and remade after
//! any failure.

use std::fmt;
use std::time::Duration;

use futures_util::future::join_all;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{FieldTable, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind,
    ExchangeKind,
};
use tidings_core::{Sink, SinkError, async_trait};
use tidings_event::Event;
use tokio::sync::Mutex;

use crate::routing_key::RoutingKeyTemplate;
use crate::url::BrokerUrl;

/// Default for [`AmqpSinkBuilder::url`]: the local broker's default user and
/// virtual host.
pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Default for [`AmqpSinkBuilder::exchange`].
pub const DEFAULT_EXCHANGE: &str = "tidings.events";
/// Default for [`AmqpSinkBuilder::routing_key`].
pub const DEFAULT_ROUTING_KEY: &str = "events.{name}";
/// Default for [`AmqpSinkBuilder::binding_key`]: every routing key.
pub const DEFAULT_BINDING_KEY: &str = "#";
/// Default for [`AmqpSinkBuilder::publish_timeout_ms`].
pub const DEFAULT_PUBLISH_TIMEOUT_MS: u64 = 5_000;

/// The longest exchange, queue or routing key AMQP 0-9-1 allows, in bytes.
const MAX_SHORT_STRING: usize = 255;
/// AMQP delivery mode 2: the broker writes the message to disk (on a
/// durable queue).
const PERSISTENT: u8 = 2;
const CONTENT_TYPE: &str = "application/json";

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

/// Why a batch was not delivered; the source of the [`SinkError`] that
/// [`AmqpSink`] returns. Messages name the broker by its redacted URL and
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

/// Builds an [`AmqpSink`]. Created by [`AmqpSink::builder`]; the setters are
/// named as the keys of `type = "amqp"` in a config file.
#[derive(Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct AmqpSinkBuilder {
    url: String,
    exchange: String,
    routing_key: String,
    declare: bool,
    queue: Option<String>,
    binding_key: Option<String>,
    publish_timeout_ms: u64,
}

impl fmt::Debug for AmqpSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpSinkBuilder")
            .field("url", &tidings_core::RedactedUrl::new(&self.url))
            .field("exchange", &self.exchange)
            .field("routing_key", &self.routing_key)
            .field("declare", &self.declare)
            .field("queue", &self.queue)
            .field("binding_key", &self.binding_key)
            .field("publish_timeout_ms", &self.publish_timeout_ms)
            .finish()
    }
}

impl AmqpSinkBuilder {
    /// The broker, `amqp://user:password@host:port/vhost` (the virtual host
    /// percent-encoded: `%2f` is `/`) or `amqps://…`. Defaults to
    /// [`DEFAULT_URL`]. The password is shown as `***` everywhere.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// The exchange published to. Defaults to [`DEFAULT_EXCHANGE`]; `""` is
    /// the default exchange, which routes by queue name.
    pub fn exchange(mut self, exchange: impl Into<String>) -> Self {
        self.exchange = exchange.into();
        self
    }

    /// The routing key, where `{name}` is replaced by the event name.
    /// Defaults to [`DEFAULT_ROUTING_KEY`] (`events.{name}`).
    pub fn routing_key(mut self, template: impl Into<String>) -> Self {
        self.routing_key = template.into();
        self
    }

    /// Declares the exchange (type `topic`, durable) on every new connection,
    /// and the [`queue`](Self::queue) if one is set. Defaults to false: the
    /// exchange must exist.
    pub fn declare(mut self, declare: bool) -> Self {
        self.declare = declare;
        self
    }

    /// A durable queue to declare and bind to the exchange with
    /// [`binding_key`](Self::binding_key); needs `declare(true)`. Without
    /// any bound queue, every publish is returned unroutable and fails.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// The binding key of [`queue`](Self::queue). Defaults to
    /// [`DEFAULT_BINDING_KEY`] (`#`, every routing key).
    pub fn binding_key(mut self, binding_key: impl Into<String>) -> Self {
        self.binding_key = Some(binding_key.into());
        self
    }

    /// The most one `send_batch` may take, in milliseconds: connecting,
    /// declaring, publishing and waiting for every confirm. Defaults to 5000.
    pub fn publish_timeout_ms(mut self, timeout_ms: u64) -> Self {
        self.publish_timeout_ms = timeout_ms;
        self
    }

    /// Checks the options. Does no I/O: the connection is made by the first
    /// `send_batch`, on the delivery worker's runtime.
    ///
    /// # Errors
    ///
    /// [`BuildError`] when the URL does not parse, the routing key template
    /// is invalid, a name is too long, `queue`/`binding_key` are set without
    /// `declare`, or the timeout is zero.
    pub fn build(self) -> Result<AmqpSink, BuildError> {
        let url =
            BrokerUrl::parse(&self.url).map_err(|(url, reason)| BuildError::Url { url, reason })?;
        let template = RoutingKeyTemplate::parse(&self.routing_key).map_err(|reason| {
            BuildError::RoutingKey {
                template: self.routing_key.clone(),
                reason,
            }
        })?;
        if template.literal_len() > MAX_SHORT_STRING {
            return Err(BuildError::TooLong {
                option: "routing_key",
                len: template.literal_len(),
            });
        }
        if self.publish_timeout_ms == 0 {
            return Err(BuildError::ZeroTimeout);
        }
        let exchange = short("exchange", self.exchange)?;
        let queue = match (self.declare, self.queue, self.binding_key) {
            (_, None, Some(_)) => {
                return Err(BuildError::Requires {
                    option: "binding_key",
                    requires: "queue",
                });
            }
            (false, Some(_), _) => {
                return Err(BuildError::Requires {
                    option: "queue",
                    requires: "declare = true",
                });
            }
            (true, Some(queue), binding_key) => Some((
                short("queue", queue)?,
                short(
                    "binding_key",
                    binding_key.unwrap_or_else(|| DEFAULT_BINDING_KEY.to_owned()),
                )?,
            )),
            (_, None, None) => None,
        };
        if self.declare && exchange.as_str().is_empty() {
            return Err(BuildError::DeclareDefaultExchange);
        }
        Ok(AmqpSink {
            url,
            exchange,
            template,
            declare: self.declare,
            queue,
            timeout: Duration::from_millis(self.publish_timeout_ms),
            session: Mutex::new(None),
        })
    }
}

fn short(option: &'static str, value: String) -> Result<ShortString, BuildError> {
    let len = value.len();
    ShortString::try_new(value).map_err(|_| BuildError::TooLong { option, len })
}

/// An open connection and its confirm-mode channel.
struct Session {
    connection: Connection,
    channel: Channel,
}

impl Session {
    fn is_usable(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

/// What a `send_batch` was doing, for timeout messages.
#[derive(Clone, Copy)]
enum Stage {
    Connecting,
    Declaring,
    Publishing,
    Confirming,
}

impl Stage {
    fn describe(self) -> &'static str {
        match self {
            Stage::Connecting => "connecting",
            Stage::Declaring => "declaring the exchange and queue",
            Stage::Publishing => "publishing",
            Stage::Confirming => "waiting for publisher confirms",
        }
    }
}

/// Publishes events to a RabbitMQ (AMQP 0-9-1) exchange, one message per
/// event, with publisher confirms.
///
/// Each message is the event in the tidings wire format
/// ([`Event::write_json`]), `content_type` `application/json`, persistent
/// (delivery mode 2), published `mandatory` with the routing key from the
/// template, `message_id` set to the event id, `type` to the event name and
/// `timestamp` to the event time in seconds.
///
/// A batch is published as pipelined publishes, then every confirm is
/// awaited; it succeeds only if every message is acked and none returned.
/// A nack, a lost connection or channel, or a timeout is retryable; a
/// returned message (no queue bound for its routing key) is fatal, because
/// retrying cannot route it while the bindings stay the same, and each retry
/// would publish the routed part of the batch again while holding up every
/// later batch; the batch is dropped and counted as `non_retryable`.
/// Refusals that stay until someone changes the broker (access refused,
/// exchange not found, conflicting declaration) are fatal too.
///
/// AMQP has no deduplication: a batch retried after a lost confirm is
/// published again, so consumers may see an event twice and should remove
/// duplicates by `message_id`, which is the event id.
///
/// The connection is opened by the first `send_batch`, on the runtime of
/// the delivery worker, and dropped after any failure; the next call opens
/// a new one. Each call is bounded by `publish_timeout_ms` as a whole.
pub struct AmqpSink {
    url: BrokerUrl,
    exchange: ShortString,
    template: RoutingKeyTemplate,
    declare: bool,
    queue: Option<(ShortString, ShortString)>,
    timeout: Duration,
    session: Mutex<Option<Session>>,
}

impl fmt::Debug for AmqpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpSink")
            .field("url", &self.url)
            .field("exchange", &self.exchange.as_str())
            .field("routing_key", &self.template)
            .field("declare", &self.declare)
            .field(
                "queue",
                &self.queue.as_ref().map(|(q, b)| (q.as_str(), b.as_str())),
            )
            .field("publish_timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Whether `error` is a refusal that lasts until the broker's configuration
/// changes.
fn is_permanent(error: &lapin::Error) -> bool {
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

impl AmqpSink {
    /// A builder with every option at its default.
    pub fn builder() -> AmqpSinkBuilder {
        AmqpSinkBuilder {
            url: DEFAULT_URL.to_owned(),
            exchange: DEFAULT_EXCHANGE.to_owned(),
            routing_key: DEFAULT_ROUTING_KEY.to_owned(),
            declare: false,
            queue: None,
            binding_key: None,
            publish_timeout_ms: DEFAULT_PUBLISH_TIMEOUT_MS,
        }
    }

    /// The broker URL, password replaced by `***`.
    #[must_use]
    pub fn redacted_url(&self) -> &str {
        self.url.redacted()
    }

    /// The exchange published to.
    #[must_use]
    pub fn exchange(&self) -> &str {
        self.exchange.as_str()
    }

    /// The routing key `event` is published with.
    #[must_use]
    pub fn routing_key_for(&self, event: &Event) -> String {
        self.template.render(event.name().as_str())
    }

    fn setup_error(&self, step: &'static str, error: &lapin::Error) -> DeliveryError {
        DeliveryError::Setup {
            step,
            url: self.url.redacted().to_owned(),
            reason: self.url.scrub(error),
            permanent: is_permanent(error),
        }
    }

    fn publish_error(&self, error: &lapin::Error) -> DeliveryError {
        DeliveryError::Publish {
            exchange: self.exchange.as_str().to_owned(),
            url: self.url.redacted().to_owned(),
            reason: self.url.scrub(error),
            permanent: is_permanent(error),
        }
    }

    /// Connects, opens a confirm channel and declares the topology if asked.
    async fn open(&self, stage: &mut Stage) -> Result<Session, DeliveryError> {
        *stage = Stage::Connecting;
        let properties =
            ConnectionProperties::default().with_connection_name("tidings-sink-amqp".into());
        let connection = Connection::connect_uri(self.url.uri().clone(), properties)
            .await
            .map_err(|e| self.setup_error("connect", &e))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| self.setup_error("open a channel", &e))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| self.setup_error("enable publisher confirms", &e))?;
        if self.declare {
            *stage = Stage::Declaring;
            channel
                .exchange_declare(
                    self.exchange.clone(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| self.setup_error("declare the exchange", &e))?;
            if let Some((queue, binding_key)) = &self.queue {
                channel
                    .queue_declare(
                        queue.clone(),
                        QueueDeclareOptions::durable(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| self.setup_error("declare the queue", &e))?;
                channel
                    .queue_bind(
                        queue.clone(),
                        self.exchange.clone(),
                        binding_key.clone(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| self.setup_error("bind the queue", &e))?;
            }
        }
        Ok(Session {
            connection,
            channel,
        })
    }

    /// One attempt: (re)connect if needed, publish every event, await every
    /// confirm. The session is left in `slot` only while it is healthy.
    async fn attempt(
        &self,
        slot: &mut Option<Session>,
        batch: &[Event],
        stage: &mut Stage,
    ) -> Result<(), DeliveryError> {
        // Keys first: an over-long one fails before anything is published.
        let mut keys = Vec::with_capacity(batch.len());
        for event in batch {
            let key = self.routing_key_for(event);
            let len = key.len();
            keys.push(
                ShortString::try_new(key).map_err(|_| DeliveryError::RoutingKeyTooLong {
                    event_id: event.id().to_string(),
                    len,
                })?,
            );
        }
        if slot.as_ref().is_some_and(|s| !s.is_usable()) {
            *slot = None;
        }
        if slot.is_none() {
            *slot = Some(self.open(stage).await?);
        }
        let Some(session) = slot.as_ref() else {
            unreachable!("the session was just opened");
        };

        *stage = Stage::Publishing;
        let options = BasicPublishOptions {
            mandatory: true,
            immediate: false,
        };
        let bodies: Vec<Vec<u8>> = batch
            .iter()
            .map(|event| {
                let mut body = Vec::with_capacity(event.encoded_len());
                event.write_json(&mut body);
                body
            })
            .collect();
        // Pipelined: each publish queues its frames (and takes its delivery
        // tag) when first polled, in batch order; then all writes complete
        // together instead of one round trip to the I/O thread per event.
        let publishes = batch
            .iter()
            .zip(keys)
            .zip(&bodies)
            .map(|((event, key), body)| {
                let seconds = u64::try_from(event.timestamp().unix_micros().div_euclid(1_000_000))
                    .unwrap_or(0);
                let mut properties = BasicProperties::default()
                    .with_content_type(CONTENT_TYPE.into())
                    .with_delivery_mode(PERSISTENT)
                    .with_message_id(event.id().to_string().into())
                    .with_timestamp(seconds);
                if let Ok(name) = ShortString::try_new(event.name().as_str()) {
                    properties = properties.with_type(name);
                }
                session
                    .channel
                    .basic_publish(self.exchange.clone(), key, options, body, properties)
            });
        let mut confirms = Vec::with_capacity(batch.len());
        for published in join_all(publishes).await {
            confirms.push(published.map_err(|e| self.publish_error(&e))?);
        }

        *stage = Stage::Confirming;
        let total = batch.len();
        let mut nacked = 0;
        let mut returned = 0;
        let mut first_return = None;
        for confirm in confirms {
            let confirmation = confirm.await.map_err(|e| self.publish_error(&e))?;
            let (acked, message) = match confirmation {
                Confirmation::Ack(message) => (true, message),
                Confirmation::Nack(message) => (false, message),
                Confirmation::NotRequested => {
                    // Cannot happen on a channel in confirm mode; never
                    // count an unconfirmed publish as delivered.
                    (false, None)
                }
            };
            if let Some(message) = message {
                returned += 1;
                if first_return.is_none() {
                    first_return = Some((
                        message.delivery.routing_key.as_str().to_owned(),
                        format!("{} {}", message.reply_code, message.reply_text.as_str()),
                    ));
                }
            } else if !acked {
                nacked += 1;
            }
        }
        if let Some((routing_key, reply)) = first_return {
            return Err(DeliveryError::Returned {
                exchange: self.exchange.as_str().to_owned(),
                url: self.url.redacted().to_owned(),
                returned,
                total,
                routing_key,
                reply,
            });
        }
        if nacked > 0 {
            return Err(DeliveryError::Nacked {
                exchange: self.exchange.as_str().to_owned(),
                url: self.url.redacted().to_owned(),
                nacked,
                total,
            });
        }
        Ok(())
    }
}

impl DeliveryError {
    /// How the delivery engine should treat this failure.
    fn into_sink_error(self) -> SinkError {
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
    fn breaks_session(&self) -> bool {
        !matches!(
            self,
            DeliveryError::Nacked { .. }
                | DeliveryError::Returned { .. }
                | DeliveryError::RoutingKeyTooLong { .. }
        )
    }
}

#[async_trait]
impl Sink for AmqpSink {
    async fn send_batch(&self, batch: &[Event]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut slot = self.session.lock().await;
        let mut stage = Stage::Connecting;
        let outcome =
            tokio::time::timeout(self.timeout, self.attempt(&mut slot, batch, &mut stage)).await;
        let error = match outcome {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => error,
            Err(_elapsed) => DeliveryError::Timeout {
                url: self.url.redacted().to_owned(),
                timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
                stage: stage.describe(),
            },
        };
        if error.breaks_session() {
            // Dropping the handles closes the connection if it still works.
            *slot = None;
        }
        Err(error.into_sink_error())
    }

    async fn shutdown(&self) -> Result<(), SinkError> {
        let Some(session) = self.session.lock().await.take() else {
            return Ok(());
        };
        let closed = tokio::time::timeout(
            self.timeout,
            session
                .connection
                .close(200, "tidings sink shut down".into()),
        )
        .await;
        match closed {
            // Closed, or closing in the background once the handles drop.
            Ok(Ok(())) | Err(_) => Ok(()),
            // Already closed by the broker or the network: nothing to release.
            Ok(Err(_)) if !session.connection.status().connected() => Ok(()),
            Ok(Err(error)) => Err(SinkError::retryable(
                self.setup_error("close the connection", &error),
            )),
        }
    }
}
