//! The NATS sink against the real JetStream server: delivery read back by
//! id, deduplication of retried batches, subjects, stream creation, the
//! duplicate-window warning, errors, and an outage through a TCP proxy.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Admin, event, names, require_nats};
use tidings_event::{Event, EventId};
use tidings_routing::{Backend, BatchConfig, Sink, SinkBackend};
use tidings_sink_nats::{NatsError, NatsSink, NatsSinkBuilder};

/// A sink creating the test's own stream on `prefix.>`.
fn builder(stream: &str, prefix: &str) -> NatsSinkBuilder {
    NatsSink::builder()
        .url(format!("nats://{}", common::NATS))
        .subject(format!("{prefix}.{{name}}"))
        .stream(stream)
        .create_stream(true)
}

fn ids(events: &[Event]) -> HashSet<String> {
    events.iter().map(|e| e.id().to_string()).collect()
}

#[test]
fn every_event_is_delivered_once_with_its_id_in_header_and_body() {
    require_nats();
    let (stream, prefix) = names("delivered");
    let admin = Admin::connect();
    let _guard = admin.cleanup(&stream);
    let sink = builder(&stream, &prefix).max_in_flight(16).build().unwrap();
    let backend = SinkBackend::builder("nats", sink)
        .batch(BatchConfig::default().with_max_events(50))
        .build()
        .unwrap();
    let sent: Vec<Event> = (0..300)
        .map(|n| event(["page.view", "click"][n % 2], n))
        .collect();
    for e in &sent {
        backend.send(e.clone()).unwrap();
    }
    backend.flush(Duration::from_secs(10)).unwrap();

    let stored = admin.read_all(&stream);
    assert_eq!(stored.len(), 300);
    let by_id: HashMap<&str, &common::Stored> =
        stored.iter().map(|s| (s.msg_id.as_str(), s)).collect();
    assert_eq!(by_id.len(), 300, "every Nats-Msg-Id once");
    for e in &sent {
        let s = by_id[e.id().to_string().as_str()];
        assert_eq!(s.body["id"], e.id().to_string(), "body id = header id");
        assert_eq!(s.body["name"], e.name().as_str());
        assert_eq!(&s.body["data"], e.data());
        assert_eq!(s.content_type, "application/json");
        assert_eq!(s.subject, format!("{prefix}.{}", e.name()));
    }
    let metrics = backend.metrics();
    assert_eq!((metrics.delivered, metrics.dropped_total()), (300, 0));
    backend.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn passes_the_sink_compliance_checks() {
    require_nats();
    let (stream, prefix) = names("compliance");
    let admin = Admin::connect();
    let _guard = admin.cleanup(&stream);
    let sink = builder(&stream, &prefix).build().unwrap();
    let report = tidings_test::assert_sink_compliance(Arc::new(sink), || {
        admin
            .read_all(&stream)
            .iter()
            .map(|s| s.msg_id.parse::<EventId>().unwrap())
            .collect()
    });
    assert_eq!(report.events, 1000);
}

#[test]
fn a_retried_batch_leaves_no_duplicates() {
    require_nats();
    let (stream, prefix) = names("retried");
    let admin = Admin::connect();
    let _guard = admin.cleanup(&stream);
    let sink = builder(&stream, &prefix).max_in_flight(8).build().unwrap();
    let batch: Vec<Event> = (0..40).map(|n| event("retry.me", n)).collect();

    // The same batch twice, as the engine retries after a lost ack: the
    // second attempt is acknowledged as duplicates, and counts as delivered.
    admin.block_on(sink.send_batch(&batch)).unwrap();
    admin.block_on(sink.send_batch(&batch)).unwrap();
    assert_eq!(admin.count(&stream), 40);

    // A retry mixing stored and new events stores only the new ones.
    let mut mixed = batch[20..].to_vec();
    mixed.extend((40..50).map(|n| event("retry.me", n)));
    admin.block_on(sink.send_batch(&mixed)).unwrap();
    let counts = admin.id_counts(&stream);
    assert_eq!(counts.len(), 50);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    let mut all = ids(&batch);
    all.extend(ids(&mixed));
    assert_eq!(counts.keys().cloned().collect::<HashSet<_>>(), all);
    admin.block_on(sink.shutdown()).unwrap();
}

#[test]
fn subjects_follow_the_template_with_names_sanitised() {
    require_nats();
    let (stream, prefix) = names("subjects");
    let admin = Admin::connect();
    let _guard = admin.cleanup(&stream);
    let sink = builder(&stream, &prefix)
        .subject(format!("{prefix}.app.{{name}}.v1"))
        .build()
        .unwrap();
    let cases = [
        ("nav.request", "nav.request"),
        ("page view", "page_view"),
        ("a*b", "a_b"),
        ("x>y", "x_y"),
        ("*", "_"),
        (".lead..trail.", "_.lead._.trail._"),
        ("two  spaces", "two__spaces"),
    ];
    let batch: Vec<Event> = cases.iter().map(|(name, _)| event(name, 0)).collect();
    admin.block_on(sink.send_batch(&batch)).unwrap();
    let subjects: HashMap<String, String> = admin
        .read_all(&stream)
        .into_iter()
        .map(|s| (s.msg_id, s.subject))
        .collect();
    for (e, (name, expected)) in batch.iter().zip(cases) {
        assert_eq!(
            subjects[&e.id().to_string()],
            format!("{prefix}.app.{expected}.v1"),
            "{name:?}"
        );
    }
    admin.block_on(sink.shutdown()).unwrap();
}

#[test]
fn create_stream_sets_the_duplicate_window_and_reuses_an_existing_stream() {
    require_nats();
    let (stream, prefix) = names("create");
    let admin = Admin::connect();
    let _guard = admin.cleanup(&stream);
    let sink = builder(&stream, &prefix)
        .duplicate_window_seconds(30)
        .retry_horizon(Duration::from_secs(30))
        .build()
        .unwrap();
    let info = admin.info(&stream);
    assert_eq!(info.config.duplicate_window, Duration::from_secs(30));
    assert_eq!(info.config.subjects, vec![format!("{prefix}.>")]);
    assert_eq!(sink.stream(), stream);
    assert_eq!(sink.duplicate_window(), Duration::from_secs(30));

    // An existing stream is used as it is, with its own window.
    let again = builder(&stream, &prefix)
        .duplicate_window_seconds(90)
        .build()
        .unwrap();
    assert_eq!(again.duplicate_window(), Duration::from_secs(30));
    // Without `stream`, the stream capturing the template is looked up.
    let found = NatsSink::builder()
        .url(format!("nats://{}", common::NATS))
        .subject(format!("{prefix}.{{name}}"))
        .build()
        .unwrap();
    assert_eq!(found.stream(), stream);
    admin
        .block_on(found.send_batch(&[event("found", 1)]))
        .unwrap();
    assert_eq!(admin.count(&stream), 1);
    for sink in [sink, again, found] {
        admin.block_on(sink.shutdown()).unwrap();
    }
}

/// Runs `f` with a subscriber on this thread, returning what it logged.
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    let buffer = tidings_test::SharedBuffer::default();
    let subscriber = buffer.subscriber(tracing::Level::WARN);
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = buffer.text();
    (out, text)
}

