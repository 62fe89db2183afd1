//! Trackers registered by name (edX's `register_tracker` / `get_tracker`).
//!
//! Its own test binary: the registry is process-wide.

use serde_json::json;
use tidings::Tracker;
use tidings_test::RecordingBackend;

fn tracker(recorder: &RecordingBackend) -> Tracker {
    Tracker::builder()
        .backend("memory", recorder.clone())
        .build()
        .unwrap()
}

#[test]
fn a_tracker_registered_by_name_is_found_replaced_and_removed() {
    let (first, second) = (RecordingBackend::new(), RecordingBackend::new());
    assert!(tidings::tracker("audit").is_none());
    assert!(tidings::register_tracker("audit", tracker(&first)).is_none());
    assert!(tidings::register_tracker("web", tracker(&second)).is_none());
    assert_eq!(tidings::tracker_names(), ["audit", "web"]);

    let found = tidings::tracker("audit").expect("registered");
    found.emit("audit.login", json!({"user_id": 7})).unwrap();
    assert_eq!(first.names(), ["audit.login"]);
    assert!(second.is_empty());

    // Registering again replaces, and hands back the tracker replaced.
    let replaced = tidings::register_tracker("audit", tracker(&second)).expect("the first");
    replaced.emit("still.works", json!({})).unwrap();
    assert_eq!(first.names(), ["audit.login", "still.works"]);
    tidings::tracker("audit")
        .unwrap()
        .emit("audit.logout", json!({}))
        .unwrap();
    assert_eq!(second.names(), ["audit.logout"]);

    assert!(tidings::unregister_tracker("audit").is_some());
    assert!(tidings::unregister_tracker("audit").is_none());
    assert!(tidings::tracker("audit").is_none());
    assert_eq!(tidings::tracker_names(), ["web"]);
}
