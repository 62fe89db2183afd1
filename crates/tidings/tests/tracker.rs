//! Tracker::emit: stamping, context capture, data conversion, errors.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::json;
use tidings::prelude::*;
use tidings::{EmitError, RegexFilter, Timestamp};
use tidings_test::RecordingBackend;

fn tracker() -> (Tracker, RecordingBackend) {
    let recorder = RecordingBackend::new();
    let tracker = Tracker::builder()
        .backend("memory", recorder.clone())
        .build()
        .unwrap();
    (tracker, recorder)
}

#[test]
fn emit_stamps_id_and_timestamp_and_returns_the_id() {
    let (tracker, recorder) = tracker();
    let before = Timestamp::now();
    let id = tracker.emit("a.b", json!({"k": 1})).unwrap().unwrap();
    let event = &recorder.events()[0];
    assert_eq!(event.id(), id);
    assert_eq!(id.as_uuid().get_version_num(), 7);
    assert!(event.timestamp() >= before && event.timestamp() <= Timestamp::now());
}

#[test]
fn typed_data_is_serialized_and_null_becomes_an_empty_object() {
    #[derive(Serialize)]
    struct Enrolled<'a> {
        course_id: &'a str,
        mode: &'a str,
    }
    let (tracker, recorder) = tracker();
    tracker
        .emit(
            "edx.course.enrollment.activated",
            Enrolled {
                course_id: "c1",
                mode: "audit",
            },
        )
        .unwrap();
    tracker.emit("no.data", ()).unwrap();
    let events = recorder.events();
    assert_eq!(
        events[0].data(),
        &json!({"course_id": "c1", "mode": "audit"})
    );
    assert_eq!(events[1].data(), &json!({}));
}

#[test]
fn invalid_names_and_data_are_typed_errors_and_nothing_is_sent() {
    let (tracker, recorder) = tracker();
    let err = tracker.emit("", json!({})).unwrap_err();
    assert!(matches!(err, EmitError::InvalidName(_)), "{err}");
    assert_eq!(err.to_string(), "event name is empty");

    let bad: HashMap<(u8, u8), u8> = HashMap::from([((1, 2), 3)]);
    let err = tracker.emit("bad.data", bad).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("data of event \"bad.data\" is not representable as JSON"),
        "{err}"
    );
    assert!(recorder.is_empty());
}

#[test]
fn context_is_captured_at_the_call_not_later() {
    let (tracker, recorder) = tracker();
    {
        let _g = tidings::enter_context("req", json!({"request_id": "r1"}));
        tracker.emit("a", json!({})).unwrap();
    }
    tracker.emit("b", json!({})).unwrap();
    let events = recorder.events();
    assert_eq!(events[0].context()["request_id"], "r1");
    assert!(events[1].context().is_empty());
}

#[test]
fn filtered_events_still_return_an_id_and_are_counted() {
    let recorder = RecordingBackend::new();
    let tracker = Tracker::builder()
        .processor(RegexFilter::allowlist([r"keep\."]).unwrap())
        .backend("memory", recorder.clone())
        .build()
        .unwrap();
    tracker.emit("drop.this", json!({})).unwrap();
    tracker.emit("keep.this", json!({})).unwrap();
    assert_eq!(recorder.names(), ["keep.this"]);
    let stats = tracker.stats();
    assert_eq!((stats.received, stats.filtered), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_emitted_in_a_spawned_task_carry_the_spawners_context() {
    let (tracker, recorder) = tracker();
    let task = {
        let _g = tidings::enter_context("request", json!({"request_id": "r-9"}));
        let tracker = tracker.clone();
        tokio::spawn(
            async move {
                tokio::task::yield_now().await;
                tracker.emit("task.done", json!({})).unwrap();
            }
            .with_current_context(),
        )
    };
    task.await.unwrap();
    assert_eq!(recorder.events()[0].context()["request_id"], "r-9");
}

#[test]
fn tracker_is_send_sync_and_clones_share_the_tree() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Tracker>();
    let (tracker, recorder) = tracker();
    let clone = tracker.clone();
    std::thread::spawn(move || clone.emit("from.thread", json!({})).unwrap())
        .join()
        .unwrap();
    assert_eq!(recorder.names(), ["from.thread"]);
}

#[test]
fn a_sink_is_taken_directly_and_named_once() {
    let sink = tidings_test::RecordingSink::new();
    let tracker = Tracker::builder()
        .backend("audit", sink.clone())
        .backend("memory", RecordingBackend::new())
        .build()
        .unwrap();
    tracker.emit("app.started", ()).unwrap();
    tracker.shutdown(std::time::Duration::from_secs(5)).unwrap();
    assert_eq!(sink.events().len(), 1);
    // It got a delivery stage of its own, under the same name.
    let mut stages = Vec::new();
    tracker
        .root()
        .for_each_stage(&mut |stage| stages.push(stage.name));
    assert_eq!(stages, ["audit"]);
}

#[test]
fn contexts_take_any_serializable_value() {
    #[derive(Serialize)]
    struct Course<'a> {
        course_id: &'a str,
    }
    let recorder = RecordingBackend::new();
    let tracker = Tracker::builder()
        .backend("memory", recorder.clone())
        .build()
        .unwrap();
    let _org = tidings::enter_context("org_id", 42);
    let _course = tidings::enter_context("course", Course { course_id: "c-1" });
    tracker.emit("app.started", ()).unwrap();
    assert_eq!(
        serde_json::Value::Object(recorder.events()[0].context().clone()),
        json!({"org_id": 42, "course_id": "c-1"})
    );
}

