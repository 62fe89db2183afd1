//! Segment's own libraries against a served collector: `segment-analytics-python`
//! (PyPI) and `@segment/analytics-node` (npm), installed from their
//! registries by these tests into `target/tmp` on first use (pinned
//! versions; needs python3 with venv and pip, node and npm, and the
//! registries). Each library sends every call through its batching, with
//! its compression on where it has one, while the collector's sink refuses
//! its first batches so that the collector's queue fills and it answers
//! 503: the library retries, and every message arrives exactly once with
//! its fields. Without the tools or the registries these tests fail,
//! naming what is missing; they never skip.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::{INSTALL, run};
use tidings_test::RecordingSink;

/// The versions the tests install: what they were written against.
const PYTHON_PACKAGE: &str = "segment-analytics-python==2.4.0";
const NODE_PACKAGE: &str = "@segment/analytics-node@3.1.0";

const WRITE_KEY: &str = "segment-write-key";

/// A Python with `segment-analytics-python`, in a virtual environment
/// under `target/tmp`, made on first use.
fn python() -> PathBuf {
    let _one = INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let venv = support::tools().join("python");
    let python = venv.join("bin/python");
    let installed = python.exists()
        && Command::new(&python)
            .args(["-c", "import segment.analytics"])
            .status()
            .is_ok_and(|s| s.success());
    if !installed {
        support::run(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            "python3 -m venv (install python3 and python3-venv)",
        );
        support::run(
            Command::new(venv.join("bin/pip")).args(["install", "--quiet", PYTHON_PACKAGE]),
            &format!("pip install {PYTHON_PACKAGE} (needs PyPI)"),
        );
    }
    python
}

/// Checks in `metrics` that the collector pushed back (503s, so the
/// library retried) and that the library batched (fewer requests than
/// messages).
fn assert_pushed_back_and_batched(metrics: &str, messages: usize) {
    let count = |status: &str| {
        metric(
            metrics,
            &format!("tidings_collector_requests_total{{route=\"/v1/batch\",status=\"{status}\"}}"),
        )
    };
    assert!(
        count("503") > 0,
        "the collector never pushed back, so no retry was tested:\n{metrics}"
    );
    let accepted = count("200");
    assert!(
        accepted > 0 && accepted * 4 < messages as u64,
        "{accepted} requests for {messages} messages: not batched\n{metrics}"
    );
}

/// The number in `metrics` of the line starting with `prefix`.
fn metric(metrics: &str, prefix: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Checks that the messages a library printed (as it sent them) arrived
/// once each, as events with the mapping of docs/segment.md.
fn assert_arrived_once(sent: &[Value], sink: &RecordingSink, library: &str) {
    let events = sink.events();
    // A `messageId` that is not a UUID is kept in `data` (and the id is
    // made from it); a UUID is the id.
    let mut by_id: BTreeMap<String, Vec<&tidings_event::Event>> = BTreeMap::new();
    for event in &events {
        let id = event.data()["messageId"]
            .as_str()
            .map_or_else(|| event.id().to_string(), str::to_owned);
        by_id.entry(id).or_default().push(event);
    }
    assert_eq!(events.len(), sent.len(), "events arrived: {}", events.len());
    for message in sent {
        let id = message["messageId"].as_str().unwrap();
        let arrived = by_id
            .get(id)
            .unwrap_or_else(|| panic!("{id} never arrived: {message}"));
        assert_eq!(arrived.len(), 1, "{id} arrived {} times", arrived.len());
        let event = arrived[0];
        let kind = message["type"].as_str().unwrap();
        let name = if kind == "track" {
            message["event"].as_str().unwrap().to_owned()
        } else {
            format!("segment.{kind}")
        };
        assert_eq!(event.name().as_str(), name, "{message}");
        assert_eq!(event.data()["type"], kind);
        for field in [
            "userId",
            "anonymousId",
            "properties",
            "traits",
            "groupId",
            "previousId",
            "name",
        ] {
            if let Some(value) = message.get(field).filter(|v| !v.is_null()) {
                assert_eq!(&event.data()[field], value, "{field} of {message}");
            }
        }
        assert_eq!(event.context()["library"]["name"], library, "{message}");
        assert_eq!(
            event.data()["originalTimestamp"],
            message["timestamp"],
            "the client's reading is kept"
        );
        let skew = event.timestamp().as_datetime() - event.received_at().unwrap().as_datetime();
        assert!(
            skew.whole_seconds().abs() < 60,
            "one clock here, so the corrected time is near the receive time: {skew}"
        );
        assert!(event.data().get("writeKey").is_none());
        assert!(event.received_at().is_some());
    }
}

#[test]
fn segment_analytics_python_batches_compresses_retries_and_delivers_every_call_once() {
    let python = python();
    let c = support::pressed_collector("segment-python", WRITE_KEY, "", Duration::from_secs(1));
    let script = r#"
import json, sys
from segment.analytics import Client
errors = []
client = Client(sys.argv[1], host=sys.argv[2], gzip=True, upload_size=25,
                upload_interval=0.05, max_retries=10,
                on_error=lambda e, batch: errors.append(str(e)))
sent = []
for i in range(120):
    sent.append(client.track(user_id="user-%d" % (i % 7), event="Item Viewed",
                             properties={"i": i, "tags": ["a", "b"], "price": 9.5})[1])
sent.append(client.identify("user-1", {"email": "one@example.com", "plan": "pro"})[1])
sent.append(client.page("user-1", "Docs", "Install", {"path": "/install"})[1])
sent.append(client.screen("user-1", "App", "Home", {"x": 1})[1])
sent.append(client.group("user-1", "group-9", {"name": "Acme"})[1])
sent.append(client.alias("anon-1", "user-1")[1])
sent.append(client.track(anonymous_id="anon-2", event="Anonymous Thing")[1])
client.flush()
client.join()
print(json.dumps({"sent": sent, "errors": errors}, default=str))
"#;
    let url = format!("http://{}", c.addr);
    let output = run(
        Command::new(&python).args(["-c", script, WRITE_KEY, &url]),
        "the segment-analytics-python script",
    );
    check_run(c, &output.stdout, "segment-python", "analytics-python");
}

/// Checks a library's run against collector `c` (memory sink `id`): what
/// the script printed (`{"sent": [messages], "errors": [...]}`) shows no
/// error and the 126 calls; they all arrive once (see
/// [`assert_arrived_once`]), after 503s and in batches. Returns what was
/// printed.
fn check_run(c: support::Served, stdout: &[u8], id: &str, library: &str) -> Value {
    let printed: Value = serde_json::from_slice(stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(stdout)));
    assert_eq!(
        printed["errors"],
        json!([]),
        "the library gave up on a batch"
    );
    let sent = printed["sent"].as_array().unwrap();
    assert_eq!(sent.len(), 126);
    support::wait_for(&memory(id), sent.len());
    let metrics = c.metrics_text();
    c.shutdown(Duration::from_secs(10)).unwrap();
    assert_pushed_back_and_batched(&metrics, sent.len());
    assert_arrived_once(sent, &memory(id), library);
    printed
}

