//! `/event/log` as eventlib's endpoint: the client's address (anonymised,
//! whole or off; `X-Forwarded-For` only from trusted proxies), the server's
//! time, JSON bodies, and a write key in the body.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{collector, post, send, wait_for};

const LONG: Duration = Duration::from_secs(10);
const FORM: &str = "application/x-www-form-urlencoded";

fn with_header(
    mut request: http::Request<http_body_util::Full<bytes::Bytes>>,
    name: &'static str,
    value: &str,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    request.headers_mut().append(name, value.parse().unwrap());
    request
}

fn error_of(text: &str) -> String {
    let error: Value = serde_json::from_str(text).unwrap();
    error["error"].as_str().unwrap().to_owned()
}

#[test]
fn the_client_address_is_recorded_anonymised_and_a_spoofed_one_is_ignored() {
    let (c, sink, _) = collector("eventlog-ip-default", "");
    let plain = post(
        "/event/log?__event__=app.EventName&param=value",
        FORM,
        "form=1",
    );
    assert_eq!(send(&c, plain).0, 202);
    // The peer (127.0.0.1) is no trusted proxy: its header is not believed,
    // nor is a client's own `__ip_address__` or `__datetime__`.
    let spoofed = with_header(
        post(
            "/event/log?__event__=app.Spoof&__ip_address__=198.51.100.1&__datetime__=yesterday",
            FORM,
            "",
        ),
        "x-forwarded-for",
        "203.0.113.9",
    );
    assert_eq!(send(&c, spoofed).0, 202);
    wait_for(&sink, 2);
    let events = sink.events();
    assert_eq!(
        events[0].data(),
        &json!({"param": "value", "form": "1", "__ip_address__": "127.0.0.0"})
    );
    assert_eq!(events[1].data(), &json!({"__ip_address__": "127.0.0.0"}));
    // eventlib's `__datetime__` is the server's receive time: `received_at`.
    for event in &events {
        let received = event.received_at().expect("the collector's clock");
        assert!(received >= event.timestamp());
    }
    c.shutdown(LONG).unwrap();
}

#[test]
fn behind_a_trusted_proxy_the_forwarded_address_is_recorded() {
    let (c, sink, _) = collector(
        "eventlog-ip-proxy",
        "client_ip = \"full\"\ntrusted_proxies = [\"127.0.0.0/8\", \"10.0.0.0/8\"]",
    );
    let forwarded = |chain: &str| {
        with_header(
            post("/event/log?__event__=app.Proxied", FORM, ""),
            "x-forwarded-for",
            chain,
        )
    };
    // The client wrote 198.51.100.1 itself; the proxies appended the rest.
    assert_eq!(
        send(&c, forwarded("198.51.100.1, 203.0.113.9, 10.1.2.3")).0,
        202
    );
    assert_eq!(
        send(&c, post("/event/log?__event__=app.Direct", FORM, "")).0,
        202
    );
    wait_for(&sink, 2);
    let ips: Vec<Value> = sink
        .events()
        .iter()
        .map(|e| e.data()["__ip_address__"].clone())
        .collect();
    assert_eq!(ips, [json!("203.0.113.9"), json!("127.0.0.1")]);
    c.shutdown(LONG).unwrap();
}

#[test]
fn a_peer_that_is_not_a_trusted_proxy_cannot_choose_its_address() {
    let (c, sink, _) = collector(
        "eventlog-ip-untrusted",
        "client_ip = \"full\"\ntrusted_proxies = [\"10.0.0.0/8\"]",
    );
    let spoofed = with_header(
        post("/event/log?__event__=app.Spoof", FORM, ""),
        "x-forwarded-for",
        "10.0.0.1",
    );
    assert_eq!(send(&c, spoofed).0, 202);
    wait_for(&sink, 1);
    assert_eq!(sink.events()[0].data()["__ip_address__"], "127.0.0.1");
    c.shutdown(LONG).unwrap();
}

#[test]
fn client_ip_off_records_no_address() {
    let (c, sink, _) = collector("eventlog-ip-off", "client_ip = \"off\"");
    let request = post(
        "/event/log?__event__=app.Quiet&__ip_address__=198.51.100.1",
        FORM,
        "k=v",
    );
    assert_eq!(send(&c, request).0, 202);
    wait_for(&sink, 1);
    assert_eq!(sink.events()[0].data(), &json!({"k": "v"}));
    c.shutdown(LONG).unwrap();
}

