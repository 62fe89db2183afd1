//! analytics.js (`@segment/analytics-next`, installed from npm by the test)
//! sends to the collector's Segment routes, and the browser snippet
//! (`GET /tidings.js`) runs, in real headless Chromium: a page
//! on another origin tracks a click (sent by fetch) and an event right
//! before it navigates away (sent by beacon on `pagehide`), and the
//! snippet's batching, splitting and fallbacks run against stubbed transports.
//!
//! Needs Chromium (`/usr/bin/chromium`, or the path in `CHROMIUM`;
//! `scripts/test` installs it): without it these tests fail, they never skip.
#![cfg(unix)]

mod support;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::collector;

/// The longest a browser may run before it is killed and the test fails.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(30);
const WRITE_KEY: &str = "browser-key";

/// One browser at a time: two Chromiums on a small machine slow each other.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

/// Fails, naming Chromium and how to install it, when it is missing.
fn require_chromium() {
    let _ = tidings_test::chromium();
}

/// A request the page server received.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    /// The path with its query.
    path: String,
    content_type: String,
    body: String,
}

/// A tiny HTTP/1.1 server for the test pages, on another origin than the
/// collector's. Records the requests (with their bodies); answers a `GET`
/// with a page (matched by path, without the query) or 404, and any `POST`
/// with 204.
struct Pages {
    addr: SocketAddr,
    requested: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Pages {
    /// Binds first, so the collector can allow the pages' origin before the
    /// pages, which name the collector, exist.
    fn bind() -> TcpListener {
        TcpListener::bind("127.0.0.1:0").unwrap()
    }

    fn serve(listener: TcpListener, pages: Vec<(&'static str, String)>) -> Self {
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let pages = Arc::new(pages);
        let requested = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requested, stop) = (requested.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (pages, requested) = (pages.clone(), requested.clone());
                            // Browsers open spare connections: one thread each.
                            std::thread::spawn(move || answer(stream, &pages, &requested));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Self {
            addr,
            requested,
            stop,
            thread: Some(thread),
        }
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The paths requested, in order.
    fn requested(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.path).collect()
    }

    /// The requests received, in order.
    fn requests(&self) -> Vec<Received> {
        self.requested
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The `POST`s to `path`.
    fn posts(&self, path: &str) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == path)
            .collect()
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one request on `stream`: a page, 404, or 204 for a `POST`.
fn answer(
    mut stream: TcpStream,
    pages: &[(&'static str, String)],
    requested: &Mutex<Vec<Received>>,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let header = |name: &str| {
        head.lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while data.len() < end + length {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    let mut words = head.split(' ');
    let method = words.next().unwrap_or("GET").to_owned();
    let path = words.next().unwrap_or("/").to_owned();
    requested
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Received {
            method: method.clone(),
            path: path.clone(),
            content_type: header("content-type").unwrap_or_default(),
            body: String::from_utf8_lossy(&data[end..end + length]).into_owned(),
        });
    let bare = path.split('?').next().unwrap_or_default();
    let (status, body) = if method == "POST" {
        ("204 No Content", "")
    } else {
        pages
            .iter()
            .find(|(p, _)| *p == bare)
            .map_or(("404 Not Found", ""), |(_, body)| ("200 OK", body.as_str()))
    };
    let content_type = if bare.ends_with(".js") {
        "text/javascript"
    } else {
        "text/html; charset=utf-8"
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

/// A headless Chromium with a fresh profile, in a process group of its own;
/// killed (with all its helpers) if still running when dropped.
struct Browser {
    child: Child,
    dir: PathBuf,
    exited: Option<ExitStatus>,
}

impl Browser {
    fn open(args: &[&str]) -> Self {
        static RUN: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tidings-chromium-{}-{}",
            std::process::id(),
            RUN.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let child = tidings_test::chromium_command(&dir)
            .args(args)
            .stdout(File::create(dir.join("stdout")).unwrap())
            .stderr(File::create(dir.join("stderr")).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start Chromium ({}): {e}",
                    tidings_test::chromium().display()
                )
            });
        Self {
            child,
            dir,
            exited: None,
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout")).unwrap_or_default()
    }

    /// Chromium's log: its errors and the page's console.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().unwrap();
        }
        self.exited.is_none()
    }

    /// Waits until `done` holds, failing with `diagnostics` if Chromium
    /// exits first or [`BROWSER_TIMEOUT`] passes.
    fn wait_until(
        &mut self,
        what: &str,
        mut done: impl FnMut() -> bool,
        diagnostics: impl Fn() -> String,
    ) {
        let started = Instant::now();
        while !done() {
            let running = self.running();
            assert!(
                running && started.elapsed() < BROWSER_TIMEOUT,
                "waited {:?} for {what}; Chromium {}\n{}\nChromium's log:\n{}",
                started.elapsed(),
                self.exited
                    .map_or_else(|| "still running".to_owned(), |s| format!("exited: {s}")),
                diagnostics(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for Chromium to exit by itself (`--dump-dom`), within
    /// [`BROWSER_TIMEOUT`]; returns what it printed.
    fn finish(mut self) -> String {
        let started = Instant::now();
        while self.running() {
            assert!(
                started.elapsed() < BROWSER_TIMEOUT,
                "Chromium did not exit within {BROWSER_TIMEOUT:?}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let status = self.exited.unwrap();
        assert!(
            status.success(),
            "Chromium failed ({status}); its log:\n{}",
            self.log()
        );
        self.stdout()
    }

    /// Asks Chromium to quit (SIGTERM), then kills its process group if it
    /// has not within 10 s.
    fn close(mut self) {
        signal("-TERM", &self.child.id().to_string());
        let started = Instant::now();
        while self.running() && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.running() {
            // The group holds the browser and the helpers it started.
            signal("-KILL", &format!("-{}", self.child.id()));
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends `signal` to `target` (a pid, or `-pgid` for a process group).
fn signal(signal: &str, target: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", target])
        .stderr(Stdio::null())
        .status();
}

/// The page: loads the snippet from the collector; on load, clicks a button
/// whose handler tracks `test.click` and flushes it (by fetch), then tracks
/// `test.leaving` and navigates away at once (by beacon, on `pagehide`).
fn leaving_page(collector: SocketAddr) -> String {
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>tidings browser test</title>
<script src="http://{collector}/tidings.js" data-write-key="{WRITE_KEY}"></script>
</head><body>
<button id="buy" type="button">Buy</button>
<script>
document.getElementById('buy').addEventListener('click', function () {{
  tidings.track('test.click', {{button: 'buy', n: 1}});
  tidings.flush();
}});
window.addEventListener('load', function () {{
  document.getElementById('buy').click();
  tidings.track('test.leaving', {{to: '/next.html'}});
  location.href = '/next.html';
}});
</script>
</body></html>
"#
    )
}

const NEXT_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>next</title></head>
<body><p id="arrived">arrived</p></body></html>
"#;

#[test]
fn a_click_goes_by_fetch_and_an_event_tracked_while_leaving_goes_by_beacon() {
    require_chromium();
    let _one = ONE_BROWSER.lock().unwrap_or_else(PoisonError::into_inner);
    let listener = Pages::bind();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let (served, sink, _) = collector(
        "browser-e2e",
        &format!("allowed_origins = [\"{origin}\"]\nwrite_keys = [\"{WRITE_KEY}\"]"),
    );
    let pages = Pages::serve(
        listener,
        vec![
            ("/page.html", leaving_page(served.addr)),
            ("/next.html", NEXT_PAGE.to_owned()),
        ],
    );
    assert_eq!(pages.origin(), origin);
    let page_url = format!("{origin}/page.html");

    let started = Instant::now();
    let mut browser = Browser::open(&[&page_url]);
    browser.wait_until(
        "both events at the collector and the navigation to /next.html",
        || sink.events().len() >= 2 && pages.requested().iter().any(|p| p == "/next.html"),
        || {
            format!(
                "events: {:?}\npages requested: {:?}\nmetrics:\n{}",
                sink.events()
                    .iter()
                    .map(|e| e.name().to_string())
                    .collect::<Vec<_>>(),
                pages.requested(),
                served.metrics_text()
            )
        },
    );
    eprintln!(
        "both events arrived {:?} after Chromium started",
        started.elapsed()
    );
    browser.close();

    let events = sink.events();
    let names: Vec<&str> = events.iter().map(|e| e.name().as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let event = |name: &str| {
        events
            .iter()
            .find(|e| e.name() == name)
            .unwrap_or_else(|| panic!("no {name} among {names:?}"))
    };
    let click = event("test.click");
    assert_eq!(
        click.context()["transport"],
        "fetch",
        "{:?}",
        click.context()
    );
    assert_eq!(click.data(), &json!({"button": "buy", "n": 1}));
    let leaving = event("test.leaving");
    assert_eq!(
        leaving.context()["transport"],
        "beacon",
        "{:?}",
        leaving.context()
    );
    assert_eq!(leaving.data(), &json!({"to": "/next.html"}));
    for e in [click, leaving] {
        assert_eq!(e.context()["url"], page_url.as_str());
        assert_eq!(e.context()["referrer"], "");
        assert!(e.received_at().is_some());
        let age = e.received_at().unwrap().unix_micros() - e.timestamp().unix_micros();
        assert!(
            (0..30_000_000).contains(&age),
            "the browser's timestamp is kept: {e:?}"
        );
    }
    assert_ne!(click.id(), leaving.id());
    let metrics = served.metrics_text();
    for line in [
        "tidings_collector_requests_total{route=\"/tidings.js\",status=\"200\"} 1",
        "tidings_collector_requests_total{route=\"/events\",status=\"202\"} 2",
        "tidings_collector_events_accepted_total 2",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    served.shutdown(Duration::from_secs(10)).unwrap();
}

/// The stubs a harness page runs against: `fetch`, `sendBeacon`, timers
/// and `console.warn` recorded, and `check(name, ok, detail)`.
const STUBS: &str = r#"
var sent = [], timers = [], warnings = [], checks = [], beaconAnswer = true;
var realSetTimeout = window.setTimeout.bind(window);
navigator.sendBeacon = function (url, body) {
  sent.push({via: 'beacon', url: url, body: body});
  return beaconAnswer;
};
window.fetch = function (url, init) {
  sent.push({via: 'fetch', url: url, body: init.body, keepalive: init.keepalive,
             type: init.headers['Content-Type'], credentials: init.credentials, method: init.method});
  return Promise.resolve({ok: true, status: 202});
};
window.setTimeout = function (fn, ms) { timers.push({fn: fn, ms: ms}); return timers.length; };
window.clearTimeout = function (id) { if (id) timers[id - 1].cleared = true; };
console.warn = function () { warnings.push([].join.call(arguments, ' ')); };
function check(name, ok, detail) {
  checks.push({name: name, ok: !!ok, detail: JSON.stringify(detail === undefined ? null : detail)});
}
// Lets the stubbed fetches settle (the snippet counts keepalive bytes in flight).
function settle() { return new Promise(function (resolve) { realSetTimeout(resolve, 0); }); }
function reset() { sent = []; timers = []; warnings = []; beaconAnswer = true; return settle(); }
function batch(i) { return JSON.parse(sent[i].body); }
function names(i) { return batch(i).map(function (e) { return e.name; }); }
function bytes(text) { return new Blob([text]).size; }
function pad(n) { return new Array(n + 1).join('x'); }
function leave() { window.dispatchEvent(new Event('pagehide')); }
var endpoint = 'http://COLLECTOR/events?write_key=KEY';
"#;

/// A page on another origin that loads the snippet, stubs its transports
/// ([`STUBS`]) and runs `checks` (the body of an async function), writing
/// one `{name, ok, detail}` per check into `#results`; the last check is
/// "the harness ran to the end". `COLLECTOR` and `KEY` in the text become
/// the collector's address and [`WRITE_KEY`].
fn harness(collector: SocketAddr, title: &str, checks: &str) -> String {
    let script = format!(
        "{STUBS}(async function () {{\ntry {{\n{checks}\n  check('the harness ran to the end', true);\n\
         }} catch (error) {{\n  check('the harness ran to the end', false, String(error && error.stack || error));\n}}\n\
         document.getElementById('results').textContent = JSON.stringify(checks);\n}})();\n"
    )
    .replace("COLLECTOR", &collector.to_string())
    .replace("KEY", WRITE_KEY);
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<script src="http://{collector}/tidings.js" data-write-key="{WRITE_KEY}"></script>
</head><body><pre id="results">not run</pre>
<script>{script}</script>
</body></html>
"#
    )
}

/// Serves `page` (a [`harness`]) from another origin, runs it in Chromium
/// with `--dump-dom`, fails with every failed check, and checks that the
/// checks run were `expected`, in order.
fn run_harness(page: String, expected: &[&str]) {
    let pages = Pages::serve(Pages::bind(), vec![("/harness.html", page)]);
    let url = format!("{}/harness.html", pages.origin());
    let browser = Browser::open(&["--virtual-time-budget=5000", "--dump-dom", &url]);
    let dom = browser.finish();
    let results = dom
        .split_once(r#"<pre id="results">"#)
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(text, _)| {
            text.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        })
        .unwrap_or_else(|| panic!("no #results in the page Chromium dumped:\n{dom}"));
    let checks: Vec<Value> = serde_json::from_str(&results)
        .unwrap_or_else(|e| panic!("#results is not the harness's JSON ({e}): {results}"));
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c["ok"] != true)
        .map(|c| {
            format!(
                "{}: {}",
                c["name"],
                c["detail"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert!(failed.is_empty(), "failed checks:\n{}", failed.join("\n"));
    let ran: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(ran, expected);
}

/// The snippet's batching, splitting and fallbacks on its default
/// reporter, the collector's `/events`.
const SNIPPET_CHECKS: &str = r#"
  for (var i = 0; i < 19; i++) tidings.track('batch.' + i, {i: i});
  check('19 events wait', sent.length === 0 && timers.length === 1, sent);
  check('the timer is 5000 ms', timers[0].ms === 5000, timers);
  tidings.track('batch.19', {i: 19});
  check('the 20th event flushes by fetch', sent.length === 1 && sent[0].via === 'fetch' && batch(0).length === 20, sent.length);
  check('flushing cancels the timer', timers[0].cleared === true, timers);
  var f = sent[0], e = batch(0)[0];
  check('fetch goes to the collector with the write key', f.url === endpoint, f.url);
  check('fetch is a keepalive text/plain POST without credentials',
        f.method === 'POST' && f.keepalive === true && f.type === 'text/plain;charset=UTF-8' && f.credentials === 'omit', f);
  check('an event has name, data, timestamp, id and context',
        e.name === 'batch.0' && e.data.i === 0 && new Date(e.timestamp).toISOString() === e.timestamp &&
        /^[0-9a-f-]{36}$/.test(e.id) && e.context.url === location.href &&
        e.context.referrer === document.referrer && e.context.transport === 'fetch', e);

  await reset();
  tidings.track('timer.one');
  check('one event waits for the timer', sent.length === 0 && timers.length === 1 && timers[0].ms === 5000, timers);
  timers[0].fn();
  check('the timer sends it by fetch', sent.length === 1 && sent[0].via === 'fetch' && names(0).join() === 'timer.one', sent);
  check('data defaults to {}', JSON.stringify(batch(0)[0].data) === '{}', batch(0));

  await reset();
  tidings.track('leave.one', {k: 1});
  leave();
  check('pagehide sends by beacon', sent.length === 1 && sent[0].via === 'beacon' && sent[0].url === endpoint, sent);
  check('a beacon marks its events', batch(0)[0].context.transport === 'beacon', batch(0));
  leave();
  check('an empty queue sends nothing', sent.length === 1, sent);

  await reset();
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: function () { return 'hidden'; }});
  tidings.track('hidden.one');
  document.dispatchEvent(new Event('visibilitychange'));
  tidings.track('hidden.two');
  tidings.flush();
  delete document.visibilityState;
  document.dispatchEvent(new Event('visibilitychange'));
  check('visibilitychange to hidden sends by beacon, and so does flush while hidden',
        sent.length === 2 && sent[0].via === 'beacon' && sent[1].via === 'beacon' &&
        names(0).join() === 'hidden.one' && names(1).join() === 'hidden.two', sent);

  await reset();
  for (var j = 0; j < 5; j++) tidings.track('split.' + j, {pad: pad(20000)});
  leave();
  var all = [], under = true;
  for (var k = 0; k < sent.length; k++) {
    all = all.concat(names(k));
    under = under && sent[k].via === 'beacon' && bytes(sent[k].body) < 65536;
  }
  check('a queue over 64 KiB goes in several beacons, each under 64 KiB, in order',
        sent.length === 2 && under && all.join() === 'split.0,split.1,split.2,split.3,split.4',
        sent.map(function (s) { return bytes(s.body); }));

  await reset();
  tidings.track('huge', {pad: pad(70000)});
  tidings.track('small');
  leave();
  check('an event over 64 KiB is dropped, the others sent',
        sent.length === 1 && names(0).join() === 'small', sent.length);
  check('the dropped event is warned about',
        warnings.length === 1 && warnings[0].indexOf('over 65536 bytes') >= 0 && warnings[0].indexOf('huge') >= 0, warnings);

  await reset();
  beaconAnswer = false;
  tidings.track('refused');
  leave();
  check('a refused beacon falls back to fetch keepalive',
        sent.length === 2 && sent[0].via === 'beacon' && sent[1].via === 'fetch' &&
        sent[1].keepalive === true && batch(1)[0].context.transport === 'fetch', sent);

  await reset();
  for (var m = 0; m < 3; m++) tidings.track('quota.' + m, {pad: pad(30000)});
  tidings.flush();
  check('fetches past the 64 KiB keepalive quota are plain fetches',
        sent.length === 2 && sent[0].keepalive === true && sent[1].keepalive === false &&
        names(0).join() === 'quota.0,quota.1' && names(1).join() === 'quota.2',
        sent.map(function (s) { return [s.keepalive, bytes(s.body)]; }));

  await reset();
  tidings.init({writeKey: 'other key&', context: {app: 'shop', url: 'overridden'}});
  tidings.track('init.one');
  tidings.flush();
  check('init sets the write key, url-encoded', sent[0].url === 'http://COLLECTOR/events?write_key=other%20key%26', sent[0].url);
  check('init adds context; the page url wins',
        batch(0)[0].context.app === 'shop' && batch(0)[0].context.url === location.href, batch(0));
  await reset();
  tidings.init({writeKey: null, endpoint: '/elsewhere'});
  tidings.track('init.two');
  tidings.flush();
  check('init without a key and with an endpoint', sent[0].url === location.origin + '/elsewhere', sent[0].url);
"#;

/// Every check the harness runs, in order.
const CHECKS: [&str; 23] = [
    "19 events wait",
    "the timer is 5000 ms",
    "the 20th event flushes by fetch",
    "flushing cancels the timer",
    "fetch goes to the collector with the write key",
    "fetch is a keepalive text/plain POST without credentials",
    "an event has name, data, timestamp, id and context",
    "one event waits for the timer",
    "the timer sends it by fetch",
    "data defaults to {}",
    "pagehide sends by beacon",
    "a beacon marks its events",
    "an empty queue sends nothing",
    "visibilitychange to hidden sends by beacon, and so does flush while hidden",
    "a queue over 64 KiB goes in several beacons, each under 64 KiB, in order",
    "an event over 64 KiB is dropped, the others sent",
    "the dropped event is warned about",
    "a refused beacon falls back to fetch keepalive",
    "fetches past the 64 KiB keepalive quota are plain fetches",
    "init sets the write key, url-encoded",
    "init adds context; the page url wins",
    "init without a key and with an endpoint",
    "the harness ran to the end",
];

#[test]
fn the_snippet_batches_splits_and_falls_back_as_documented() {
    require_chromium();
    let _one = ONE_BROWSER.lock().unwrap_or_else(PoisonError::into_inner);
    let (served, _sink, _) = collector("browser-harness", "");
    run_harness(
        harness(served.addr, "tidings.js checks", SNIPPET_CHECKS),
        &CHECKS,
    );
    served.shutdown(Duration::from_secs(10)).unwrap();
}

/// tachyon's API on stubbed transports: `reportEvent`, each reporter
/// (`spade`, `flume`, `console`, `events`, `multi`) and `init({reporters})`.
const REPORTER_CHECKS: &str = r#"
var infos = [];
console.info = function () { infos.push([].slice.call(arguments)); };
var r = tidings.reporters;
var FORM = 'application/x-www-form-urlencoded';
function field(i) { var m = /^data=([^&]*)$/.exec(sent[i].body); return m && decodeURIComponent(m[1]); }
function spadeBatch(i) {
  var bin = atob(field(i));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, function (c) { return c.charCodeAt(0); })));
}
function spadeNames(i) { return spadeBatch(i).map(function (e) { return e.event; }); }

tidings.reportEvent({event: 'default.one', properties: {k: 1}});
tidings.flush();
check('reportEvent goes to /events by default, as track does',
      sent.length === 1 && sent[0].url === endpoint && names(0).join() === 'default.one' &&
      batch(0)[0].data.k === 1 && batch(0)[0].context.url === location.href, sent);

await reset();
var bad = [undefined, null, 'video.play', {}, {event: ''}, {event: 7}, {event: 'x', properties: 'text'}, {event: 'x', properties: [1]}];
var threw = null;
bad.forEach(function (b) { try { tidings.reportEvent(b); } catch (e) { threw = String(e); } });
tidings.flush();
check('a bad reportEvent argument is warned about and dropped, never thrown',
      threw === null && sent.length === 0 && warnings.length === bad.length, {threw: threw, warnings: warnings});

await reset();
var sp = r.spade({batchSize: 3, flushInterval: 1000});
sp({event: 'spade.0', properties: {a: 'é+/'}});
sp({event: 'spade.1'});
check('spade waits for its batch size or its interval', sent.length === 0 && timers.length === 1 && timers[0].ms === 1000, timers);
sp({event: 'spade.2', properties: {}});
check('a full batch goes by fetch to the collector\'s /spade with the write key',
      sent.length === 1 && sent[0].via === 'fetch' && sent[0].url === 'http://COLLECTOR/spade?write_key=KEY', sent);
check('a spade fetch is a url-encoded keepalive POST without credentials',
      sent[0].type === FORM && sent[0].keepalive === true && sent[0].credentials === 'omit' && sent[0].method === 'POST', sent[0]);
check('field data is base64 of the JSON array of {event, properties}',
      JSON.stringify(spadeBatch(0)) === JSON.stringify([{event: 'spade.0', properties: {a: 'é+/'}},
        {event: 'spade.1', properties: {}}, {event: 'spade.2', properties: {}}]), spadeBatch(0));

await reset();
var big = r.spade({batchSize: 100});
for (var j = 0; j < 4; j++) big({event: 'big.' + j, properties: {pad: pad(20000)}});
leave();
var all = [], under = true;
for (var k = 0; k < sent.length; k++) {
  all = all.concat(spadeNames(k));
  under = under && sent[k].via === 'beacon' && bytes(sent[k].body) < 65536 && /^data=/.test(sent[k].body);
}
check('on pagehide spade sends data=... beacons, each under 64 KiB, in order',
      sent.length === 2 && under && all.join() === 'big.0,big.1,big.2,big.3',
      sent.map(function (s) { return [s.via, bytes(s.body)]; }));
await reset();
big({event: 'huge', properties: {pad: pad(60000)}});
big({event: 'small'});
leave();
check('a spade event over 64 KiB encoded is dropped with a warning, the others sent',
      sent.length === 1 && spadeNames(0).join() === 'small' && warnings.length === 1 && warnings[0].indexOf('huge') >= 0, warnings);
await reset();
beaconAnswer = false;
big({event: 'refused'});
leave();
check('a refused spade beacon falls back to a url-encoded fetch',
      sent.length === 2 && sent[1].via === 'fetch' && sent[1].type === FORM && spadeNames(1).join() === 'refused', sent);

await reset();
var answers = [null, 'https://ingest.test/a', null, 'throw', 'https://ingest.test/b'];
var provided = r.spade({batchSize: 1, url: function () {
  var a = answers.shift();
  if (a === 'throw') throw new Error('the provider is down');
  return a;
}});
for (var n = 0; n < 5; n++) provided({event: 'provided.' + n});
check('a URL provider: the collector\'s /spade before its first answer, then its answer, the last good one when it fails',
      sent.map(function (s) { return s.url; }).join() ===
        ['http://COLLECTOR/spade?write_key=KEY', 'https://ingest.test/a', 'https://ingest.test/a',
         'https://ingest.test/a', 'https://ingest.test/b'].join(),
      sent.map(function (s) { return s.url; }));

await reset();
var fl = r.flume({path: '/mirror', allowedProperties: ['channel', 'player.quality', 'deep.a.b', 'bad..path']});
check('an allowlist path with an empty segment is warned about', warnings.length === 1 && warnings[0].indexOf('bad..path') >= 0, warnings);
fl({event: 'video.play', properties: {channel: 'c', login: 'pii@example.com', channels: 1,
    player: {quality: '720p', volume: 5}, deep: {a: {b: [1], c: 2}, d: 3}}});
check('flume posts each event at once: a url-encoded keepalive form to the page\'s origin',
      sent.length === 1 && sent[0].via === 'fetch' && sent[0].url === location.origin + '/mirror' &&
      sent[0].type === FORM && sent[0].keepalive === true && sent[0].credentials === 'same-origin', sent);
check('flume\'s data holds the event with only the allowed properties; dotted paths reach into objects',
      field(0) === JSON.stringify({event: 'video.play', properties: {channel: 'c', player: {quality: '720p'}, deep: {a: {b: [1]}}}}),
      field(0));
fl({event: 'flat', properties: {player: 'not an object', deep: {a: 1}}});
fl({event: 'none'});
check('a path whose parent is not an object keeps nothing',
      field(1) === JSON.stringify({event: 'flat', properties: {deep: {}}}) &&
      field(2) === JSON.stringify({event: 'none', properties: {}}), [field(1), field(2)]);
await reset();
var off = r.flume({path: 'http://elsewhere.test/flume', allowedProperties: ['a']});
off({event: 'x', properties: {a: 1}});
check('a flume path on another origin is refused with a warning; nothing is sent',
      sent.length === 0 && warnings.length === 1 && warnings[0].indexOf('http://elsewhere.test/flume') >= 0, warnings);

await reset();
r.console()({event: 'shown', properties: {a: 1}});
check('the console reporter logs each event with console.info',
      infos.length === 1 && infos[0][0] === 'tidings: shown' && infos[0][1].a === 1, infos);

await reset();
var ev = r.events({endpoint: '/other-events', writeKey: 'k2', batchSize: 2, context: {app: 'web'}});
ev({event: 'ev.0', properties: {}});
ev({event: 'ev.1'});
check('the /events transport is a reporter too, with its own endpoint, key, batch size and context',
      sent.length === 1 && sent[0].url === location.origin + '/other-events?write_key=k2' &&
      names(0).join() === 'ev.0,ev.1' && batch(0)[0].context.app === 'web' && batch(0)[1].context.url === location.href, sent);

await reset();
var got = [];
var queued = r.spade({batchSize: 10});
tidings.init({reporters: [
  function (e) { got.push('first:' + e.event); },
  function () { throw new Error('a broken reporter'); },
  'not a reporter',
  r.multi([function (e) { got.push('nested:' + e.event); }, queued])
]});
check('init warns about what is not a reporter', warnings.length === 1 && warnings[0].indexOf('not a reporter') >= 0, warnings);
tidings.reportEvent({event: 'fan.out', properties: {n: 1}});
tidings.track('tracked.too', {n: 2});
check('init({reporters}) installs a fan-out: each reporter gets every event, and one throwing stops none',
      got.join() === 'first:fan.out,nested:fan.out,first:tracked.too,nested:tracked.too' &&
      warnings.length === 3 && warnings[1].indexOf('a broken reporter') >= 0, {got: got, warnings: warnings});
tidings.flush();
check('tidings.flush() sends every reporter\'s queue; the default /events reporter is no longer installed',
      sent.length === 1 && sent[0].url === 'http://COLLECTOR/spade?write_key=KEY' && spadeNames(0).join() === 'fan.out,tracked.too', sent);
"#;

/// Every check of [`REPORTER_CHECKS`], in order.
const REPORTER_CHECK_NAMES: [&str; 21] = [
    "reportEvent goes to /events by default, as track does",
    "a bad reportEvent argument is warned about and dropped, never thrown",
    "spade waits for its batch size or its interval",
    "a full batch goes by fetch to the collector's /spade with the write key",
    "a spade fetch is a url-encoded keepalive POST without credentials",
    "field data is base64 of the JSON array of {event, properties}",
    "on pagehide spade sends data=... beacons, each under 64 KiB, in order",
    "a spade event over 64 KiB encoded is dropped with a warning, the others sent",
    "a refused spade beacon falls back to a url-encoded fetch",
    "a URL provider: the collector's /spade before its first answer, then its answer, the last good one when it fails",
    "an allowlist path with an empty segment is warned about",
    "flume posts each event at once: a url-encoded keepalive form to the page's origin",
    "flume's data holds the event with only the allowed properties; dotted paths reach into objects",
    "a path whose parent is not an object keeps nothing",
    "a flume path on another origin is refused with a warning; nothing is sent",
    "the console reporter logs each event with console.info",
    "the /events transport is a reporter too, with its own endpoint, key, batch size and context",
    "init warns about what is not a reporter",
    "init({reporters}) installs a fan-out: each reporter gets every event, and one throwing stops none",
    "tidings.flush() sends every reporter's queue; the default /events reporter is no longer installed",
    "the harness ran to the end",
];

#[test]
fn the_reporters_batch_filter_and_fan_out_as_documented() {
    require_chromium();
    let _one = ONE_BROWSER.lock().unwrap_or_else(PoisonError::into_inner);
    let (served, _sink, _) = collector("browser-reporters", "");
    run_harness(
        harness(served.addr, "tidings.js reporter checks", REPORTER_CHECKS),
        &REPORTER_CHECK_NAMES,
    );
    served.shutdown(Duration::from_secs(10)).unwrap();
}

/// The properties the tachyon page's flume mirror may send.
const ALLOWED: &str = "['channel', 'player.quality']";

/// A page moved from tachyon: one `multi` reporter with console, a broken
/// reporter, spade (batches of 3) and flume; two bad `reportEvent` calls;
/// on load, four events, the last right before it navigates away. It spies
/// on `console`, `sendBeacon` and `fetch` (passing calls through) and keeps
/// what it saw in `sessionStorage`, which the next page posts back.
fn tachyon_page(collector: SocketAddr) -> String {
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>tachyon moved to tidings</title>
<script src="http://{collector}/tidings.js" data-write-key="{WRITE_KEY}"></script>
</head><body>
<script>
var seen = {{logged: [], warnings: [], beacons: [], fetches: [], threw: null}};
function keep() {{ sessionStorage.setItem('seen', JSON.stringify(seen)); }}
console.info = function () {{ seen.logged.push([].slice.call(arguments)); keep(); }};
console.warn = function () {{ seen.warnings.push([].join.call(arguments, ' ')); keep(); }};
var realBeacon = navigator.sendBeacon.bind(navigator);
navigator.sendBeacon = function (url, body) {{
  seen.beacons.push({{url: url, body: body}});
  keep();
  return realBeacon(url, body);
}};
var realFetch = window.fetch.bind(window);
window.fetch = function (url, init) {{
  seen.fetches.push({{url: url, type: init.headers['Content-Type'], keepalive: init.keepalive}});
  keep();
  return realFetch(url, init);
}};
var r = tidings.reporters;
tidings.init({{reporters: [r.multi([
  r.console(),
  function () {{ throw new Error('a broken reporter'); }},
  r.spade({{batchSize: 3}}),
  r.flume({{path: '/flume', allowedProperties: {ALLOWED}}})
])]}});
try {{
  tidings.reportEvent({{properties: {{channel: 'c'}}}});
  tidings.reportEvent('video.play');
}} catch (e) {{
  seen.threw = String(e);
}}
window.addEventListener('load', function () {{
  tidings.reportEvent({{event: 'video.play', properties: {{channel: 'c', login: 'someone@example.com', player: {{quality: '720p', volume: 5}}}}}});
  tidings.reportEvent({{event: 'video.pause', properties: {{channel: 'c', position: 12}}}});
  tidings.reportEvent({{event: 'chat.send', properties: {{channel: 'c', text: 'hello'}}}});
  tidings.reportEvent({{event: 'page.leave', properties: {{channel: 'c', to: '/next.html'}}}});
  keep();
  location.href = '/next.html';
}});
</script>
</body></html>
"#
    )
}

/// Posts what the previous page saw (`sessionStorage`) to `/report`.
const REPORT_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>next</title></head>
<body><script>
fetch('/report', {method: 'POST', body: sessionStorage.getItem('seen') || 'nothing kept'});
</script></body></html>
"#;

/// The JSON in form field `data` of a url-encoded body.
fn form_data(body: &str) -> Value {
    let fields: Vec<(String, String)> = serde_urlencoded::from_str(body).unwrap();
    assert_eq!(fields.len(), 1, "{fields:?}");
    assert_eq!(fields[0].0, "data");
    serde_json::from_str(&fields[0].1).unwrap()
}

/// The events in a Spade body: `data=` base64 JSON.
fn spade_data(body: &str) -> Value {
    use base64::Engine;
    let fields: Vec<(String, String)> = serde_urlencoded::from_str(body).unwrap();
    assert_eq!(fields.len(), 1, "{fields:?}");
    let json = base64::engine::general_purpose::STANDARD
        .decode(&fields[0].1)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

#[test]
fn report_event_fans_out_to_console_spade_and_flume_and_a_leaving_event_goes_by_beacon() {
    require_chromium();
    let _one = ONE_BROWSER.lock().unwrap_or_else(PoisonError::into_inner);
    let listener = Pages::bind();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let (served, sink, _) = collector(
        "browser-tachyon",
        &format!("allowed_origins = [\"{origin}\"]\nwrite_keys = [\"{WRITE_KEY}\"]"),
    );
    let pages = Pages::serve(
        listener,
        vec![
            ("/tachyon.html", tachyon_page(served.addr)),
            ("/next.html", REPORT_PAGE.to_owned()),
        ],
    );
    let mut browser = Browser::open(&[&format!("{origin}/tachyon.html")]);
    browser.wait_until(
        "four events at the collector, four flume posts and the next page's report",
        || {
            sink.events().len() >= 4
                && pages.posts("/flume").len() >= 4
                && !pages.posts("/report").is_empty()
        },
        || {
            format!(
                "events: {:?}\npage server: {:?}\nmetrics:\n{}",
                sink.events()
                    .iter()
                    .map(|e| e.name().to_string())
                    .collect::<Vec<_>>(),
                pages.requests(),
                served.metrics_text()
            )
        },
    );
    browser.close();
    let spade_url = format!("http://{}/spade?write_key={WRITE_KEY}", served.addr);
    let metrics = served.metrics_text();
    served.shutdown(Duration::from_secs(10)).unwrap();

    // Spade: every event once, whole (Spade is first-party: no allowlist).
    let mut events: Vec<(String, Value)> = sink
        .events()
        .iter()
        .map(|e| (e.name().to_string(), e.data().clone()))
        .collect();
    events.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        events,
        [
            ("chat.send", json!({"channel": "c", "text": "hello"})),
            ("page.leave", json!({"channel": "c", "to": "/next.html"})),
            ("video.pause", json!({"channel": "c", "position": 12})),
            (
                "video.play",
                json!({"channel": "c", "login": "someone@example.com", "player": {"quality": "720p", "volume": 5}})
            ),
        ]
        .map(|(name, data)| (name.to_owned(), data))
    );
    for line in [
        "tidings_collector_requests_total{route=\"/spade\",status=\"202\"} 2",
        "tidings_collector_events_accepted_total 4",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    assert!(!metrics.contains("route=\"/events\""), "{metrics}");

    // Flume: one url-encoded POST per event to the page's origin, allowed
    // properties only.
    let flume = pages.posts("/flume");
    assert!(
        flume
            .iter()
            .all(|p| p.content_type == "application/x-www-form-urlencoded"),
        "{flume:?}"
    );
    // Concurrent requests: they may arrive in any order.
    let mut mirrored: Vec<Value> = flume.iter().map(|p| form_data(&p.body)).collect();
    mirrored.sort_by_key(|m| m["event"].as_str().map(str::to_owned));
    assert_eq!(
        mirrored,
        [
            json!({"event": "chat.send", "properties": {"channel": "c"}}),
            json!({"event": "page.leave", "properties": {"channel": "c"}}),
            json!({"event": "video.pause", "properties": {"channel": "c"}}),
            json!({"event": "video.play", "properties": {"channel": "c", "player": {"quality": "720p"}}}),
        ]
    );

    // What the page saw.
    let report = pages.posts("/report");
    let seen: Value = serde_json::from_str(&report[0].body)
        .unwrap_or_else(|e| panic!("the next page reported {:?} ({e})", report[0].body));
    assert_eq!(seen["threw"], Value::Null, "{seen}");
    let warnings: Vec<&str> = seen["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let count = |needle: &str| warnings.iter().filter(|w| w.contains(needle)).count();
    assert_eq!(count("reportEvent takes {event"), 2, "{warnings:?}");
    assert_eq!(
        count("a reporter failed Error: a broken reporter"),
        4,
        "{warnings:?}"
    );
    assert_eq!(warnings.len(), 6, "{warnings:?}");
    let logged: Vec<&Value> = seen["logged"].as_array().unwrap().iter().collect();
    assert_eq!(
        logged,
        [
            &json!(["tidings: video.play", {"channel": "c", "login": "someone@example.com", "player": {"quality": "720p", "volume": 5}}]),
            &json!(["tidings: video.pause", {"channel": "c", "position": 12}]),
            &json!(["tidings: chat.send", {"channel": "c", "text": "hello"}]),
            &json!(["tidings: page.leave", {"channel": "c", "to": "/next.html"}]),
        ]
    );
    let beacons = seen["beacons"].as_array().unwrap();
    assert_eq!(beacons.len(), 1, "one beacon, on pagehide: {seen}");
    assert_eq!(beacons[0]["url"], spade_url.as_str(), "{seen}");
    assert_eq!(
        spade_data(beacons[0]["body"].as_str().unwrap()),
        json!([{"event": "page.leave", "properties": {"channel": "c", "to": "/next.html"}}])
    );
    let fetches = seen["fetches"].as_array().unwrap();
    let spade_fetches: Vec<&Value> = fetches
        .iter()
        .filter(|f| f["url"] == spade_url.as_str())
        .collect();
    assert_eq!(spade_fetches.len(), 1, "the batch of three: {seen}");
    assert_eq!(
        (&spade_fetches[0]["type"], &spade_fetches[0]["keepalive"]),
        (&json!("application/x-www-form-urlencoded"), &json!(true))
    );
    assert_eq!(
        fetches.len(),
        5,
        "one Spade batch and four flume posts: {seen}"
    );

    // The collector's own /flume takes the mirror's bodies as they are.
    let (mirror, _, log) = collector("browser-tachyon-flume", "");
    for post in &flume {
        let (status, answer) = support::http(
            mirror.addr,
            "POST",
            "/flume",
            &[("content-type", &post.content_type)],
            post.body.as_bytes(),
        );
        assert_eq!((status, answer.as_str()), (202, r#"{"accepted":1}"#));
    }
    let lines: Vec<Value> = log
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(
        lines.contains(
            &json!({"message": "video.play", "context": {"channel": "c", "player": {"quality": "720p"}}})
        ),
        "{lines:?}"
    );
    mirror.shutdown(Duration::from_secs(10)).unwrap();
}

/// Fills the pressed collector's queue with events named `prefill`, until
/// it answers 503: what the browser sends next meets a full pipeline.
fn fill(served: &support::Served) {
    let batch =
        json!([{"name": "prefill"}, {"name": "prefill"}, {"name": "prefill"}, {"name": "prefill"}])
            .to_string();
    for _ in 0..100 {
        let (status, _) = support::http(
            served.addr,
            "POST",
            "/events",
            &[
                ("content-type", "application/json"),
                ("x-write-key", SEGMENT_KEY),
            ],
            batch.as_bytes(),
        );
        if status == 503 {
            return;
        }
        assert_eq!(status, 202);
    }
    panic!("the pressed collector never filled");
}

/// The analytics.js the test installs: what it was written against.
const ANALYTICS_NEXT: &str = "@segment/analytics-next@1.84.3";
const SEGMENT_KEY: &str = "ajs-write-key";

/// A page that loads analytics.js (its UMD bundle, from the page's own
/// origin) pointed at the collector, with `strategy` (a JSON
/// `deliveryStrategy`, or `null` for one request per call), and makes 24
/// calls of four kinds.
fn analytics_js_page(collector: SocketAddr, strategy: &str) -> String {
    format!(
        r#"<!doctype html>
<html><head><title>calling</title><script src="/analytics.js"></script></head><body><script>
const key = "{SEGMENT_KEY}";
const analytics = AnalyticsNext.AnalyticsBrowser.load({{
  writeKey: key,
  cdnURL: location.origin,
  cdnSettings: {{ integrations: {{ "Segment.io": {{
    apiKey: key, apiHost: "{collector}/v1", protocol: "http", deliveryStrategy: {strategy}
  }} }} }}
}});
analytics.identify("user-1", {{ plan: "pro" }});
analytics.page("Docs", "Install", {{ path: "/install" }});
for (let i = 0; i < 20; i++) analytics.track("Item Viewed", {{ i }});
analytics.group("group-9", {{ name: "Acme" }});
analytics.alias("user-1", "anon-1");
document.title = "called";
</script></body></html>"#
    )
}

#[test]
fn analytics_js_calls_arrive_once_each_batched_through_503s_and_one_by_one() {
    require_chromium();
    let bundle = support::npm_package(ANALYTICS_NEXT).join("dist/umd/index.js");
    let bundle =
        std::fs::read_to_string(&bundle).unwrap_or_else(|e| panic!("{}: {e}", bundle.display()));
    let _one = ONE_BROWSER.lock().unwrap_or_else(PoisonError::into_inner);
    for (strategy, pressed) in [
        (
            r#"{"strategy": "batching", "config": {"size": 5, "timeout": 200}}"#,
            true,
        ),
        ("null", false),
    ] {
        let listener = Pages::bind();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let options = format!("allowed_origins = [\"{origin}\"]");
        let id = format!("browser-ajs-{pressed}");
        let (served, sink) = if pressed {
            let served =
                support::pressed_collector(&id, SEGMENT_KEY, &options, Duration::from_secs(3));
            fill(&served);
            (served, tidings_test::memory_sink(&id))
        } else {
            let (served, sink, _) =
                collector(&id, &format!("{options}\nwrite_keys = [\"{SEGMENT_KEY}\"]"));
            (served, sink)
        };
        let pages = Pages::serve(
            listener,
            vec![
                ("/analytics.js", bundle.clone()),
                ("/page.html", analytics_js_page(served.addr, strategy)),
            ],
        );
        let mut browser = Browser::open(&[&format!("{origin}/page.html")]);
        let ajs = || {
            sink.events()
                .into_iter()
                .filter(|e| e.name() != "prefill")
                .collect::<Vec<_>>()
        };
        browser.wait_until(
            &format!("24 events from analytics.js ({strategy})"),
            || ajs().len() >= 24,
            || {
                format!(
                    "events: {:?}\npage server: {:?}\nmetrics:\n{}",
                    sink.events()
                        .iter()
                        .map(|e| e.name().to_string())
                        .collect::<Vec<_>>(),
                    pages.requests().iter().map(|r| &r.path).collect::<Vec<_>>(),
                    served.metrics_text()
                )
            },
        );
        // Room for a duplicate to show up, had a retry resent a batch.
        std::thread::sleep(Duration::from_millis(500));
        browser.close();
        let metrics = served.metrics_text();
        served.shutdown(Duration::from_secs(10)).unwrap();
        let events = ajs();
        assert_eq!(events.len(), 24, "{strategy}: every call once");
        let mut ids: Vec<String> = events.iter().map(|e| e.id().to_string()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 24, "24 distinct messageIds");
        let count = |name: &str| events.iter().filter(|e| e.name() == name).count();
        assert_eq!(
            [
                count("Item Viewed"),
                count("segment.identify"),
                count("segment.page"),
                count("segment.group"),
                count("segment.alias")
            ],
            [20, 1, 1, 1, 1]
        );
        let mut seen: Vec<u64> = events
            .iter()
            .filter(|e| e.name() == "Item Viewed")
            .map(|e| e.data()["properties"]["i"].as_u64().unwrap())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..20).collect::<Vec<_>>());
        for event in &events {
            assert_eq!(
                event.context()["library"]["name"],
                "analytics.js",
                "{event:?}"
            );
            assert!(event.data()["anonymousId"].is_string(), "{event:?}");
            assert!(event.data().get("writeKey").is_none());
            assert!(
                event.context()["page"]["url"]
                    .as_str()
                    .is_some_and(|u| u.starts_with(&origin)),
                "{event:?}"
            );
        }
        let identify = events
            .iter()
            .find(|e| e.name() == "segment.identify")
            .unwrap();
        assert_eq!(identify.data()["traits"]["plan"], "pro");
        assert_eq!(identify.data()["userId"], "user-1");
        let alias = events.iter().find(|e| e.name() == "segment.alias").unwrap();
        assert_eq!(alias.data()["previousId"], "anon-1");
        let route = if pressed { "/v1/batch" } else { "/v1/track" };
        assert!(
            metrics.contains(&format!("route=\"{route}\",status=\"200\"")),
            "{route}: {metrics}"
        );
        if pressed {
            assert!(
                metrics.contains("route=\"/v1/batch\",status=\"503\""),
                "the collector never pushed back: {metrics}"
            );
        }
    }
}
