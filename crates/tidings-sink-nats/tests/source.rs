//! The NATS source against the real JetStream server: what the sink
//! published is read back whole, acknowledged only once settled, held
//! through a shutdown that did not deliver, given back at once when never
//! admitted, kept alive past `ack_wait` while the tree holds it, and an
//! undecodable message dead-lettered and never redelivered.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Admin, event, names, require_nats};
use tidings_event::Event;
use tidings_routing::{
    AsyncRouter, Backend, BatchConfig, SinkBackend, Source, SourceMetrics, SourceRunner,
};
use tidings_sink_nats::{NatsError, NatsSink, NatsSource, NatsSourceBuilder, UNDECODABLE};
use tidings_test::RecordingBackend;

const WAIT: Duration = Duration::from_secs(20);

/// Publishes `count` events on `prefix.*` into a new stream `stream`,
/// through the sink; returns them.
fn publish(stream: &str, prefix: &str, count: usize) -> Vec<Event> {
    let sink = NatsSink::builder()
        .url(format!("nats://{}", common::NATS))
        .subject(format!("{prefix}.{{name}}"))
        .stream(stream)
        .create_stream(true)
        .build()
        .unwrap();
    let backend = SinkBackend::builder("nats", sink)
        .batch(BatchConfig::default().with_max_events(100))
        .build()
        .unwrap();
    let sent: Vec<Event> = (0..count).map(|n| event("page.view", n)).collect();
    for e in &sent {
        backend.send(e.clone()).unwrap();
    }
    backend.shutdown(Duration::from_secs(10)).unwrap();
    sent
}

fn source(stream: &str, consumer: &str) -> NatsSourceBuilder {
    NatsSource::builder(stream)
        .url(format!("nats://{}", common::NATS))
        .consumer(consumer)
        .ack_wait_ms(1000)
}

fn ids(events: &[Event]) -> HashSet<String> {
    events.iter().map(|e| e.id().to_string()).collect()
}

