//! What a failing sink logs: the first failure of a streak as a warning
//! (so a dead database or a full disk shows with the default `info`
//! filter), the rest at debug level, and its recovery once. Its own test
//! binary: the worker threads log through the global subscriber.

use std::time::Duration;

use serde_json::json;
use tidings_event::{Event, EventName};
use tidings_routing::{Backend, BatchConfig, RetryPolicy, SinkBackend};
use tidings_test::{Answer, RecordingSink, SharedBuffer};

#[test]
fn a_failure_streak_warns_once_then_reports_the_recovery() {
    let buffer = SharedBuffer::default();
    tracing::subscriber::set_global_default(buffer.subscriber(tracing::Level::INFO)).unwrap();
    let sink = RecordingSink::scripted([
        Answer::Status(503, None),
        Answer::Status(503, None),
        Answer::Status(503, None),
    ]);
    let backend = SinkBackend::builder("flaky", sink.clone())
        .batch(BatchConfig::default().with_flush_interval(Duration::from_millis(1)))
        .retry(
            RetryPolicy::default()
                .with_initial_backoff(Duration::from_millis(1))
                .with_max_backoff(Duration::from_millis(2)),
        )
        .build()
        .unwrap();
    backend
        .send(Event::new(EventName::new("flaky.one").unwrap(), json!({})))
        .unwrap();
    backend.flush(Duration::from_secs(10)).unwrap();
    backend.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(sink.events().len(), 1);
    assert_eq!(sink.calls().len(), 4, "delivered on the fourth attempt");
    let text = buffer.text();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(
        warnings[0].contains("batch failed") && warnings[0].contains("backend=flaky"),
        "{text}"
    );
    assert!(warnings[0].contains("503"), "the cause is named: {text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("sink recovered"))
            .count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("batch delivered after 3 failed attempts"),
        "the recovery counts the streak: {text}"
    );

    // Drops: the first one warns, the next ones are counted silently (a
    // summary comes every 30 s while they go on).
    let full = SinkBackend::builder("full", RecordingSink::scripted([Answer::Hang]))
        .queue_capacity(1)
        .batch(BatchConfig::default().with_max_events(1))
        .build()
        .unwrap();
    let refused = (0..5)
        .filter(|n| {
            full.send(Event::new(
                EventName::new("full.one").unwrap(),
                json!({"n": n}),
            ))
            .is_err()
        })
        .count();
    assert!(refused >= 2, "{refused}");
    let text = buffer.text();
    let drops: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("dropping events") && l.contains("backend=\"full\""))
        .collect();
    assert_eq!(drops.len(), 1, "{text}");
    assert!(
        drops[0].contains("WARN") && drops[0].contains("queue_full"),
        "{text}"
    );
    drop(full);
}
