//! `buffer = { type = "disk" }`: what `emit` accepted survives a `kill -9`
//! of the application and is delivered by the next run. The application
//! is a child process (this test binary, run with an environment
//! variable), whose sink answers 503 to everything, so that its events are
//! still queued when it is killed.

#![cfg(feature = "config")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tidings::Tracker;
use tidings_config::Registry;
use tidings_test::{Answer, MemorySinkType, RecordingSink, install_memory_sink, memory_sink};

const BUFFER_DIR: &str = "TIDINGS_DISK_BUFFER_TEST_DIR";
const EVENTS: u64 = 200;

fn registry() -> Registry {
    let mut registry = Registry::default();
    registry.register_sink::<MemorySinkType>();
    registry
}

/// A tree of one disk-buffered `async_router` over the memory sink `id`.
fn config(dir: &Path, id: &str) -> String {
    format!(
        r#"
[backends.buffered]
type = "async_router"
buffer = {{ type = "disk", path = "{}" }}
[backends.buffered.backends.out]
type = "memory"
id = "{id}"
retry = {{ max_attempts = 1000, initial_backoff_ms = 50, max_backoff_ms = 50 }}
"#,
        dir.display()
    )
}

#[test]
#[ignore = "the application the other test of this file kills"]
fn emitting_application() {
    let dir = std::env::var(BUFFER_DIR).expect("run by the other test of this file");
    install_memory_sink(
        "unreachable",
        RecordingSink::scripted(std::iter::repeat_n(Answer::Status(503, None), 1_000_000)),
    );
    let tracker =
        Tracker::from_config_str_with(&config(Path::new(&dir), "unreachable"), &registry())
            .unwrap();
    for i in 0..EVENTS {
        tracker
            .emit("app.tick", serde_json::json!({ "i": i }))
            .unwrap();
    }
    #[allow(clippy::print_stdout, reason = "the parent test reads this line")]
    {
        println!("emitted {EVENTS}");
    }
    std::thread::sleep(Duration::from_secs(60)); // killed long before
}

#[test]
fn events_emitted_before_a_kill_9_are_delivered_after_the_restart() {
    let dir = std::env::temp_dir().join(format!("tidings-disk-buffer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "emitting_application",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(BUFFER_DIR, &dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let emitted = stdout
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("emitted"));
    assert_eq!(emitted.as_deref(), Some("emitted 200"), "the child's emits");
    child.kill().unwrap(); // SIGKILL: no drop, no shutdown, no flush
    child.wait().unwrap();

    let sink = memory_sink("after-restart");
    let tracker =
        Tracker::from_config_str_with(&config(&dir, "after-restart"), &registry()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (sink.events().len() as u64) < EVENTS {
        assert!(
            Instant::now() < deadline,
            "only {} of {EVENTS} events delivered after the restart",
            sink.events().len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    tracker.shutdown(Duration::from_secs(5)).unwrap();
    let mut seen = BTreeMap::new();
    for event in sink.events() {
        let i = event.data()["i"].as_u64().unwrap();
        *seen.entry(i).or_insert(0) += 1;
    }
    assert_eq!(seen.len() as u64, EVENTS, "every event emitted arrived");
    assert!(seen.values().all(|&n| n == 1), "each once: {seen:?}");
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (0..EVENTS).collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