#[test]
fn json_bodies_keep_their_values_and_merge_with_the_query() {
    let (c, sink, _) = collector("eventlog-json", "client_ip = \"off\"");
    let request = post(
        "/event/log?__event__=app.Json&source=query&page=1",
        "application/json; charset=utf-8",
        r#"{"page": 2, "tags": ["a", "b"], "user": {"id": 7, "pro": true}, "note": null}"#,
    );
    let (status, _, body) = send(&c, request);
    assert_eq!((status, body.as_str()), (202, r#"{"accepted":1}"#));
    let named_in_body = post(
        "/event/log",
        "application/json",
        r#"{"__event__": "app.Body", "n": 1.5}"#,
    );
    assert_eq!(send(&c, named_in_body).0, 202);
    wait_for(&sink, 2);
    let events = sink.events();
    assert_eq!(events[0].name(), "app.Json");
    assert_eq!(
        events[0].data(),
        &json!({"source": "query", "page": 2, "tags": ["a", "b"], "user": {"id": 7, "pro": true}, "note": null})
    );
    assert_eq!(
        (events[1].name().as_str(), events[1].data()),
        ("app.Body", &json!({"n": 1.5}))
    );
    c.shutdown(LONG).unwrap();
}

#[test]
fn bad_json_bodies_are_refused_whole_and_say_why() {
    let (c, sink, _) = collector("eventlog-json-bad", "max_body_bytes = 2000");
    let deep = format!("{{\"d\": {}1{}}}", "[".repeat(70), "]".repeat(70));
    let huge = format!(r#"{{"k": "{}"}}"#, "x".repeat(5000));
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "application/json",
            "{not json".into(),
            400,
            "body is not valid JSON",
        ),
        (
            "application/json",
            r#"{"a": 1}, "context": {"admin": true}"#.into(),
            400,
            "body is not valid JSON",
        ),
        (
            "application/json",
            "[1, 2]".into(),
            400,
            "a JSON body must be an object of parameters, found an array",
        ),
        (
            "application/json",
            r#"{"__event__": ["x"]}"#.into(),
            400,
            "parameter `__event__` must be a string, found an array",
        ),
        ("application/json", deep, 400, "nests deeper than 64"),
        ("application/json", r#"{"s": "\ud800"}"#.into(), 400, "body"),
        ("application/json", huge, 413, "body is over 2000 bytes"),
        (
            "text/plain",
            r#"{"k": 1}"#.into(),
            415,
            "use application/x-www-form-urlencoded or application/json",
        ),
    ];
    for (content_type, body, status, message) in cases {
        let uri = "/event/log?__event__=app.Bad";
        let (got, headers, text) = send(&c, post(uri, content_type, body));
        assert_eq!(got, status, "{text}");
        assert_eq!(headers["content-type"], "application/json");
        assert!(
            error_of(&text).contains(message),
            "{text} should say {message:?}"
        );
    }
    c.shutdown(LONG).unwrap();
    assert!(
        sink.events().is_empty(),
        "nothing of a refused request is accepted"
    );
}

#[test]
fn a_write_key_in_the_body_authorises_like_the_query_parameter() {
    let (c, sink, _) = collector(
        "eventlog-keys",
        "write_keys = [\"k-one\", \"k-two\"]\nclient_ip = \"off\"",
    );
    let uri = "/event/log?__event__=app.Keyed";
    let accepted = [
        post(uri, FORM, "write_key=k-one&v=form"),
        post(
            uri,
            "application/json",
            r#"{"write_key": "k-two", "v": "json"}"#,
        ),
        post(&format!("{uri}&write_key=k-one"), FORM, "v=query"),
    ];
    for request in accepted {
        let (status, _, text) = send(&c, request);
        assert_eq!(status, 202, "{text}");
    }
    let refused = [
        post(uri, FORM, "v=none"),
        post(uri, FORM, "write_key=k-three"),
        post(uri, "application/json", r#"{"write_key": "k-three"}"#),
        post(uri, "application/json", r#"{"write_key": ["k-one"]}"#),
        // A wrong key in the head is refused before the body is read, even
        // with a right one in it.
        post(&format!("{uri}&write_key=nope"), FORM, "write_key=k-one"),
        with_header(post(uri, FORM, "write_key=k-one"), "x-write-key", "nope"),
    ];
    for request in refused {
        let (status, headers, text) = send(&c, request);
        assert_eq!(status, 401, "{text}");
        assert_eq!(headers["www-authenticate"], "Bearer");
    }
    // Other routes still take keys from the head only.
    let (status, _, _) = send(
        &c,
        post(
            "/flume",
            FORM,
            "write_key=k-one&data=%7B%22event%22%3A%22a%22%7D",
        ),
    );
    assert_eq!(status, 401);
    wait_for(&sink, 3);
    let values: Vec<Value> = sink.events().iter().map(|e| e.data().clone()).collect();
    assert_eq!(
        values,
        [
            json!({"v": "form"}),
            json!({"v": "json"}),
            json!({"v": "query"})
        ],
        "a key is never data"
    );
    assert!(!c.metrics_text().contains("k-one"));
    c.shutdown(LONG).unwrap();
}

#[test]
fn a_bodiless_post_needs_no_content_type_and_a_body_needs_one() {
    let (c, sink, _) = collector("eventlog-no-type", "client_ip = \"off\"");
    let uri = "/event/log?__event__=app.Bare&k=v";
    let (status, _, text) = support::exchange(c.addr, "POST", uri, &[], b"");
    assert_eq!(status, 202, "{text}");
    let (status, _, text) = support::exchange(c.addr, "POST", uri, &[], b"x=1");
    assert_eq!(status, 415, "{text}");
    assert!(
        error_of(&text).contains("content type (none) is not supported"),
        "{text}"
    );
    wait_for(&sink, 1);
    assert_eq!(sink.events()[0].data(), &json!({"k": "v"}));
    c.shutdown(LONG).unwrap();
}
