//! The flume sink against a real loopback server: one form post per event
//! with only the allowed properties, partial failures that resend only the
//! unsent rest, and delivery through `SinkBackend`.

mod support;

use std::error::Error as _;
use std::time::Duration;

use serde_json::{Value, json};
use tidings_event::{Event, EventName};
use tidings_routing::{Backend, BatchConfig, DropReason, Sink, SinkBackend, SinkErrorKind};
use tidings_sink_http::{FlumeSink, PartialDelivery};

use support::{Reply, TestServer};

fn sink(server: &TestServer) -> FlumeSink {
    FlumeSink::builder()
        .url(server.url("/flume"))
        .allowed_properties(["url", "page.title", "user_id", "seq", "data"])
        .client(support::client(Duration::from_millis(500)))
        .build()
        .unwrap()
}

fn seq(request: &support::Recorded) -> u64 {
    support::flume_event(&request.body)["properties"]["seq"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn each_event_is_one_form_post_holding_only_allowed_properties() {
    let server = TestServer::start();
    let context = json!({"user_id": 10938, "email": "x@y.z"});
    let context = context.as_object().unwrap().clone();
    let batch = vec![
        Event::new(
            EventName::new("navigation.request").unwrap(),
            json!({"url": "/a?b=c&d", "page": {"title": "Home", "author": "someone"}, "password": "hunter2"}),
        )
        .with_context(context.clone()),
        Event::new(EventName::new("list.shown").unwrap(), json!(["x", "y"])).with_context(context),
        Event::new(EventName::new("bare").unwrap(), json!({"token": "t"})),
    ];

    sink(&server).send_batch(&batch).await.unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 3, "one request per event");
    for request in &requests {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/flume");
        assert_eq!(
            request.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
    }
    let sent: Vec<Value> = requests
        .iter()
        .zip(&batch)
        .map(|(r, event)| support::without_identity(support::flume_event(&r.body), event))
        .collect();
    assert_eq!(
        sent,
        [
            json!({"event": "navigation.request", "properties": {"user_id": 10938, "url": "/a?b=c&d", "page": {"title": "Home"}}}),
            json!({"event": "list.shown", "properties": {"user_id": 10938, "data": ["x", "y"]}}),
            json!({"event": "bare", "properties": {}}),
        ]
    );
    let sink = sink(&server);
    assert_eq!(
        requests[0].body,
        sink.encode(&batch[0]),
        "the body is what `encode` documents"
    );
}

#[tokio::test]
async fn without_allowed_properties_nothing_but_the_name_is_sent() {
    let server = TestServer::start();
    let sink = FlumeSink::builder()
        .url(server.url("/flume"))
        .build()
        .unwrap();
    let events = support::events(1);
    sink.send_batch(&events).await.unwrap();
    let sent = support::flume_event(&server.requests()[0].body);
    // The id and time are sent whatever the allowlist: they are not
    // personal, and they tell a retried post from a new event.
    let sent = support::without_identity(sent, &events[0]);
    assert_eq!(sent, json!({"event": "test.event", "properties": {}}));
}

#[tokio::test]
async fn a_partial_failure_says_where_and_only_the_unsent_rest_is_retried() {
    let server = TestServer::start();
    server.script([Reply::ok(), Reply::ok(), Reply::retry_after(503, 1)]);
    let sink = sink(&server);
    let batch = support::events(5);

    let error = sink.send_batch(&batch).await.unwrap_err();
    assert_eq!(error.kind(), SinkErrorKind::Retryable);
    assert_eq!(
        error.retry_after(),
        Some(Duration::from_secs(1)),
        "the failed request's Retry-After is kept"
    );
    let message = error.to_string();
    assert!(
        message.contains("event 3 of 5 (test.event) failed, 2 of the batch delivered"),
        "{message}"
    );
    let partial = error
        .source()
        .unwrap()
        .downcast_ref::<PartialDelivery>()
        .unwrap();
    assert_eq!(
        (partial.failed_index(), partial.delivered(), partial.total()),
        (2, 2, 5)
    );
    assert_eq!(partial.failed_name(), "test.event");

    sink.send_batch(&batch).await.unwrap(); // the retry
    let seqs: Vec<u64> = server.requests().iter().map(seq).collect();
    assert_eq!(
        seqs,
        [0, 1, 2, 2, 3, 4],
        "events 0 and 1 are not sent again"
    );
    support::assert_each_once(server.accepted().iter().map(seq).collect(), 5, &[]);

    // A different batch after a success starts afresh.
    sink.send_batch(&batch[..1]).await.unwrap();
    assert_eq!(server.requests().len(), 7);
}

#[test]
fn through_a_sink_backend_retries_and_413_splits_deliver_each_event_once() {
    let server = TestServer::start();
    server.rule(|request| {
        (support::flume_event(&request.body)["properties"]["seq"] == 5).then(|| Reply::status(413))
    });
    server.script([Reply::ok(), Reply::status(503)]);
    let sink = FlumeSink::builder()
        .url(server.url("/flume"))
        .allowed_properties(["seq"])
        .build()
        .unwrap();
    let backend = SinkBackend::builder("flume", sink)
        .batch(BatchConfig::default().with_max_events(4))
        .retry(support::fast_retry())
        .build()
        .unwrap();
    for event in support::events(8) {
        backend.send(event).unwrap();
    }
    backend.flush(support::PATIENCE).unwrap();

    support::assert_each_once(server.accepted().iter().map(seq).collect(), 8, &[5]);
    let metrics = backend.metrics();
    assert_eq!(
        metrics.dropped(DropReason::TooLarge),
        1,
        "the refused event alone"
    );
    assert_eq!(
        (
            metrics.delivered,
            metrics.dropped_total(),
            metrics.pending()
        ),
        (7, 1, 0)
    );
    backend.shutdown(support::PATIENCE).unwrap();
}
