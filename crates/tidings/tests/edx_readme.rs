//! The edX `event-tracking` README example produces exactly its events.

use serde_json::{Value, json};
use tidings::Tracker;
use tidings_test::RecordingBackend;

#[test]
fn the_edx_readme_example_produces_the_three_documented_events() {
    let recorder = RecordingBackend::new();
    let tracker = Tracker::builder()
        .backend("memory", recorder.clone())
        .build()
        .unwrap();

    let _outer = tidings::enter_context("outer", json!({"user_id": 10938}));
    tracker
        .emit(
            "navigation.request",
            json!({"url": "http://www.edx.org/some/path/1"}),
        )
        .unwrap();

    tidings::in_context(
        "inner",
        json!({"user_id": 11111, "session_id": "2987lkjdyoioey"}),
        || {
            tracker
                .emit(
                    "navigation.request",
                    json!({"url": "http://www.edx.org/some/path/2"}),
                )
                .unwrap();
        },
    );

    tracker
        .emit(
            "address.create",
            json!({
                "name": "myaddress",
                "address": {"street": "123 Main St", "city": "Anytown", "state": "ZZ", "zipcode": "12345"}
            }),
        )
        .unwrap();

    let seen: Vec<(String, Value, Value)> = recorder
        .events()
        .iter()
        .map(|e| {
            (
                e.name().to_string(),
                Value::Object(e.context().clone()),
                e.data().clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "navigation.request".to_owned(),
                json!({"user_id": 10938}),
                json!({"url": "http://www.edx.org/some/path/1"})
            ),
            (
                "navigation.request".to_owned(),
                json!({"user_id": 11111, "session_id": "2987lkjdyoioey"}),
                json!({"url": "http://www.edx.org/some/path/2"})
            ),
            (
                "address.create".to_owned(),
                json!({"user_id": 10938}),
                json!({"name": "myaddress",
                       "address": {"street": "123 Main St", "city": "Anytown", "state": "ZZ", "zipcode": "12345"}})
            ),
        ]
    );
    // Every event has its own v7 id and a timestamp.
    let events = recorder.events();
    assert!(events.windows(2).all(|w| w[0].id() < w[1].id()));
    assert!(events.iter().all(|e| e.received_at().is_none()));
}
