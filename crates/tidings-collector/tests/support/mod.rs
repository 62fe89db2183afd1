//! Shared helpers for the collector's tests: a collector over `memory`
//! sinks, served on an ephemeral port, and a minimal HTTP/1.1 client over
//! real sockets.

#![allow(dead_code)] // each test file uses part of the support module

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use tidings_collector::Collector;
use tidings_config::{Registry, load};
use tidings_test::{MemorySinkType, RecordingSink, SharedBuffer, memory_sink};

pub(crate) fn registry() -> Registry {
    let mut registry = Registry::default();
    registry.register_sink::<MemorySinkType>();
    registry
}

/// A collector served on 127.0.0.1 on an ephemeral port, by a thread of its own.
pub(crate) struct Served {
    pub(crate) collector: Collector,
    pub(crate) addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl Served {
    pub(crate) fn start(collector: Collector) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (tx, rx) = std::sync::mpsc::channel();
        let server = {
            let collector = collector.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                    tx.send(listener.local_addr().unwrap()).unwrap();
                    collector
                        .serve(listener, async { drop(stopped.await) })
                        .await
                        .unwrap();
                });
            })
        };
        let addr = rx.recv().unwrap();
        Self {
            collector,
            addr,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Stops serving, then drains the pipeline within `timeout`.
    pub(crate) fn shutdown(mut self, timeout: Duration) -> Result<(), tidings_routing::DrainError> {
        self.stop_serving();
        self.collector.shutdown(timeout)
    }

    fn stop_serving(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }

    pub(crate) fn metrics_text(&self) -> String {
        self.collector.metrics_text()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop_serving();
    }
}

/// A served collector whose only backend is the memory sink `id`, with
/// `collector_options` (lines of the `[collector]` table). Returns it, its
/// sink, and the captured `/flume` log.
pub(crate) fn collector(
    id: &str,
    collector_options: &str,
) -> (Served, RecordingSink, SharedBuffer) {
    let text = format!(
        "[collector]\n{collector_options}\n[backends.mem]\ntype = \"memory\"\nid = \"{id}\"\nflush_interval_ms = 10\n"
    );
    let config = load(&text, &registry()).unwrap();
    let log = SharedBuffer::default();
    let collector = Collector::from_config(&config)
        .unwrap()
        .with_flume_log(log.clone());
    (Served::start(collector), memory_sink(id), log)
}

/// A POST request with a content type.
pub(crate) fn post(uri: &str, content_type: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post(uri)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .unwrap()
}

/// A request without a body.
pub(crate) fn request(method: &str, uri: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Sends `request` to the served collector over TCP; returns the status,
/// headers and body as text.
pub(crate) fn send(served: &Served, request: Request<Full<Bytes>>) -> (u16, HeaderMap, String) {
    let (parts, body) = request.into_parts();
    let body = futures_body(body);
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    exchange(served.addr, parts.method.as_str(), &path, &headers, &body)
}

fn futures_body(body: Full<Bytes>) -> Vec<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(body.collect())
        .unwrap()
        .to_bytes()
        .to_vec()
}

/// A served collector whose intake queue holds 5 events and whose only sink,
/// the memory sink `id`, never answers and blocks its feeder: the queue
/// fills after a few events and every later request is answered 503.
pub(crate) fn stuck_collector(id: &str) -> Served {
    let text = format!(
        "[collector]\nqueue_capacity = 5\n[backends.stuck]\ntype = \"memory\"\nid = \"{id}\"\n\
         queue_capacity = 1\nwhen_full = \"block\"\nblock_timeout_ms = 60000\nmax_events = 1\n"
    );
    tidings_test::install_memory_sink(id, RecordingSink::scripted([tidings_test::Answer::Hang]));
    let config = tidings_config::load(&text, &registry()).unwrap();
    Served::start(tidings_collector::Collector::from_config(&config).unwrap())
}

/// One install of a third-party client at a time (tests run in parallel).
pub(crate) static INSTALL: Mutex<()> = Mutex::new(());

/// Where the tests install the third-party clients they run (Segment's
/// libraries, from PyPI and npm): under `target/tmp`, kept between runs.
pub(crate) fn tools() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("segment-clients")
}

