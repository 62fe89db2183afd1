//! `/spade` as beacons and pixels send it (`text/plain` strings,
//! `FormData` bodies, `GET /spade?data=...`), and `/flume`'s multipart
//! bodies, against a served collector.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use support::{collector, exchange, post, send, wait_for};

const LONG: Duration = Duration::from_secs(10);

/// A transparent 1×1 GIF89a, byte by byte.
const GIF: [u8; 43] = [
    b'G', b'I', b'F', b'8', b'9', b'a', 1, 0, 1, 0, 0x80, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x21,
    0xf9, 4, 1, 0, 0, 0, 0, 0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 1, 0, 0x3b,
];

fn b64(json: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(json)
}

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("v", text)]).unwrap()[2..].to_owned()
}

/// One request; returns the status, the headers as `(name, value)` lines
/// lowercased, and the body as bytes (a GIF is not text).
fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LONG)).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let text = String::from_utf8(response[..end].to_vec()).unwrap();
    let mut lines = text.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, response[end + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A `multipart/form-data` body of `parts` (`(name, file name, value)`)
/// and its content type.
fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----tidingsBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, file, value) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(file) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn error_of(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    value["error"].as_str().unwrap().to_owned()
}

fn names(sink: &tidings_test::RecordingSink) -> Vec<String> {
    sink.events().iter().map(|e| e.name().to_string()).collect()
}

