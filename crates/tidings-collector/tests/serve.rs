//! The server over real sockets, and the `tidings` binary: `check`, `serve`,
//! and draining on SIGTERM.

mod support;

use std::io::Read;
use std::time::Duration;

use support::{
    collector, finish, http, serve_config, signal, spawn_listening, tidings, wait_for, write_config,
};

#[test]
fn serves_over_tcp_and_stops_when_told() {
    let (served, sink, _) = collector("serve-tcp", "");
    let addr = served.addr;
    let (status, body) = http(
        addr,
        "POST",
        "/events",
        &[("content-type", "application/json")],
        br#"[{"name": "tcp.one"}, {"name": "tcp.two"}]"#,
    );
    assert_eq!((status, body.as_str()), (202, r#"{"accepted":2}"#));
    assert_eq!(http(addr, "GET", "/healthz", &[], b"").0, 200);
    served.shutdown(Duration::from_secs(5)).unwrap();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the listener is closed after shutdown"
    );
    wait_for(&sink, 2);
}

#[test]
fn check_prints_the_tree_or_every_error() {
    let good = write_config(
        "good",
        "[backends.out]\ntype = \"console\"\nformat = \"pretty\"\n",
    );
    let output = tidings()
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("out: console format=pretty stream=stdout"),
        "{stdout}"
    );

    let bad = write_config(
        "bad",
        "[backends.out]\ntype = \"consol\"\n[[processors]]\ntype = \"regex_filter\"\nfilter = \"allowlist\"\npatterns = [\"(\"]\n",
    );
    let output = tidings()
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("backends.out.type: unknown backend type \"consol\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("processors[0].patterns[0]: invalid regex"),
        "{stderr}"
    );
}

#[test]
fn serve_accepts_events_and_drains_them_to_the_sinks_on_sigterm() {
    // A long flush interval: only the drain at SIGTERM delivers the events.
    let (child, addr) = serve_config(
        "serve",
        "[backends.out]\ntype = \"console\"\nformat = \"json\"\nflush_interval_ms = 600000\n",
    );
    let (status, _) = http(
        addr,
        "POST",
        "/events",
        &[("content-type", "application/json")],
        br#"[{"name": "drained.one"}, {"name": "drained.two"}]"#,
    );
    assert_eq!(status, 202);
    signal(&child, "-TERM");
    let (status, stdout, stderr) = finish(child);
    assert!(status.success(), "exit {status:?}; stderr:\n{stderr}");
    let names: Vec<String> = stdout
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(names, ["drained.one", "drained.two"], "stderr:\n{stderr}");
    assert!(stderr.contains("drained"), "{stderr}");
}

#[test]
fn the_embedded_default_prints_events_and_keeps_them_in_gzip_files_under_tidings_data() {
    let cwd = std::env::temp_dir().join(format!("tidings-default-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cwd);
    std::fs::create_dir_all(&cwd).unwrap();
    let (child, addr) = spawn_listening(|addr| {
        let mut command = tidings();
        command.current_dir(&cwd).args(["serve", "--listen", addr]);
        command
    });
    let (status, _) = http(
        addr,
        "POST",
        "/events",
        &[("content-type", "application/json")],
        br#"[{"name": "default.one"}, {"name": "default.two"}]"#,
    );
    assert_eq!(status, 202);
    signal(&child, "-TERM");
    let (status, stdout, stderr) = finish(child);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    let files: Vec<_> = std::fs::read_dir(cwd.join("tidings-data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].to_string_lossy().ends_with(".jsonl.gz"));
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(&files[0]).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.contains("default.one") && text.contains("default.two"));

    let output = tidings()
        .args(["compact", "--path"])
        .arg(cwd.join("tidings-data"))
        .args(["--period", "hour"])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        "merged 0 files into 0 (0 lines)"
    );
    let output = tidings()
        .args(["compact", "--path", "/nonexistent/dir"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn the_embedded_default_keeps_every_event_in_its_files_and_lets_only_the_console_drop() {
    let config = tidings_config::load(
        tidings_collector::DEFAULT_CONFIG,
        &tidings_config::Registry::default(),
    )
    .unwrap();
    let tree = config.to_string();
    // The console's lines come before the files' (name order).
    let (console, files) = tree.split_once("\n  files: ").unwrap();
    let (console, files) = (console.to_owned(), files.to_owned());
    assert!(console.contains("after 202: MAY DROP events"), "{tree}");
    assert!(console.contains("dead letters: none"), "{tree}");
    assert!(files.contains("when_full=backpressure"), "{tree}");
    assert!(files.contains("after 202: keeps every event"), "{tree}");
    assert!(
        files.contains("dead letters: file path=tidings-dead-letter/backends.files"),
        "{tree}"
    );
}
