//! Group-commit throughput: concurrent appends of 10-event requests, each
//! answered only once fsynced, as the collector's durable mode makes them.
//! Run with `cargo bench -p tidings-wal --bench append`.

#![allow(missing_docs)] // criterion's macros generate undocumented items

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use tidings_event::{Event, EventName};
use tidings_wal::{Wal, WalOptions};

const EVENTS_PER_APPEND: usize = 10;

fn request() -> Vec<Event> {
    (0..EVENTS_PER_APPEND)
        .map(|i| {
            Event::new(
                EventName::new("navigation.request").unwrap(),
                json!({"url": format!("https://example.com/some/path/{i}"), "user_id": 10938,
                       "referrer": "https://example.com/", "agent": "Mozilla/5.0 (X11; Linux x86_64)"}),
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("tidings-wal-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (wal, replay) = Wal::open(WalOptions::new(&dir)).unwrap();
    drop(replay);
    let wal = std::sync::Arc::new(wal);
    let template = request();
    let mut group = c.benchmark_group("append");
    for concurrent in [1usize, 16, 64] {
        group.throughput(Throughput::Elements(
            (concurrent * EVENTS_PER_APPEND) as u64,
        ));
        group.bench_function(BenchmarkId::new("fsynced_10_events", concurrent), |b| {
            b.to_async(&runtime).iter(|| {
                let wal = wal.clone();
                let template = template.clone();
                async move {
                    let tasks: Vec<_> = (0..concurrent)
                        .map(|_| {
                            let wal = wal.clone();
                            let mut events = template.clone();
                            tokio::spawn(async move {
                                wal.append(&mut events).await.unwrap();
                                // dropping the events settles them: segments are retired
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                }
            });
        });
    }
    group.finish();
    drop(wal);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
