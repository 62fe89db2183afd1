//! A relay (ADR 0007): `[sources.*]` read into the collector's tree against
//! the real NATS JetStream server and RabbitMQ. What the sinks published
//! arrives whole and is acknowledged once delivered, `/metrics` counts it,
//! and a drain cut short leaves every unacknowledged message to the next
//! relay.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use support::registry;
use tidings_collector::Collector;
use tidings_config::load;
use tidings_event::{Event, EventName};
use tidings_routing::{Backend, SinkBackend};
use tidings_sink_nats::NatsSink;
use tidings_test::{Answer, RecordingSink, install_memory_sink, memory_sink};

const NATS: &str = "127.0.0.1:4222";
const START: &str = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log";

/// The test's stream (deleted when dropped) with `count` events published
/// by the NATS sink.
struct Stream {
    name: String,
    sent: Vec<Event>,
}

impl Stream {
    fn publish(test: &str, count: usize) -> Self {
        tidings_test::require_service("NATS JetStream", NATS, START);
        let pid = std::process::id();
        let name = format!("RELAY{pid}_{test}");
        let sink = NatsSink::builder()
            .url(format!("nats://{NATS}"))
            .subject(format!("relay{pid}.{test}.{{name}}"))
            .stream(&name)
            .create_stream(true)
            .build()
            .unwrap();
        let backend = SinkBackend::builder("nats", sink).build().unwrap();
        let sent: Vec<Event> = (0..count)
            .map(|n| {
                Event::new(
                    EventName::new("page.view").unwrap(),
                    serde_json::json!({ "n": n }),
                )
            })
            .collect();
        for event in &sent {
            backend.send(event.clone()).unwrap();
        }
        backend.shutdown(Duration::from_secs(10)).unwrap();
        Self { name, sent }
    }

    fn ids(&self) -> HashSet<String> {
        ids(&self.sent)
    }

    /// A relay config reading this stream into the memory sink `sink`.
    fn relay(&self, sink: &str) -> String {
        format!(
            "[sources.in]\ntype = \"nats\"\nurl = \"nats://{NATS}\"\nstream = \"{}\"\nconsumer = \"relay\"\nack_wait_ms = 1000\ndead_letter = \"none\"\n\n[backends.out]\ntype = \"memory\"\nid = \"{sink}\"\nflush_interval_ms = 10\n",
            self.name
        )
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(client) = async_nats::connect(format!("nats://{NATS}")).await {
                    let _ = async_nats::jetstream::new(client)
                        .delete_stream(&name)
                        .await;
                }
            });
        })
        .join();
    }
}

fn ids(events: &[Event]) -> HashSet<String> {
    events.iter().map(|e| e.id().to_string()).collect()
}

/// The value of the sample `name` in the collector's `/metrics`.
fn sample(collector: &Collector, name: &str) -> Option<u64> {
    collector
        .metrics_text()
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_relay_delivers_a_stream_whole_and_acknowledges_what_it_delivered() {
    let stream = Stream::publish("whole", 200);
    let text = stream.relay("relay-whole");
    let config = load(&text, &registry()).unwrap();
    let tree = config.to_string();
    assert!(
        tree.contains(&format!(
            "source in: nats url=nats://127.0.0.1:4222 stream={} consumer=relay ack_wait_ms=1000",
            stream.name
        )),
        "{tree}"
    );
    assert!(
        tree.contains("undecodable ones go to no dead letters"),
        "{tree}"
    );

    let collector = Collector::from_config(&config).unwrap();
    let acked = "tidings_source_acked_total{source=\"in\"}";
    wait_until("every message acknowledged", || {
        sample(&collector, acked) == Some(200)
    });
    assert_eq!(
        sample(&collector, "tidings_source_fetched_total{source=\"in\"}"),
        Some(200)
    );
    assert_eq!(
        sample(&collector, "tidings_source_unsettled{source=\"in\"}"),
        Some(0)
    );
    collector.shutdown(Duration::from_secs(5)).unwrap();
    let delivered = memory_sink("relay-whole").events();
    assert_eq!(delivered.len(), 200, "each event once");
    assert_eq!(ids(&delivered), stream.ids());
}

#[test]
fn a_drain_cut_short_leaves_the_unacknowledged_messages_to_the_next_relay() {
    let stream = Stream::publish("cut", 30);
    // A sink that is down: every batch fails, retried until the drain's
    // deadline.
    install_memory_sink(
        "relay-down",
        RecordingSink::scripted(std::iter::repeat_n(Answer::Status(503, None), 10_000)),
    );
    let down =
        Collector::from_config(&load(&stream.relay("relay-down"), &registry()).unwrap()).unwrap();
    wait_until("the messages read", || {
        sample(&down, "tidings_source_fetched_total{source=\"in\"}") == Some(30)
    });
    assert!(
        down.shutdown(Duration::from_millis(300)).is_err(),
        "nothing delivered"
    );
    assert_eq!(
        sample(&down, "tidings_source_acked_total{source=\"in\"}"),
        Some(0)
    );

    let up =
        Collector::from_config(&load(&stream.relay("relay-up"), &registry()).unwrap()).unwrap();
    wait_until("the next relay delivered them", || {
        memory_sink("relay-up").events().len() >= 30
    });
    wait_until("acknowledged", || {
        sample(&up, "tidings_source_acked_total{source=\"in\"}") == Some(30)
    });
    assert_eq!(
        sample(&up, "tidings_source_redelivered_total{source=\"in\"}"),
        Some(30)
    );
    up.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(ids(&memory_sink("relay-up").events()), stream.ids());
}

#[test]
fn a_relay_delivers_a_rabbitmq_queue_whole_and_acknowledges_it() {
    tidings_test::require_service("RabbitMQ", "127.0.0.1:5672", "rabbitmq-server -detached");
    let pid = std::process::id();
    let (exchange, queue) = (format!("relay{pid}-x"), format!("relay{pid}-q"));
    let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
    let sink = tidings_sink_amqp::AmqpSink::builder()
        .url(url)
        .exchange(&exchange)
        .declare(true)
        .queue(&queue)
        .build()
        .unwrap();
    let backend = SinkBackend::builder("amqp", sink).build().unwrap();
    let sent: Vec<Event> = (0..120)
        .map(|n| {
            Event::new(
                EventName::new("click").unwrap(),
                serde_json::json!({ "n": n }),
            )
        })
        .collect();
    for event in &sent {
        backend.send(event.clone()).unwrap();
    }
    backend.shutdown(Duration::from_secs(10)).unwrap();

    let text = format!(
        "[sources.in]\ntype = \"amqp\"\nurl = \"{url}\"\nqueue = \"{queue}\"\ndead_letter = \"none\"\n\n[backends.out]\ntype = \"memory\"\nid = \"relay-amqp\"\nflush_interval_ms = 10\n"
    );
    let config = load(&text, &registry()).unwrap();
    assert!(
        config.to_string().contains(&format!(
            "source in: amqp url=amqp://***@127.0.0.1:5672/… queue={queue} prefetch=1000"
        )),
        "{config}"
    );
    let collector = Collector::from_config(&config).unwrap();
    wait_until("every message acknowledged", || {
        sample(&collector, "tidings_source_acked_total{source=\"in\"}") == Some(120)
    });
    collector.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(ids(&memory_sink("relay-amqp").events()), ids(&sent));
    assert_eq!(memory_sink("relay-amqp").events().len(), 120, "each once");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let _ = channel
            .queue_delete(queue.as_str().into(), Default::default())
            .await;
        let _ = channel
            .exchange_delete(exchange.as_str().into(), Default::default())
            .await;
    });
}

