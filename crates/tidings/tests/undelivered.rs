//! A program that loses events is told so: dropping the last tracker, or
//! the `init` guard, with events not delivered writes one summary line to
//! stderr (or to `tracing`, when a subscriber is installed). Each scenario
//! runs in a child process (the global default can be installed once per
//! process, and the line is written as the program ends).

use std::process::Command;
use std::time::Duration;

use tidings::{Backend as _, RoutingBackend, SinkBackend, Tracker};
use tidings_test::{Answer, RecordingSink};

const SCENARIO: &str = "TIDINGS_UNDELIVERED_SCENARIO";

/// Runs the ignored test `lossy_program` in a child process with
/// `scenario`; its stderr.
fn run(scenario: &str) -> String {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "lossy_program",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SCENARIO, scenario)
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{scenario}: {stderr}");
    stderr
}

/// A tree of one sink answering `status` to every batch.
fn root(status: u16) -> RoutingBackend {
    let sink = RecordingSink::scripted(std::iter::repeat_n(Answer::Status(status, None), 10_000));
    RoutingBackend::builder()
        .backend(
            "failing",
            SinkBackend::builder("failing", sink).build().unwrap(),
        )
        .build()
        .unwrap()
}

/// A tracker over [`root`].
fn tracker(status: u16) -> Tracker {
    Tracker::from_root(root(status))
}

#[test]
#[ignore = "a child process of the tests of this file"]
fn lossy_program() {
    let scenario = std::env::var(SCENARIO).expect("run by the other tests of this file");
    match scenario.as_str() {
        "drop" => {
            // A sink that keeps failing (retried): the events stay queued.
            let tracker = tracker(503);
            for i in 0..27 {
                tracker
                    .emit("app.tick", serde_json::json!({ "i": i }))
                    .unwrap();
            }
            drop(tracker);
        }
        "guard" => {
            // A sink that refuses every event (400): each is dropped.
            let guard = tidings::init(tracker(400));
            for _ in 0..27 {
                tidings::emit("app.tick", ()).unwrap();
            }
            std::thread::sleep(Duration::from_millis(300));
            drop(guard);
        }
        "subscriber" => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .init();
            let tracker = tracker(503);
            tracker.emit("app.tick", ()).unwrap();
            drop(tracker);
        }
        "clean" => {
            let tracker = Tracker::builder()
                .backend(
                    "ok",
                    SinkBackend::builder("ok", RecordingSink::new())
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap();
            tracker.emit("app.tick", ()).unwrap();
            tracker.shutdown(Duration::from_secs(5)).unwrap();
            assert_eq!(tracker.undelivered(), tidings::Undelivered::default());
            drop(tracker);
            // Shut down and failing: the caller was told by `shutdown`.
            let tracker = tracker_with_timeout();
            assert!(tracker.shutdown(Duration::from_millis(50)).is_err());
            assert_eq!(tracker.undelivered().lost(), 1);
            // A tracker over a tree something else owns (an embedded
            // collector): its owner shuts it down, and is told.
            let shared = std::sync::Arc::new(root(503));
            let over_shared = Tracker::from_shared_root(shared.clone());
            over_shared.emit("app.tick", ()).unwrap();
            drop(over_shared);
            // A dispatch that outlives its tracker still uses the tree; it
            // is the one shut down, and told.
            let tracker = tracker_with_timeout();
            let dispatch = tracker.dispatch();
            drop(tracker);
            assert!(dispatch.shutdown(Duration::from_millis(50)).is_err());
            drop(dispatch);
            assert!(shared.shutdown(Duration::from_millis(50)).is_err());
        }
        other => panic!("unknown scenario {other}"),
    }
}

fn tracker_with_timeout() -> Tracker {
    let tracker = tracker(503);
    tracker.emit("app.tick", ()).unwrap();
    tracker
}

#[test]
fn dropping_the_last_tracker_with_queued_events_says_so_on_stderr() {
    let stderr = run("drop");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("tidings: "))
        .collect();
    assert_eq!(
        lines,
        [
            "tidings: 27 events not delivered (dropped 0, still queued or in flight 27; failing: 27) \
          when the last tracker was dropped without `shutdown(timeout)`, which delivers what is \
          queued (install a `tracing` subscriber to see why)"
        ],
        "{stderr}"
    );
}

#[test]
fn dropping_the_init_guard_with_dropped_events_says_so_on_stderr() {
    let stderr = run("guard");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("tidings: "))
        .collect();
    assert_eq!(
        lines,
        [
            "tidings: 27 events not delivered (dropped 27, still queued or in flight 0; failing: 27) \
          when the `init` guard was dropped (its drain waits at most 5 s) (install a `tracing` \
          subscriber to see why)"
        ],
        "{stderr}"
    );
}

#[test]
fn with_a_subscriber_the_summary_goes_to_tracing() {
    let stderr = run("subscriber");
    assert!(
        !stderr.lines().any(|l| l.starts_with("tidings: ")),
        "{stderr}"
    );
    let line = stderr
        .lines()
        .find(|l| l.contains("tidings: 1 event not delivered"))
        .unwrap_or_else(|| panic!("no summary in:\n{stderr}"));
    assert!(line.contains("ERROR"), "{line}");
}

#[test]
fn a_program_that_delivers_everything_or_was_told_by_shutdown_gets_no_line() {
    let stderr = run("clean");
    assert!(
        !stderr.lines().any(|l| l.starts_with("tidings: ")),
        "{stderr}"
    );
}
