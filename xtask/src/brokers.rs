//! The broker ends of `chaos`'s poison faults and of `cluster`: a NATS
//! JetStream stream (with its consumer's backlog, for `cluster`) and
//! a RabbitMQ exchange with a queue, each made for one fault, read back
//! (the event id of every message, from its header and its body) and
//! deleted when dropped. Their clients run on a current-thread runtime of
//! their own, only inside `block_on`.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::runtime::Runtime;

use crate::harness::{AMQP_ADDR, NATS_ADDR};

/// A runtime for one client.
fn runtime() -> Result<Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))
}

/// The id of a message read back: `header` (the broker's message id),
/// which must be the `id` of the event in `body`.
fn checked_id(header: Option<&str>, body: &[u8], what: &str) -> Result<String, String> {
    let event: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("{what}: the body is not JSON: {e}"))?;
    let id = event["id"].as_str().unwrap_or_default();
    match header {
        Some(header) if header == id => Ok(id.to_owned()),
        header => Err(format!(
            "{what}: its message id {header:?} is not its event's id {id:?}"
        )),
    }
}

/// Where a stream lives: its servers (URLs), how many replicas it has and
/// in which storage.
pub(crate) struct Placement {
    pub(crate) servers: Vec<String>,
    pub(crate) replicas: usize,
    pub(crate) storage: stream::StorageType,
}

/// A JetStream stream on the subjects `PREFIX.>`.
pub(crate) struct JetStream {
    runtime: Runtime,
    context: jetstream::Context,
    /// Its name.
    pub(crate) name: String,
}

impl JetStream {
    /// Creates the stream `name` on `prefix.>` (after deleting a leftover),
    /// refusing messages (headers and body) over `max_message_size` bytes
    /// and removing the duplicates that arrive within `duplicate_window`.
    pub(crate) fn create(
        name: &str,
        prefix: &str,
        max_message_size: i32,
        duplicate_window: Duration,
    ) -> Result<Self, String> {
        let placement = Placement {
            servers: vec![format!("nats://{NATS_ADDR}")],
            replicas: 1,
            storage: stream::StorageType::Memory,
        };
        Self::create_on(&placement, name, prefix, max_message_size, duplicate_window)
    }

    /// [`JetStream::create`] on the servers, replicas and storage of
    /// `placement` (the client reconnects to any of the servers).
    pub(crate) fn create_on(
        placement: &Placement,
        name: &str,
        prefix: &str,
        max_message_size: i32,
        duplicate_window: Duration,
    ) -> Result<Self, String> {
        let runtime = runtime()?;
        let servers = placement.servers.join(",");
        let context = runtime.block_on(async {
            let client = async_nats::connect(placement.servers.clone())
                .await
                .map_err(|e| format!("cannot connect to NATS at {servers}: {e}"))?;
            let context = jetstream::new(client);
            let _ = context.delete_stream(name).await;
            context
                .create_stream(stream::Config {
                    name: name.to_owned(),
                    subjects: vec![format!("{prefix}.>")],
                    max_message_size,
                    duplicate_window,
                    storage: placement.storage,
                    num_replicas: placement.replicas,
                    ..stream::Config::default()
                })
                .await
                .map_err(|e| {
                    format!(
                        "cannot create the JetStream stream {name} at {servers} (is nats-server running with -js?): {e}"
                    )
                })?;
            Ok::<_, String>(context)
        })?;
        Ok(Self {
            runtime,
            context,
            name: name.to_owned(),
        })
    }

    /// The server name of the stream's leader, if it has one now (a stream
    /// of one replica on a server outside a cluster has none).
    pub(crate) fn leader(&self) -> Result<Option<String>, String> {
        let failed = |e: &dyn std::fmt::Display| format!("stream {}: {e}", self.name);
        self.runtime.block_on(async {
            let mut stream = self
                .context
                .get_stream(&self.name)
                .await
                .map_err(|e| failed(&e))?;
            let info = stream.info().await.map_err(|e| failed(&e))?;
            Ok(info.cluster.as_ref().and_then(|c| c.leader.clone()))
        })
    }

    /// The event id of every message the stream holds, in order.
    pub(crate) fn ids(&self) -> Result<Vec<String>, String> {
        let failed = |e: &dyn std::fmt::Display| format!("reading stream {}: {e}", self.name);
        self.runtime.block_on(async {
            let mut stream = self
                .context
                .get_stream(&self.name)
                .await
                .map_err(|e| failed(&e))?;
            let state = stream.info().await.map_err(|e| failed(&e))?.state.clone();
            let mut ids = Vec::new();
            if state.messages == 0 {
                return Ok(ids);
            }
            for sequence in state.first_sequence..=state.last_sequence {
                let message = stream
                    .get_raw_message(sequence)
                    .await
                    .map_err(|e| failed(&e))?;
                let header = message
                    .headers
                    .get(async_nats::header::NATS_MESSAGE_ID)
                    .map(|value| value.as_str());
                ids.push(checked_id(
                    header,
                    &message.payload,
                    &format!("message {sequence} of stream {}", self.name),
                )?);
            }
            Ok(ids)
        })
    }
}

