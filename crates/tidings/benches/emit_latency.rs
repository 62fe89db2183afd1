//! `emit` latency while the delivery queue is full and the sink is stuck,
//! from four threads at once: the worst case for callers.
//!
//! The sink never answers (as a black-holed endpoint), so its queue fills
//! and every further emit takes the `drop_newest` path. Each thread times
//! every call; the percentiles over all calls are printed. Target: p99 at
//! most 10 µs. Run with `cargo bench -p tidings --bench emit_latency`.

#![allow(missing_docs, clippy::print_stdout)] // a benchmark binary reporting on stdout

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::Serialize;
use tidings::{Backend, BatchConfig, SinkBackend, Tracker};
use tidings_test::{Answer, RecordingSink};

const THREADS: usize = 4;
const EMITS_PER_THREAD: usize = 250_000;

#[derive(Serialize)]
struct Click<'a> {
    url: &'a str,
    button_text: &'a str,
    depth: u32,
}

fn main() {
    let stuck = RecordingSink::scripted([Answer::Hang]);
    let backend = SinkBackend::builder("black-holed", stuck)
        .queue_capacity(10_000)
        .batch(BatchConfig::default().with_max_events(100))
        .build()
        .expect("worker starts");
    let tracker = Tracker::builder()
        .backend("ingest", backend)
        .build()
        .expect("tracker builds");

    // Fill the queue (and the one batch in flight) before measuring.
    for _ in 0..20_000 {
        let _ = tracker.emit(
            "navigation.request",
            Click {
                url: "/fill",
                button_text: "x",
                depth: 0,
            },
        );
    }

    let mut latencies: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let tracker = tracker.clone();
                scope.spawn(move || {
                    let click = Click {
                        url: "http://www.edx.org/some/path/1",
                        button_text: "Enroll now",
                        depth: 3,
                    };
                    let mut nanos = Vec::with_capacity(EMITS_PER_THREAD);
                    for _ in 0..EMITS_PER_THREAD {
                        let started = Instant::now();
                        black_box(tracker.emit("navigation.request", black_box(&click)).ok());
                        nanos.push(started.elapsed().as_nanos() as u64);
                    }
                    nanos
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("emitting thread"))
            .collect()
    });
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "emit latency, queue full, sink black-holed, {THREADS} threads x {EMITS_PER_THREAD} emits: \
         p50 {} ns, p90 {} ns, p99 {} ns, p99.9 {} ns, max {} ns",
        at(0.50),
        at(0.90),
        at(0.99),
        at(0.999),
        latencies[latencies.len() - 1]
    );
    let stats = tracker.stats();
    println!(
        "root router: received {}, backend failures (queue full) {}",
        stats.received, stats.backends[0].failed
    );
    let _ = tracker.root().shutdown(Duration::from_millis(100));
}
