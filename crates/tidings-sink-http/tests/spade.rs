//! The spade sink against a real loopback server: its wire format, and
//! delivery through `SinkBackend` (batching, retries, Retry-After, 400,
//! 413 splitting, resets, black holes, shutdown) and the URL rotator.

mod support;

use std::error::Error as _;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tidings_event::{Event, EventName};
use tidings_routing::{
    Backend, BatchConfig, DrainError, DropReason, Sink, SinkBackend, SinkErrorKind,
};
use tidings_sink_http::SpadeSink;

use support::{Reply, TestServer};

fn sink(server: &TestServer) -> SpadeSink {
    SpadeSink::builder()
        .url(server.url("/track"))
        .client(support::client(Duration::from_millis(500)))
        .build()
        .unwrap()
}

fn backend(sink: SpadeSink, batch: BatchConfig) -> SinkBackend {
    SinkBackend::builder("spade", sink)
        .batch(batch)
        .retry(support::fast_retry())
        .build()
        .unwrap()
}

fn send_all(backend: &SinkBackend, events: Vec<Event>) {
    for event in events {
        backend.send(event).unwrap();
    }
}

#[tokio::test]
async fn a_batch_is_one_form_post_of_base64_json_event_and_properties() {
    let server = TestServer::start();
    let context = json!({"user_id": 7, "url": "/from-context"});
    let context = context.as_object().unwrap().clone();
    let batch = vec![
        Event::new(
            EventName::new("page.view").unwrap(),
            json!({"url": "/a", "n": 1}),
        )
        .with_context(context.clone()),
        Event::new(EventName::new("click").unwrap(), json!([1, 2])).with_context(context),
        Event::new(
            EventName::new("search").unwrap(),
            json!({"q": "a+b/c=d&é?"}),
        ),
    ];

    sink(&server).send_batch(&batch).await.unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 1, "one request per batch");
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/track");
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert!(
        request
            .header("user-agent")
            .unwrap()
            .starts_with("tidings/")
    );
    let elements: Vec<Value> = support::spade_events(&request.body)
        .into_iter()
        .zip(&batch)
        .map(|(element, event)| support::without_identity(element, event))
        .collect();
    assert_eq!(
        Value::Array(elements),
        json!([
            {"event": "page.view", "properties": {"user_id": 7, "url": "/a", "n": 1}},
            {"event": "click", "properties": {"user_id": 7, "url": "/from-context", "data": [1, 2]}},
            {"event": "search", "properties": {"q": "a+b/c=d&é?"}},
        ])
    );
    assert_eq!(
        request.body,
        SpadeSink::encode(&batch),
        "the body is what `encode` documents"
    );
}

#[test]
fn batches_never_exceed_max_events_or_max_bytes() {
    let server = TestServer::start();
    let max_bytes = 1_500;
    let backend = backend(
        sink(&server),
        BatchConfig::default()
            .with_max_events(7)
            .with_max_bytes(max_bytes),
    );
    let events = (0..40).map(|seq| {
        support::event(
            "test.sized",
            seq,
            json!({"pad": "x".repeat(seq as usize % 5 * 100)}),
        )
    });
    send_all(&backend, events.collect());
    backend.flush(support::PATIENCE).unwrap();

    let requests = server.requests();
    for request in &requests {
        let elements = support::spade_events(&request.body);
        assert!(
            elements.len() <= 7,
            "{} events in one batch",
            elements.len()
        );
        let json = support::spade_json(&request.body);
        assert!(
            json.len() <= max_bytes,
            "{} bytes of JSON in one batch",
            json.len()
        );
    }
    assert!(
        requests
            .iter()
            .any(|r| support::spade_events(&r.body).len() < 7)
            && requests.len() > 40 / 7 + 1,
        "max_bytes cut some batches short"
    );
    support::assert_each_once(
        requests.iter().flat_map(support::spade_seqs).collect(),
        40,
        &[],
    );
    let metrics = backend.metrics();
    assert_eq!((metrics.delivered, metrics.dropped_total()), (40, 0));
    assert_eq!(metrics.batches, requests.len() as u64);
    backend.shutdown(support::PATIENCE).unwrap();
}

