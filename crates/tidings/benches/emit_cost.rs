//! The standard emit workload (see `emit.rs`) run a fixed number of times,
//! for counting instructions: time on a busy machine varies by tens of
//! percent between runs, the instruction count by well under one.
//!
//! ```text
//! cargo bench -p tidings --bench emit_cost --no-run
//! N=10000  valgrind --tool=callgrind <bench binary> plain
//! N=110000 valgrind --tool=callgrind <bench binary> plain
//! # the same with `validated`; per iteration = (I(110000) - I(10000)) / 100000
//! ```
//!
//! Run by `cargo bench` it does 200 000 iterations of each variant and
//! prints the time per iteration.

#![allow(missing_docs, clippy::print_stdout)] // a harness-less bench reports on stdout

mod workload;

use std::time::Instant;

use serde_json::json;
use workload::{emit_pair, standard_tracker};

fn run(validated: bool, iterations: u32) {
    let tracker = standard_tracker(validated);
    let session = json!({"user_id": 11111, "session_id": "2987lkjdyoioey"});
    let _outer = tidings::enter_context("outer", json!({"user_id": 10938, "org_id": "edX"}));
    let start = Instant::now();
    for _ in 0..iterations {
        emit_pair(&tracker, &session);
    }
    let per_iteration = start.elapsed() / iterations;
    let name = if validated { "validated" } else { "plain" };
    println!(
        "emit_cost/{name}: {per_iteration:?} per iteration (2 events), {iterations} iterations"
    );
}

fn main() {
    let iterations = std::env::var("N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let args: Vec<String> = std::env::args().collect();
    let chosen: Vec<bool> = ["plain", "validated"]
        .iter()
        .zip([false, true])
        .filter(|(name, _)| args.iter().any(|a| a == *name))
        .map(|(_, validated)| validated)
        .collect();
    for validated in if chosen.is_empty() {
        vec![false, true]
    } else {
        chosen
    } {
        run(validated, iterations);
    }
}
