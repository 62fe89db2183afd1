//! `AmqpSink`: each batch published with publisher confirms, one persistent,
//! mandatory message per event, on a connection made lazily and remade after
//! any failure.

use std::fmt;
use std::time::Duration;

use crate::builder::{AmqpSinkBuilder, CONTENT_TYPE, PERSISTENT};
use crate::connection::{Session, Stage};
use crate::error::{DeliveryError, is_permanent};

use futures_util::future::join_all;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use tidings_core::{Sink, SinkError, async_trait};
use tidings_event::Event;
use tokio::sync::Mutex;

use crate::routing_key::RoutingKeyTemplate;
use crate::url::BrokerUrl;

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
    pub(crate) url: BrokerUrl,
    pub(crate) exchange: ShortString,
    pub(crate) template: RoutingKeyTemplate,
    pub(crate) declare: bool,
    pub(crate) queue: Option<(ShortString, ShortString)>,
    pub(crate) timeout: Duration,
    pub(crate) session: Mutex<Option<Session>>,
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

impl AmqpSink {
    /// A builder with every option at its default.
    pub fn builder() -> AmqpSinkBuilder {
        AmqpSinkBuilder::new()
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
