//! Events per second through `SinkBackend` into a real JetStream stream
//! (batches of 1000, 256 publishes in flight), acknowledged by the server.
//!
//! `cargo bench -p tidings-sink-nats --bench throughput` (NATS with
//! JetStream on 127.0.0.1:4222).

use std::time::{Duration, Instant};

use serde_json::json;
use tidings_event::{Event, EventName};
use tidings_routing::{Backend, BatchConfig, SinkBackend};
use tidings_sink_nats::NatsSink;

const EVENTS: usize = 100_000;
const MAX_EVENTS: usize = 1000;

fn main() {
    tidings_test::require_service(
        "NATS JetStream",
        "127.0.0.1:4222",
        "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log",
    );
    let pid = std::process::id();
    let stream = format!("BENCH{pid}");
    let prefix = format!("bench{pid}");
    let sink = NatsSink::builder()
        .subject(format!("{prefix}.{{name}}"))
        .stream(&stream)
        .create_stream(true)
        .build()
        .expect("the NATS sink starts");
    let backend = SinkBackend::builder("nats-bench", sink)
        .queue_capacity(EVENTS)
        .batch(
            BatchConfig::default()
                .with_max_events(MAX_EVENTS)
                .with_max_bytes(usize::MAX)
                .with_flush_interval(Duration::from_millis(50)),
        )
        .build()
        .expect("the backend starts");
    let name = EventName::new("bench.page.view").expect("a valid name");
    let events: Vec<Event> = (0..EVENTS)
        .map(|n| {
            Event::new(
                name.clone(),
                json!({"n": n, "path": "/some/page", "ok": true}),
            )
        })
        .collect();

    let started = Instant::now();
    for event in events {
        backend.send(event).expect("the queue has room");
    }
    backend
        .flush(Duration::from_secs(120))
        .expect("everything is acknowledged");
    let elapsed = started.elapsed();
    let metrics = backend.metrics();
    backend
        .shutdown(Duration::from_secs(5))
        .expect("clean shutdown");
    assert_eq!(metrics.delivered, EVENTS as u64, "{metrics:?}");

    // Delete the stream with a client of our own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let client = async_nats::connect("nats://127.0.0.1:4222")
            .await
            .expect("connects");
        let jetstream = async_nats::jetstream::new(client);
        let _ = jetstream.delete_stream(&stream).await;
    });

    let rate = EVENTS as f64 / elapsed.as_secs_f64();
    eprintln!(
        "nats sink: {EVENTS} events in {elapsed:.2?} through SinkBackend (max_events {MAX_EVENTS}, max_in_flight 256): {rate:.0} events/s"
    );
}