/// Runs `command` to its end; fails, with its output, if it fails.
pub(crate) fn run(command: &mut Command, what: &str) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} ({command:?}): {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The directory of the npm package `package` (`name@version`), installed
/// from the npm registry under [`tools`] on first use. Its `node_modules`
/// is the parent's parent (for a scoped name) or its parent.
pub(crate) fn npm_package(package: &str) -> PathBuf {
    let _one = INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tools().join("node");
    let name = package.rsplit_once('@').map_or(package, |(name, _)| name);
    let installed = dir.join("node_modules").join(name);
    if !installed.join("package.json").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        run(
            Command::new("npm").current_dir(&dir).args([
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                package,
            ]),
            &format!("npm install {package} (needs node, npm and the npm registry)"),
        );
    }
    installed
}

/// A served collector requiring `write_key`, with `options` (more lines of
/// its `[collector]` table), whose memory sink `id` refuses its first two
/// batches with a 503 (retried after `pause`), behind small queues (40
/// events in the collector's): the collector's intake fills while the
/// sink waits, and requests are answered 503 until it drains.
pub(crate) fn pressed_collector(
    id: &str,
    write_key: &str,
    options: &str,
    pause: Duration,
) -> Served {
    tidings_test::install_memory_sink(
        id,
        RecordingSink::scripted([
            tidings_test::Answer::Status(503, Some(pause)),
            tidings_test::Answer::Status(503, Some(pause)),
        ]),
    );
    let text = format!(
        "[collector]\nqueue_capacity = 40\nwrite_keys = [\"{write_key}\"]\n{options}\n\
         [backends.mem]\ntype = \"memory\"\nid = \"{id}\"\nqueue_capacity = 10\nmax_events = 10\n\
         when_full = \"block\"\nblock_timeout_ms = 60000\nflush_interval_ms = 10\n"
    );
    let config = tidings_config::load(&text, &registry()).unwrap();
    Served::start(Collector::from_config(&config).unwrap())
}

/// Waits until `sink` has at least `n` events (or fails after 10 s).
pub(crate) fn wait_for(sink: &RecordingSink, n: usize) {
    let started = std::time::Instant::now();
    while sink.events().len() < n {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "only {} of {n} events arrived",
            sink.events().len()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One HTTP/1.1 request over a fresh connection; returns the status,
/// headers and body.
pub(crate) fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, HeaderMap, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| {
            (
                HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
                HeaderValue::from_str(v.trim()).unwrap(),
            )
        })
        .collect();
    (status, headers, body.to_owned())
}

/// [`exchange`] returning the status and body only.
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let (status, _, body) = exchange(addr, method, path, headers, body);
    (status, body)
}

/// The `tidings` binary of this build.
pub(crate) fn tidings() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tidings"))
}

/// Writes a config file for a test named `name`; returns its path.
pub(crate) fn write_config(name: &str, text: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("tidings-test-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

/// Spawns the `tidings serve` that `command(addr)` builds for a free
/// address, with piped output, and waits until it listens. Should another
/// process take the port first (the child then exits), it tries another.
pub(crate) fn spawn_listening(
    command: impl Fn(&str) -> Command,
) -> (std::process::Child, SocketAddr) {
    for _ in 0..5 {
        let addr = free_addr();
        let mut child = command(&addr)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let socket: SocketAddr = addr.parse().unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
                assert!(
                    stderr.contains("cannot listen"),
                    "the collector exited ({status}) before listening:\n{stderr}"
                );
                break; // the port was taken meanwhile: try another
            }
            if TcpStream::connect(socket).is_ok() {
                return (child, socket);
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the collector did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("no free port found for the collector in 5 tries")
}

/// A free port on 127.0.0.1, as `127.0.0.1:PORT`.
pub(crate) fn free_addr() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// `tidings serve` with the config `text` (written for test `name`) on a
/// free port, started and listening.
pub(crate) fn serve_config(name: &str, text: &str) -> (std::process::Child, SocketAddr) {
    let path = write_config(name, text);
    spawn_listening(|addr| {
        let mut command = tidings();
        command
            .args(["serve", "--config"])
            .arg(&path)
            .args(["--listen", addr]);
        command
    })
}

/// Sends `signal` (`-TERM`, `-KILL`) to `child`.
pub(crate) fn signal(child: &std::process::Child, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Waits for `child` to exit; its status, stdout and stderr.
pub(crate) fn finish(mut child: std::process::Child) -> (std::process::ExitStatus, String, String) {
    let status = child.wait().unwrap();
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stdout, stderr)
}