fn memory(id: &str) -> RecordingSink {
    tidings_test::memory_sink(id)
}

#[test]
fn segment_analytics_node_batches_retries_and_delivers_every_call_once() {
    let package = support::npm_package(NODE_PACKAGE);
    let c = support::pressed_collector("segment-node", WRITE_KEY, "", Duration::from_secs(1));
    let script = r#"
const { Analytics } = require('@segment/analytics-node')
const [writeKey, host] = process.argv.slice(1)
const analytics = new Analytics({ writeKey, host, flushAt: 20, flushInterval: 50, maxRetries: 20 })
const errors = []
analytics.on('error', (e) => errors.push(String(e.reason || e.code || e)))
// What the library sends, once per message however often it retries.
const byId = new Map()
let requests = 0
analytics.on('http_request', (r) => {
  requests++
  for (const m of JSON.parse(r.body).batch) byId.set(m.messageId, m)
})
for (let i = 0; i < 120; i++) {
  analytics.track({ userId: 'user-' + (i % 7), event: 'Item Viewed', properties: { i, tags: ['a', 'b'], price: 9.5 } })
}
analytics.identify({ userId: 'user-1', traits: { email: 'one@example.com', plan: 'pro' } })
analytics.page({ userId: 'user-1', category: 'Docs', name: 'Install', properties: { path: '/install' } })
analytics.screen({ userId: 'user-1', name: 'Home', properties: { x: 1 } })
analytics.group({ userId: 'user-1', groupId: 'group-9', traits: { name: 'Acme' } })
analytics.alias({ userId: 'user-1', previousId: 'anon-1' })
analytics.track({ anonymousId: 'anon-2', event: 'Anonymous Thing' })
analytics.closeAndFlush({ timeout: 60000 }).then(() => {
  console.log(JSON.stringify({ sent: [...byId.values()], errors, requests }))
})
"#;
    let url = format!("http://{}", c.addr);
    let output = run(
        Command::new("node")
            .env(
                "NODE_PATH",
                package.parent().and_then(Path::parent).unwrap(),
            )
            .args(["-e", script, WRITE_KEY, &url]),
        "the @segment/analytics-node script",
    );
    let printed = check_run(c, &output.stdout, "segment-node", "@segment/analytics-node");
    assert!(
        printed["requests"].as_u64().unwrap() >= 7,
        "batches of 20: {printed}"
    );
}
