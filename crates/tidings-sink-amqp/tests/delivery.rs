//! The AMQP sink against the real RabbitMQ: every event delivered with its
//! id, routing keys from the template, returned messages as failures,
//! duplicates consumers can remove, outages survived, and bounded calls.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{
    Admin, BROKER, CuttableProxy, URL, count_by_id, event, proxy_url, require_rabbitmq, unique,
};
use tidings_event::{Event, EventId};
use tidings_routing::{
    Backend, BatchConfig, DropReason, RetryPolicy, Sink, SinkBackend, SinkErrorKind,
};
use tidings_sink_amqp::{AmqpSink, AmqpSinkBuilder};
use tidings_test::{Outage, assert_sink_compliance};

/// A sink publishing to `exchange` through `url`, declaring it and `queue`
/// (bound to every key).
fn declaring(url: impl Into<String>, exchange: &str, queue: &str) -> AmqpSinkBuilder {
    AmqpSink::builder()
        .url(url)
        .exchange(exchange)
        .declare(true)
        .queue(queue)
}

fn ids(events: &[Event]) -> BTreeSet<String> {
    events.iter().map(|e| e.id().to_string()).collect()
}

#[tokio::test]
async fn every_event_is_delivered_with_its_id_as_message_id_and_its_wire_format_as_body() {
    require_rabbitmq();
    let exchange = unique("all");
    let queue = unique("all.q");
    let admin = Admin::connect().await;
    let sink = declaring(URL, &exchange, &queue).build().unwrap();
    let backend = SinkBackend::builder("amqp", sink)
        .batch(BatchConfig::default().with_max_events(100))
        .build()
        .unwrap();
    let events: Vec<Event> = (0..250).map(|n| event("user.signup", n)).collect();
    for event in &events {
        backend.send(event.clone()).unwrap();
    }
    backend.flush(Duration::from_secs(10)).unwrap();
    let metrics = backend.metrics();
    backend.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(metrics.delivered, 250, "{metrics:?}");
    assert_eq!(metrics.dropped_total(), 0, "{metrics:?}");

    let received = admin.drain(&queue, 250, Duration::from_secs(5)).await;
    admin.delete(&exchange, &[&queue]).await;
    assert_eq!(received.len(), 250);
    let by_id: std::collections::HashMap<String, &Event> =
        events.iter().map(|e| (e.id().to_string(), e)).collect();
    for message in &received {
        let sent = by_id
            .get(&message.message_id)
            .unwrap_or_else(|| panic!("unknown message_id {}", message.message_id));
        assert_eq!(
            message.body,
            sent.to_json_bytes(),
            "body is the wire format"
        );
        assert_eq!(message.routing_key, "events.user.signup");
        assert_eq!(message.content_type.as_deref(), Some("application/json"));
        assert_eq!(message.delivery_mode, Some(2), "persistent");
        assert_eq!(message.kind.as_deref(), Some("user.signup"));
    }
    let got: BTreeSet<String> = received.iter().map(|m| m.message_id.clone()).collect();
    assert_eq!(got, ids(&events), "every id exactly once");
    let order: Vec<String> = received.iter().map(|m| m.message_id.clone()).collect();
    let sent: Vec<String> = events.iter().map(|e| e.id().to_string()).collect();
    assert_eq!(order, sent, "pipelined publishes keep the queue order");
}

#[tokio::test]
async fn the_routing_key_template_decides_which_bound_queue_gets_each_event() {
    require_rabbitmq();
    let exchange = unique("keys");
    let users = unique("keys.users");
    let orders = unique("keys.orders");
    let admin = Admin::connect().await;
    let sink = AmqpSink::builder()
        .url(URL)
        .exchange(&exchange)
        .routing_key("audit.{name}.v1")
        .declare(true)
        .queue(&users)
        .binding_key("audit.user.#")
        .build()
        .unwrap();
    assert_eq!(
        sink.routing_key_for(&event("order.paid", 0)),
        "audit.order.paid.v1"
    );
    // The sink declares the exchange on its first batch; bind a second
    // queue once it exists.
    let first = vec![event("user.signup", 0)];
    sink.send_batch(&first).await.unwrap();
    admin
        .bind_queue(&orders, &exchange, "audit.order.*.v1")
        .await;
    let rest = vec![
        event("user.login", 1),
        event("order.paid", 2),
        event("order.refunded", 3),
    ];
    sink.send_batch(&rest).await.unwrap();
    sink.shutdown().await.unwrap();

    let to_users = admin.drain(&users, 2, Duration::from_secs(5)).await;
    let to_orders = admin.drain(&orders, 2, Duration::from_secs(5)).await;
    admin.delete(&exchange, &[&users, &orders]).await;
    let keys = |r: &[support::Received]| -> Vec<String> {
        r.iter().map(|m| m.routing_key.clone()).collect()
    };
    assert_eq!(
        keys(&to_users),
        ["audit.user.signup.v1", "audit.user.login.v1"]
    );
    assert_eq!(
        keys(&to_orders),
        ["audit.order.paid.v1", "audit.order.refunded.v1"]
    );
    assert_eq!(to_orders[0].message_id, rest[1].id().to_string());
}

