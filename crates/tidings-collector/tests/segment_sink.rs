//! The `segment` sink (tidings-sink-http) against tidings' own Segment
//! ingest: real collectors served on loopback. Events that came from
//! Segment clients, forwarded by the sink to another collector's
//! `/v1/batch`, arrive with the same id, name, context and data; plain
//! tidings events arrive as tracks with the same id, name and context. The
//! write key is required; a full collector's 503 is retried; a message
//! over 32 KiB, or one the ingest refuses, is dead-lettered while its
//! neighbours arrive.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Served, registry};
use tidings_collector::Collector;
use tidings_config::load;
use tidings_event::{Event, EventName};
use tidings_routing::{Backend, BatchConfig, DropReason, RetryPolicy, SinkBackend};
use tidings_sink_http::{MAX_MESSAGE_BYTES, SegmentSink};
use tidings_test::{Answer, RecordingBackend, RecordingSink, install_memory_sink};

const KEY: &str = "wk_segment_test";
const PATIENCE: Duration = Duration::from_secs(10);

/// A collector requiring the write key [`KEY`], whose only backend is the
/// memory sink `id`.
fn receiver(id: &str) -> (Served, RecordingSink) {
    let (served, sink, _) = support::collector(id, &format!("write_keys = [\"{KEY}\"]"));
    (served, sink)
}

fn batch_url(served: &Served) -> String {
    format!("http://{}/v1/batch", served.addr)
}

fn sink(served: &Served) -> SegmentSink {
    SegmentSink::builder()
        .url(batch_url(served))
        .write_key(KEY)
        .build()
        .unwrap()
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy::default()
        .with_initial_backoff(Duration::from_millis(10))
        .with_max_backoff(Duration::from_millis(50))
}

/// The sink in a `SinkBackend` of batches of up to `max_events`, dead
/// letters into `dead`.
fn backend(sink: SegmentSink, max_events: usize, dead: &RecordingBackend) -> SinkBackend {
    SinkBackend::builder("segment", sink)
        .batch(
            BatchConfig::default()
                .with_max_events(max_events)
                .with_flush_interval(Duration::from_millis(10)),
        )
        .retry(fast_retry())
        .dead_letter(Arc::new(dead.clone()))
        .build()
        .unwrap()
}

/// Sends `events` through the sink's backend and waits until it is done
/// with them.
fn forward(backend: &SinkBackend, events: &[Event]) {
    for event in events {
        backend.send(event.clone()).unwrap();
    }
    backend.flush(PATIENCE).unwrap();
}

/// Events by id.
fn by_id(events: Vec<Event>) -> BTreeMap<String, Event> {
    events
        .into_iter()
        .map(|e| (e.id().to_string(), e))
        .collect()
}

/// The data without the keys that record the last hop's clock readings.
fn data_but_clock(event: &Event) -> Value {
    let mut data = event.data().clone();
    if let Some(object) = data.as_object_mut() {
        object.remove("originalTimestamp");
        object.remove("sentAt");
    }
    data
}

/// What Segment's libraries send: a python batch (with non-UUID and UUID
/// message ids, a batch context) and every call.
fn client_batch() -> Value {
    json!({
        "batch": [
            {"type": "track", "event": "Order Completed", "userId": "u1",
             "properties": {"revenue": 9.5, "items": [{"sku": "a"}]},
             "messageId": "ajs-next-1764769752123-7b3c", "timestamp": "2026-12-03T13:29:12.123+00:00",
             "context": {"page": {"path": "/checkout"}}, "integrations": {"All": true}},
            {"type": "track", "event": "Signed Up", "anonymousId": "anon-1",
             "messageId": "0d1a2b3c-4d5e-4f60-8a7b-9c8d7e6f5a4b", "timestamp": "2026-12-03T13:29:13Z"},
            {"type": "page", "name": "Home", "category": "Docs", "anonymousId": "anon-1",
             "properties": {"path": "/"}, "timestamp": "2026-12-03T13:29:14Z"},
            {"type": "screen", "name": "Settings", "userId": 42, "timestamp": "2026-12-03T13:29:15Z"},
            {"type": "identify", "userId": "u1", "traits": {"email": "u1@example.com", "plan": "pro"},
             "timestamp": "2026-12-03T13:29:16Z"},
            {"type": "group", "userId": "u1", "groupId": "g1", "traits": {"name": "Acme"},
             "timestamp": "2026-12-03T13:29:17Z"},
            {"type": "alias", "userId": "u1", "previousId": "anon-1", "timestamp": "2026-12-03T13:29:18Z"}
        ],
        "context": {"library": {"name": "analytics-python", "version": "2.3.4"}},
        "sentAt": "2026-12-03T13:29:19Z"
    })
}