#[test]
fn a_name_the_root_filters_drop_is_refused_before_the_event_is_built() {
    let recorder = RecordingBackend::new();
    let tracker = Tracker::builder()
        .processor(RegexFilter::blocklist([r"debug\."]).unwrap())
        .backend("memory", recorder.clone())
        .build()
        .unwrap();
    let other = Tracker::builder()
        .backend("memory", recorder.clone())
        .build()
        .unwrap();
    for _ in 0..3 {
        // Data that cannot be serialized: refused by name, it is never looked at.
        let unserializable = HashMap::from([((1, 2), "x")]);
        assert!(
            tracker
                .emit("debug.tick", &unserializable)
                .unwrap()
                .is_none()
        );
        // Another tree decides for itself, from the same thread.
        assert!(other.emit("debug.tick", json!({})).unwrap().is_some());
        assert!(tracker.emit("app.tick", json!({})).unwrap().is_some());
    }
    let stats = tracker.stats();
    assert_eq!((stats.received, stats.filtered), (6, 3));
    assert_eq!(
        recorder
            .names()
            .iter()
            .filter(|n| *n == "debug.tick")
            .count(),
        3
    );
    // An invalid name is an error, refused or not.
    assert!(tracker.emit("debug.\u{7}bell", json!({})).is_err());
    // Names made at run time take the full path, with the same verdict.
    let name = String::from("debug.") + "tock";
    assert!(tracker.emit(name, json!({})).unwrap().is_some());
    assert_eq!(tracker.stats().filtered, 4);
}

#[test]
fn undelivered_counts_dropped_dead_lettered_and_pending_per_stage() {
    use std::sync::Arc;
    use std::time::Duration;
    use tidings::{RetryPolicy, SinkBackend};
    use tidings_test::{Answer, RecordingSink};

    let kept = RecordingBackend::new();
    let refusing = RecordingSink::scripted(std::iter::repeat_n(Answer::Status(400, None), 100));
    let dropping = RecordingSink::scripted(std::iter::repeat_n(Answer::Status(400, None), 100));
    let hanging = RecordingSink::scripted([Answer::Hang]);
    let tracker = Tracker::builder()
        .backend(
            "dead",
            SinkBackend::builder("dead", refusing)
                .dead_letter(Arc::new(kept.clone()))
                .build()
                .unwrap(),
        )
        .backend(
            "drop",
            SinkBackend::builder("drop", dropping)
                .retry(RetryPolicy::none())
                .build()
                .unwrap(),
        )
        .backend(
            "hang",
            SinkBackend::builder("hang", hanging).build().unwrap(),
        )
        .build()
        .unwrap();
    tracker.emit("a.b", json!({})).unwrap();
    tracker.emit("a.b", json!({})).unwrap();
    // The hanging sink never finishes its batch: flush says so.
    assert!(tracker.flush(Duration::from_millis(300)).is_err());
    let undelivered = tracker.undelivered();
    assert_eq!(
        (
            undelivered.dropped,
            undelivered.dead_lettered,
            undelivered.pending
        ),
        (2, 2, 2),
        "{undelivered}"
    );
    assert_eq!(undelivered.lost(), 4);
    assert_eq!(kept.len(), 2);
    assert_eq!(
        undelivered.by_stage,
        [("drop".to_owned(), 2), ("hang".to_owned(), 2)]
    );
    assert_eq!(
        undelivered.to_string(),
        "4 events not delivered (dropped 2, still queued or in flight 2; 2 more kept as dead letters; drop: 2, hang: 2)"
    );
    let mut one = tidings::Undelivered::default();
    one.pending = 1;
    assert_eq!(
        one.to_string(),
        "1 event not delivered (dropped 0, still queued or in flight 1)"
    );
}
