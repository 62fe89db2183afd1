//! Events per second stored in the local PostgreSQL through `SinkBackend`
//! (queue, batching, retry) and the PostgreSQL sink, for batch sizes of
//! 1000, 2000 and 5000 events.
//!
//! The emitting thread sends with `WhenFull::Block`, so nothing is dropped,
//! and the clock stops when `flush` returns, once every event is committed:
//! the figure is what the sink sustains, end to end. Each run writes into a
//! fresh table (created by the sink, dropped afterwards). Target: at least
//! 100 000 events/s. Needs PostgreSQL on 127.0.0.1:5432 (override with
//! `TIDINGS_PG_URL`). Run with
//! `cargo bench -p tidings-sink-postgres --bench throughput`.

#![allow(missing_docs, clippy::print_stdout)] // a benchmark binary reporting on stdout

use std::time::{Duration, Instant};

use serde_json::json;
use tidings_event::{Event, EventName};
use tidings_routing::{Backend, BatchConfig, DropReason, SinkBackend, WhenFull};
use tidings_sink_postgres::PostgresSink;
use tokio_postgres::NoTls;

const EVENTS: usize = 300_000;

fn event(n: usize) -> Event {
    Event::new(
        EventName::new("navigation.request").expect("valid name"),
        json!({"url": "http://www.edx.org/some/path/1", "button_text": "Enroll now", "depth": n % 7}),
    )
    .with_context(
        json!({"user_id": 10938, "session_id": "2987lkjdyoioey"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )
}

/// Runs `sql` on a connection of its own.
fn execute(url: &str, sql: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .expect("connect to PostgreSQL");
        let driver = tokio::spawn(connection);
        client.batch_execute(sql).await.expect(sql);
        drop(client);
        let _ = driver.await;
    });
}

fn run(url: &str, max_events: usize) -> f64 {
    let table = format!("tidings_bench_{}_{max_events}", std::process::id());
    execute(url, &format!("DROP TABLE IF EXISTS {table}"));
    let sink = PostgresSink::builder(url)
        .table(&table)
        .create_table(true)
        .build()
        .expect("valid options");
    let backend = SinkBackend::builder("postgres", sink)
        .queue_capacity(4 * max_events)
        .when_full(WhenFull::Block(Duration::from_secs(30)))
        .batch(BatchConfig::default().with_max_events(max_events))
        .build()
        .expect("worker starts");
    // Connect and create the table before the clock starts.
    backend.send(event(0)).expect("queued");
    backend.flush(Duration::from_secs(10)).expect("flushed");

    let events: Vec<Event> = (1..=EVENTS).map(event).collect();
    let started = Instant::now();
    for event in events {
        backend.send(event).expect("queued");
    }
    backend.flush(Duration::from_secs(120)).expect("flushed");
    let elapsed = started.elapsed();
    let metrics = backend.metrics();
    assert_eq!(metrics.delivered as usize, EVENTS + 1, "{metrics:?}");
    assert_eq!(metrics.dropped(DropReason::QueueFull), 0);
    let rate = EVENTS as f64 / elapsed.as_secs_f64();
    println!(
        "postgres, batches of {max_events}: {EVENTS} events in {:.2} s = {rate:.0} events/s ({} batches)",
        elapsed.as_secs_f64(),
        metrics.batches - 1,
    );
    backend.shutdown(Duration::from_secs(5)).expect("shut down");
    execute(url, &format!("DROP TABLE IF EXISTS {table}"));
    rate
}

fn main() {
    let url = std::env::var("TIDINGS_PG_URL")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".to_owned());
    for max_events in [1000, 2000, 5000] {
        run(&url, max_events);
    }
}