#[test]
fn events_from_segment_clients_come_back_with_the_same_id_name_context_and_data() {
    // A collector takes a client's batch ...
    let (first, first_sink) = receiver("segment-sink-first");
    let body = client_batch().to_string();
    let basic = format!("Basic {}", base64_key());
    let (status, answer) = support::http(
        first.addr,
        "POST",
        "/v1/batch",
        &[
            ("content-type", "application/json"),
            ("authorization", &basic),
        ],
        body.as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    support::wait_for(&first_sink, 7);
    let ingested = first_sink.events();

    // ... and the sink forwards its events to another one.
    let (second, second_sink) = receiver("segment-sink-second");
    let dead = RecordingBackend::new();
    let backend = backend(sink(&second), 100, &dead);
    forward(&backend, &ingested);
    support::wait_for(&second_sink, 7);

    let sent = by_id(ingested);
    let arrived = by_id(second_sink.events());
    assert_eq!(arrived.len(), 7, "one event per message, none twice");
    assert_eq!(
        arrived.keys().collect::<Vec<_>>(),
        sent.keys().collect::<Vec<_>>()
    );
    for (id, before) in &sent {
        let after = &arrived[id];
        assert_eq!(after.name(), before.name(), "{id}");
        assert_eq!(after.context(), before.context(), "{id}");
        assert_eq!(data_but_clock(after), data_but_clock(before), "{id}");
        let drift = after.timestamp().unix_micros() - before.timestamp().unix_micros();
        assert!(
            (-1_000..5_000_000).contains(&drift),
            "{id}: moved by {drift} µs"
        );
    }
    let names: Vec<&str> = sent.values().map(|e| e.name().as_str()).collect();
    for name in [
        "Order Completed",
        "Signed Up",
        "segment.page",
        "segment.alias",
    ] {
        assert!(names.contains(&name), "{names:?}");
    }
    assert_eq!(dead.events().len(), 0);
    backend.shutdown(PATIENCE).unwrap();
}

fn base64_key() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:"))
}

#[test]
fn plain_events_arrive_as_tracks_with_the_same_id_name_and_context() {
    let (served, memory) = receiver("segment-sink-plain");
    let context = |value: Value| value.as_object().unwrap().clone();
    let events = vec![
        Event::new(EventName::new("page.view").unwrap(), json!({"url": "/"}))
            .with_context(context(json!({"user_id": "u7", "app": "web"}))),
        Event::new(
            EventName::new("button.click").unwrap(),
            json!({"id": "buy"}),
        )
        .with_context(context(json!({"app": "web"}))),
        Event::new(EventName::new("search").unwrap(), json!(["a", "b"])),
    ];
    let dead = RecordingBackend::new();
    let backend = backend(sink(&served), 100, &dead);
    forward(&backend, &events);
    support::wait_for(&memory, 3);

    let arrived = by_id(memory.events());
    let expected = [
        json!({"type": "track", "properties": {"url": "/"}, "userId": "u7"}),
        json!({"type": "track", "properties": {"id": "buy"}, "anonymousId": events[1].id().to_string()}),
        json!({"type": "track", "properties": {"data": ["a", "b"]}, "anonymousId": events[2].id().to_string()}),
    ];
    for (event, data) in events.iter().zip(expected) {
        let after = &arrived[&event.id().to_string()];
        assert_eq!(after.name(), event.name());
        assert_eq!(after.context(), event.context());
        assert_eq!(data_but_clock(after), data);
    }
    backend.shutdown(PATIENCE).unwrap();
}