#[test]
fn warns_when_the_duplicate_window_is_shorter_than_the_retry_horizon() {
    require_nats();
    let (stream, prefix) = names("warning");
    let admin = Admin::connect();
    let _guard = admin.cleanup(&stream);
    let (sink, text) = logged(|| {
        builder(&stream, &prefix)
            .duplicate_window_seconds(10)
            .retry_horizon(Duration::from_secs(60))
            .build()
            .unwrap()
    });
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("duplicate window (10s)"), "{text}");
    assert!(text.contains("retry horizon (60s)"), "{text}");
    assert!(text.contains(&stream), "{text}");
    admin.block_on(sink.shutdown()).unwrap();

    let (sink, text) = logged(|| {
        builder(&stream, &prefix)
            .retry_horizon(Duration::from_secs(10))
            .build()
            .unwrap()
    });
    assert!(!text.contains("duplicate window"), "{text}");
    admin.block_on(sink.shutdown()).unwrap();
}

#[test]
fn build_fails_fast_with_clear_errors_and_no_credentials() {
    require_nats();
    let started = Instant::now();
    let error = NatsSink::builder()
        .url("nats://user:hunter2@127.0.0.1:1")
        .ack_timeout_ms(1000)
        .build()
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, NatsError::Connect { .. }), "{error:?}");
    assert!(text.contains("nats://***@127.0.0.1:1"), "{text}");
    assert!(!text.contains("hunter2") && !format!("{error:?}").contains("hunter2"));
    assert!(started.elapsed() < Duration::from_secs(3));

    let (stream, prefix) = names("missing");
    let error = NatsSink::builder()
        .url(format!("nats://{}", common::NATS))
        .subject(format!("{prefix}.{{name}}"))
        .stream(&stream)
        .build()
        .unwrap_err();
    assert!(matches!(error, NatsError::Stream { .. }), "{error:?}");
    assert!(error.to_string().contains(&stream), "{error}");

    let error = NatsSink::builder()
        .url(format!("nats://{}", common::NATS))
        .subject(format!("{prefix}.{{name}}"))
        .build()
        .unwrap_err();
    assert!(matches!(error, NatsError::NoStream { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&format!("{prefix}.sample")),
        "{error}"
    );
}

#[test]
fn an_outage_loses_and_duplicates_nothing_and_delivery_resumes_by_itself() {
    require_nats();
    let (stream, prefix) = names("outage");
    let admin = Admin::connect();
    let _guard = admin.cleanup(&stream);
    let proxy = tidings_test::CuttableProxy::start(common::NATS);
    let sink = builder(&stream, &prefix)
        .url(format!("nats://{}", proxy.addr()))
        .ack_timeout_ms(400)
        .build()
        .unwrap();
    let mut outage = tidings_test::Outage::default();
    // A publish cut off waits for its ack (400 ms) before it is retried.
    outage.resume_within = Duration::from_millis(2_500);
    let report = outage.check(&proxy, Arc::new(sink), || {
        admin
            .read_all(&stream)
            .iter()
            .map(|s| s.msg_id.parse::<EventId>().unwrap())
            .collect()
    });
    eprintln!("{report:?}");
}