/// Waits until `done` holds for the source's counters, or fails.
fn wait_for(source: &dyn Source, what: &str, done: impl Fn(&SourceMetrics) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done(&source.metrics()) {
        assert!(Instant::now() < deadline, "{what}: {:?}", source.metrics());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The consumer's count of delivered, unacknowledged messages and of
/// messages not yet delivered.
fn consumer_state(admin: &Admin, stream: &str, consumer: &str) -> (usize, u64) {
    admin.block_on(async {
        let stream = admin.jetstream().get_stream(stream).await.unwrap();
        let mut consumer: async_nats::jetstream::consumer::PullConsumer =
            stream.get_consumer(consumer).await.unwrap();
        let info = consumer.info().await.unwrap();
        (info.num_ack_pending, info.num_pending)
    })
}

/// Fetches until `count` events came or the deadline passed.
fn fetch(source: &NatsSource, admin: &Admin, count: usize, within: Duration) -> Vec<Event> {
    let deadline = Instant::now() + within;
    let mut events = Vec::new();
    while events.len() < count && Instant::now() < deadline {
        events.extend(
            admin
                .block_on(source.fetch(count - events.len(), Duration::from_millis(300)))
                .unwrap(),
        );
    }
    events
}

#[test]
fn what_the_sink_published_is_read_whole_and_acknowledged_once_delivered() {
    require_nats();
    let (stream, prefix) = names("src_whole");
    let admin = Admin::connect();
    let _guard = admin.cleanup(&stream);
    let sent = publish(&stream, &prefix, 300);

    let source: Arc<dyn Source> = Arc::new(source(&stream, "relay").name("in").build().unwrap());
    let recorder = RecordingBackend::new();
    let router = Arc::new(
        AsyncRouter::builder("intake", Arc::new(recorder.clone()))
            .build()
            .unwrap(),
    );
    let runner = SourceRunner::start("in", source.clone(), router.clone(), 64).unwrap();
    wait_for(&*source, "every message acknowledged", |m| m.acked == 300);
    runner.stop();
    router.shutdown(Duration::from_secs(5)).unwrap();

    let read = recorder.events();
    assert_eq!(read.len(), 300);
    assert_eq!(ids(&read), ids(&sent), "each event once, with its id");
    for (read, sent) in read.iter().zip(&sent) {
        // Nothing added, nothing lost: the same event, times included.
        assert_eq!(read, sent);
        assert_eq!(read.timestamp(), sent.timestamp());
    }
    let metrics = source.metrics();
    assert_eq!(
        (
            metrics.name.as_str(),
            metrics.fetched,
            metrics.redelivered,
            metrics.unsettled,
            metrics.lag
        ),
        ("in", 300, 0, 0, 0)
    );
    assert_eq!(consumer_state(&admin, &stream, "relay"), (0, 0));
    admin.block_on(source.close()).unwrap();
}

#[test]
fn a_hold_that_is_never_released_leaves_the_messages_to_the_next_reader() {
    require_nats();
    let (stream, prefix) = names("src_hold");
    let admin = Admin::connect();
    let _guard = admin.cleanup(&stream);
    let sent = publish(&stream, &prefix, 40);

    let first = source(&stream, "relay").build().unwrap();
    let read = fetch(&first, &admin, 40, WAIT);
    assert_eq!(ids(&read), ids(&sent));
    first.hold();
    drop(read); // settled, but held: a drain that ran out of time
    admin.block_on(first.close()).unwrap();
    assert_eq!(first.metrics().acked, 0);

    // Redelivered once `ack_wait` (1 s) passes without progress notes.
    let second = source(&stream, "relay").build().unwrap();
    let again = fetch(&second, &admin, 40, WAIT);
    assert_eq!(ids(&again), ids(&sent));
    assert_eq!(second.metrics().redelivered, 40);
    drop(again);
    wait_for(&second, "acknowledged by the second reader", |m| {
        m.acked == 40
    });
    admin.block_on(second.close()).unwrap();
}

#[test]
fn a_released_hold_acknowledges_what_was_settled_meanwhile() {
    require_nats();
    let (stream, prefix) = names("src_release");
    let admin = Admin::connect();
    let _guard = admin.cleanup(&stream);
    publish(&stream, &prefix, 25);

    let source = source(&stream, "relay").build().unwrap();
    let read = fetch(&source, &admin, 25, WAIT);
    source.hold();
    drop(read);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(source.metrics().acked, 0, "held");
    assert_eq!(source.metrics().unsettled, 25);
    source.release();
    wait_for(&source, "released", |m| m.acked == 25 && m.unsettled == 0);
    admin.block_on(source.close()).unwrap();
    assert_eq!(consumer_state(&admin, &stream, "relay"), (0, 0));
}

#[test]
fn events_never_admitted_go_back_at_once_and_unsettled_ones_outlive_ack_wait() {
    require_nats();
    let (stream, prefix) = names("src_unfetch");
    let admin = Admin::connect();
    let _guard = admin.cleanup(&stream);
    let sent = publish(&stream, &prefix, 10);

    let source = source(&stream, "relay").build().unwrap();
    let read = fetch(&source, &admin, 10, WAIT);
    // Given back (the tree was stopping): redelivered now, not after
    // `ack_wait`, and read again as redeliveries.
    admin.block_on(source.unfetch(read));
    let again = fetch(&source, &admin, 10, Duration::from_millis(900));
    assert_eq!(ids(&again), ids(&sent));
    assert_eq!(source.metrics().redelivered, 10);

    // Held by the tree for 2.5 `ack_wait`s: progress notes keep the server
    // from redelivering.
    std::thread::sleep(Duration::from_millis(2500));
    let other = source_other(&stream);
    let stolen = fetch(&other, &admin, 10, Duration::from_millis(600));
    assert!(
        stolen.is_empty(),
        "redelivered while held: {}",
        stolen.len()
    );
    drop(again);
    wait_for(&source, "acknowledged", |m| m.acked == 10);
    admin.block_on(source.close()).unwrap();
    admin.block_on(other.close()).unwrap();
}

fn source_other(stream: &str) -> NatsSource {
    source(stream, "relay").name("other").build().unwrap()
}

#[test]
fn an_undecodable_message_is_dead_lettered_and_never_redelivered() {
    require_nats();
    let (stream, prefix) = names("src_poison");
    let admin = Admin::connect();
    let _guard = admin.cleanup(&stream);
    publish(&stream, &prefix, 2);
    admin.block_on(async {
        let ack = admin
            .jetstream()
            .publish(format!("{prefix}.bad"), "not json {".into())
            .await
            .unwrap();
        ack.await.unwrap();
    });

    let dead = RecordingBackend::new();
    let source = source(&stream, "relay")
        .name("in")
        .dead_letter(Arc::new(dead.clone()))
        .build()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let mut read = Vec::new();
    while source.metrics().fetched < 3 && Instant::now() < deadline {
        read.extend(
            admin
                .block_on(source.fetch(3, Duration::from_millis(300)))
                .unwrap(),
        );
    }
    assert_eq!(read.len(), 2, "the good messages");
    drop(read);
    wait_for(&source, "settled", |m| {
        m.acked == 2 && m.dead_lettered == 1 && m.unsettled == 0
    });
    let dead = dead.events();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].name().as_str(), UNDECODABLE);
    assert_eq!(dead[0].data()["payload"], "not json {");
    assert_eq!(dead[0].data()["subject"], format!("{prefix}.bad"));
    assert_eq!(dead[0].context()["dead_letter"]["reason"], "undecodable");
    assert_eq!(dead[0].context()["dead_letter"]["backend"], "sources.in");
    // Terminated: neither pending nor redelivered after `ack_wait`.
    assert_eq!(consumer_state(&admin, &stream, "relay"), (0, 0));
    std::thread::sleep(Duration::from_millis(1500));
    let again = fetch(&source, &admin, 1, Duration::from_millis(500));
    assert!(again.is_empty());
    admin.block_on(source.close()).unwrap();
}

