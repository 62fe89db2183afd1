//! The generic JSON sink against a real loopback server: the wire format,
//! gzip, extra headers, batch limits and retries through `SinkBackend`.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use tidings_event::{Event, EventName};
use tidings_routing::{Backend, BatchConfig, Sink, SinkBackend};
use tidings_sink_http::HttpJsonSink;

use support::{Reply, TestServer};

fn sample() -> Vec<Event> {
    let context = json!({"user_id": 1});
    vec![
        Event::new(
            EventName::new("a.b").unwrap(),
            json!({"x": [1, 2, {"y": null}]}),
        )
        .with_context(context.as_object().unwrap().clone()),
        Event::from_serializable(EventName::new("c").unwrap(), &("typed", 3.5)).unwrap(),
    ]
}

fn ids(request: &support::Recorded) -> Vec<String> {
    let body: Vec<Value> = serde_json::from_slice(&support::plain_body(request)).unwrap();
    body.iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_batch_is_a_json_array_of_wire_format_events_with_the_extra_headers() {
    let server = TestServer::start();
    let sink = HttpJsonSink::builder()
        .url(server.url("/events?source=test"))
        .header("X-Api-Key", "s3cret")
        .client(support::client(Duration::from_millis(500)))
        .build()
        .unwrap();
    let batch = sample();

    sink.send_batch(&batch).await.unwrap();

    let request = &server.requests()[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/events?source=test")
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("x-api-key"), Some("s3cret"));
    assert_eq!(request.header("content-encoding"), None);
    let mut expected = b"[".to_vec();
    expected.extend(batch[0].to_json_bytes());
    expected.push(b',');
    expected.extend(batch[1].to_json_bytes());
    expected.push(b']');
    assert_eq!(request.body, expected);
    let decoded: Vec<Value> = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(decoded[0]["context"], json!({"user_id": 1}));
    assert_eq!(decoded[1]["data"], json!(["typed", 3.5]));
    assert!(
        !format!("{sink:?}").contains("s3cret"),
        "header values stay out of Debug"
    );
}

#[tokio::test]
async fn gzip_bodies_decompress_to_the_same_array() {
    let server = TestServer::start();
    let sink = HttpJsonSink::builder()
        .url(server.url("/events"))
        .gzip(true)
        .build()
        .unwrap();
    let batch: Vec<Event> = (0..50)
        .map(|seq| support::event("test.zip", seq, json!({"pad": "abc".repeat(20)})))
        .collect();

    sink.send_batch(&batch).await.unwrap();

    let request = &server.requests()[0];
    assert_eq!(request.header("content-encoding"), Some("gzip"));
    assert!(
        request.body.len() < HttpJsonSink::encode(&batch).len() / 4,
        "it is compressed"
    );
    assert_eq!(support::plain_body(request), HttpJsonSink::encode(&batch));
}

#[test]
fn after_500_503_and_429_every_id_arrives_exactly_once() {
    let server = TestServer::start();
    server.script([Reply::status(500), Reply::status(503), Reply::status(429)]);
    let sink = HttpJsonSink::builder()
        .url(server.url("/events"))
        .gzip(true)
        .build()
        .unwrap();
    let backend = SinkBackend::builder("http", sink)
        .batch(BatchConfig::default().with_max_events(4))
        .retry(support::fast_retry())
        .build()
        .unwrap();
    let events = support::events(12);
    let sent: HashSet<String> = events.iter().map(|e| e.id().to_string()).collect();
    for event in events {
        backend.send(event).unwrap();
    }
    backend.flush(support::PATIENCE).unwrap();

    let delivered: Vec<String> = server.accepted().iter().flat_map(ids).collect();
    assert_eq!(delivered.len(), 12, "no duplicates");
    assert_eq!(delivered.into_iter().collect::<HashSet<_>>(), sent);
    let metrics = backend.metrics();
    assert_eq!(
        (metrics.delivered, metrics.retried, metrics.dropped_total()),
        (12, 12, 0)
    );
    backend.shutdown(support::PATIENCE).unwrap();
}

#[test]
fn uncompressed_bodies_stay_within_max_bytes() {
    let server = TestServer::start();
    let sink = HttpJsonSink::builder()
        .url(server.url("/events"))
        .build()
        .unwrap();
    let max_bytes = 2_000;
    let backend = SinkBackend::builder("http", sink)
        .batch(
            BatchConfig::default()
                .with_max_events(10)
                .with_max_bytes(max_bytes),
        )
        .retry(support::fast_retry())
        .build()
        .unwrap();
    for seq in 0..30 {
        backend
            .send(support::event(
                "test.sized",
                seq,
                json!({"pad": "y".repeat(seq as usize * 7)}),
            ))
            .unwrap();
    }
    backend.flush(support::PATIENCE).unwrap();

    let requests = server.requests();
    for request in &requests {
        assert!(
            request.body.len() <= max_bytes + 1,
            "a body of {} bytes",
            request.body.len()
        );
        assert!(ids(request).len() <= 10);
    }
    assert_eq!(requests.iter().map(|r| ids(r).len()).sum::<usize>(), 30);
    assert_eq!(backend.metrics().delivered, 30);
    backend.shutdown(support::PATIENCE).unwrap();
}

#[test]
fn the_sink_passes_the_compliance_checks() {
    let server = TestServer::start();
    let sink = HttpJsonSink::builder()
        .url(server.url("/events"))
        .client(support::client(Duration::from_secs(5)))
        .build()
        .unwrap();
    let report = tidings_test::assert_sink_compliance(std::sync::Arc::new(sink), || {
        server
            .accepted()
            .iter()
            .flat_map(|request| {
                let batch: Vec<Value> = serde_json::from_slice(&request.body).unwrap();
                batch
                    .into_iter()
                    .map(|event| event["id"].as_str().unwrap().parse().unwrap())
                    .collect::<Vec<tidings_event::EventId>>()
            })
            .collect()
    });
    assert_eq!(report.events, 1000);
}
