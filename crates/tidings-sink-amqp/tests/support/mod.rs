//! Helpers for the tests against the real RabbitMQ: unique names, an admin
//! connection to declare, consume and delete, events, and a TCP proxy that
//! can cut every connection to simulate an outage.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::json;
use tidings_event::{Event, EventName};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

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

/// A TCP proxy to the broker on its own thread and runtime, so that tests
/// blocking on `SinkBackend::flush` never starve it. While cut, it closes
/// every open connection and every new one right after accepting it.
pub struct Proxy {
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
}

impl Proxy {
    pub fn start() -> Self {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let open = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0_u64);
        let accept_open = open.clone();
        let accept_cuts = cuts.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                ready_tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    if !accept_open.load(Ordering::SeqCst) {
                        let _ = client.shutdown().await;
                        continue;
                    }
                    let mut cut = accept_cuts.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut upstream) = TcpStream::connect(BROKER).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                            _ = cut.changed() => {}
                        }
                        // Dropping both ends cuts the connection.
                    });
                }
            });
        });
        let addr = ready_rx.recv().unwrap();
        Self { addr, open, cuts }
    }

    /// An AMQP URL to the broker through this proxy.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    /// Closes every connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Accepts and forwards connections again.
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}