#[test]
fn a_source_refuses_bad_options_and_names_what_it_cannot_reach() {
    let invalid = |builder: NatsSourceBuilder| match builder.check() {
        Err(NatsError::InvalidOption { option, .. }) => option,
        other => panic!("expected an invalid option, got {other:?}"),
    };
    assert_eq!(invalid(NatsSource::builder("")), "stream");
    assert_eq!(
        invalid(NatsSource::builder("S").consumer("a.b")),
        "consumer"
    );
    assert_eq!(
        invalid(NatsSource::builder("S").ack_wait_ms(999)),
        "ack_wait_ms"
    );
    assert_eq!(
        invalid(NatsSource::builder("S").max_deliver(0)),
        "max_deliver"
    );
    assert_eq!(
        invalid(NatsSource::builder("S").max_ack_pending(0)),
        "max_ack_pending"
    );
    assert!(NatsSource::builder("S").max_deliver(-1).check().is_ok());

    require_nats();
    let error = NatsSource::builder("NO_SUCH_STREAM_HERE")
        .url(format!("nats://user:secret@{}", common::NATS))
        .build()
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("NO_SUCH_STREAM_HERE"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}

/// Dead letters that refuse everything (a full queue, say).
#[derive(Debug)]
struct Refusing;

impl Backend for Refusing {
    fn send(&self, _event: Event) -> Result<(), tidings_routing::SendError> {
        Err(tidings_routing::SendError::QueueFull)
    }
}

#[test]
fn an_undecodable_message_the_dead_letters_refuse_is_given_back_not_terminated() {
    require_nats();
    let (stream, prefix) = names("src_refused");
    let admin = Admin::connect();
    let _guard = admin.cleanup(&stream);
    publish(&stream, &prefix, 1);
    admin.block_on(async {
        let ack = admin
            .jetstream()
            .publish(format!("{prefix}.bad"), "not json {".into())
            .await
            .unwrap();
        ack.await.unwrap();
    });
    let source = source(&stream, "relay")
        .dead_letter(Arc::new(Refusing))
        .build()
        .unwrap();
    // Read once, given back with a delay (5 s), read again: never terminated.
    let deadline = Instant::now() + WAIT;
    let mut good = Vec::new();
    while source.metrics().redelivered < 1 && Instant::now() < deadline {
        good.extend(
            admin
                .block_on(source.fetch(2, Duration::from_millis(300)))
                .unwrap(),
        );
    }
    let metrics = source.metrics();
    assert_eq!(
        metrics.redelivered, 1,
        "the undecodable one, again: {metrics:?}"
    );
    assert_eq!(metrics.dead_lettered, 0);
    assert_eq!(good.len(), 1, "the good message, once");
    drop(good);
    admin.block_on(source.close()).unwrap();
}
