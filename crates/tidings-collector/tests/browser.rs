//! The browser snippet (`GET /tidings.js`) in real headless Chromium: a page
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

/// A tiny HTTP/1.1 server for the test pages, on another origin than the
/// collector's. Records the paths requested.
struct Pages {
    addr: SocketAddr,
    requested: Arc<Mutex<Vec<String>>>,
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

    fn requested(&self) -> Vec<String> {
        self.requested
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
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

/// Answers one request on `stream` with a page, or 404.
fn answer(mut stream: TcpStream, pages: &[(&'static str, String)], requested: &Mutex<Vec<String>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
    requested
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(path.clone());
    let (status, body) = pages
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(("404 Not Found", ""), |(_, body)| ("200 OK", body.as_str()));
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
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

/// Runs the snippet against stubbed `fetch`, `sendBeacon`, timers and
/// `console.warn`, and writes one `{name, ok, detail}` per check into
/// `#results`.
fn harness_page(collector: SocketAddr) -> String {
    let harness = r#"
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
(async function () {
try {
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
  check('the harness ran to the end', true);
} catch (error) {
  check('the harness ran to the end', false, String(error && error.stack || error));
}
document.getElementById('results').textContent = JSON.stringify(checks);
})();
"#
    .replace("COLLECTOR", &collector.to_string())
    .replace("KEY", WRITE_KEY);
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>tidings.js checks</title>
<script src="http://{collector}/tidings.js" data-write-key="{WRITE_KEY}"></script>
</head><body><pre id="results">not run</pre>
<script>{harness}</script>
</body></html>
"#
    )
}

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
    let listener = Pages::bind();
    let (served, _sink, _) = collector("browser-harness", "");
    let pages = Pages::serve(listener, vec![("/harness.html", harness_page(served.addr))]);
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
    assert_eq!(ran, CHECKS);
    served.shutdown(Duration::from_secs(10)).unwrap();
}
