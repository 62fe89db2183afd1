//! The PostgreSQL sink through the delivery engine (`SinkBackend`) against
//! the real server: the shared compliance checks, and an outage of the
//! server (a TCP proxy cutting every connection) that loses and duplicates
//! nothing.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Db, URL, require_postgres};
use tidings_event::{Event, EventId, EventName};
use tidings_routing::{Backend, BatchConfig, RetryPolicy, SinkBackend};
use tidings_sink_postgres::PostgresSink;
use tidings_test::{Compliance, CuttableProxy as Proxy, assert_sink_compliance};

#[test]
fn the_sink_passes_the_compliance_checks() {
    require_postgres();
    let db = Db::connect();
    let table = db.table("compliance");
    let sink = PostgresSink::builder(URL)
        .table(&table.name)
        .create_table(true)
        .build()
        .unwrap();
    let report = assert_sink_compliance(Arc::new(sink), || db.ids(&table.name));
    assert_eq!(report.events, 1000);

    // Larger batches, as the sink is meant to be run.
    db.execute(&format!("DROP TABLE {}", table.name));
    let sink = PostgresSink::builder(URL)
        .table(&table.name)
        .create_table(true)
        .build()
        .unwrap();
    let mut checks = Compliance::default();
    checks.events = 10_000;
    checks.max_events = 2_000;
    checks.check(Arc::new(sink), || db.ids(&table.name));
}

#[test]
fn an_outage_loses_and_duplicates_nothing_and_delivery_resumes_within_a_second() {
    require_postgres();
    let db = Db::connect();
    let table = db.table("outage");
    let proxy = Proxy::start(support::ADDR);
    let sink = PostgresSink::builder(format!(
        "host=127.0.0.1 port={} user=postgres dbname=test",
        proxy.port()
    ))
    .table(&table.name)
    .create_table(true)
    .connect_timeout_ms(500)
    .statement_timeout_ms(2_000)
    .build()
    .unwrap();
    let backend = SinkBackend::builder("postgres", sink)
        .batch(
            BatchConfig::default()
                .with_max_events(100)
                .with_flush_interval(Duration::from_millis(10)),
        )
        .retry(
            RetryPolicy::default()
                .with_max_attempts(10_000)
                .with_initial_backoff(Duration::from_millis(10))
                .with_max_backoff(Duration::from_millis(100)),
        )
        .build()
        .unwrap();
    let name = EventName::new("outage.test").unwrap();
    let mut sent = Vec::new();
    let mut send = |n: usize| {
        let event = Event::new(name.clone(), json!({"n": n}));
        sent.push(event.id());
        backend.send(event).unwrap();
    };

    // Before: delivered through the proxy.
    for n in 0..500 {
        send(n);
    }
    backend.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(db.count(&table.name), 500);

    // During: every connection cut, new ones refused; batches are retried.
    proxy.cut();
    for n in 500..1000 {
        send(n);
    }
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(db.count(&table.name), 500, "nothing gets through a cut");
    assert!(backend.metrics().retried > 0, "{:?}", backend.metrics());

    // After: delivery resumes by itself.
    let restored = Instant::now();
    proxy.restore();
    for n in 1000..1500 {
        send(n);
    }
    while db.count(&table.name) < 1500 {
        assert!(
            restored.elapsed() < Duration::from_secs(5),
            "delivery did not resume: {:?}",
            backend.metrics()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let resumed = restored.elapsed();
    eprintln!("every event stored {resumed:?} after the proxy was restored");
    assert!(
        resumed < Duration::from_secs(2),
        "resumed after {resumed:?}"
    );

    backend.shutdown(Duration::from_secs(5)).unwrap();
    let mut stored: Vec<EventId> = db.ids(&table.name);
    stored.sort();
    sent.sort();
    assert_eq!(stored, sent, "every event exactly once");
    let metrics = backend.metrics();
    assert_eq!(
        (metrics.received, metrics.delivered, metrics.dropped_total()),
        (1500, 1500, 0),
        "{metrics:?}"
    );
    assert!(proxy.accepted() >= 2, "the sink reconnected");
}
