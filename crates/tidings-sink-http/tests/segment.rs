//! The segment sink against a real loopback server: the request's shape
//! (path, headers, JSON or gzip body), and delivery through `SinkBackend`
//! within Segment's limits (a message over 32 KiB is dead-lettered alone,
//! a batch over 500 KiB is split before it is sent). The round trip
//! through tidings' own Segment ingest is in the collector's tests
//! (`tidings-collector/tests/segment_sink.rs`).

mod support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tidings_event::{Event, EventName};
use tidings_routing::{Backend, BatchConfig, DropReason, Sink, SinkBackend};
use tidings_sink_http::{MAX_MESSAGE_BYTES, MAX_REQUEST_BYTES, SegmentSink};

use support::{Recorded, Reply, TestServer};

fn sink(server: &TestServer) -> SegmentSink {
    SegmentSink::builder()
        .url(server.url("/v1/batch"))
        .write_key("wk_live")
        .client(support::client(Duration::from_millis(500)))
        .build()
        .unwrap()
}

fn body(request: &Recorded) -> Value {
    serde_json::from_slice(&support::plain_body(request)).expect("a JSON body")
}

fn seqs(request: &Recorded) -> Vec<u64> {
    body(request)["batch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["properties"]["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_batch_is_one_json_post_with_the_write_key_as_basic_auth() {
    let server = TestServer::start();
    let sink = sink(&server);
    let events = support::events(2);
    let before = tidings_event::Timestamp::now();
    sink.send_batch(&events).await.unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/batch");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("content-encoding"), None);
    let basic = format!("Basic {}", STANDARD.encode("wk_live:"));
    assert_eq!(request.header("authorization"), Some(basic.as_str()));
    let body = body(request);
    let messages: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_slice(&sink.message(e)).unwrap())
        .collect();
    assert_eq!(body["batch"], Value::Array(messages));
    let sent_at: tidings_event::Timestamp = body["sentAt"].as_str().unwrap().parse().unwrap();
    assert!(before <= sent_at && sent_at <= tidings_event::Timestamp::now());
    assert_eq!(body.as_object().unwrap().len(), 2, "batch and sentAt only");
}

#[tokio::test]
async fn gzip_compresses_the_body() {
    let server = TestServer::start();
    let sink = SegmentSink::builder()
        .url(server.url("/v1/batch"))
        .gzip(true)
        .build()
        .unwrap();
    let events = support::events(3);
    sink.send_batch(&events).await.unwrap();
    let request = &server.requests()[0];
    assert_eq!(request.header("content-encoding"), Some("gzip"));
    assert_eq!(request.header("authorization"), None, "no write key");
    assert_ne!(request.body[..2], *b"{\"");
    assert_eq!(seqs(request), [0, 1, 2]);
}

#[tokio::test]
async fn answers_are_classified_as_by_the_other_http_sinks() {
    let server = TestServer::start();
    let sink = sink(&server);
    let batch = support::events(1);
    for (reply, kind, retry_after) in [
        (
            Reply::retry_after(503, 7),
            tidings_routing::SinkErrorKind::Retryable,
            Some(Duration::from_secs(7)),
        ),
        (
            Reply::status(429),
            tidings_routing::SinkErrorKind::Retryable,
            None,
        ),
        (
            Reply::status(413),
            tidings_routing::SinkErrorKind::TooLarge,
            None,
        ),
        (
            Reply::status(400),
            tidings_routing::SinkErrorKind::Invalid,
            None,
        ),
        (
            Reply::status(401),
            tidings_routing::SinkErrorKind::Fatal,
            None,
        ),
    ] {
        server.script([reply.clone()]);
        let error = sink.send_batch(&batch).await.unwrap_err();
        assert_eq!(
            (error.kind(), error.retry_after()),
            (kind, retry_after),
            "{reply:?}"
        );
        assert!(!error.to_string().contains("wk_live"));
    }
}

#[test]
fn a_503_is_retried_and_the_batch_delivered_once() {
    let server = TestServer::start();
    server.script([Reply::status(503), Reply::status(503)]);
    let backend = SinkBackend::builder("segment", sink(&server))
        .batch(BatchConfig::default().with_max_events(4))
        .retry(support::fast_retry())
        .build()
        .unwrap();
    for event in support::events(4) {
        backend.send(event).unwrap();
    }
    backend.flush(support::PATIENCE).unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    let ids = |r: &Recorded| {
        body(r)["batch"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["messageId"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&requests[0]),
        ids(&requests[2]),
        "the same messageIds again"
    );
    assert_eq!(seqs(&server.accepted()[0]), [0, 1, 2, 3]);
    assert_eq!(backend.metrics().delivered, 4);
    backend.shutdown(support::PATIENCE).unwrap();
}

/// An event named `name` whose message is about `bytes` long.
fn padded(name: &str, seq: u64, bytes: usize) -> Event {
    support::event(
        name,
        seq,
        json!({"pad": "x".repeat(bytes.saturating_sub(250))}),
    )
}

#[test]
fn a_message_over_32_kib_is_dead_lettered_alone_and_never_sent() {
    let server = TestServer::start();
    let dead = tidings_test::RecordingBackend::new();
    let backend = SinkBackend::builder("segment", sink(&server))
        .batch(BatchConfig::default().with_max_events(8))
        .retry(support::fast_retry())
        .dead_letter(std::sync::Arc::new(dead.clone()))
        .build()
        .unwrap();
    let mut events = support::events(8);
    events[5] = padded("too.big", 5, MAX_MESSAGE_BYTES + 1_000);
    for event in events {
        backend.send(event).unwrap();
    }
    backend.flush(support::PATIENCE).unwrap();

    let mut delivered: Vec<u64> = server.accepted().iter().flat_map(seqs).collect();
    delivered.sort_unstable();
    assert_eq!(delivered, [0, 1, 2, 3, 4, 6, 7], "every neighbour, once");
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.body.len() < MAX_MESSAGE_BYTES),
        "the big message was never sent"
    );
    assert_eq!(dead.names(), ["too.big"]);
    let dead_events = dead.events();
    let mark = &dead_events[0].context()["dead_letter"];
    assert_eq!(mark["reason"], "too_large");
    assert!(
        mark["error"]
            .as_str()
            .unwrap()
            .contains("over Segment's limit of 32768 bytes a message"),
        "{mark}"
    );
    let metrics = backend.metrics();
    assert_eq!(
        (
            metrics.delivered,
            metrics.dead_lettered(DropReason::TooLarge),
            metrics.retried
        ),
        (7, 1, 0)
    );
    backend.shutdown(support::PATIENCE).unwrap();
}

