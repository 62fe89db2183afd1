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

criterion_group!(benches, bench_buffer);
criterion_main!(benches);
