//! The live view's page (`/ui`) in real headless Chromium, driven over the
//! DevTools protocol: the admin key typed once, events posted to `/events`
//! appearing in the tail, the chart, the refused requests and the sinks'
//! health, the name filter, the pause button, a wrong key sending the page
//! back to its key form; and a screenshot saved as `target/ui.png`
//! (`docs/ui.png` with `TIDINGS_UPDATE_SCREENSHOT=1`, shown in
//! `docs/ui.md`).
//!
//! `--dump-dom` cannot be used here: Chromium dumps the page once the
//! network is idle, and an event stream never is.
//!
//! Needs Chromium (`/usr/bin/chromium`, or the path in `CHROMIUM`): without
//! it this test fails, it never skips.
#![cfg(unix)]

mod support;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use support::{Served, http, registry};
use tidings_collector::Collector;
use tidings_config::load;
use tidings_test::{Answer, RecordingSink, install_memory_sink};

const KEY: &str = "browser-ui-admin-key-7d1e";
/// The longest the page may take to show what the test waits for.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Headless Chromium with a fresh profile and the DevTools protocol on a
/// port of its choosing, in a process group of its own (killed with its
/// helpers when dropped).
struct Chromium {
    child: Child,
    dir: PathBuf,
}

impl Chromium {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("tidings-ui-chromium-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let browser = tidings_test::chromium();
        let child = tidings_test::chromium_command(&dir)
            .args([
                "--hide-scrollbars",
                "--window-size=1280,1000",
                "--remote-debugging-port=0",
                "about:blank",
            ])
            .stdout(Stdio::null())
            .stderr(File::create(dir.join("stderr")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start Chromium ({}): {e}", browser.display()));
        Self { child, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// The DevTools port, once Chromium has written it.
    fn port(&mut self) -> u16 {
        let file = self.dir.join("profile").join("DevToolsActivePort");
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&file)
                && let Some(port) = text.lines().next().and_then(|l| l.parse().ok())
            {
                return port;
            }
            assert!(
                self.child.try_wait().unwrap().is_none() && started.elapsed() < PAGE_TIMEOUT,
                "Chromium did not open its DevTools port; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // The group holds the browser and the helpers it started.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A DevTools protocol session with one page, over a minimal WebSocket
/// client (text frames, masked as a client must).
struct DevTools {
    socket: TcpStream,
    next_id: u64,
}

impl DevTools {
    fn connect(port: u16) -> Self {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let list = get_json_list(addr);
        let targets: Vec<Value> = serde_json::from_str(&list).unwrap();
        let url = targets
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap_or_else(|| panic!("no page among {list}"));
        let path = &url[url.find("/devtools/").unwrap()..];
        let mut socket = TcpStream::connect(addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            socket,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGlkaW5ncy11aS10ZXN0IQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            socket.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        Self { socket, next_id: 0 }
    }

    fn send_text(&mut self, text: &str) {
        let payload = text.as_bytes();
        let mut frame = vec![0x81];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65_536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x5a, 0x17, 0xc3, 0x8e];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.socket.write_all(&frame).unwrap();
    }

    /// The next text message (pings answered, continuations joined).
    fn read_text(&mut self) -> String {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            self.socket.read_exact(&mut head).unwrap();
            let (fin, opcode) = (head[0] & 0x80 != 0, head[0] & 0x0f);
            let mut len = u64::from(head[1] & 0x7f);
            if len == 126 {
                let mut ext = [0u8; 2];
                self.socket.read_exact(&mut ext).unwrap();
                len = u64::from(u16::from_be_bytes(ext));
            } else if len == 127 {
                let mut ext = [0u8; 8];
                self.socket.read_exact(&mut ext).unwrap();
                len = u64::from_be_bytes(ext);
            }
            let mut payload = vec![0u8; usize::try_from(len).unwrap()];
            self.socket.read_exact(&mut payload).unwrap();
            match opcode {
                0x9 => continue, // ping: Chromium does not need the pong
                0x8 => panic!("DevTools closed the connection"),
                _ => message.extend_from_slice(&payload),
            }
            if fin {
                return String::from_utf8(message).unwrap();
            }
        }
    }

    /// Calls `method` and returns its result (events in between skipped).
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send_text(&json!({"id": id, "method": method, "params": params}).to_string());
        loop {
            let message: Value = serde_json::from_str(&self.read_text()).unwrap();
            if message["id"] == id {
                assert!(message["error"].is_null(), "{method}: {message}");
                return message["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page; its value, as JSON.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    /// What the page shows, as the test checks it.
    fn shown(&mut self) -> Value {
        let text = self.eval(SHOWN).as_str().unwrap().to_owned();
        serde_json::from_str(&text).unwrap()
    }

    /// Waits until `done` holds for what the page shows.
    fn wait_for(&mut self, what: &str, mut done: impl FnMut(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let shown = self.shown();
            if done(&shown) {
                return shown;
            }
            assert!(
                started.elapsed() < PAGE_TIMEOUT,
                "waited {PAGE_TIMEOUT:?} for {what}; the page shows:\n{shown:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `GET /json/list` of the DevTools server (which keeps the connection
/// open: the body is read by its length).
fn get_json_list(addr: SocketAddr) -> String {
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(socket, "GET /json/list HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.read(&mut buf).unwrap();
        assert!(n > 0, "the DevTools server closed the connection");
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.split_once(':')
                        .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                })
                .map(|(_, v)| v.trim().parse().unwrap())
                .expect("a content length");
            if body.len() >= length {
                return body[..length].to_owned();
            }
        }
    }
}

/// What the page shows: read from its DOM.
const SHOWN: &str = r#"(function () {
  function all(selector) { return Array.prototype.slice.call(document.querySelectorAll(selector)); }
  function text(id) { var e = document.getElementById(id); return e ? e.textContent : null; }
  // Not loaded yet (about:blank, or the page still loading).
  if (!document.getElementById('board') || !document.getElementById('sinks')) return 'null';
  return JSON.stringify({
    login: getComputedStyle(document.getElementById('login')).display !== 'none',
    board: getComputedStyle(document.getElementById('board')).display !== 'none',
    loginMessage: text('login-message'),
    status: text('status'),
    tail: all('#tail li[data-name]').filter(function (li) { return !li.hidden; }).map(function (li) { return li.getAttribute('data-name'); }),
    hidden: all('#tail li[data-name]').filter(function (li) { return li.hidden; }).length,
    note: text('tail-note'),
    legend: all('#legend li').map(function (li) { return li.getAttribute('data-name'); }),
    lines: all('#chart polyline').length,
    refusals: all('#refusals tbody tr[data-reason]').map(function (tr) { return tr.getAttribute('data-reason'); }),
    sinks: all('#sinks tbody tr').map(function (tr) {
      return {path: tr.getAttribute('data-path'), health: tr.children[1].textContent, error: tr.children[7].textContent,
              paused: tr.children[8].textContent, delivered: tr.children[3].textContent};
    }),
    received: text('total-received'),
    keyKept: sessionStorage.getItem('tidings.ui.key') !== null
  });
})()"#;

fn names(shown: &Value, key: &str) -> Vec<String> {
    shown[key]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_page_shows_the_tail_rates_refusals_and_sinks_and_filters_and_pauses() {
    let _ = tidings_test::chromium();
    let id = "ui-browser";
    // The mirror fails once and is told to wait 30 s: retrying, with an error.
    install_memory_sink(
        &format!("{id}-mirror"),
        RecordingSink::scripted([Answer::Status(503, Some(Duration::from_secs(30)))]),
    );
    let text = format!(
        "[collector]\nwrite_keys = [\"app-key\"]\n\
         [collector.ui]\nenabled = true\nadmin_key = \"{KEY}\"\n\
         [backends.warehouse]\ntype = \"memory\"\nid = \"{id}\"\nflush_interval_ms = 50\ndead_letter = \"none\"\n\
         [backends.mirror]\ntype = \"memory\"\nid = \"{id}-mirror\"\nflush_interval_ms = 50\ndead_letter = \"none\"\n"
    );
    let config = load(&text, &registry()).unwrap();
    let served = Served::start(Collector::from_config(&config).unwrap());
    let addr = served.addr;
    let mut chromium = Chromium::start();
    let mut page = DevTools::connect(chromium.port());
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1280, "height": 1000, "deviceScaleFactor": 1, "mobile": false}),
    );
    page.call("Page.navigate", json!({"url": format!("http://{addr}/ui")}));
    let shown = page.wait_for("the key form", |s| s["login"] == true);
    assert_eq!(shown["status"], "signed out");
    assert_eq!(shown["board"], false, "nothing but the form without a key");

    // The key, typed once; the tab keeps it.
    page.eval(&format!(
        "document.getElementById('key').value = '{KEY}'; document.getElementById('open').click(); true"
    ));
    let shown = page.wait_for("the stream to open", |s| {
        s["status"] == "live" && s["keyKept"] == true
    });
    assert_eq!(
        (&shown["login"], &shown["board"]),
        (&json!(false), &json!(true))
    );

    // Traffic for a while (the chart's buckets are 10 s), and refusals.
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < Duration::from_secs(12) {
        traffic(addr, round);
        round += 1;
        if round == 3 {
            assert_eq!(
                http(
                    addr,
                    "POST",
                    "/events",
                    &[
                        ("authorization", "Bearer app-key"),
                        ("content-type", "application/json")
                    ],
                    b"{\"name\": \"broken\","
                )
                .0,
                400
            );
            assert_eq!(
                http(
                    addr,
                    "POST",
                    "/events",
                    &[("content-type", "application/json")],
                    b"{\"name\": \"no.key\"}"
                )
                .0,
                401
            );
            assert_eq!(http(addr, "GET", "/favicon.ico", &[], b"").0, 404);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let shown = page.wait_for("events, the chart, refusals and sinks", |s| {
        let tail = names(s, "tail");
        ["page.view", "cart.add", "search.query", "checkout.start"]
            .iter()
            .all(|n| tail.iter().any(|t| t == n))
            && names(s, "legend").len() == 4
            && ["bad_request", "unauthorized", "not_found"]
                .iter()
                .all(|r| names(s, "refusals").iter().any(|x| x == r))
            && s["sinks"].as_array().is_some_and(|sinks| {
                sinks
                    .iter()
                    .any(|sink| sink["path"] == "backends.mirror" && sink["health"] == "retrying")
            })
    });
    assert_eq!(shown["lines"], 4, "one line per name: {shown}");
    assert_eq!(names(&shown, "legend")[0], "page.view", "the busiest first");
    let sinks = shown["sinks"].as_array().unwrap();
    let paths: Vec<&str> = sinks.iter().map(|s| s["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["intake", "backends.mirror", "backends.warehouse"]);
    let mirror = &sinks[1];
    assert!(
        mirror["error"].as_str().unwrap().contains("503"),
        "{mirror}"
    );
    assert!(
        mirror["paused"].as_str().unwrap().contains("in "),
        "{mirror}"
    );
    assert_eq!(sinks[2]["health"], "ok");

    // The screenshot the docs show.
    let png = page.call("Page.captureScreenshot", json!({"format": "png"}));
    let png = base64::engine::general_purpose::STANDARD
        .decode(png["data"].as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    // Into target/ (a test run leaves the tree clean); into docs/ with
    // TIDINGS_UPDATE_SCREENSHOT=1.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = if std::env::var_os("TIDINGS_UPDATE_SCREENSHOT").is_some() {
        root.join("docs/ui.png")
    } else {
        root.join("target/ui.png")
    };
    std::fs::write(&path, &png).unwrap();
    eprintln!("wrote {} ({} bytes)", path.display(), png.len());

    // The filter: existing rows hide, the stream reconnects with it.
    page.eval(
        "var f = document.getElementById('filter'); f.value = 'page.*'; \
         f.dispatchEvent(new Event('input')); true",
    );
    page.wait_for("the filter to apply", |s| {
        s["hidden"].as_u64().unwrap() > 0 && names(s, "tail").iter().all(|n| n.starts_with("page."))
    });
    let started = Instant::now();
    while served
        .collector
        .metrics_text()
        .contains("tidings_collector_requests_total{route=\"/ui/events\",status=\"200\"} 1\n")
    {
        // The first stream is still the only one: wait for the reconnection.
        assert!(
            started.elapsed() < PAGE_TIMEOUT,
            "the page never reconnected with its filter"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    page.wait_for("the filtered stream to open", |s| s["status"] == "live");
    post(
        addr,
        r#"[{"name": "cart.filtered"}, {"name": "page.filtered"}]"#,
    );
    let shown = page.wait_for("the filtered event", |s| {
        names(s, "tail")[0] == "page.filtered"
    });
    assert!(!names(&shown, "tail").iter().any(|n| n == "cart.filtered"));

    // Pause: events are counted, not shown; resume says how many.
    page.eval("document.getElementById('pause').click(); true");
    post(
        addr,
        r#"[{"name": "page.paused"}, {"name": "page.paused"}]"#,
    );
    let shown = page.wait_for("the paused count", |s| {
        s["note"] == "2 new events not shown while paused"
    });
    assert_eq!(names(&shown, "tail")[0], "page.filtered");
    assert_eq!(shown["status"], "paused");
    page.eval("document.getElementById('pause').click(); true");
    let shown = page.shown();
    assert_eq!(shown["note"], "2 events arrived while paused (not shown)");
    post(addr, r#"{"name": "page.resumed"}"#);
    page.wait_for("events again after resuming", |s| {
        names(s, "tail")[0] == "page.resumed"
    });

    // A wrong key sends the page back to its form.
    page.eval("sessionStorage.setItem('tidings.ui.key', 'wrong'); location.reload(); true");
    let shown = page.wait_for("the key form after a wrong key", |s| {
        s["login"] == true && s["loginMessage"] == "The collector refused this key."
    });
    assert_eq!(shown["keyKept"], false);

    drop(page);
    let log = chromium.log();
    drop(chromium);
    assert!(
        !log.contains("Refused to"),
        "the page broke its own Content-Security-Policy:\n{log}"
    );
    served
        .shutdown(Duration::from_secs(10))
        .unwrap_or_else(|e| {
            // The mirror is paused for 30 s: what it holds is counted, not lost silently.
            eprintln!("drain: {e}");
        });
}

/// Posts events with the app's write key.
fn post(addr: SocketAddr, body: &str) {
    let (status, answer) = http(
        addr,
        "POST",
        "/events",
        &[
            ("authorization", "Bearer app-key"),
            ("content-type", "application/json"),
        ],
        body.as_bytes(),
    );
    assert_eq!(status, 202, "{answer}");
}

/// Events the way an app sends them (with its write key): many page
/// views, some carts, a few searches and checkouts.
fn traffic(addr: SocketAddr, round: usize) {
    let mut events = vec![
        json!({"name": "page.view", "data": {"path": format!("/products/{}", round % 7), "ms": 120 + round % 40}}),
        json!({"name": "page.view", "data": {"path": "/", "ms": 95}}),
    ];
    if round.is_multiple_of(2) {
        events.push(
            json!({"name": "cart.add", "data": {"sku": format!("SKU-{}", 1000 + round), "qty": 1}}),
        );
    }
    if round.is_multiple_of(3) {
        events.push(json!({"name": "search.query", "data": {"q": "blue shoes", "results": 42}}));
    }
    if round.is_multiple_of(5) {
        events.push(json!({"name": "checkout.start", "data": {"items": 2, "total": 59.9}}));
    }
    post(addr, &Value::Array(events).to_string());
}
