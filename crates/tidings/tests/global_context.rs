//! A context entered once for the whole process is on every event, from
//! every thread and task (edX's default tracker), beneath the emitting
//! thread's own contexts.
//!
//! Its own test binary: the context is process-wide.

use std::time::Duration;

use serde_json::json;
use tidings::{Tracker, WithContextExt};
use tidings_test::RecordingBackend;

#[test]
fn a_context_entered_at_start_up_is_on_events_from_every_thread_and_task() {
    let recorder = RecordingBackend::new();
    let tracker = Tracker::builder()
        .backend("memory", recorder.clone())
        .build()
        .unwrap();
    tidings::enter_global_context("app", json!({"service": "lms", "release": "2026.12"})).keep();

    let from_thread = tracker.clone();
    std::thread::spawn(move || {
        let _user = tidings::enter_context("user", json!({"user_id": 7, "release": "canary"}));
        from_thread.emit("thread.event", json!({})).unwrap();
    })
    .join()
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let from_task = tracker.clone();
    runtime
        .block_on(runtime.spawn(
            async move { from_task.emit("task.event", json!({})).unwrap() }.with_current_context(),
        ))
        .unwrap();
    assert!(tidings::exit_global_context("app"));
    tracker.emit("after.exit", json!({})).unwrap();
    tracker.shutdown(Duration::from_secs(5)).unwrap();

    let contexts: Vec<_> = recorder
        .events()
        .iter()
        .map(|e| {
            (
                e.name().to_string(),
                serde_json::Value::Object(e.context().clone()),
            )
        })
        .collect();
    assert_eq!(
        contexts,
        [
            (
                "thread.event".to_owned(),
                json!({"service": "lms", "release": "canary", "user_id": 7})
            ),
            (
                "task.event".to_owned(),
                json!({"service": "lms", "release": "2026.12"})
            ),
            ("after.exit".to_owned(), json!({})),
        ]
    );
}