#[test]
fn the_write_key_is_required_and_a_wrong_one_gives_the_batch_up() {
    let (served, memory) = receiver("segment-sink-key");
    let event = |n: u64| Event::new(EventName::new("keyed").unwrap(), json!({"n": n}));
    for (sink, n) in [
        (
            SegmentSink::builder()
                .url(batch_url(&served))
                .build()
                .unwrap(),
            0,
        ),
        (
            SegmentSink::builder()
                .url(batch_url(&served))
                .write_key("wrong")
                .build()
                .unwrap(),
            1,
        ),
    ] {
        let dead = RecordingBackend::new();
        let backend = backend(sink, 100, &dead);
        forward(&backend, &[event(n)]);
        let metrics = backend.metrics();
        assert_eq!(
            (metrics.delivered, metrics.retried, dead.events().len()),
            (0, 0, 1),
            "a 401 is given up at once"
        );
        let dead_events = dead.events();
        let mark = &dead_events[0].context()["dead_letter"];
        assert_eq!(mark["reason"], "non_retryable");
        assert_eq!(
            mark["error"], "fatal sink error: server answered HTTP 401",
            "{mark}"
        );
        backend.shutdown(PATIENCE).unwrap();
    }
    let dead = RecordingBackend::new();
    let backend = backend(sink(&served), 100, &dead);
    let good = event(2);
    forward(&backend, std::slice::from_ref(&good));
    support::wait_for(&memory, 1);
    let ids: Vec<_> = memory.events().iter().map(Event::id).collect();
    assert_eq!(ids, [good.id()], "only the batch with the key arrived");
    backend.shutdown(PATIENCE).unwrap();
}

