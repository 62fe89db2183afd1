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
        stderr.contains(
            "`backends.out.type`: unknown backend type \"consol\"; did you mean \"console\"?"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("`processors[0].patterns[0]`: invalid regex"),
        "{stderr}"
    );
}

/// A fresh directory for a test.
fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tidings-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `tidings serve` on `config` at a free address until it exits or
/// has listened (then stops it); `Err(stderr)` when it refused to start.
fn serve_outcome(config: &std::path::Path) -> Result<String, String> {
    let addr = support::free_addr();
    let mut child = tidings()
        .args(["serve", "--listen", &addr, "--config"])
        .arg(config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let (_, _, stderr) = finish(child);
            assert_eq!(status.code(), Some(1), "{stderr}");
            return Err(stderr);
        }
        if std::net::TcpStream::connect(&addr).is_ok() {
            signal(&child, "-TERM");
            let (status, _, stderr) = finish(child);
            // The port is bound before the pipeline is built: a start that
            // then fails may have been seen listening.
            if status.code() == Some(1) {
                return Err(stderr);
            }
            assert!(status.success(), "{stderr}");
            return Ok(stderr);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve neither listened nor exited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn check_fails_exactly_when_serve_fails_to_start_with_the_same_message() {
    let dir = temp_dir("check-serve");
    let data = dir.join("data");
    let cases = [
        ("a file sink that cannot be created", "[backends.f]\ntype = \"file\"\npath = \"/proc/nope/x\"\n".to_owned()),
        ("a missing collector catalog", "[collector.catalog]\npath = \"no-such-catalog.toml\"\n[backends.c]\ntype = \"console\"\n".to_owned()),
        ("a typo", "[backends.f]\ntype = \"file\"\npath = \"data\"\nmax_evnts = 5\n".to_owned()),
        ("a bad flume allowlist", "[collector]\nflume_allowed_properties = [\"a..b\"]\n[backends.c]\ntype = \"console\"\n".to_owned()),
        ("a write-ahead log that cannot be created", "[collector]\nack = \"durable\"\nwal_path = \"/proc/nope/wal\"\n[backends.c]\ntype = \"console\"\n".to_owned()),
        ("a good config", format!("[backends.f]\ntype = \"file\"\npath = \"{}\"\n", data.display())),
    ];
    for (what, text) in cases {
        let file = dir.join("tidings.toml");
        std::fs::write(&file, &text).unwrap();
        let check = tidings().arg("check").arg(&file).output().unwrap();
        let check_err = String::from_utf8(check.stderr).unwrap();
        match serve_outcome(&file) {
            Ok(_) => assert!(
                check.status.success(),
                "{what}: serve started but check said:\n{check_err}"
            ),
            Err(serve_err) => {
                assert_eq!(
                    check.status.code(),
                    Some(1),
                    "{what}: serve refused ({serve_err}) but check passed"
                );
                let reason = check_err.trim();
                assert!(
                    reason.starts_with(&format!("{}: ", file.display()))
                        && reason.contains("line "),
                    "{what}: {reason}"
                );
                assert!(
                    serve_err.contains(reason),
                    "{what}: check said {reason:?}, serve said {serve_err:?}"
                );
            }
        }
    }
    assert!(data.exists(), "the good config's sink started");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_start_that_cannot_bind_creates_nothing_on_disk() {
    let cwd = temp_dir("no-bind");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = tidings()
        .current_dir(&cwd)
        .args(["serve", "--listen", &addr])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(&cwd).unwrap().count(),
        0,
        "created before binding"
    );
    std::fs::remove_dir_all(&cwd).unwrap();
}

#[test]
fn the_start_says_what_runs_and_where_its_data_goes_without_colour_in_a_pipe() {
    let cwd = temp_dir("banner");
    let (child, addr) = spawn_listening(|addr| {
        let mut command = tidings();
        command.current_dir(&cwd).args(["serve", "--listen", addr]);
        command
    });
    signal(&child, "-TERM");
    let (status, _, stderr) = finish(child);
    assert!(status.success(), "{stderr}");
    for expected in [
        format!(
            "tidings {} starting: the embedded default config",
            env!("CARGO_PKG_VERSION")
        ),
        format!("relative paths resolve against {}", cwd.display()),
        format!(
            "listening on http://{addr} (routes: /events /event/log /flume /spade /healthz /metrics /tidings.js"
        ),
        "sink backends.console: console format=json stream=stdout (may drop:".to_owned(),
        "sink backends.files: file path=tidings-data ".to_owned(),
        "(keeps every event; dead letters: file path=tidings-dead-letter/backends.files".to_owned(),
        "ack = fast: 202 once queued in memory".to_owned(),
        format!("metrics at http://{addr}/metrics"),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in a pipe:\n{stderr}"
    );
    assert!(
        !stderr.contains("live view"),
        "the live view is off by default"
    );
    std::fs::remove_dir_all(&cwd).unwrap();
}

#[test]
fn config_default_prints_the_embedded_default_and_check_takes_a_file_argument() {
    let output = tidings().args(["config", "default"]).output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(text, tidings_collector::DEFAULT_CONFIG);
    // Ready to edit: it checks as a file, the same as the default.
    let file = write_config("printed-default", &text);
    let as_file = tidings().arg("check").arg(&file).output().unwrap();
    let as_default = tidings().arg("check").output().unwrap();
    assert!(as_file.status.success() && as_default.status.success());
    let tree = |out: &[u8]| {
        String::from_utf8(out.to_vec())
            .unwrap()
            .replace(&format!("{}/", file.parent().unwrap().display()), "")
    };
    assert_eq!(tree(&as_file.stdout), tree(&as_default.stdout));
    let both = tidings()
        .arg("check")
        .arg(&file)
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        both.status.code(),
        Some(2),
        "FILE and --config together are refused"
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
        "merged 0 files into 0 (0 lines): 1 finished file in 1 period, one each; \
         a period needs two or more to merge"
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

#[test]
fn check_and_the_start_name_the_live_view_when_it_is_on_without_its_key() {
    let text = "[collector.ui]\nenabled = true\nadmin_key = \"very-s3cret\"\n[backends.c]\ntype = \"console\"\n";
    let file = write_config("ui-banner", text);
    let check = tidings().arg("check").arg(&file).output().unwrap();
    let tree = String::from_utf8(check.stdout).unwrap();
    assert!(
        tree.contains("collector ui at /ui (admin key set, redacted)"),
        "{tree}"
    );
    let (child, addr) = spawn_listening(|addr| {
        let mut command = tidings();
        command
            .args(["serve", "--listen", addr, "--config"])
            .arg(&file);
        command
    });
    signal(&child, "-TERM");
    let (status, _, stderr) = finish(child);
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("live view at http://{addr}/ui")),
        "{stderr}"
    );
    assert!(!stderr.contains("very-s3cret") && !tree.contains("very-s3cret"));
}

#[test]
fn compact_merges_the_objects_of_an_s3_prefix_reached_through_the_environment() {
    let server = tidings_test::S3Server::start("compact-cli");
    let (key, secret) = tidings_test::S3_TEST_KEY;
    let mut options = tidings_sink_file::StoreOptions::default();
    options.endpoint = Some(server.endpoint());
    options.region = Some("us-east-1".to_owned());
    options.access_key_id = Some(key.to_owned());
    options.secret_access_key = Some(secret.to_owned());
    options.allow_http = Some(true);
    let target = tidings_sink_file::ObjectTarget::s3("s3://compact-cli/web", &options).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for (name, lines) in [
            (
                "events-20261203T090000.000000Z-1-000001.jsonl",
                "{\"n\":1}\n{\"n\":2}\n",
            ),
            (
                "events-20261203T091500.000000Z-1-000002.jsonl",
                "{\"n\":3}\n",
            ),
        ] {
            target.put(name, lines.as_bytes().to_vec()).await.unwrap();
        }
    });
    let output = tidings()
        .args(["compact", "--path", "s3://compact-cli/web"])
        .env("AWS_ENDPOINT", server.endpoint())
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        "merged 2 files into 1 (3 lines)"
    );
    let names = runtime.block_on(target.list()).unwrap();
    assert_eq!(names.len(), 1, "{names:?}");

    let nowhere = tidings()
        .args(["compact", "--path", "s3:///no-bucket"])
        .output()
        .unwrap();
    assert_eq!(nowhere.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&nowhere.stderr).contains("s3://bucket/prefix"));
}
