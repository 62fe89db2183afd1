//! The security review's checks that need a real socket or the whole
//! collector: header floods, slow clients, and secrets that must never show
//! in answers, metrics or debug output (see `docs/security.md`).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{collector, exchange};

const LONG: Duration = Duration::from_secs(10);
const SECRET: &str = "s3cret-write-key-0123456789";

#[test]
fn write_keys_never_appear_in_answers_metrics_or_debug_output() {
    let (c, _sink, _) = collector("security-secrets", &format!("write_keys = [\"{SECRET}\"]"));
    let event = br#"{"name": "a.b"}"#;
    let attempts = [
        vec![("Authorization", format!("Bearer {SECRET}x"))],
        vec![("X-Write-Key", SECRET[..10].to_owned())],
        vec![("Authorization", format!("Bearer {SECRET}"))],
        vec![],
    ];
    let mut statuses = Vec::new();
    for headers in &attempts {
        let mut headers: Vec<(&str, &str)> =
            headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        headers.push(("Content-Type", "application/json"));
        let (status, response_headers, body) = exchange(c.addr, "POST", "/events", &headers, event);
        statuses.push(status);
        assert!(
            !body.contains(&SECRET[..10]),
            "answer body shows the key: {body}"
        );
        for value in response_headers.values() {
            assert!(!value.to_str().unwrap_or("").contains(&SECRET[..10]));
        }
    }
    assert_eq!(statuses, [401, 401, 202, 401]);
    // Presented in the query too (beacons cannot set headers).
    let (status, _, body) = exchange(
        c.addr,
        "POST",
        &format!("/events?write_key={SECRET}"),
        &[("Content-Type", "text/plain")],
        event,
    );
    assert_eq!(status, 202, "{body}");
    let metrics = c.metrics_text();
    assert!(!metrics.contains(&SECRET[..10]), "{metrics}");
    let debug = format!("{:?} {:?}", c.collector, c.collector.options());
    assert!(!debug.contains(&SECRET[..10]), "{debug}");
    c.shutdown(LONG).unwrap();
}

#[test]
fn a_request_with_too_many_headers_is_refused_before_it_reaches_a_route() {
    let (c, sink, _) = collector("security-headers", "");
    let many: Vec<(String, String)> = (0..80)
        .map(|i| (format!("X-Flood-{i}"), "x".to_owned()))
        .collect();
    let headers: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, answer_headers, body) =
        exchange(c.addr, "POST", "/events", &headers, br#"{"name": "a.b"}"#);
    assert_eq!(
        status, 431,
        "the header limit answers 431 Request Header Fields Too Large"
    );
    // Answered by hyper, but in JSON like every other refusal.
    assert_eq!(answer_headers["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], 431, "{body}");
    // Within the limit the same request is accepted.
    let (status, _, _) = exchange(
        c.addr,
        "POST",
        "/events",
        &[("Content-Type", "application/json")],
        br#"{"name": "a.b"}"#,
    );
    assert_eq!(status, 202);
    support::wait_for(&sink, 1);
    c.shutdown(LONG).unwrap();
}

/// The refusals hyper makes by itself (a URI too long, a malformed
/// `Content-Length`) come with a JSON body too.
#[test]
fn protocol_level_refusals_are_json() {
    let (c, _sink, _) = collector("security-protocol", "");
    for (request, status) in [
        (
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)),
            414,
        ),
        (
            "POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_owned(),
            400,
        ),
    ] {
        let mut stream = TcpStream::connect(c.addr).unwrap();
        stream.set_read_timeout(Some(LONG)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["status"], status, "{body}");
    }
    c.shutdown(LONG).unwrap();
}

/// A client that opens a connection and trickles its headers is answered
/// a JSON 408 and cut off once the header timeout (10 s) passes, instead of
/// holding the connection for ever.
#[test]
fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let (c, _sink, _) = collector("security-slowloris", "");
    let mut stream = TcpStream::connect(c.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .write_all(b"POST /events HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    // The server closes the connection (possibly after a 408); reading to
    // the end returns instead of blocking for the 60 s read timeout.
    let _ = stream.read_to_end(&mut answer);
    let waited = started.elapsed();
    // 25 s: well past our 10 s, short of hyper's own 30 s default, so the
    // test fails if our timeout is lost.
    assert!(
        waited < Duration::from_secs(25),
        "the connection was still open after {waited:?}"
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("content-type: application/json"), "{head}");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["status"], 408, "{body}");
    c.shutdown(LONG).unwrap();
}
