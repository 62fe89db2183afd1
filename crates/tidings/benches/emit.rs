//! The emit path on the standard workload, against serializing alone.
//!
//! Workload (issue "Foundation"): an outer context `{user_id, org_id}`;
//! every other emit inside a nested context `{user_id, session_id}`; a root
//! `RegexFilter` allowlist `['^edx\.', '^navigation\.']`; one nested
//! `RoutingBackend` with a blocklist `['^edx\.internal\.']` and a backend
//! that serializes each event to JSON bytes; names alternate between
//! `edx.course.enrollment.activated` and `navigation.request`, with data
//! `{url, button_text, depth}`. Each iteration emits two events (one in the
//! nested context), so per-event cost is half the reported time.
//!
//! `serialize_only` serializes the two events such an iteration produces,
//! the baseline the target (emit at most 2x) is measured against.

#![allow(missing_docs)] // criterion's macros generate undocumented functions

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::Serialize;
use serde_json::json;
use tidings::{Backend, Event, RegexFilter, RoutingBackend, SendError, Tracker};

#[derive(Debug, Serialize)]
struct Click<'a> {
    url: &'a str,
    button_text: &'a str,
    depth: u32,
}

const CLICK: Click<'static> = Click {
    url: "http://www.edx.org/some/path/1",
    button_text: "Enroll now",
    depth: 3,
};

/// Serializes every event, as a sink's encoder would.
#[derive(Debug)]
struct Serializing;

impl Backend for Serializing {
    fn send(&self, event: Event) -> Result<(), SendError> {
        black_box(event.to_json_bytes());
        Ok(())
    }
}

fn standard_tracker() -> Tracker {
    let nested = RoutingBackend::builder()
        .processor(RegexFilter::blocklist([r"^edx\.internal\."]).unwrap())
        .backend("json", Serializing)
        .build()
        .unwrap();
    Tracker::builder()
        .processor(RegexFilter::allowlist([r"^edx\.", r"^navigation\."]).unwrap())
        .backend("nested", nested)
        .build()
        .unwrap()
}

fn bench_emit(c: &mut Criterion) {
    let mut group = c.benchmark_group("emit");
    group.throughput(Throughput::Elements(2));

    let tracker = standard_tracker();
    let outer = json!({"user_id": 10938, "org_id": "edX"});
    let session = json!({"user_id": 11111, "session_id": "2987lkjdyoioey"});
    let _outer = tidings::enter_context("outer", outer.clone());
    group.bench_function("standard_workload", |b| {
        b.iter(|| {
            tracker
                .emit("edx.course.enrollment.activated", black_box(&CLICK))
                .unwrap();
            let _session = tidings::enter_context("session", session.clone());
            tracker
                .emit("navigation.request", black_box(&CLICK))
                .unwrap();
        });
    });

    // The events one iteration above produces, serialized and nothing else.
    let first = Event::new(
        "edx.course.enrollment.activated".try_into().unwrap(),
        serde_json::to_value(CLICK).unwrap(),
    )
    .with_context(tidings::current_context().into_map());
    let second = {
        let _session = tidings::enter_context("session", session.clone());
        Event::new(
            "navigation.request".try_into().unwrap(),
            serde_json::to_value(CLICK).unwrap(),
        )
        .with_context(tidings::current_context().into_map())
    };
    group.bench_function("serialize_only", |b| {
        b.iter(|| {
            black_box(serde_json::to_vec(black_box(&first)).unwrap());
            black_box(serde_json::to_vec(black_box(&second)).unwrap());
        });
    });
    group.finish();

    let mut group = c.benchmark_group("emit_without_tracker");
    group.throughput(Throughput::Elements(1));
    group.bench_function("global_emit_noop", |b| {
        b.iter(|| {
            black_box(tidings::emit(
                black_box("navigation.request"),
                black_box(&CLICK),
            ))
        });
    });
    group.finish();
}

criterion_group!(benches, bench_emit);
criterion_main!(benches);
