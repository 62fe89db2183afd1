//! The edX `event-tracking` README example, in tidings.
//!
//! Run with `cargo run -p tidings-examples --example edx_readme`. It emits
//! three events through the global default tracker and prints them as JSON
//! lines: the outer context `{user_id: 10938}` is on every event, and the
//! nested context overrides `user_id` for the event emitted inside it.

#![allow(clippy::print_stdout)] // printing the events is the point of the example

use serde_json::json;
use tidings::Tracker;
use tidings_test::RecordingBackend;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A recorder keeps the events in memory; real programs add sinks here.
    let recorder = RecordingBackend::new();
    let _guard = tidings::init(
        Tracker::builder()
            .backend("memory", recorder.clone())
            .build()?,
    );

    let _outer = tidings::enter_context("outer", json!({"user_id": 10938}));
    tidings::emit(
        "navigation.request",
        json!({"url": "http://www.edx.org/some/path/1"}),
    )?;

    tidings::in_context(
        "inner",
        json!({"user_id": 11111, "session_id": "2987lkjdyoioey"}),
        || {
            tidings::emit(
                "navigation.request",
                json!({"url": "http://www.edx.org/some/path/2"}),
            )
        },
    )?;

    tidings::emit(
        "address.create",
        json!({
            "name": "myaddress",
            "address": {"street": "123 Main St", "city": "Anytown", "state": "ZZ", "zipcode": "12345"}
        }),
    )?;

    for event in recorder.events() {
        println!("{}", String::from_utf8(event.to_json_bytes())?);
    }
    Ok(())
}
