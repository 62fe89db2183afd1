//! The emit path into an `AsyncRouter`, with and without a disk buffer
//! (issue 17: "the disk buffer's cost on the emit path, beside the
//! in-memory queue").
//!
//! Each iteration emits one event into an `AsyncRouter` whose worker drops
//! it. The router applies backpressure, so when the worker lags `emit`
//! waits, and the figure is the rate through the queue:
//! - `memory_queue`: the queue alone;
//! - `disk_buffer_write`: each event written to the disk buffer first, as
//!   `buffer = { type = "disk" }` does (survives `kill -9`);
//! - `disk_buffer_fsync`: each emit waits for an fsync (survives a crash of
//!   the machine).
//!
//! `emit_async_processors` (issue 19: "`AsyncRouter` runs its processors on
//! the calling thread by default"): an `AsyncRouter` over a router with the
//! standard workload's nested blocklist `['^edx\.internal\.']` and a
//! property allowlist, its worker dropping what is left; each iteration
//! emits one event the blocklist drops and one it keeps, so per-event cost
//! is half the reported time:
//! - `processors_on_caller`: the processors run in `emit` (the default);
//! - `processors_on_worker`: `emit` only queues; the worker runs them.

#![allow(missing_docs)] // criterion's macros generate undocumented functions

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use tidings::Event;

/// Drops what it is given: the queue's cost alone.
#[derive(Debug)]
struct Discard;

impl tidings::Backend for Discard {
    fn send(&self, event: Event) -> Result<(), tidings::SendError> {
        drop(black_box(event));
        Ok(())
    }
}

fn bench_buffer(c: &mut Criterion) {
    use tidings::crates::routing::{SyncMode, WalOptions};
    use tidings::{AsyncRouter, DiskBuffer, Tracker, WhenFull};

    // The standard workload's data.
    let click =
        json!({"url": "http://www.edx.org/some/path/1", "button_text": "Enroll now", "depth": 3});
    let mut group = c.benchmark_group("emit_queued");
    group.throughput(Throughput::Elements(1));
    let dir = std::env::temp_dir().join(format!("tidings-bench-buffer-{}", std::process::id()));
    for (id, sync) in [
        ("memory_queue", None),
        ("disk_buffer_write", Some(SyncMode::Write)),
        ("disk_buffer_fsync", Some(SyncMode::Fsync)),
    ] {
        let mut router = AsyncRouter::builder(id, Discard).when_full(WhenFull::Backpressure);
        if let Some(sync) = sync {
            let _ = std::fs::remove_dir_all(&dir);
            let buffer = DiskBuffer::open(WalOptions::new(&dir).sync(sync)).unwrap();
            router = router.disk_buffer(buffer);
        }
        let tracker = Tracker::builder()
            .backend("queued", router.build().unwrap())
            .build()
            .unwrap();
        group.bench_function(id, |b| {
            b.iter(|| {
                tracker
                    .emit("navigation.request", black_box(&click))
                    .unwrap()
            });
        });
        tracker
            .shutdown(std::time::Duration::from_secs(30))
            .unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
    group.finish();
}

fn bench_processors_on(c: &mut Criterion) {
    use tidings::{
        AsyncRouter, ProcessorsOn, PropertyAllowlist, RegexFilter, RoutingBackend, Tracker,
        WhenFull,
    };

    let click =
        json!({"url": "http://www.edx.org/some/path/1", "button_text": "Enroll now", "depth": 3});
    let mut group = c.benchmark_group("emit_async_processors");
    group.throughput(Throughput::Elements(2));
    for (id, on) in [
        ("processors_on_caller", ProcessorsOn::Caller),
        ("processors_on_worker", ProcessorsOn::Worker),
    ] {
        let inner = RoutingBackend::builder()
            .processor(RegexFilter::blocklist([r"^edx\.internal\."]).unwrap())
            .processor(PropertyAllowlist::new(["url", "depth"]).unwrap())
            .backend("discard", Discard)
            .build()
            .unwrap();
        let router = AsyncRouter::builder(id, inner)
            .processors_on(on)
            .when_full(WhenFull::Backpressure)
            .build()
            .unwrap();
        let tracker = Tracker::builder().backend("async", router).build().unwrap();
        group.bench_function(id, |b| {
            b.iter(|| {
                tracker
                    .emit("edx.internal.tick", black_box(&click))
                    .unwrap();
                tracker
                    .emit("navigation.request", black_box(&click))
                    .unwrap();
            });
        });
        tracker
            .shutdown(std::time::Duration::from_secs(30))
            .unwrap();
    }
    group.finish();
}

criterion_group!(benches, bench_buffer, bench_processors_on);
criterion_main!(benches);
