//! `tidings::emit` with no tracker, and per-thread scoped defaults.
//! (The process-wide default is tested alone in `global_default.rs`, since it
//! can be installed only once per process.)

use serde_json::json;
use tidings::Tracker;
use tidings_test::RecordingBackend;

#[test]
fn with_no_tracker_emit_is_a_no_op_that_does_not_even_validate() {
    assert_eq!(
        tidings::emit("navigation.request", json!({})).unwrap(),
        None
    );
    // An invalid name is not looked at when nothing would receive it.
    assert_eq!(tidings::emit("", json!({})).unwrap(), None);
}

#[test]
fn a_scoped_default_applies_to_its_thread_only_and_is_restored() {
    let outer = RecordingBackend::new();
    let inner = RecordingBackend::new();
    let outer_tracker = Tracker::builder()
        .backend("m", outer.clone())
        .build()
        .unwrap();
    let inner_tracker = Tracker::builder()
        .backend("m", inner.clone())
        .build()
        .unwrap();

    let _outer = tidings::set_default(&outer_tracker);
    let id = tidings::emit("one", json!({})).unwrap();
    assert!(id.is_some());
    {
        let _inner = tidings::set_default(&inner_tracker);
        tidings::emit("two", json!({})).unwrap();
        std::thread::spawn(|| assert_eq!(tidings::emit("elsewhere", json!({})).unwrap(), None))
            .join()
            .unwrap();
    }
    tidings::emit("three", json!({})).unwrap();
    assert_eq!(outer.names(), ["one", "three"]);
    assert_eq!(inner.names(), ["two"]);
    assert!(
        tidings::emit("", json!({})).is_err(),
        "with a tracker, names are validated"
    );
}
