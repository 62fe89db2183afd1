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
//!
//! `emit_without_tracker/filtered_by_name` emits a name the root allowlist
//! drops, decided once per name (`Tracker::emit` returns `None`), beside
//! `global_emit_noop` (no tracker installed).
//!
//! `standard_workload_validated` adds a strict catalog to the root chain
//! (`TrackerBuilder::catalog`: each emit is checked at the call, and the
//! processor does not check it again), declaring both events' properties as
//! required and typed (one with a URL pattern): the catalog issue's target
//! is at most 30% over `standard_workload`.

#![allow(missing_docs)] // criterion's macros generate undocumented functions

mod workload;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use tidings::Event;
use workload::{CLICK, emit_pair, standard_tracker};

fn bench_emit(c: &mut Criterion) {
    let mut group = c.benchmark_group("emit");
    group.throughput(Throughput::Elements(2));

    let outer = json!({"user_id": 10938, "org_id": "edX"});
    let session = json!({"user_id": 11111, "session_id": "2987lkjdyoioey"});
    let _outer = tidings::enter_context("outer", outer.clone());
    for (id, validated) in [
        ("standard_workload", false),
        ("standard_workload_validated", true),
    ] {
        let tracker = standard_tracker(validated);
        group.bench_function(id, |b| b.iter(|| emit_pair(&tracker, &session)));
        assert_eq!(tracker.stats().filtered, 0, "every event passed validation");
    }

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
    // Beside it, in the same run: an event the root allowlist drops by its
    // name (issue 16's target: at most 20 ns).
    let tracker = standard_tracker(false);
    group.bench_function("filtered_by_name", |b| {
        b.iter(|| black_box(tracker.emit(black_box("debug.tick"), black_box(&CLICK))));
    });
    assert!(tracker.stats().filtered > 0);
    group.finish();
}

criterion_group!(benches, bench_emit);
criterion_main!(benches);
