//! The live view (`[collector.ui]`) over real sockets: off by default, the
//! admin key, the event stream (`/ui/events`) and its filter, the refused
//! requests, each sink's health, a slow stream skipping without holding up
//! ingestion, the cap on streams, the catalog's personal data never shown,
//! and `tidings tail`.

mod support;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Served, collector, http, registry, tidings, wait_for, write_config};
use tidings_collector::Collector;
use tidings_config::load;
use tidings_test::{Answer, RecordingSink, install_memory_sink};

const KEY: &str = "ui-test-admin-key-4f9b2c";

/// A served collector with the live view on, `ui` extra lines of
/// `[collector.ui]` and `collector` lines of `[collector]`.
fn ui_collector(id: &str, collector_lines: &str, ui: &str) -> (Served, RecordingSink) {
    let (served, sink, _) = collector(
        id,
        &format!("{collector_lines}\n[collector.ui]\nenabled = true\nadmin_key = \"{KEY}\"\n{ui}"),
    );
    (served, sink)
}

fn post_events(addr: SocketAddr, body: &str) -> (u16, String) {
    http(
        addr,
        "POST",
        "/events",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
}

fn state(addr: SocketAddr) -> Value {
    let auth = format!("Bearer {KEY}");
    let (status, body) = http(
        addr,
        "GET",
        "/ui/api/state",
        &[("authorization", &auth)],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    event: String,
    data: String,
}

impl Message {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {:?}", self.data))
    }
}

/// A client of `/ui/events` over a raw socket, so a test decides when (and
/// whether) it reads: decodes the chunked body and the events in it.
struct Sse {
    stream: TcpStream,
    raw: Vec<u8>,
    line: Vec<u8>,
    event: String,
    data: Option<String>,
    messages: VecDeque<Message>,
    ended: bool,
}

impl Sse {
    /// Opens the stream; a refusal is `Err((status, body))`.
    fn open(
        addr: SocketAddr,
        query: &str,
        headers: &[(&str, &str)],
    ) -> Result<Self, (u16, String)> {
        let mut stream = TcpStream::connect(addr).unwrap();
        let mut request = format!("GET /ui/events{query} HTTP/1.1\r\nHost: {addr}\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push(line.trim_end().to_owned());
        }
        let status: u16 = head[0].split(' ').nth(1).unwrap().parse().unwrap();
        let header = |name: &str| {
            head.iter().find_map(|h| {
                h.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_owned())
            })
        };
        if status != 200 {
            let length: usize = header("content-length").unwrap().parse().unwrap();
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            return Err((status, String::from_utf8(body).unwrap()));
        }
        assert_eq!(header("content-type").as_deref(), Some("text/event-stream"));
        assert_eq!(header("transfer-encoding").as_deref(), Some("chunked"));
        let raw = reader.buffer().to_vec();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Ok(Self {
            stream,
            raw,
            line: Vec::new(),
            event: String::new(),
            data: None,
            messages: VecDeque::new(),
            ended: false,
        })
    }

    /// The next event within `timeout` (comments and `retry` skipped).
    fn next(&mut self, timeout: Duration) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(message) = self.messages.pop_front() {
                return Some(message);
            }
            if self.ended || Instant::now() >= deadline {
                return None;
            }
            let mut buf = [0u8; 64 * 1024];
            match self.stream.read(&mut buf) {
                Ok(0) => self.ended = true,
                Ok(n) => self.raw.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => self.ended = true,
            }
            self.decode();
        }
    }

    /// The next event that is not a `hello`.
    fn next_skipping_hello(&mut self, timeout: Duration) -> Option<Message> {
        let message = self.next(timeout)?;
        if message.event == "hello" {
            self.next(timeout)
        } else {
            Some(message)
        }
    }

    /// Moves whole chunks from `raw` into lines and events.
    fn decode(&mut self) {
        loop {
            let Some(end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&self.raw[..end]).unwrap().trim(), 16)
                    .unwrap();
            if size == 0 {
                self.ended = true;
                return;
            }
            if self.raw.len() < end + 2 + size + 2 {
                return;
            }
            let chunk: Vec<u8> = self.raw[end + 2..end + 2 + size].to_vec();
            self.raw.drain(..end + 2 + size + 2);
            for byte in chunk {
                if byte != b'\n' {
                    self.line.push(byte);
                    continue;
                }
                let line = String::from_utf8(std::mem::take(&mut self.line)).unwrap();
                if line.is_empty() {
                    if let Some(data) = self.data.take() {
                        let event = std::mem::take(&mut self.event);
                        self.messages.push_back(Message {
                            event: if event.is_empty() {
                                "message".into()
                            } else {
                                event
                            },
                            data,
                        });
                    }
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((&line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
                match field {
                    "event" => self.event = value,
                    "data" => self.data = Some(value),
                    _ => {}
                }
            }
        }
    }
}

#[test]
fn the_view_is_off_by_default_and_cannot_be_on_without_a_key() {
    let (served, _sink, _) = collector("ui-off", "");
    for path in ["/ui", "/ui/", "/ui/events", "/ui/api/state", "/ui/ui.js"] {
        let (status, body) = http(
            served.addr,
            "GET",
            path,
            &[("authorization", "Bearer anything")],
            b"",
        );
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({"error": "no such route", "status": 404})
        );
    }
    served.shutdown(Duration::from_secs(5)).unwrap();

    for ui in [
        "enabled = true",
        "enabled = true\nadmin_key = \"\"",
        "enabled = true\nadmin_key = \"  \"",
    ] {
        let errors = load(
            &format!("[collector.ui]\n{ui}\n[backends.out]\ntype = \"console\"\n"),
            &registry(),
        )
        .unwrap_err();
        let text = errors.to_string();
        assert!(text.contains("collector.ui"), "{text}");
        assert!(text.contains("needs a non-empty `admin_key`"), "{text}");
    }
    // Off, no key is needed; an unknown key is still a mistake.
    assert!(load("[collector.ui]\nenabled = false\n", &registry()).is_ok());
    assert!(load("[collector.ui]\nenabeld = true\n", &registry()).is_err());

    // The binary refuses to start, saying why.
    let config = write_config(
        "ui-no-key",
        "[collector.ui]\nenabled = true\n[backends.out]\ntype = \"console\"\n",
    );
    let output = tidings()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("admin_key"), "{stderr}");
}

