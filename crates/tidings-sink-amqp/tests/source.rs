//! The AMQP source against the real RabbitMQ: what the sink published is
//! read whole and acknowledged once settled, a hold never released leaves
//! the messages to the next reader, a message given back is requeued at
//! once, and an undecodable one is dead-lettered and not requeued.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use support::{Admin, URL, event, require_rabbitmq, unique};
use tidings_event::Event;
use tidings_routing::{Backend, SinkBackend, Source, SourceMetrics};
use tidings_sink_amqp::{AmqpSink, AmqpSource, AmqpSourceBuilder, BuildError, UNDECODABLE};
use tidings_test::RecordingBackend;

const WAIT: Duration = Duration::from_secs(20);

/// Publishes `count` events through the sink to `exchange`, declaring it
/// and `queue` bound to every key.
async fn publish(exchange: &str, queue: &str, count: usize) -> Vec<Event> {
    let sink = AmqpSink::builder()
        .url(URL)
        .exchange(exchange)
        .declare(true)
        .queue(queue)
        .build()
        .unwrap();
    let backend = SinkBackend::builder("amqp", sink).build().unwrap();
    let sent: Vec<Event> = (0..count).map(|n| event("page.view", n)).collect();
    for e in &sent {
        backend.send(e.clone()).unwrap();
    }
    tokio::task::spawn_blocking(move || backend.shutdown(Duration::from_secs(10)))
        .await
        .unwrap()
        .unwrap();
    sent
}

fn source(queue: &str) -> AmqpSourceBuilder {
    AmqpSource::builder(queue).url(URL).prefetch(100)
}

fn ids(events: &[Event]) -> BTreeSet<String> {
    events.iter().map(|e| e.id().to_string()).collect()
}

/// Fetches until `count` events came or `within` passed.
async fn fetch(source: &AmqpSource, count: usize, within: Duration) -> Vec<Event> {
    let deadline = Instant::now() + within;
    let mut events = Vec::new();
    while events.len() < count && Instant::now() < deadline {
        events.extend(
            source
                .fetch(count - events.len(), Duration::from_millis(300))
                .await
                .unwrap(),
        );
    }
    events
}

