//! A routing tree like edX's `EVENT_TRACKING_BACKENDS`, built in code.
//!
//! Run with `cargo run -p tidings-examples --example routing_tree`. The root
//! keeps only `edx.*` and `navigation.*` events; one branch sees everything
//! that passes, another scrubs the data down to an allowlist (flume's
//! `allowedProperties`) and drops internal events.

#![allow(clippy::print_stdout)] // printing the events is the point of the example

use serde::Serialize;
use tidings::{PropertyAllowlist, RegexFilter, RoutingBackend, Tracker};
use tidings_test::RecordingBackend;

/// A typed event payload: any `Serialize` type works as event data.
#[derive(Serialize)]
struct Enrollment<'a> {
    course_id: &'a str,
    mode: &'a str,
    email: &'a str,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let everything = RecordingBackend::new();
    let public = RecordingBackend::new();

    let tracker = Tracker::builder()
        .processor(RegexFilter::allowlist([r"edx\.", r"navigation\."])?)
        .backend("audit", everything.clone())
        .backend(
            "public",
            RoutingBackend::builder()
                .processor(RegexFilter::blocklist([r"edx\.internal\."])?)
                .processor(PropertyAllowlist::new(["course_id", "mode"])?)
                .backend("mirror", public.clone())
                .build()?,
        )
        .build()?;

    let enrollment = Enrollment {
        course_id: "course-v1:edX+DemoX+Demo_Course",
        mode: "audit",
        email: "learner@example.com",
    };
    tracker.emit("edx.course.enrollment.activated", &enrollment)?;
    tracker.emit("edx.internal.cache.miss", serde_json::json!({"key": "k1"}))?;
    tracker.emit("debug.tick", serde_json::json!({}))?; // dropped at the root

    println!("audit (all that passed the root filter):");
    for event in everything.events() {
        println!("  {} {}", event.name(), event.data());
    }
    println!("public (no internal events, no email):");
    for event in public.events() {
        println!("  {} {}", event.name(), event.data());
    }
    println!("root counters: {:?}", tracker.stats());
    Ok(())
}