#[test]
fn after_500_503_and_429_every_event_is_delivered_exactly_once() {
    let server = TestServer::start();
    server.script([Reply::status(500), Reply::status(503), Reply::status(429)]);
    let backend = backend(sink(&server), BatchConfig::default().with_max_events(5));
    send_all(&backend, support::events(10));
    backend.flush(support::PATIENCE).unwrap();

    let statuses: Vec<Reply> = server
        .requests()
        .into_iter()
        .map(|r| r.reply)
        .take(3)
        .collect();
    assert_eq!(
        statuses,
        [Reply::status(500), Reply::status(503), Reply::status(429)]
    );
    support::assert_each_once(
        server
            .accepted()
            .iter()
            .flat_map(support::spade_seqs)
            .collect(),
        10,
        &[],
    );
    let metrics = backend.metrics();
    assert_eq!(
        (
            metrics.delivered,
            metrics.dropped_total(),
            metrics.pending()
        ),
        (10, 0, 0)
    );
    assert_eq!(metrics.retried, 15, "three failed attempts of five events");
    // A retried batch is recognisable: each attempt carries the same
    // `event_id`s and `time`s.
    let attempts: Vec<Vec<(Value, Value)>> = server
        .requests()
        .iter()
        .take(4)
        .map(|r| {
            support::spade_events(&r.body)
                .into_iter()
                .map(|e| {
                    (
                        e["properties"]["event_id"].clone(),
                        e["properties"]["time"].clone(),
                    )
                })
                .collect()
        })
        .collect();
    assert!(
        attempts[0]
            .iter()
            .all(|(id, time)| id.is_string() && time.is_f64())
    );
    assert!(attempts.windows(2).all(|w| w[0] == w[1]), "{attempts:?}");
    backend.shutdown(support::PATIENCE).unwrap();
}

#[test]
fn retry_after_pauses_the_sink_for_that_long() {
    let server = TestServer::start();
    server.script([Reply::retry_after(503, 2)]);
    let backend = backend(sink(&server), BatchConfig::default().with_max_events(3));
    send_all(&backend, support::events(3));
    backend.flush(support::PATIENCE).unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 2, "the refused batch, then its retry");
    let gap = requests[1].at - requests[0].at;
    assert!(
        gap >= Duration::from_millis(1_950),
        "no request for 2 s after Retry-After: 2, but {gap:?}"
    );
    assert!(gap < Duration::from_secs(5), "and not much longer: {gap:?}");
    assert_eq!(backend.metrics().delivered, 3);
    backend.shutdown(support::PATIENCE).unwrap();
}

#[test]
fn a_400_isolates_the_events_at_fault_and_the_others_are_delivered() {
    let server = TestServer::start();
    // Spade refuses any batch holding the poison event, as an ingest
    // service refuses a value it cannot parse.
    server.rule(|request| {
        support::spade_events(&request.body)
            .iter()
            .any(|e| e["event"] == "spade.poison")
            .then(|| Reply::body(400, "bad event"))
    });
    let dead = tidings_test::RecordingBackend::new();
    let backend = SinkBackend::builder("spade", sink(&server))
        .batch(BatchConfig::default().with_max_events(8))
        .retry(support::fast_retry())
        .dead_letter(std::sync::Arc::new(dead.clone()))
        .build()
        .unwrap();
    let mut events = support::events(8);
    events[5] = support::event("spade.poison", 5, json!({}));
    send_all(&backend, events);
    backend.flush(support::PATIENCE).unwrap();

    let delivered: Vec<u64> = server
        .accepted()
        .iter()
        .flat_map(|r| support::spade_events(&r.body))
        .map(|e| e["properties"]["seq"].as_u64().unwrap())
        .collect();
    let mut sorted = delivered.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [0, 1, 2, 3, 4, 6, 7], "every innocent event, once");
    assert_eq!(dead.names(), ["spade.poison"]);
    assert_eq!(
        dead.events()[0].context()["dead_letter"]["reason"],
        "invalid"
    );
    let metrics = backend.metrics();
    assert_eq!(
        (
            metrics.delivered,
            metrics.dead_lettered(DropReason::Invalid),
            metrics.retried
        ),
        (7, 1, 0)
    );
    backend.shutdown(support::PATIENCE).unwrap();
}