#[test]
fn a_beacon_string_sent_as_text_plain_is_read_as_a_form() {
    let (c, sink, _) = collector("spade-text", "");
    let json = r#"[{"event": "beacon.a>", "properties": {"k": 1}}, {"event": "beacon.b"}]"#;
    let encoded = b64(json);
    assert!(encoded.contains('+'), "the test needs a `+`: {encoded}");
    // As `navigator.sendBeacon(url, "data=" + encodeURIComponent(b64))`.
    let body = format!("data={}", urlencode(&encoded));
    let (status, _, answer) = send(&c, post("/spade", "text/plain;charset=UTF-8", body));
    assert_eq!((status, answer.as_str()), (202, r#"{"accepted":2}"#));
    // A client that did not percent-encode: its `+` arrives as a space.
    let (status, _, answer) = send(
        &c,
        post("/spade", "text/plain", format!("ip=1&data={encoded}")),
    );
    assert_eq!((status, answer.as_str()), (202, r#"{"accepted":2}"#));
    // The JSON itself, url-encoded, without base64.
    let body = format!("data={}", urlencode(r#"{"event": "beacon.plain"}"#));
    assert_eq!(send(&c, post("/spade", "text/plain", body)).0, 202);
    wait_for(&sink, 5);
    assert_eq!(
        names(&sink),
        [
            "beacon.a>",
            "beacon.b",
            "beacon.a>",
            "beacon.b",
            "beacon.plain"
        ]
    );
    assert_eq!(sink.events()[0].data(), &json!({"k": 1}));
    assert!(sink.events().iter().all(|e| e.received_at().is_some()));
    let (status, _, answer) = send(&c, post("/spade", "text/plain", "other=1"));
    assert_eq!(status, 400);
    assert_eq!(error_of(&answer), "missing form field `data`");
    // Other text types stay refused, naming what the route takes.
    let (status, _, answer) = send(&c, post("/spade", "text/html", body_of("x")));
    assert_eq!(status, 415);
    let message = error_of(&answer);
    for taken in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data",
    ] {
        assert!(message.contains(taken), "{message}");
    }
    c.shutdown(LONG).unwrap();
    assert_eq!(sink.events().len(), 5);
}

fn body_of(data: &str) -> String {
    format!("data={}", urlencode(&b64(data)))
}

#[test]
fn multipart_bodies_give_their_data_part_and_ignore_the_others() {
    let (c, sink, _) = collector("spade-multipart", "max_body_bytes = 20000");
    let data = b64(r#"{"event": "form.data", "properties": {"via": "FormData"}}"#);
    let (content_type, body) = multipart(&[
        ("ip", None, b"1"),
        ("attachment", Some("notes.bin"), &[0xff, 0x00, 0xfe, 0x80]),
        ("data", None, data.as_bytes()),
        ("after", None, b"ignored"),
    ]);
    let (status, _, answer) = exchange(
        c.addr,
        "POST",
        "/spade",
        &[("content-type", &content_type)],
        &body,
    );
    assert_eq!((status, answer.as_str()), (202, r#"{"accepted":1}"#));
    wait_for(&sink, 1);
    assert_eq!(names(&sink), ["form.data"]);
    assert_eq!(sink.events()[0].data(), &json!({"via": "FormData"}));

    let refused = |content_type: &str, body: &[u8]| {
        let (status, _, answer) = exchange(
            c.addr,
            "POST",
            "/spade",
            &[("content-type", content_type)],
            body,
        );
        (status, error_of(&answer))
    };
    let (ct, missing) = multipart(&[("other", None, data.as_bytes())]);
    assert_eq!(
        refused(&ct, &missing),
        (400, "missing multipart field `data`".to_owned())
    );
    // Cut before its closing boundary.
    let cut = &body[..body.len() - 30];
    let (status, message) = refused(&content_type, cut);
    assert_eq!(status, 400);
    assert!(
        message.starts_with("multipart body is malformed: "),
        "{message}"
    );
    let (status, message) = refused(&content_type, b"not multipart at all");
    assert_eq!(status, 400);
    assert!(
        message.starts_with("multipart body is malformed: "),
        "{message}"
    );
    let (status, message) = refused("multipart/form-data", &body);
    assert_eq!(status, 400);
    assert!(message.contains("boundary"), "{message}");
    let (ct, not_utf8) = multipart(&[("data", None, &[0xff, 0xfe])]);
    assert_eq!(
        refused(&ct, &not_utf8),
        (400, "multipart field `data` is not UTF-8".to_owned())
    );
    let bad_event = b64(r#"[{"event": "ok"}, {"event": ""}]"#);
    let (ct, half_bad) = multipart(&[("data", None, bad_event.as_bytes())]);
    let (status, message) = refused(&ct, &half_bad);
    assert_eq!(status, 400, "{message}");
    assert!(message.starts_with("field `data`: event 1"), "{message}");
    // A file part over `max_body_bytes`: refused whole.
    let big = vec![b'x'; 20_000];
    let (ct, oversized) = multipart(&[
        ("data", None, data.as_bytes()),
        ("upload", Some("big.bin"), &big),
    ]);
    let (status, message) = refused(&ct, &oversized);
    assert_eq!(status, 413, "{message}");
    // Parts are counted: at most 100, whatever their names.
    let many: Vec<(&str, Option<&str>, &[u8])> = (0..101).map(|_| ("p", None, &b""[..])).collect();
    let (ct, too_many) = multipart(&many);
    assert_eq!(
        refused(&ct, &too_many),
        (400, "multipart body has more than 100 parts".to_owned())
    );
    let hundred: Vec<(&str, Option<&str>, &[u8])> =
        std::iter::once(("data", None, data.as_bytes()))
            .chain((0..99).map(|_| ("p", None, &b""[..])))
            .collect();
    let (ct, fits) = multipart(&hundred);
    assert_eq!(refused_or_accepted(&c, &ct, &fits), 202);
    c.shutdown(LONG).unwrap();
    assert_eq!(names(&sink), ["form.data", "form.data"], "nothing else");
}

fn refused_or_accepted(c: &support::Served, content_type: &str, body: &[u8]) -> u16 {
    exchange(
        c.addr,
        "POST",
        "/spade",
        &[("content-type", content_type)],
        body,
    )
    .0
}

#[test]
fn a_pixel_answers_a_transparent_gif_and_routes_its_events() {
    let (c, sink, _) = collector("spade-pixel", "");
    let data = b64(r#"{"event": "pixel.view", "properties": {"page": "/a", "n": 2}}"#);
    let path = format!("/spade?data={}&ip=1", urlencode(&data));
    let (status, headers, body) = raw(c.addr, "GET", &path, &[], b"");
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("image/gif"));
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    assert_eq!(header(&headers, "content-length"), Some("43"));
    assert_eq!(body, GIF);
    // What makes it a 1×1 GIF: the signature, the size, the trailer.
    assert_eq!(&body[..6], b"GIF89a");
    assert_eq!((&body[6..8], &body[8..10]), (&[1, 0][..], &[1, 0][..]));
    assert_eq!(body.last(), Some(&0x3b));
    wait_for(&sink, 1);
    let event = sink.events()[0].clone();
    assert_eq!(event.name(), "pixel.view");
    assert_eq!(event.data(), &json!({"page": "/a", "n": 2}));
    assert!(event.received_at().is_some());
    // Unencoded base64 (`+` read back from the space), and an array.
    let array = b64(r#"[{"event": "pixel.a>>"}, {"event": "pixel.b"}]"#);
    assert!(array.contains('+'), "{array}");
    let (status, _, body) = raw(c.addr, "GET", &format!("/spade?data={array}"), &[], b"");
    assert_eq!((status, body.len()), (200, 43));
    // HEAD: the same answer, without the image.
    let head = format!(
        "/spade?data={}",
        urlencode(&b64(r#"{"event": "pixel.head"}"#))
    );
    let (status, headers, body) = raw(c.addr, "HEAD", &head, &[], b"");
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("image/gif"));
    assert!(body.is_empty());
    wait_for(&sink, 4);
    assert_eq!(
        names(&sink),
        ["pixel.view", "pixel.a>>", "pixel.b", "pixel.head"]
    );
    c.shutdown(LONG).unwrap();
}

#[test]
fn a_bad_pixel_is_refused_with_json_and_accepts_nothing() {
    let (c, sink, _) = collector("spade-pixel-bad", "max_batch_events = 2");
    let get = |path: &str| {
        let (status, headers, body) = raw(c.addr, "GET", path, &[], b"");
        assert_eq!(
            header(&headers, "content-type"),
            Some("application/json"),
            "{path}"
        );
        (status, error_of(&String::from_utf8(body).unwrap()))
    };
    let (status, message) = get("/spade?data=!!!");
    assert_eq!(status, 400);
    assert!(message.contains("not base64"), "{message}");
    assert_eq!(
        get("/spade?ip=1"),
        (400, "missing query parameter `data`".to_owned())
    );
    assert_eq!(get("/spade").0, 400);
    let half_bad = urlencode(&b64(r#"[{"event": "ok"}, {"event": 7}]"#));
    let (status, message) = get(&format!("/spade?data={half_bad}"));
    assert_eq!(status, 400);
    assert!(message.starts_with("field `data`: event 1"), "{message}");
    let three = urlencode(&b64(r#"[{"event": "a"}, {"event": "b"}, {"event": "c"}]"#));
    assert_eq!(get(&format!("/spade?data={three}")).0, 413);
    // The query is bounded: 16 KiB.
    let long = format!("/spade?data={}", "A".repeat(16 * 1024 - 5));
    let (status, message) = get(&long);
    assert_eq!(status, 400, "at the bound: decoded ({message})");
    let (status, message) = get(&format!("{long}A"));
    assert_eq!(status, 414);
    assert_eq!(
        message,
        "the query string is 16385 bytes, over the 16384 a pixel may send; POST larger batches to /spade"
    );
    // A body a pixel sends is not its data.
    let (status, _, answer) = exchange(
        c.addr,
        "GET",
        "/spade",
        &[("content-type", "application/x-www-form-urlencoded")],
        body_of(r#"{"event": "in.body"}"#).as_bytes(),
    );
    assert_eq!(status, 400, "{answer}");
    let (status, headers, _) = raw(c.addr, "PUT", "/spade", &[], b"");
    assert_eq!(status, 405);
    assert_eq!(header(&headers, "allow"), Some("GET, HEAD, POST, OPTIONS"));
    for route in ["/events", "/flume", "/event/log"] {
        let (status, headers, _) = raw(c.addr, "GET", route, &[], b"");
        assert_eq!(
            (status, header(&headers, "allow")),
            (405, Some("POST, OPTIONS")),
            "{route}"
        );
    }
    let metrics = c.metrics_text();
    assert!(
        metrics.contains("tidings_collector_rejected_requests_total{reason=\"uri_too_long\"} 1"),
        "{metrics}"
    );
    c.shutdown(LONG).unwrap();
    assert!(sink.events().is_empty());
}

#[test]
fn a_pixels_query_is_bounded_by_max_body_bytes_when_that_is_less() {
    let (c, _sink, _) = collector("spade-pixel-small", "max_body_bytes = 100");
    let (status, _, body) = raw(
        c.addr,
        "GET",
        &format!("/spade?data={}", "A".repeat(96)),
        &[],
        b"",
    );
    assert_eq!(status, 414);
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("over the 100 a pixel may send"),
    );
    let (status, _, _) = raw(
        c.addr,
        "GET",
        &format!("/spade?data={}", "A".repeat(95)),
        &[],
        b"",
    );
    assert_eq!(status, 400, "at the bound: decoded");
    c.shutdown(LONG).unwrap();
}

#[test]
fn a_pixel_presents_its_write_key_in_the_query() {
    let (c, sink, _) = collector("spade-pixel-key", r#"write_keys = ["k1"]"#);
    let data = urlencode(&b64(r#"{"event": "keyed", "properties": {"x": 1}}"#));
    let get = |query: &str| raw(c.addr, "GET", &format!("/spade?{query}"), &[], b"").0;
    assert_eq!(get(&format!("data={data}")), 401);
    assert_eq!(get(&format!("data={data}&write_key=k2")), 401);
    assert_eq!(get(&format!("write_key=k1&data={data}")), 200);
    wait_for(&sink, 1);
    assert_eq!(
        sink.events()[0].data(),
        &json!({"x": 1}),
        "the key is never data"
    );
    c.shutdown(LONG).unwrap();
}

#[test]
fn a_full_pipeline_answers_a_pixel_503_with_retry_after() {
    let c = support::stuck_collector("stuck-pixel");
    let data = urlencode(&b64(r#"[{"event": "a"}, {"event": "b"}]"#));
    let mut refused = None;
    for _ in 0..50 {
        let (status, headers, _) = raw(c.addr, "GET", &format!("/spade?data={data}"), &[], b"");
        match status {
            200 => {}
            503 => {
                refused = Some(headers);
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let headers = refused.expect("the queue never filled");
    assert_eq!(header(&headers, "retry-after"), Some("1"));
    let _ = c.shutdown(Duration::from_millis(200));
}

#[test]
fn flume_takes_multipart_bodies_as_it_takes_forms() {
    let (c, sink, log) = collector("flume-multipart", r#"flume_allowed_properties = ["url"]"#);
    let data = r#"{"event": "page.view", "properties": {"url": "/m", "email": "pii@example.com"}}"#;
    let (content_type, body) = multipart(&[
        ("ignored", Some("f.txt"), b"x"),
        ("data", None, data.as_bytes()),
    ]);
    let (status, _, answer) = exchange(
        c.addr,
        "POST",
        "/flume",
        &[("content-type", &content_type)],
        &body,
    );
    assert_eq!((status, answer.as_str()), (202, r#"{"accepted":1}"#));
    let line: Value = serde_json::from_str(log.text().trim()).unwrap();
    assert_eq!(
        line,
        json!({"message": "page.view", "context": {"url": "/m"}})
    );
    wait_for(&sink, 1);
    assert_eq!(sink.events()[0].data(), &json!({"url": "/m"}));
    let (ct, missing) = multipart(&[("other", None, b"1")]);
    let (status, _, answer) =
        exchange(c.addr, "POST", "/flume", &[("content-type", &ct)], &missing);
    assert_eq!(
        (status, error_of(&answer)),
        (400, "missing multipart field `data`".to_owned())
    );
    let (status, _, answer) = send(&c, post("/flume", "text/plain", format!("data={data}")));
    assert_eq!(status, 415, "a text body is Spade's beacon only");
    assert!(
        error_of(&answer).ends_with("use application/x-www-form-urlencoded or multipart/form-data"),
        "{answer}"
    );
    c.shutdown(LONG).unwrap();
    assert_eq!(sink.events().len(), 1);
}

#[test]
fn a_spade_post_without_a_content_type_is_an_empty_form_or_refused() {
    let (c, sink, _) = collector("spade-no-type", "");
    let (status, _, answer) = exchange(c.addr, "POST", "/spade", &[], b"");
    assert_eq!(
        (status, error_of(&answer)),
        (400, "missing form field `data`".to_owned())
    );
    let body = body_of(r#"{"event": "untyped"}"#);
    let (status, _, answer) = exchange(c.addr, "POST", "/spade", &[], body.as_bytes());
    assert_eq!(status, 415, "{answer}");
    assert!(
        error_of(&answer).starts_with("content type (none) is not supported here"),
        "{answer}"
    );
    c.shutdown(LONG).unwrap();
    assert!(sink.events().is_empty());
}
