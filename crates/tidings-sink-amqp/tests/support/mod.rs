//! Helpers for the tests against the real RabbitMQ: unique names, an admin
//! connection to declare, consume and delete, events, and a TCP proxy that
//! can cut every connection to simulate an outage.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::json;
use tidings_event::{Event, EventName};

pub const BROKER: &str = "127.0.0.1:5672";
pub const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Fails loudly when RabbitMQ is down.
pub fn require_rabbitmq() {
    tidings_test::require_service("RabbitMQ", BROKER, "rabbitmq-server -detached");
}

/// A name unique to this process and test.
pub fn unique(test: &str) -> String {
    format!("tidings-test.{}.{test}", std::process::id())
}

pub fn event(name: &str, n: usize) -> Event {
    Event::new(
        EventName::new(name.to_owned()).unwrap(),
        json!({"n": n, "text": "héllo"}),
    )
}

/// A message read back from a queue.
#[derive(Debug, Clone)]
pub struct Received {
    pub message_id: String,
    pub routing_key: String,
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    pub delivery_mode: Option<u8>,
    pub kind: Option<String>,
}

/// An admin connection of the test's own, on the test's runtime.
pub struct Admin {
    _connection: Connection,
    pub channel: Channel,
}

impl Admin {
    pub async fn connect() -> Self {
        let connection = Connection::connect(URL, ConnectionProperties::default())
            .await
            .expect("admin connection to RabbitMQ");
        let channel = connection.create_channel().await.unwrap();
        Self {
            _connection: connection,
            channel,
        }
    }

    pub async fn declare_exchange(&self, exchange: &str) {
        self.channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    auto_delete: false,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
    }

    pub async fn bind_queue(&self, queue: &str, exchange: &str, binding_key: &str) {
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        self.channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                binding_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }

    /// Reads messages from `queue` until `at_least` arrived and the queue is
    /// empty, or `within` passes.
    pub async fn drain(&self, queue: &str, at_least: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        let mut received = Vec::new();
        loop {
            let message = self
                .channel
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap();
            match message {
                Some(message) => {
                    let delivery = &message.delivery;
                    let properties = &delivery.properties;
                    received.push(Received {
                        message_id: properties
                            .message_id()
                            .as_ref()
                            .map(|id| id.as_str().to_owned())
                            .unwrap_or_default(),
                        routing_key: delivery.routing_key.as_str().to_owned(),
                        body: delivery.data.clone(),
                        content_type: properties
                            .content_type()
                            .as_ref()
                            .map(|c| c.as_str().to_owned()),
                        delivery_mode: *properties.delivery_mode(),
                        kind: properties.kind().as_ref().map(|k| k.as_str().to_owned()),
                    });
                }
                None if received.len() >= at_least || Instant::now() >= deadline => {
                    return received;
                }
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    pub async fn delete(&self, exchange: &str, queues: &[&str]) {
        for queue in queues {
            let _ = self
                .channel
                .queue_delete((*queue).into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = self
            .channel
            .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
            .await;
    }
}

/// Messages per `message_id`.
pub fn count_by_id(received: &[Received]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for message in received {
        *counts.entry(message.message_id.clone()).or_insert(0) += 1;
    }
    counts
}

pub use tidings_test::CuttableProxy;

/// An AMQP URL to the broker through `proxy`.
pub fn proxy_url(proxy: &CuttableProxy) -> String {
    format!("amqp://guest:guest@{}/%2f", proxy.addr())
}