#[test]
fn a_401_gives_the_batch_up_as_non_retryable() {
    let server = TestServer::start();
    server.script([Reply::body(401, "who are you")]);
    let backend = backend(sink(&server), BatchConfig::default().with_max_events(4));
    send_all(&backend, support::events(4));
    backend.flush(support::PATIENCE).unwrap();

    assert_eq!(server.requests().len(), 1, "never retried nor split");
    let metrics = backend.metrics();
    assert_eq!(metrics.dropped(DropReason::NonRetryable), 4);
    assert_eq!(
        (metrics.delivered, metrics.retried, metrics.pending()),
        (0, 0, 0)
    );
    backend.shutdown(support::PATIENCE).unwrap();
}

#[test]
fn a_413_splits_the_batch_and_a_lone_refused_event_is_dropped_as_too_large() {
    let server = TestServer::start();
    server.rule(|request| {
        let elements = support::spade_events(&request.body);
        let huge = elements.iter().any(|e| e["properties"]["huge"] == true);
        (elements.len() > 3 || huge).then(|| Reply::status(413))
    });
    let backend = backend(sink(&server), BatchConfig::default().with_max_events(12));
    let events = (0..12).map(|seq| support::event("test.event", seq, json!({"huge": seq == 5})));
    send_all(&backend, events.collect());
    backend.flush(support::PATIENCE).unwrap();

    support::assert_each_once(
        server
            .accepted()
            .iter()
            .flat_map(support::spade_seqs)
            .collect(),
        12,
        &[5],
    );
    let metrics = backend.metrics();
    assert_eq!(metrics.dropped(DropReason::TooLarge), 1);
    assert_eq!(
        (
            metrics.delivered,
            metrics.dropped_total(),
            metrics.pending()
        ),
        (11, 1, 0)
    );
    backend.shutdown(support::PATIENCE).unwrap();
}

#[test]
fn a_reset_connection_is_retried() {
    let server = TestServer::start();
    server.script([Reply::Reset]);
    let backend = backend(sink(&server), BatchConfig::default().with_max_events(3));
    send_all(&backend, support::events(3));
    backend.flush(support::PATIENCE).unwrap();

    assert_eq!(server.requests().len(), 2);
    support::assert_each_once(
        server
            .accepted()
            .iter()
            .flat_map(support::spade_seqs)
            .collect(),
        3,
        &[],
    );
    let metrics = backend.metrics();
    assert_eq!(
        (metrics.delivered, metrics.retried, metrics.dropped_total()),
        (3, 3, 0)
    );
    backend.shutdown(support::PATIENCE).unwrap();
}

#[test]
fn a_server_that_never_answers_times_out_and_the_batch_is_retried() {
    let server = TestServer::start();
    server.script([Reply::BlackHole]);
    let backend = backend(sink(&server), BatchConfig::default().with_max_events(3));
    send_all(&backend, support::events(3));
    backend.flush(support::PATIENCE).unwrap();

    assert_eq!(server.requests().len(), 2);
    support::assert_each_once(
        server
            .accepted()
            .iter()
            .flat_map(support::spade_seqs)
            .collect(),
        3,
        &[],
    );
    let metrics = backend.metrics();
    assert_eq!(
        (metrics.delivered, metrics.retried, metrics.dropped_total()),
        (3, 3, 0)
    );
    backend.shutdown(support::PATIENCE).unwrap();
}