#[test]
fn the_page_is_public_and_its_data_needs_the_admin_key() {
    let (served, _sink) = ui_collector("ui-auth", "", "");
    let addr = served.addr;
    let (status, headers, page) = support::exchange(addr, "GET", "/ui", &[], b"");
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-cache");
    assert!(page.contains("<title>tidings · live view</title>"));
    assert!(!page.contains(KEY));
    let (status, headers, script) = support::exchange(addr, "GET", "/ui/ui.js", &[], b"");
    assert_eq!(status, 200);
    assert_eq!(
        headers["content-type"],
        "application/javascript; charset=utf-8"
    );
    assert!(script.contains("EventSource"));

    let wrong = "Bearer not-the-key".to_owned();
    let right = format!("Bearer {KEY}");
    for (path, headers) in [
        ("/ui/api/state", vec![]),
        ("/ui/api/state", vec![("authorization", wrong.as_str())]),
        // The state takes the key as a header only.
        (&*format!("/ui/api/state?key={KEY}"), vec![]),
        ("/ui/events", vec![]),
        ("/ui/events?key=not-the-key", vec![]),
        ("/ui/events", vec![("authorization", wrong.as_str())]),
    ] {
        let (status, response_headers, body) = support::exchange(addr, "GET", path, &headers, b"");
        assert_eq!(status, 401, "{path} {headers:?}: {body}");
        assert_eq!(response_headers["www-authenticate"], "Bearer");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["status"], 401);
        assert!(
            body["error"].as_str().unwrap().contains("admin key"),
            "{body}"
        );
    }
    let (status, _) = http(
        addr,
        "GET",
        "/ui/api/state",
        &[("authorization", &right)],
        b"",
    );
    assert_eq!(status, 200);
    let (status, _) = http(
        addr,
        "POST",
        "/ui/api/state",
        &[("authorization", &right)],
        b"",
    );
    assert_eq!(status, 405);
    // Both ways of presenting the key open the stream.
    let mut by_query = Sse::open(addr, &format!("?key={KEY}"), &[]).unwrap();
    assert_eq!(
        by_query.next(Duration::from_secs(5)).unwrap().event,
        "hello"
    );
    let mut by_header = Sse::open(addr, "", &[("authorization", &right)]).unwrap();
    assert_eq!(
        by_header.next(Duration::from_secs(5)).unwrap().event,
        "hello"
    );

    let refusals = state(addr)["refusals"].clone();
    assert_eq!(refusals["by_reason"]["admin_key"], 6, "{refusals}");
    let metrics = served.metrics_text();
    assert!(
        metrics
            .contains("tidings_collector_requests_total{route=\"/ui/api/state\",status=\"401\"} 3"),
        "{metrics}"
    );
    served.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn the_stream_shows_accepted_events_filtered_by_name() {
    let (served, sink) = ui_collector("ui-stream", "", "");
    let addr = served.addr;
    let mut all = Sse::open(addr, &format!("?key={KEY}"), &[]).unwrap();
    let hello = all.next(Duration::from_secs(5)).unwrap();
    assert_eq!(hello.event, "hello");
    assert_eq!(hello.json()["filter"], "");
    let mut glob = Sse::open(addr, &format!("?key={KEY}&name=page.*"), &[]).unwrap();
    assert_eq!(
        glob.next(Duration::from_secs(5)).unwrap().json()["filter"],
        "page.*"
    );
    let mut contains = Sse::open(addr, &format!("?key={KEY}&name=add"), &[]).unwrap();
    assert_eq!(
        contains.next(Duration::from_secs(5)).unwrap().event,
        "hello"
    );
    assert_eq!(state(addr)["totals"]["streams"], 3);

    let (status, body) = post_events(
        addr,
        r#"[{"name": "page.view", "data": {"path": "/a"}}, {"name": "cart.add", "data": {"sku": 7}},
            {"name": "page.leave"}, {"name": "pages.other"}]"#,
    );
    assert_eq!(status, 202, "{body}");
    // Refused requests never show in the stream.
    assert_eq!(
        post_events(addr, r#"[{"name": "refused.one"}, {"nam": 1}]"#).0,
        400
    );
    assert_eq!(post_events(addr, r#"{"name": "page.after"}"#).0, 202);

    let names = |sse: &mut Sse, n: usize| -> Vec<Value> {
        (0..n)
            .map(|_| {
                let message = sse.next(Duration::from_secs(5)).expect("an event");
                assert_eq!(message.event, "message", "{message:?}");
                message.json()
            })
            .collect()
    };
    let seen = names(&mut all, 5);
    let seen_names: Vec<&str> = seen.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        seen_names,
        [
            "page.view",
            "cart.add",
            "page.leave",
            "pages.other",
            "page.after"
        ]
    );
    // Events as the sinks get them: id, received_at, data.
    assert_eq!(seen[0]["data"], json!({"path": "/a"}));
    assert!(seen[0]["received_at"].is_string());
    wait_for(&sink, 5);
    assert_eq!(seen[1]["id"], sink.events()[1].id().to_string());

    let glob_names: Vec<Value> = names(&mut glob, 3)
        .iter()
        .map(|e| e["name"].clone())
        .collect();
    assert_eq!(glob_names, ["page.view", "page.leave", "page.after"]);
    let contains_names: Vec<Value> = names(&mut contains, 1)
        .iter()
        .map(|e| e["name"].clone())
        .collect();
    assert_eq!(contains_names, ["cart.add"]);
    assert_eq!(contains.next(Duration::from_millis(300)), None);
    assert_eq!(glob.next(Duration::from_millis(300)), None);

    // The rates count the events received, by name.
    let rates = state(addr)["rates"].clone();
    let counts = rates["buckets"].as_array().unwrap().iter().fold(
        serde_json::Map::new(),
        |mut sum, bucket| {
            for (name, n) in bucket["counts"].as_object().unwrap() {
                let before = sum.get(name).and_then(Value::as_u64).unwrap_or(0);
                sum.insert(name.clone(), (before + n.as_u64().unwrap()).into());
            }
            sum
        },
    );
    assert_eq!(
        Value::Object(counts),
        json!({"page.view": 1, "cart.add": 1, "page.leave": 1, "pages.other": 1, "page.after": 1})
    );

    // A filter longer than any name is refused.
    let long = "x".repeat(300);
    let (status, body) = Sse::open(addr, &format!("?key={KEY}&name={long}"), &[])
        .err()
        .unwrap();
    assert_eq!(status, 400, "{body}");

    // Stopping the server ends every stream with a goodbye.
    served.shutdown(Duration::from_secs(5)).unwrap();
    let bye = all.next(Duration::from_secs(5)).unwrap();
    assert_eq!(bye.event, "bye");
    assert_eq!(all.next(Duration::from_secs(5)), None);
    assert!(all.ended, "the body ends");
}

#[test]
fn refused_requests_are_listed_with_their_reasons_and_never_their_query() {
    let (served, _sink) = ui_collector("ui-refusals", "write_keys = [\"wk\"]", "");
    let addr = served.addr;
    let auth = [
        ("authorization", "Bearer wk"),
        ("content-type", "application/json"),
    ];
    assert_eq!(http(addr, "POST", "/events", &auth, b"{not json").0, 400);
    assert_eq!(
        http(
            addr,
            "POST",
            "/events?write_key=SECRET-guess",
            &[("content-type", "application/json")],
            b"{}"
        )
        .0,
        401
    );
    assert_eq!(
        http(
            addr,
            "POST",
            "/events",
            &[("authorization", "Bearer wk"), ("content-type", "text/csv")],
            b"a"
        )
        .0,
        415
    );
    assert_eq!(http(addr, "GET", "/nowhere", &[], b"").0, 404);
    assert_eq!(http(addr, "GET", "/ui/api/state", &[], b"").0, 401);

    let state = state(addr);
    let recent = state["refusals"]["recent"].as_array().unwrap();
    let seen: Vec<(u64, &str, &str, &str)> = recent
        .iter()
        .map(|r| {
            (
                r["status"].as_u64().unwrap(),
                r["reason"].as_str().unwrap(),
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (401, "admin_key", "GET", "/ui/api/state"),
            (404, "not_found", "GET", "/nowhere"),
            (415, "unsupported_media_type", "POST", "/events"),
            (401, "unauthorized", "POST", "/events"),
            (400, "bad_request", "POST", "/events"),
        ],
        "newest first"
    );
    assert!(
        recent[4]["message"].as_str().unwrap().contains("JSON"),
        "{}",
        recent[4]
    );
    assert!(recent[0]["at"].as_str().unwrap().ends_with('Z'));
    assert!(
        !state.to_string().contains("SECRET"),
        "a query's write key is never kept: {state}"
    );
    assert_eq!(state["refusals"]["by_reason"]["not_found"], 1);
    served.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn each_sinks_health_shows_retries_pauses_errors_and_dead_letters() {
    let id = "ui-health";
    install_memory_sink(
        id,
        RecordingSink::scripted([Answer::Status(503, Some(Duration::from_secs(2)))])
            .refusing_events_named("poison.pill"),
    );
    let text = format!(
        "[collector.ui]\nenabled = true\nadmin_key = \"{KEY}\"\n\
         [backends.flaky]\ntype = \"memory\"\nid = \"{id}\"\nflush_interval_ms = 10\n\
         dead_letter = {{ type = \"memory\", id = \"{id}-dead\" }}\n"
    );
    let config = load(&text, &registry()).unwrap();
    let served = Served::start(Collector::from_config(&config).unwrap());
    let addr = served.addr;
    assert_eq!(post_events(addr, r#"{"name": "first.one"}"#).0, 202);

    let flaky = |state: &Value| -> Value {
        state["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["path"] == "backends.flaky")
            .unwrap_or_else(|| panic!("no backends.flaky in {state}"))
            .clone()
    };
    let started = Instant::now();
    let paused = loop {
        let stage = flaky(&state(addr));
        if !stage["paused_until"].is_null() {
            break stage;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never paused: {stage}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(paused["kind"], "sink");
    assert_eq!(paused["retried"], 1);
    assert!(
        paused["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("503"),
        "{paused}"
    );
    assert!(
        paused["paused_until"].as_str().unwrap() > paused["last_error"]["at"].as_str().unwrap()
    );

    // After the pause the batch goes through; a poisoned event is dead-lettered.
    assert_eq!(post_events(addr, r#"{"name": "poison.pill"}"#).0, 202);
    let started = Instant::now();
    let settled = loop {
        let stage = flaky(&state(addr));
        if stage["delivered"] == 1 && stage["dead_lettered_total"] == 1 {
            break stage;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "not settled: {stage}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(settled["paused_until"].is_null(), "{settled}");
    assert_eq!(settled["dead_lettered"], json!({"invalid": 1}));
    assert!(
        settled["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("400"),
        "{settled}"
    );
    let state = state(addr);
    let intake = &state["stages"][0];
    assert_eq!(
        (intake["path"].as_str(), intake["kind"].as_str()),
        (Some("intake"), Some("intake"))
    );
    assert_eq!(intake["capacity"], 10_000);
    served.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn a_slow_stream_skips_events_and_is_told_how_many_without_holding_up_ingestion() {
    let (served, sink) = ui_collector("ui-slow", "", "tail_buffer = 16");
    let addr = served.addr;
    let mut slow = Sse::open(addr, &format!("?key={KEY}"), &[]).unwrap();
    assert_eq!(slow.next(Duration::from_secs(5)).unwrap().event, "hello");
    // The slow stream reads nothing while 24 MB of events go by: far more
    // than the sockets, the connection and the tap can hold for it.
    let pad = "x".repeat(4000);
    let (requests, per_request) = (60, 100);
    let batch: String = format!(
        "[{}]",
        (0..per_request)
            .map(|_| format!(r#"{{"name": "slow.event", "data": {{"pad": "{pad}"}}}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for _ in 0..requests {
        let posted = Instant::now();
        let (status, body) = post_events(addr, &batch);
        assert_eq!(status, 202, "{body}");
        slowest = slowest.max(posted.elapsed());
    }
    let total = requests * per_request;
    eprintln!(
        "posted {total} events in {:?}, slowest request {slowest:?}",
        started.elapsed()
    );
    assert!(
        slowest < Duration::from_secs(5),
        "a stream not reading never holds up a request ({slowest:?})"
    );
    wait_for(&sink, total);

    // Now it reads: every event arrived or was counted as missed.
    let (mut shown, mut missed, mut notices) = (0u64, 0u64, 0);
    while shown + missed < total as u64 {
        let message = slow
            .next(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("stalled at {shown} shown + {missed} missed of {total}"));
        match message.event.as_str() {
            "message" => shown += 1,
            "lagged" => {
                notices += 1;
                missed += message.json()["missed"].as_u64().unwrap();
            }
            other => panic!("unexpected {other}: {message:?}"),
        }
    }
    eprintln!("shown {shown}, missed {missed} in {notices} notices");
    assert_eq!(shown + missed, total as u64);
    assert!(missed > 0 && notices > 0, "the slow stream skipped");
    // Caught up: the next event comes through.
    assert_eq!(post_events(addr, r#"{"name": "after.catching.up"}"#).0, 202);
    let next = slow.next_skipping_hello(Duration::from_secs(5)).unwrap();
    assert_eq!(next.json()["name"], "after.catching.up");
    served.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn streams_are_capped_and_a_closed_one_frees_its_place() {
    let (served, _sink) = ui_collector("ui-cap", "", "max_streams = 1");
    let addr = served.addr;
    let first = Sse::open(addr, &format!("?key={KEY}"), &[]).unwrap();
    let (status, body) = Sse::open(addr, &format!("?key={KEY}"), &[]).err().unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("max_streams"), "{body}");
    drop(first);
    let started = Instant::now();
    let mut second = loop {
        match Sse::open(addr, &format!("?key={KEY}"), &[]) {
            Ok(sse) => break sse,
            Err((503, _)) if started.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(other) => panic!("{other:?} after {:?}", started.elapsed()),
        }
    };
    eprintln!("the place was free again after {:?}", started.elapsed());
    assert_eq!(second.next(Duration::from_secs(5)).unwrap().event, "hello");
    assert!(
        state(addr)["refusals"]["by_reason"]["ui_streams"]
            .as_u64()
            .unwrap()
            >= 1
    );
    served.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn tidings_tail_prints_one_json_line_per_event() {
    let (served, _sink) = ui_collector("ui-tail", "", "");
    let addr = served.addr;
    let url = format!("http://{addr}");

    // A wrong key: a clear error, exit code 1.
    let output = tidings()
        .args(["tail", "--url", &url, "--key", "wrong"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("admin key"),
        "{stderr}"
    );

    // The key from the environment, and a filter.
    let mut child = tidings()
        .args(["tail", "--url", &url, "--name", "tail.*"])
        .env("TIDINGS_ADMIN_KEY", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while state(addr)["totals"]["streams"] != 1 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "tail never connected"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        post_events(
            addr,
            r#"[{"name": "tail.one", "data": {"n": 1}}, {"name": "other"}, {"name": "tail.two"}]"#
        )
        .0,
        202
    );
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["name"], "tail.one");
    assert_eq!(first["data"], json!({"n": 1}));
    let second: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(second["name"], "tail.two");

    // The collector stopping ends tail, successfully.
    served.shutdown(Duration::from_secs(5)).unwrap();
    assert!(lines.next().is_none());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
}

#[test]
fn properties_the_catalog_marks_pii_are_never_shown() {
    let catalog = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/catalog/catalog.toml");
    let (served, sink) = ui_collector(
        "ui-pii",
        &format!("catalog = {{ path = {:?} }}", catalog.display().to_string()),
        "",
    );
    let addr = served.addr;
    let mut stream = Sse::open(addr, &format!("?key={KEY}"), &[]).unwrap();
    assert_eq!(stream.next(Duration::from_secs(5)).unwrap().event, "hello");
    let event = json!({"name": "page.click", "data": {"page": "/home", "button": "signup", "email": "someone@example.com"}});
    assert_eq!(post_events(addr, &event.to_string()).0, 202);
    let shown = stream.next(Duration::from_secs(5)).unwrap();
    assert_eq!(
        shown.json()["data"],
        json!({"page": "/home", "button": "signup"})
    );
    assert!(!shown.data.contains("someone@example.com"));
    // The sinks get the event as it was sent.
    wait_for(&sink, 1);
    assert_eq!(sink.events()[0].data()["email"], "someone@example.com");
    served.shutdown(Duration::from_secs(5)).unwrap();
}