async fn wait_for(source: &AmqpSource, what: &str, done: impl Fn(&SourceMetrics) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done(&source.metrics()) {
        assert!(Instant::now() < deadline, "{what}: {:?}", source.metrics());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Messages ready in `queue` (not delivered to a consumer).
async fn ready(admin: &Admin, queue: &str) -> u32 {
    admin
        .channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
        .message_count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_sink_published_is_read_whole_and_acknowledged_once_settled() {
    require_rabbitmq();
    let (exchange, queue) = (unique("src-whole-x"), unique("src-whole-q"));
    let admin = Admin::connect().await;
    let sent = publish(&exchange, &queue, 150).await;

    // `prefetch` bounds what is read and unsettled: 100 of 150.
    let source = source(&queue).name("in").build().unwrap();
    let first = fetch(&source, 150, Duration::from_secs(2)).await;
    assert_eq!(
        first.len(),
        100,
        "no more than prefetch while none is settled"
    );
    let mut read: Vec<Seen> = first.iter().map(fields).collect();
    let copies = first.clone();
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(source.metrics().acked, 0, "copies still in the tree");
    drop(copies);
    wait_for(&source, "the first 100 acknowledged", |m| m.acked == 100).await;
    let rest = fetch(&source, 50, WAIT).await;
    read.extend(rest.iter().map(fields));
    drop(rest);
    wait_for(&source, "acknowledged", |m| {
        m.acked == 150 && m.unsettled == 0
    })
    .await;
    source.close().await.unwrap();
    assert_eq!(ready(&admin, &queue).await, 0, "nothing requeued");
    admin.delete(&exchange, &[&queue]).await;
    // Each event once, with its id, name, data and time: nothing added.
    let expected: Vec<Seen> = sent.iter().map(fields).collect();
    assert_eq!(read, expected);
}

type Seen = (String, String, serde_json::Value, String);

fn fields(event: &Event) -> Seen {
    (
        event.id().to_string(),
        event.name().to_string(),
        event.data().clone(),
        event.timestamp().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_returns_what_is_there_without_waiting_for_a_full_batch() {
    require_rabbitmq();
    let (exchange, queue) = (unique("src-quiet-x"), unique("src-quiet-q"));
    let admin = Admin::connect().await;
    let sent = publish(&exchange, &queue, 3).await;
    let source = source(&queue).build().unwrap();
    // The first message may take a moment to arrive; the fetch then
    // returns with what came, far before its wait of a minute.
    let started = Instant::now();
    let mut read = Vec::new();
    while read.len() < 3 {
        read.extend(source.fetch(500, Duration::from_secs(60)).await.unwrap());
        assert!(
            started.elapsed() < WAIT,
            "a fetch held {} events",
            read.len()
        );
    }
    assert_eq!(ids(&read), ids(&sent));
    drop(read);
    wait_for(&source, "acknowledged", |m| m.acked == 3).await;
    source.close().await.unwrap();
    admin.delete(&exchange, &[&queue]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_never_released_leaves_the_messages_to_the_next_reader() {
    require_rabbitmq();
    let (exchange, queue) = (unique("src-hold-x"), unique("src-hold-q"));
    let admin = Admin::connect().await;
    let sent = publish(&exchange, &queue, 30).await;

    let first = source(&queue).build().unwrap();
    let read = fetch(&first, 30, WAIT).await;
    first.hold();
    drop(read);
    first.close().await.unwrap();
    assert_eq!(first.metrics().acked, 0);

    let second = source(&queue).build().unwrap();
    let again = fetch(&second, 30, WAIT).await;
    assert_eq!(ids(&again), ids(&sent));
    assert_eq!(second.metrics().redelivered, 30);
    second.release();
    drop(again);
    wait_for(&second, "acknowledged", |m| m.acked == 30).await;
    second.close().await.unwrap();
    admin.delete(&exchange, &[&queue]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_given_back_is_requeued_at_once() {
    require_rabbitmq();
    let (exchange, queue) = (unique("src-back-x"), unique("src-back-q"));
    let admin = Admin::connect().await;
    let sent = publish(&exchange, &queue, 10).await;

    let source = source(&queue).build().unwrap();
    let read = fetch(&source, 10, WAIT).await;
    source.unfetch(read).await;
    let again = fetch(&source, 10, WAIT).await;
    assert_eq!(ids(&again), ids(&sent));
    assert_eq!(source.metrics().redelivered, 10);
    drop(again);
    wait_for(&source, "acknowledged", |m| m.acked == 10).await;
    source.close().await.unwrap();
    admin.delete(&exchange, &[&queue]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_message_is_dead_lettered_and_not_requeued() {
    require_rabbitmq();
    let (exchange, queue) = (unique("src-bad-x"), unique("src-bad-q"));
    let admin = Admin::connect().await;
    publish(&exchange, &queue, 1).await;
    admin
        .channel
        .basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            b"not json {",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();

    let dead = RecordingBackend::new();
    let source = source(&queue)
        .name("in")
        .dead_letter(Arc::new(dead.clone()))
        .build()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let mut read = Vec::new();
    while source.metrics().fetched < 2 && Instant::now() < deadline {
        read.extend(source.fetch(2, Duration::from_millis(300)).await.unwrap());
    }
    assert_eq!(read.len(), 1, "the good message");
    drop(read);
    wait_for(&source, "settled", |m| {
        m.acked == 1 && m.dead_lettered == 1 && m.unsettled == 0
    })
    .await;
    let dead = dead.events();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].name().as_str(), UNDECODABLE);
    assert_eq!(dead[0].data()["payload"], "not json {");
    assert_eq!(dead[0].context()["dead_letter"]["backend"], "sources.in");
    source.close().await.unwrap();
    assert_eq!(ready(&admin, &queue).await, 0, "rejected, not requeued");
    admin.delete(&exchange, &[&queue]).await;
}

#[test]
fn a_source_refuses_bad_options_and_a_missing_queue_is_a_fetch_error() {
    let option = |builder: AmqpSourceBuilder| match builder.check() {
        Err(error) => error.option(),
        Ok(()) => panic!("expected an error"),
    };
    assert_eq!(option(AmqpSource::builder("")), "queue");
    assert_eq!(option(AmqpSource::builder("q").prefetch(0)), "prefetch");
    assert_eq!(option(AmqpSource::builder("x".repeat(256))), "queue");
    assert!(matches!(
        AmqpSource::builder("q").url("http://nope").check(),
        Err(BuildError::Url { .. })
    ));

    require_rabbitmq();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let source = AmqpSource::builder(unique("no-such-queue"))
        .url("amqp://guest:guest@127.0.0.1:5672/%2f")
        .build()
        .unwrap();
    let error = runtime
        .block_on(source.fetch(1, Duration::from_millis(200)))
        .unwrap_err()
        .to_string();
    assert!(error.contains("no-such-queue"), "{error}");
    assert!(!error.contains("guest:guest"), "{error}");
}

/// Dead letters that refuse everything (a full queue, say).
#[derive(Debug)]
struct Refusing;

impl Backend for Refusing {
    fn send(&self, _event: Event) -> Result<(), tidings_routing::SendError> {
        Err(tidings_routing::SendError::QueueFull)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_message_the_dead_letters_refuse_is_requeued_not_rejected() {
    require_rabbitmq();
    let (exchange, queue) = (unique("src-refused-x"), unique("src-refused-q"));
    let admin = Admin::connect().await;
    publish(&exchange, &queue, 1).await;
    admin
        .channel
        .basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            b"not json {",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let source = source(&queue)
        .dead_letter(Arc::new(Refusing))
        .build()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let mut good = Vec::new();
    while source.metrics().fetched < 4 && Instant::now() < deadline {
        good.extend(source.fetch(2, Duration::from_millis(300)).await.unwrap());
    }
    assert_eq!(good.len(), 1, "the good message, once");
    drop(good);
    wait_for(&source, "the good one acknowledged", |m| m.acked == 1).await;
    let metrics = source.metrics();
    assert!(metrics.fetched >= 4, "read again and again: {metrics:?}");
    assert!(metrics.redelivered >= 2, "{metrics:?}");
    assert_eq!(metrics.dead_lettered, 0, "never counted as dead-lettered");
    source.close().await.unwrap();
    assert_eq!(ready(&admin, &queue).await, 1, "still in the queue");
    admin.delete(&exchange, &[&queue]).await;
}