#[test]
fn a_full_collector_answers_503_and_the_batch_is_retried_until_taken() {
    // The collector's only sink fails 25 times (100 ms apart) before it
    // takes anything: meanwhile its queues fill and it answers 503. (Its
    // intake holds 5 events: a request of more than that would be refused
    // whole for ever.)
    let id = "segment-sink-503";
    install_memory_sink(
        id,
        RecordingSink::scripted((0..25).map(|_| Answer::Status(503, None))),
    );
    let text = format!(
        "[collector]\nqueue_capacity = 5\nwrite_keys = [\"{KEY}\"]\n\
         [backends.slow]\ntype = \"memory\"\nid = \"{id}\"\nqueue_capacity = 1\nmax_events = 1\n\
         flush_interval_ms = 10\nretry = {{ initial_backoff_ms = 100, max_backoff_ms = 100 }}\n"
    );
    let config = load(&text, &registry()).unwrap();
    let served = Served::start(Collector::from_config(&config).unwrap());
    let memory = tidings_test::memory_sink(id);
    let mut fillers = 0;
    let full = (0..50).any(|n| {
        let body = format!(r#"{{"name": "filler", "data": {{"n": {n}}}}}"#);
        let (status, _) = support::http(
            served.addr,
            "POST",
            "/events",
            &[("content-type", "application/json"), ("x-write-key", KEY)],
            body.as_bytes(),
        );
        fillers += usize::from(status == 202);
        status == 503
    });
    assert!(full, "the collector never filled up");

    let dead = RecordingBackend::new();
    let backend = backend(sink(&served), 100, &dead);
    let events: Vec<Event> = (0..3)
        .map(|n| Event::new(EventName::new("patient").unwrap(), json!({"n": n})))
        .collect();
    forward(&backend, &events);
    let metrics = backend.metrics();
    assert!(
        metrics.retried >= 3,
        "the first attempt was refused: {metrics:?}"
    );
    assert_eq!((metrics.delivered, dead.events().len()), (3, 0));
    support::wait_for(&memory, fillers + 3);
    let patient: Vec<_> = memory
        .events()
        .into_iter()
        .filter(|e| e.name().as_str() == "patient")
        .map(|e| e.id())
        .collect();
    assert_eq!(
        patient,
        events.iter().map(Event::id).collect::<Vec<_>>(),
        "each once, in order"
    );
    backend.shutdown(PATIENCE).unwrap();
}

/// A plain event whose message is exactly `bytes` long.
fn sized(sink: &SegmentSink, name: &str, bytes: usize) -> Event {
    let mut event = Event::new(EventName::new(name.to_owned()).unwrap(), json!({"pad": ""}));
    let short = sink.message(&event).len();
    *event.data_mut() = json!({"pad": "x".repeat(bytes - short)});
    assert_eq!(sink.message(&event).len(), bytes);
    event
}

#[test]
fn a_message_over_32_kib_is_dead_lettered_while_its_neighbours_arrive() {
    let (served, memory) = receiver("segment-sink-big");
    let probe = sink(&served);
    let mut events: Vec<Event> = (0..7)
        .map(|n| Event::new(EventName::new("neighbour").unwrap(), json!({"n": n})))
        .collect();
    // The largest message Segment takes is taken by the ingest too.
    events.insert(2, sized(&probe, "just.fits", MAX_MESSAGE_BYTES));
    events.insert(5, sized(&probe, "too.big", MAX_MESSAGE_BYTES + 1));
    let dead = RecordingBackend::new();
    let backend = backend(probe, 100, &dead);
    forward(&backend, &events);
    support::wait_for(&memory, 8);

    let arrived = by_id(memory.events());
    let mut expected: Vec<String> = events
        .iter()
        .filter(|e| e.name().as_str() != "too.big")
        .map(|e| e.id().to_string())
        .collect();
    expected.sort();
    assert_eq!(arrived.keys().cloned().collect::<Vec<_>>(), expected);
    assert_eq!(dead.names(), ["too.big"]);
    let dead_events = dead.events();
    let mark = &dead_events[0].context()["dead_letter"];
    assert_eq!(mark["reason"], "too_large");
    let metrics = backend.metrics();
    assert_eq!(
        (
            metrics.delivered,
            metrics.dead_lettered(DropReason::TooLarge)
        ),
        (8, 1)
    );
    backend.shutdown(PATIENCE).unwrap();
}

#[test]
fn a_message_the_ingest_refuses_is_dead_lettered_as_invalid_alone() {
    let (served, memory) = receiver("segment-sink-invalid");
    let mut events: Vec<Event> = (0..7)
        .map(|n| Event::new(EventName::new("neighbour").unwrap(), json!({"n": n})))
        .collect();
    // An alias without `previousId`: the ingest refuses the whole request.
    events.insert(
        3,
        Event::new(
            EventName::new("segment.alias").unwrap(),
            json!({"type": "alias", "userId": "u1"}),
        ),
    );
    let dead = RecordingBackend::new();
    let backend = backend(sink(&served), 100, &dead);
    forward(&backend, &events);
    support::wait_for(&memory, 7);

    assert_eq!(dead.names(), ["segment.alias"]);
    let dead_events = dead.events();
    assert_eq!(dead_events[0].context()["dead_letter"]["reason"], "invalid");
    let names: Vec<String> = memory
        .events()
        .iter()
        .map(|e| e.name().to_string())
        .collect();
    assert_eq!(names, ["neighbour"; 7]);
    assert_eq!(backend.metrics().dead_lettered(DropReason::Invalid), 1);
    backend.shutdown(PATIENCE).unwrap();
}

#[test]
fn a_config_forwards_through_type_segment() {
    let (second, second_sink) = receiver("segment-sink-config-second");
    let text = format!(
        "[backends.forward]\ntype = \"segment\"\nurl = \"{}\"\nwrite_key = \"{KEY}\"\ngzip = true\n\
         user_id_context_key = \"account\"\nflush_interval_ms = 10\n",
        batch_url(&second)
    );
    let config = load(&text, &registry()).unwrap();
    let shown = config.to_string();
    assert!(
        shown.contains(&format!(
            "forward: segment url=http://{}/… write_key=*** gzip=true user_id_context_key=\"account\"",
            second.addr
        )),
        "{shown}"
    );
    assert!(!shown.contains(KEY) && !format!("{config:?}").contains(KEY));
    let first = Served::start(Collector::from_config(&config).unwrap());
    let (status, answer) = support::http(
        first.addr,
        "POST",
        "/events",
        &[("content-type", "application/json")],
        br#"{"name": "page.view", "context": {"account": "acc-1"}, "data": {"url": "/"}}"#,
    );
    assert_eq!(status, 202, "{answer}");
    support::wait_for(&second_sink, 1);
    let arrived = &second_sink.events()[0];
    assert_eq!(arrived.name().as_str(), "page.view");
    assert_eq!(
        data_but_clock(arrived),
        json!({"type": "track", "properties": {"url": "/"}, "userId": "acc-1"})
    );
    first.shutdown(PATIENCE).unwrap();
}