#[test]
fn requests_stay_under_500_kib_whatever_max_bytes_says() {
    let server = TestServer::start();
    // 40 messages of about 30 KB: 1.2 MB in one batch by the config.
    let backend = SinkBackend::builder("segment", sink(&server))
        .batch(
            BatchConfig::default()
                .with_max_events(40)
                .with_max_bytes(10_000_000),
        )
        .retry(support::fast_retry())
        .build()
        .unwrap();
    for seq in 0..40 {
        backend.send(padded("big", seq, 30_000)).unwrap();
    }
    backend.flush(support::PATIENCE).unwrap();
    let requests = server.requests();
    assert!(requests.len() >= 3, "{} requests", requests.len());
    assert!(requests.iter().all(|r| r.body.len() <= MAX_REQUEST_BYTES));
    let mut delivered: Vec<u64> = requests.iter().flat_map(seqs).collect();
    delivered.sort_unstable();
    assert_eq!(delivered, (0..40).collect::<Vec<_>>());
    assert_eq!(backend.metrics().delivered, 40);
    backend.shutdown(support::PATIENCE).unwrap();
}

#[test]
fn the_default_max_bytes_keeps_requests_under_the_limit_unsplit() {
    let server = TestServer::start();
    let backend = SinkBackend::builder("segment", sink(&server))
        .batch(BatchConfig::default().with_max_events(100))
        .retry(support::fast_retry())
        .build()
        .unwrap();
    for seq in 0..40 {
        backend.send(padded("big", seq, 30_000)).unwrap();
    }
    backend.flush(support::PATIENCE).unwrap();
    let requests = server.requests();
    let sizes: Vec<usize> = requests.iter().map(|r| r.body.len()).collect();
    assert!(sizes.iter().all(|&s| s <= MAX_REQUEST_BYTES), "{sizes:?}");
    assert!(sizes[0] > 450_000, "the batches are full: {sizes:?}");
    assert_eq!(
        requests.len(),
        3,
        "no batch was refused and split: {sizes:?}"
    );
    assert_eq!(backend.metrics().delivered, 40);
    backend.shutdown(support::PATIENCE).unwrap();
}

#[tokio::test]
async fn neither_debug_nor_errors_show_the_write_key() {
    let sink = SegmentSink::builder()
        .url(support::refused_url("/v1/batch?k=s3cret"))
        .write_key("s3cret-key")
        .build()
        .unwrap();
    let shown = format!("{sink:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    let batch = [Event::new(EventName::new("e").unwrap(), json!({}))];
    let error = sink.send_batch(&batch).await.unwrap_err();
    assert!(error.is_retryable());
    assert!(!error.to_string().contains("s3cret"), "{error}");
}