/// What a stream holds and what its consumer has yet to settle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StreamCounts {
    /// Messages in the stream (after its duplicate window removed repeats).
    pub(crate) messages: u64,
    /// Messages the consumer has not delivered yet.
    pub(crate) pending: u64,
    /// Messages delivered to a reader and not acknowledged yet.
    pub(crate) ack_pending: u64,
}

impl JetStream {
    /// The stream's message count and its consumer `consumer`'s backlog.
    pub(crate) fn counts(&self, consumer: &str) -> Result<StreamCounts, String> {
        let failed = |e: &dyn std::fmt::Display| format!("stream {}: {e}", self.name);
        self.runtime.block_on(async {
            let mut stream = self
                .context
                .get_stream(&self.name)
                .await
                .map_err(|e| failed(&e))?;
            let messages = stream.info().await.map_err(|e| failed(&e))?.state.messages;
            let info = stream
                .consumer_info(consumer)
                .await
                .map_err(|e| failed(&format!("consumer {consumer}: {e}")))?;
            Ok(StreamCounts {
                messages,
                pending: info.num_pending,
                ack_pending: info.num_ack_pending as u64,
            })
        })
    }
}

impl Drop for JetStream {
    fn drop(&mut self) {
        let _ = self
            .runtime
            .block_on(self.context.delete_stream(&self.name));
    }
}

/// A RabbitMQ topic exchange and a queue bound to all of it (`#`), both
/// named `name`.
pub(crate) struct AmqpQueue {
    runtime: Runtime,
    /// The name of the exchange and of the queue.
    pub(crate) name: String,
}

impl AmqpQueue {
    /// The broker's URL.
    pub(crate) fn url() -> String {
        format!("amqp://guest:guest@{AMQP_ADDR}/%2f")
    }

    /// Declares the exchange and the queue (after deleting leftovers) and
    /// binds them.
    pub(crate) fn declare(name: &str) -> Result<Self, String> {
        Self::declare_with(name, false)
    }

    /// [`AmqpQueue::declare`], the exchange and the queue durable or not.
    pub(crate) fn declare_with(name: &str, durable: bool) -> Result<Self, String> {
        let queue = Self {
            runtime: runtime()?,
            name: name.to_owned(),
        };
        queue.delete();
        queue.on_channel("declare and bind", async |channel| {
            channel
                .exchange_declare(
                    name.into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        durable,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            channel
                .queue_declare(
                    name.into(),
                    QueueDeclareOptions {
                        durable,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            channel
                .queue_bind(
                    name.into(),
                    name.into(),
                    "#".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
        })?;
        Ok(queue)
    }

    /// Messages ready in the queue (not delivered to a consumer, or given
    /// back) and the consumers reading it.
    pub(crate) fn ready(&self) -> Result<(u64, u64), String> {
        let state = self.on_channel("inspect", async |channel| {
            channel
                .queue_declare(
                    self.name.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
        })?;
        Ok((
            u64::from(state.message_count()),
            u64::from(state.consumer_count()),
        ))
    }

    /// The event id of every message in the queue, in order, taking them.
    pub(crate) fn ids(&self) -> Result<Vec<String>, String> {
        let messages = self.on_channel("read", async |channel| {
            let mut messages = Vec::new();
            while let Some(message) = channel
                .basic_get(self.name.as_str().into(), BasicGetOptions { no_ack: true })
                .await?
            {
                let delivery = message.delivery;
                let id = delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|id| id.as_str().to_owned());
                messages.push((id, delivery.data));
            }
            Ok(messages)
        })?;
        messages
            .iter()
            .enumerate()
            .map(|(n, (id, body))| {
                checked_id(
                    id.as_deref(),
                    body,
                    &format!("message {n} of queue {}", self.name),
                )
            })
            .collect()
    }

    /// Deletes the queue and the exchange, if they exist (each on its own
    /// channel: a refusal closes the channel).
    fn delete(&self) {
        let name = || self.name.as_str().into();
        let _ = self.on_channel("delete the queue", async |channel| {
            channel
                .queue_delete(name(), QueueDeleteOptions::default())
                .await
                .map(drop)
        });
        let _ = self.on_channel("delete the exchange", async |channel| {
            channel
                .exchange_delete(name(), ExchangeDeleteOptions::default())
                .await
        });
    }

    /// Runs `work` on a channel of a connection of its own (`doing` names
    /// it in errors).
    fn on_channel<T>(
        &self,
        doing: &str,
        work: impl AsyncFnOnce(&Channel) -> lapin::Result<T>,
    ) -> Result<T, String> {
        let failed =
            |e: lapin::Error| format!("RabbitMQ at {AMQP_ADDR}: cannot {doing} {}: {e}", self.name);
        self.runtime.block_on(async {
            let connection = Connection::connect(&Self::url(), ConnectionProperties::default())
                .await
                .map_err(failed)?;
            let result = match connection.create_channel().await {
                Ok(channel) => work(&channel).await,
                Err(e) => Err(e),
            };
            let _ = connection.close(200, "done".into()).await;
            result.map_err(failed)
        })
    }
}

impl Drop for AmqpQueue {
    fn drop(&mut self) {
        self.delete();
    }
}
