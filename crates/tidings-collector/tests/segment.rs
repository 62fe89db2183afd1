//! Segment's HTTP Tracking API on a served collector: the routes, the
//! answers Segment's libraries read, write keys in the head or the body,
//! gzip, `text/plain`, CORS, limits and back-pressure. The real libraries
//! are in `segment_clients.rs`.

mod support;

use std::io::Write;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use support::{collector, exchange, http, stuck_collector, wait_for};

const LONG: Duration = Duration::from_secs(10);

fn basic(key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"))
}

#[test]
fn every_call_and_a_batch_arrive_as_events_answered_as_segment_does() {
    let (c, sink, _) = collector("segment-calls", "");
    let json = [("content-type", "application/json")];
    for (path, message) in [
        (
            "/v1/track",
            json!({"userId": "u1", "event": "Order Completed", "properties": {"revenue": 9.5}}),
        ),
        ("/v1/page", json!({"anonymousId": "a1", "name": "Home"})),
        ("/v1/screen", json!({"userId": "u1", "name": "Main"})),
        (
            "/v1/identify",
            json!({"userId": "u1", "traits": {"plan": "pro"}}),
        ),
        ("/v1/group", json!({"userId": "u1", "groupId": "g1"})),
        ("/v1/alias", json!({"userId": "u1", "previousId": "a1"})),
    ] {
        let (status, body) = http(c.addr, "POST", path, &json, message.to_string().as_bytes());
        assert_eq!(
            (status, body.as_str()),
            (200, r#"{"success":true}"#),
            "{path}"
        );
    }
    let batch = json!({"batch": [
        {"type": "track", "event": "Signed Up", "userId": "u2", "messageId": "m-1"},
        {"type": "identify", "userId": "u2", "traits": {"email": "e@x"}}
    ], "context": {"app": "svc"}, "sentAt": "2026-12-03T12:00:00Z"});
    for path in ["/v1/batch", "/v1/import"] {
        let (status, body) = http(c.addr, "POST", path, &json, batch.to_string().as_bytes());
        assert_eq!(
            (status, body.as_str()),
            (200, r#"{"success":true}"#),
            "{path}"
        );
    }
    wait_for(&sink, 10);
    c.shutdown(LONG).unwrap();
    let events = sink.events();
    let names: Vec<&str> = events.iter().map(|e| e.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "Order Completed",
            "segment.page",
            "segment.screen",
            "segment.identify",
            "segment.group",
            "segment.alias",
            "Signed Up",
            "segment.identify",
            "Signed Up",
            "segment.identify",
        ]
    );
    assert_eq!(
        events[0].data(),
        &json!({"type": "track", "userId": "u1", "properties": {"revenue": 9.5}})
    );
    assert!(events.iter().all(|e| e.received_at().is_some()));
    assert_eq!(events[6].context()["app"], "svc");
    assert_eq!(
        events[6].id(),
        events[8].id(),
        "the same messageId, sent twice, is one id: the sinks deduplicate it"
    );
    assert_eq!(events[6].data()["messageId"], "m-1");
}

#[test]
fn analytics_js_one_letter_paths_text_plain_and_gzip_are_taken() {
    let (c, sink, _) = collector("segment-short", "");
    let message = json!({"anonymousId": "a", "event": "Clicked", "writeKey": "k", "sentAt": "2026-12-03T12:00:00Z"});
    let (status, _) = http(
        c.addr,
        "POST",
        "/v1/t",
        &[("content-type", "text/plain")],
        message.to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    let batch =
        json!({"batch": [{"type": "page", "anonymousId": "a", "name": "Docs"}], "writeKey": "k"});
    let (status, _) = http(
        c.addr,
        "POST",
        "/v1/b",
        &[
            ("content-type", "text/plain;charset=UTF-8"),
            ("content-encoding", "gzip"),
        ],
        &gzip(batch.to_string().as_bytes()),
    );
    assert_eq!(status, 200);
    wait_for(&sink, 2);
    let names: Vec<String> = sink.events().iter().map(|e| e.name().to_string()).collect();
    assert_eq!(names, ["Clicked", "segment.page"]);
    let metrics = c.metrics_text();
    for line in [
        "tidings_collector_requests_total{route=\"/v1/track\",status=\"200\"} 1",
        "tidings_collector_requests_total{route=\"/v1/batch\",status=\"200\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    c.shutdown(LONG).unwrap();
}

#[test]
fn write_keys_come_as_basic_auth_or_in_the_body() {
    let (c, sink, _) = collector("segment-keys", "write_keys = [\"wk-1\"]");
    let body = json!({"batch": [{"type": "identify", "userId": "u"}]}).to_string();
    let post = |headers: &[(&str, &str)], body: &str| {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        exchange(c.addr, "POST", "/v1/batch", &all, body.as_bytes())
    };
    assert_eq!(post(&[("authorization", &basic("wk-1"))], &body).0, 200);
    let with_key =
        json!({"batch": [{"type": "identify", "userId": "u"}], "writeKey": "wk-1"}).to_string();
    assert_eq!(post(&[], &with_key).0, 200, "analytics-python's way");
    let (status, headers, answer) = post(&[("authorization", &basic("wk-2"))], &with_key);
    assert_eq!(
        status, 401,
        "a wrong key in the head is not saved by the body's"
    );
    assert!(headers.contains_key("www-authenticate"));
    let answer = json_of(&answer);
    assert_eq!(
        (&answer["success"], &answer["code"], &answer["status"]),
        (&json!(false), &json!("unauthorized"), &json!(401))
    );
    assert_eq!(answer["message"], answer["error"]);
    assert_eq!(post(&[], &body).0, 401, "no key anywhere");
    let wrong =
        json!({"batch": [{"type": "identify", "userId": "u"}], "writeKey": "nope"}).to_string();
    assert_eq!(post(&[], &wrong).0, 401);
    wait_for(&sink, 2);
    c.shutdown(LONG).unwrap();
    assert_eq!(sink.events().len(), 2);
    assert!(
        sink.events()
            .iter()
            .all(|e| e.data().get("writeKey").is_none()),
        "a key is never kept"
    );
}

#[test]
fn refusals_carry_segments_fields_and_nothing_of_a_refused_batch_is_kept() {
    let (c, sink, _) = collector("segment-refusals", "");
    let json = [("content-type", "application/json")];
    let batch = json!({"batch": [
        {"type": "track", "event": "ok", "userId": "u"},
        {"type": "track", "userId": "u"}
    ]});
    let (status, body) = http(
        c.addr,
        "POST",
        "/v1/batch",
        &json,
        batch.to_string().as_bytes(),
    );
    assert_eq!(status, 400);
    let body = json_of(&body);
    assert_eq!(
        body["message"],
        "message 1: missing field `event`, which a track message must have"
    );
    assert_eq!(
        (&body["code"], &body["success"]),
        (&json!("bad_request"), &json!(false))
    );
    let big = json!({"userId": "u", "traits": {"t": "x".repeat(40_000)}});
    let (status, body) = http(
        c.addr,
        "POST",
        "/v1/identify",
        &json,
        big.to_string().as_bytes(),
    );
    assert_eq!(status, 413, "{body}");
    assert_eq!(json_of(&body)["code"], "too_large");
    let (status, _) = http(
        c.addr,
        "POST",
        "/v1/batch",
        &[("content-type", "text/html")],
        b"{}",
    );
    assert_eq!(status, 415);
    let (status, headers, _) = exchange(c.addr, "GET", "/v1/batch", &[], b"");
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "POST, OPTIONS");
    assert_eq!(http(c.addr, "POST", "/v1/nothing", &json, b"{}").0, 404);
    // tidings' own routes keep their own answers.
    let (status, body) = http(c.addr, "POST", "/events", &json, b"{");
    assert_eq!(status, 400);
    assert!(json_of(&body).get("success").is_none());
    c.shutdown(LONG).unwrap();
    assert!(sink.events().is_empty());
}

#[test]
fn a_body_over_500_kib_is_refused_even_under_max_body_bytes() {
    let (c, sink, _) = collector("segment-large", "max_body_bytes = 2000000");
    let message = json!({"type": "identify", "userId": "u", "traits": {"t": "x".repeat(30_000)}});
    let messages: Vec<Value> = (0..18).map(|_| message.clone()).collect();
    let body = json!({"batch": messages}).to_string();
    assert!(body.len() > 500 * 1024);
    let (status, answer) = http(
        c.addr,
        "POST",
        "/v1/batch",
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(status, 413, "{answer}");
    // Compressed, it is small on the wire and as large once read.
    let (status, _) = http(
        c.addr,
        "POST",
        "/v1/batch",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        &gzip(body.as_bytes()),
    );
    assert_eq!(status, 413);
    let fits: Vec<Value> = (0..16).map(|_| message.clone()).collect();
    let (status, _) = http(
        c.addr,
        "POST",
        "/v1/batch",
        &[("content-type", "application/json")],
        json!({"batch": fits}).to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    wait_for(&sink, 16);
    c.shutdown(LONG).unwrap();
    assert_eq!(sink.events().len(), 16);
}

#[test]
fn a_page_on_an_allowed_origin_gets_its_preflight_and_cors_headers() {
    let (c, sink, _) = collector(
        "segment-cors",
        "allowed_origins = [\"https://shop.example\"]",
    );
    let (status, headers, _) = exchange(
        c.addr,
        "OPTIONS",
        "/v1/t",
        &[
            ("origin", "https://shop.example"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization, content-type",
            ),
        ],
        b"",
    );
    assert_eq!(status, 204);
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://shop.example"
    );
    let allowed = headers["access-control-allow-headers"].to_str().unwrap();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    let (status, headers, _) = exchange(
        c.addr,
        "POST",
        "/v1/t",
        &[
            ("origin", "https://shop.example"),
            ("content-type", "text/plain"),
        ],
        json!({"anonymousId": "a", "event": "e"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(status, 200);
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://shop.example"
    );
    let (status, _, _) = exchange(
        c.addr,
        "OPTIONS",
        "/v1/t",
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "POST"),
        ],
        b"",
    );
    assert_eq!(status, 403);
    wait_for(&sink, 1);
    c.shutdown(LONG).unwrap();
}

#[test]
fn a_full_pipeline_is_a_503_with_retry_after_which_segments_libraries_retry() {
    let c = stuck_collector("segment-stuck");
    let body = json!({"batch": [{"type": "identify", "userId": "u"}]}).to_string();
    let mut last = (0, String::new());
    for _ in 0..50 {
        let (status, headers, answer) = exchange(
            c.addr,
            "POST",
            "/v1/batch",
            &[("content-type", "application/json")],
            body.as_bytes(),
        );
        if status == 503 {
            assert_eq!(headers["retry-after"], "1");
            last = (status, answer);
            break;
        }
        assert_eq!(status, 200);
    }
    assert_eq!(last.0, 503, "the queue never filled");
    let answer = json_of(&last.1);
    assert_eq!(
        (&answer["success"], &answer["code"]),
        (&json!(false), &json!("queue_full"))
    );
}