#[tokio::test]
async fn a_returned_unroutable_message_fails_the_batch_fatally_never_succeeds() {
    require_rabbitmq();
    let exchange = unique("returned");
    let queue = unique("returned.q");
    let admin = Admin::connect().await;
    // Only `events.routed` has a queue; `events.nowhere` is unroutable.
    let sink = declaring(URL, &exchange, &queue)
        .binding_key("events.routed")
        .build()
        .unwrap();
    sink.send_batch(&[event("routed", 0)]).await.unwrap();

    let mixed = vec![event("routed", 1), event("nowhere", 2), event("routed", 3)];
    let error = sink.send_batch(&mixed).await.unwrap_err();
    assert_eq!(error.kind(), SinkErrorKind::Fatal, "{error}");
    let text = error.to_string();
    assert!(
        text.contains("1 of 3 events were returned unroutable")
            && text.contains("\"events.nowhere\"")
            && text.contains("312 NO_ROUTE"),
        "{text}"
    );
    // The channel stays usable after a return.
    sink.send_batch(&[event("routed", 4)]).await.unwrap();
    sink.shutdown().await.unwrap();

    // Through the engine: the batch is dropped as non-retryable, not delivered.
    let sink = AmqpSink::builder()
        .url(URL)
        .exchange(&exchange)
        .build()
        .unwrap();
    let backend = SinkBackend::builder("amqp", sink)
        .retry(
            RetryPolicy::default()
                .with_initial_backoff(Duration::from_millis(10))
                .with_max_attempts(5),
        )
        .build()
        .unwrap();
    for n in 0..3 {
        backend.send(event("nowhere", n)).unwrap();
    }
    backend.flush(Duration::from_secs(10)).unwrap();
    let metrics = backend.metrics();
    backend.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(metrics.delivered, 0, "{metrics:?}");
    assert_eq!(metrics.dropped(DropReason::NonRetryable), 3, "{metrics:?}");
    assert_eq!(metrics.retried, 0, "{metrics:?}");

    let received = admin.drain(&queue, 4, Duration::from_secs(5)).await;
    admin.delete(&exchange, &[&queue]).await;
    let ns: Vec<u64> = received
        .iter()
        .map(|m| {
            serde_json::from_slice::<serde_json::Value>(&m.body).unwrap()["data"]["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        ns,
        [0, 1, 3, 4],
        "the routed messages of the failed batch did arrive"
    );
}

#[tokio::test]
async fn a_retried_batch_arrives_twice_and_consumers_dedupe_by_message_id() {
    require_rabbitmq();
    let exchange = unique("dupes");
    let queue = unique("dupes.q");
    let admin = Admin::connect().await;
    let sink = declaring(URL, &exchange, &queue).build().unwrap();
    let batch: Vec<Event> = (0..20).map(|n| event("page.view", n)).collect();
    // As after a lost confirm: the engine sends the same batch again.
    sink.send_batch(&batch).await.unwrap();
    sink.send_batch(&batch).await.unwrap();
    sink.shutdown().await.unwrap();

    let received = admin.drain(&queue, 40, Duration::from_secs(5)).await;
    admin.delete(&exchange, &[&queue]).await;
    assert_eq!(received.len(), 40, "AMQP does not remove duplicates");
    let counts = count_by_id(&received);
    assert!(counts.values().all(|&n| n == 2), "{counts:?}");
    let deduped: BTreeSet<String> = counts.into_keys().collect();
    assert_eq!(deduped, ids(&batch), "message_id is the event id");
}

/// A reader of `queue` for the compliance and outage checks: each call
/// takes what arrived since the last and returns every event id seen so
/// far. With `dedup`, a message id seen twice counts once, as consumers
/// must (the broker keeps a publish whose confirm was lost with the
/// connection, and the retry publishes it again).
fn reader(
    runtime: &tokio::runtime::Runtime,
    admin: &Admin,
    queue: &str,
    dedup: bool,
) -> impl FnMut() -> Vec<EventId> {
    let mut seen: Vec<EventId> = Vec::new();
    move || {
        let received = runtime.block_on(admin.drain(queue, 0, Duration::from_secs(5)));
        for message in received {
            let id: EventId = message.message_id.parse().unwrap();
            if !(dedup && seen.contains(&id)) {
                seen.push(id);
            }
        }
        seen.clone()
    }
}

#[test]
fn the_sink_passes_the_compliance_checks() {
    require_rabbitmq();
    let exchange = unique("compliance");
    let queue = unique("compliance.q");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let admin = runtime.block_on(Admin::connect());
    let sink = declaring(URL, &exchange, &queue).build().unwrap();
    let report = assert_sink_compliance(Arc::new(sink), reader(&runtime, &admin, &queue, false));
    runtime.block_on(admin.delete(&exchange, &[&queue]));
    assert_eq!(report.events, 1000);
}

#[test]
fn an_outage_loses_nothing_and_delivery_resumes_by_itself() {
    require_rabbitmq();
    let exchange = unique("outage");
    let queue = unique("outage.q");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let admin = runtime.block_on(Admin::connect());
    let proxy = CuttableProxy::start(BROKER);
    let sink = declaring(proxy_url(&proxy), &exchange, &queue)
        .publish_timeout_ms(1_000)
        .build()
        .unwrap();
    let report = Outage::default().check(
        &proxy,
        Arc::new(sink),
        reader(&runtime, &admin, &queue, true),
    );
    runtime.block_on(admin.delete(&exchange, &[&queue]));
    eprintln!("{report:?}");
}

#[tokio::test]
async fn a_silent_broker_times_out_and_a_refused_connection_is_retryable() {
    require_rabbitmq();
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let sink = AmqpSink::builder()
        .url(format!("amqp://guest:hunter2@{silent}/%2f"))
        .publish_timeout_ms(300)
        .build()
        .unwrap();
    let started = Instant::now();
    let error = sink.send_batch(&[event("a", 0)]).await.unwrap_err();
    let took = started.elapsed();
    assert!(error.is_retryable(), "{error}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1_000),
        "{took:?}"
    );
    let text = error.to_string();
    assert!(text.contains("within 300 ms while connecting"), "{text}");
    assert!(
        text.contains("amqp://***@") && !text.contains("hunter2"),
        "{text}"
    );
    hold.abort();

    // Nothing listens on this port any more.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let sink = AmqpSink::builder()
        .url(format!("amqp://guest:hunter2@{closed}/%2f"))
        .build()
        .unwrap();
    let error = sink.send_batch(&[event("a", 0)]).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
    assert!(!format!("{sink:?}").contains("hunter2"));
}

#[tokio::test]
async fn a_missing_exchange_or_wrong_password_is_fatal_and_never_shows_the_password() {
    require_rabbitmq();
    let sink = AmqpSink::builder()
        .url(URL)
        .exchange(unique("does-not-exist"))
        .build()
        .unwrap();
    let error = sink.send_batch(&[event("a", 0)]).await.unwrap_err();
    assert_eq!(error.kind(), SinkErrorKind::Fatal, "{error}");
    assert!(error.to_string().contains("NOT_FOUND"), "{error}");
    // The broken channel is replaced: the next call fails the same way
    // instead of on a closed channel.
    let again = sink.send_batch(&[event("a", 0)]).await.unwrap_err();
    assert!(again.to_string().contains("NOT_FOUND"), "{again}");

    let sink = AmqpSink::builder()
        .url("amqp://guest:wrong-s3cret@127.0.0.1:5672/%2f")
        .build()
        .unwrap();
    let error = sink.send_batch(&[event("a", 0)]).await.unwrap_err();
    assert_eq!(error.kind(), SinkErrorKind::Fatal, "{error}");
    let text = error.to_string();
    assert!(text.contains("ACCESS_REFUSED"), "{text}");
    assert!(!text.contains("wrong-s3cret"), "{text}");
    assert!(text.contains("amqp://***@127.0.0.1:5672"), "{text}");
}

#[tokio::test]
async fn an_event_whose_routing_key_is_too_long_is_refused_as_too_large_before_publishing() {
    require_rabbitmq();
    let sink = AmqpSink::builder()
        .url(URL)
        .routing_key("a-long-prefix-for-every-key.{name}")
        .build()
        .unwrap();
    let long = "x".repeat(250);
    let error = sink.send_batch(&[event(&long, 0)]).await.unwrap_err();
    assert_eq!(error.kind(), SinkErrorKind::TooLarge, "{error}");
    assert!(
        error.to_string().contains("longer than AMQP allows"),
        "{error}"
    );
}