#[tokio::test]
async fn resets_timeouts_and_refused_connections_are_retryable_errors() {
    let server = TestServer::start();
    server.script([Reply::Reset, Reply::BlackHole]);
    let sink = sink(&server);
    let batch = support::events(1);

    let reset = sink.send_batch(&batch).await.unwrap_err();
    assert_eq!(reset.kind(), SinkErrorKind::Retryable, "{reset}");
    assert!(
        reset.to_string().to_lowercase().contains("reset"),
        "{reset}"
    );
    let timeout = sink.send_batch(&batch).await.unwrap_err();
    assert_eq!(timeout.kind(), SinkErrorKind::Retryable, "{timeout}");
    let source = timeout.source().unwrap().to_string();
    assert_eq!(
        source,
        format!("no answer from http://{}/… within 500ms", server.addr())
    );

    let refused = SpadeSink::builder()
        .url(support::refused_url("/track"))
        .build()
        .unwrap();
    let error = refused.send_batch(&batch).await.unwrap_err();
    assert_eq!(error.kind(), SinkErrorKind::Retryable, "{error}");
    assert!(
        error
            .to_string()
            .contains("could not connect to http://127.0.0.1:"),
        "{error}"
    );
}

#[test]
fn shutdown_against_a_black_hole_returns_in_time_and_counts_what_was_not_delivered() {
    let server = TestServer::start();
    server.otherwise(Reply::BlackHole);
    // The default 10 s request timeout: only shutdown's deadline bounds the wait.
    let sink = SpadeSink::builder()
        .url(server.url("/track"))
        .build()
        .unwrap();
    let backend = backend(sink, BatchConfig::default().with_max_events(5));
    send_all(&backend, support::events(5));
    server.wait_for_requests(1); // the first batch is in flight
    send_all(&backend, support::events(3)); // and three more wait behind it

    let started = Instant::now();
    let result = backend.shutdown(Duration::from_secs(1));
    let took = started.elapsed();

    assert!(
        took < Duration::from_millis(1_100),
        "shutdown(1 s) took {took:?}"
    );
    match result {
        Err(DrainError::TimedOut { pending, .. }) => {
            assert_eq!(pending, 8, "every undelivered event is reported")
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    let metrics = backend.metrics();
    assert_eq!(metrics.received, 8);
    assert_eq!(metrics.delivered, 0);
    assert_eq!(
        metrics.dropped_total() + metrics.pending(),
        8,
        "none lost silently: {metrics:?}"
    );
}

mod rotator {
    use super::*;

    /// A rotator answering `{"url": ...}`.
    fn json_answer(url: &str) -> Reply {
        Reply::body(200, json!({ "url": url }).to_string())
    }

    #[tokio::test]
    async fn the_rotators_url_is_used_and_refreshed() {
        let fallback = TestServer::start();
        let first = TestServer::start();
        let second = TestServer::start();
        let rotator = TestServer::start();
        rotator.script([json_answer(&first.url("/ingest"))]);
        rotator.otherwise(Reply::body(200, format!("  {}\n", second.url("/ingest")))); // a bare URL
        let sink = SpadeSink::builder()
            .url(fallback.url("/track"))
            .rotator_url(rotator.url("/rotator"))
            .refresh_interval(Duration::from_millis(20))
            .client(support::client(Duration::from_millis(500)))
            .build()
            .unwrap();
        assert!(sink.url_provider().is_rotating());

        sink.send_batch(&support::events(2)).await.unwrap();
        assert_eq!(
            first.requests().len(),
            1,
            "the first batch waits for the rotator's first answer"
        );
        assert_eq!(first.requests()[0].path, "/ingest");

        let asked = rotator.wait_for_requests(3); // so the second answer has been taken
        assert!(
            asked
                .iter()
                .all(|r| r.method == "GET" && r.path == "/rotator")
        );
        assert_eq!(
            sink.url_provider().current_url(),
            Some(format!("http://{}/…", second.addr()))
        );
        sink.send_batch(&support::events(2)).await.unwrap();
        assert_eq!(second.requests().len(), 1, "the refreshed bare URL is used");
        assert_eq!(fallback.requests().len(), 0);
        sink.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_failing_rotator_leaves_the_last_known_good_url_in_use() {
        let fallback = TestServer::start();
        let ingest = TestServer::start();
        let rotator = TestServer::start();
        rotator.script([
            json_answer(&ingest.url("/ingest")),
            Reply::status(500),
            Reply::Reset,
            Reply::body(200, "<html>maintenance</html>"),
            Reply::body(200, r#"{"url": 42}"#),
            Reply::body(200, "ftp://elsewhere/"),
            Reply::BlackHole,
        ]);
        rotator.otherwise(Reply::status(503));
        let sink = SpadeSink::builder()
            .url(fallback.url("/track"))
            .rotator_url(rotator.url("/rotator"))
            .refresh_interval(Duration::from_millis(10))
            .client(support::client(Duration::from_millis(300)))
            .build()
            .unwrap();

        sink.send_batch(&support::events(1)).await.unwrap();
        rotator.wait_for_requests(9); // every scripted failure has been handled
        sink.send_batch(&support::events(1)).await.unwrap();

        assert_eq!(
            ingest.requests().len(),
            2,
            "both batches went to the last known-good URL"
        );
        assert_eq!(fallback.requests().len(), 0);
    }

    #[tokio::test]
    async fn with_a_rotator_that_never_answers_or_is_down_the_default_is_used() {
        let fallback = TestServer::start();
        let silent = TestServer::start();
        silent.otherwise(Reply::BlackHole);
        for rotator_url in [silent.url("/rotator"), support::refused_url("/rotator")] {
            let sink = SpadeSink::builder()
                .url(fallback.url("/track"))
                .rotator_url(rotator_url)
                .client(support::client(Duration::from_millis(300)))
                .build()
                .unwrap();
            sink.send_batch(&support::events(1)).await.unwrap();
        }
        assert_eq!(
            fallback.requests().len(),
            2,
            "both batches went to the default URL"
        );
    }

    #[tokio::test]
    async fn without_a_default_a_batch_before_any_good_answer_fails_retryably() {
        let rotator = TestServer::start();
        rotator.otherwise(Reply::status(503));
        let sink = SpadeSink::builder()
            .rotator_url(rotator.url("/rotator"))
            .client(support::client(Duration::from_millis(300)))
            .build()
            .unwrap();
        assert_eq!(sink.url_provider().current_url(), None);
        let error = sink.send_batch(&support::events(1)).await.unwrap_err();
        assert_eq!(error.kind(), SinkErrorKind::Retryable);
        assert!(error.to_string().contains("no ingest URL yet"), "{error}");
    }

    #[tokio::test]
    async fn the_rotator_stops_at_shutdown_and_when_the_sink_is_dropped() {
        let rotator = TestServer::start();
        let client = support::client(Duration::from_millis(300));
        let build = || {
            SpadeSink::builder()
                .url("http://127.0.0.1:9/track")
                .rotator_url(rotator.url("/rotator"))
                .refresh_interval(Duration::from_millis(5))
                .client(client.clone())
                .build()
                .unwrap()
        };
        let probe = || {
            let request = http::Request::get(rotator.url("/probe"))
                .body(bytes::Bytes::new())
                .unwrap();
            client.send(request)
        };
        let asked = || {
            rotator
                .requests()
                .iter()
                .filter(|r| r.path == "/rotator")
                .count()
        };

        let stopped = build();
        let dropped = build();
        rotator.wait_for_requests(4);
        stopped.shutdown().await.unwrap();
        drop(dropped);
        // The probe runs on the client's I/O thread after both rotator tasks
        // were cancelled there; at most a request already on its way follows.
        probe().await.unwrap();
        let before = asked();
        // Absence can only be observed over time: with a 5 ms refresh, two
        // running rotators would ask about 80 times in 200 ms.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            asked() <= before + 2,
            "the rotators were still asked: {before} then {}",
            asked()
        );
    }
}