/// What a [`Quiet`] source was told, by id.
fn told(id: &str) -> Vec<&'static str> {
    calls().lock().unwrap().get(id).cloned().unwrap_or_default()
}

fn calls() -> &'static std::sync::Mutex<std::collections::HashMap<String, Vec<&'static str>>> {
    static CALLS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, Vec<&'static str>>>,
    > = std::sync::OnceLock::new();
    CALLS.get_or_init(Default::default)
}

/// A source that reads nothing and records what it is told.
#[derive(Debug)]
struct Quiet(String);

impl Quiet {
    fn record(&self, call: &'static str) {
        calls()
            .lock()
            .unwrap()
            .entry(self.0.clone())
            .or_default()
            .push(call);
    }
}

#[tidings_routing::async_trait]
impl tidings_routing::Source for Quiet {
    async fn fetch(
        &self,
        _max: usize,
        wait: Duration,
    ) -> Result<Vec<Event>, tidings_routing::SourceError> {
        tokio::time::sleep(wait.min(Duration::from_millis(20))).await;
        Ok(Vec::new())
    }
    fn hold(&self) {
        self.record("hold");
    }
    fn release(&self) {
        self.record("release");
    }
    async fn close(&self) -> Result<(), tidings_routing::SourceError> {
        self.record("close");
        Ok(())
    }
    fn metrics(&self) -> tidings_routing::SourceMetrics {
        tidings_routing::SourceMetrics::new(self.0.clone())
    }
}

#[derive(serde::Deserialize)]
struct QuietOptions {
    id: String,
}

struct QuietType;

impl tidings_config::SourceType for QuietType {
    const NAME: &'static str = "quiet";
    type Options = QuietOptions;
    fn build(
        options: &QuietOptions,
        _name: &str,
        _dead_letter: Option<std::sync::Arc<dyn Backend>>,
    ) -> Result<std::sync::Arc<dyn tidings_routing::Source>, tidings_routing::BoxError> {
        Ok(std::sync::Arc::new(Quiet(options.id.clone())))
    }
    fn describe(options: &QuietOptions) -> String {
        format!("id={}", options.id)
    }
}

fn quiet_relay(id: &str) -> Collector {
    let mut registry = registry();
    registry.register_source::<QuietType>();
    let text = format!(
        "[sources.in]\ntype = \"quiet\"\nid = \"{id}\"\ndead_letter = \"none\"\n[backends.out]\ntype = \"memory\"\nid = \"{id}\"\n"
    );
    Collector::from_config(&load(&text, &registry).unwrap()).unwrap()
}

#[test]
fn a_drain_holds_the_acknowledgements_and_releases_them_once_it_delivered_everything() {
    let relay = quiet_relay("quiet-drained");
    relay.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(told("quiet-drained"), ["hold", "release", "close"]);
    assert_eq!(
        sample(
            &relay,
            "tidings_source_fetched_total{source=\"quiet-drained\"}"
        ),
        Some(0),
        "a stopped source still shows in /metrics"
    );
}

#[test]
fn a_relay_dropped_without_a_drain_holds_its_acknowledgements() {
    drop(quiet_relay("quiet-dropped"));
    // The queues' events are abandoned: nothing they settle may be
    // acknowledged, and nothing is released.
    assert_eq!(told("quiet-dropped"), ["hold"]);
}
