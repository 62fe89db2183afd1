//! Throughput of the AMQP sink through `SinkBackend`, with publisher
//! confirms, against the real RabbitMQ: `cargo bench -p tidings-sink-amqp`.
//! Prints events per second for a few batch sizes.

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions, QueuePurgeOptions};
use lapin::{Connection, ConnectionProperties};
use serde_json::json;
use tidings_event::{Event, EventName};
use tidings_routing::{Backend, BatchConfig, SinkBackend};
use tidings_sink_amqp::AmqpSink;

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const EVENTS: usize = 50_000;

fn main() {
    tidings_test::require_service("RabbitMQ", "127.0.0.1:5672", "rabbitmq-server -detached");
    let exchange = format!("tidings-bench.{}", std::process::id());
    let queue = format!("{exchange}.q");
    let events: Vec<Event> = (0..EVENTS)
        .map(|n| {
            Event::new(
                EventName::new("bench.page_view").unwrap(),
                json!({"n": n, "url": "https://example.com/some/page", "referrer": null, "ms": 12.5}),
            )
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let admin = runtime.block_on(async {
        let connection = Connection::connect(URL, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        (connection, channel)
    });

    for max_events in [500, 1_000] {
        let sink = AmqpSink::builder()
            .url(URL)
            .exchange(&exchange)
            .declare(true)
            .queue(&queue)
            .build()
            .unwrap();
        let backend = SinkBackend::builder("bench", sink)
            .queue_capacity(EVENTS)
            .batch(
                BatchConfig::default()
                    .with_max_events(max_events)
                    .with_max_bytes(usize::MAX),
            )
            .build()
            .unwrap();
        let started = Instant::now();
        for event in &events {
            backend.send(event.clone()).unwrap();
        }
        backend.flush(Duration::from_secs(120)).unwrap();
        let elapsed = started.elapsed();
        let metrics = backend.metrics();
        backend.shutdown(Duration::from_secs(5)).unwrap();
        assert_eq!(metrics.delivered, EVENTS as u64, "{metrics:?}");
        println!(
            "amqp confirms, max_events {max_events:>5}: {EVENTS} events in {:>7.1} ms = {:>9.0} events/s",
            elapsed.as_secs_f64() * 1e3,
            EVENTS as f64 / elapsed.as_secs_f64()
        );
        runtime.block_on(async {
            admin
                .1
                .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
                .await
                .unwrap();
        });
    }
    runtime.block_on(async {
        let _ = admin
            .1
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
        let _ = admin
            .1
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    });
}
