//! Every ingest route, its errors, CORS, write keys, back-pressure and metrics.

mod support;

use std::io::Write;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use support::{collector, post, send, wait_for};

const LONG: Duration = Duration::from_secs(10);

#[test]
fn events_accepts_one_event_or_an_array_and_stamps_received_at() {
    let (c, sink, _) = collector("events-ok", "");
    let (status, _, body) = send(
        &c,
        post(
            "/events",
            "application/json",
            r#"{"name": "page.view", "data": {"p": 1}}"#,
        ),
    );
    assert_eq!((status, body.as_str()), (202, r#"{"accepted":1}"#));
    let client_id = "01936f0e-0b1c-7def-8abc-0123456789ab";
    // The first-party design's page sends `Date.now()`: epoch milliseconds.
    let batch = format!(
        r#"[{{"id": "{client_id}", "name": "a", "timestamp": "2026-01-02T03:04:05.000006Z"}}, {{"event": "b", "properties": {{"k": 2}}}}, {{"name": "c", "timestamp": 1767323045123}}]"#
    );
    let (status, _, body) = send(&c, post("/events", "text/plain;charset=UTF-8", batch));
    assert_eq!((status, body.as_str()), (202, r#"{"accepted":3}"#));
    wait_for(&sink, 4);
    let events = sink.events();
    assert_eq!(
        events.iter().map(|e| e.name().as_str()).collect::<Vec<_>>(),
        ["page.view", "a", "b", "c"]
    );
    assert_eq!(
        events[3].timestamp().to_string(),
        "2026-01-02T03:04:05.123000Z"
    );
    assert!(events.iter().all(|e| e.received_at().is_some()));
    assert_eq!(
        events[1].id().to_string(),
        client_id,
        "a client's id is kept"
    );
    assert_eq!(
        events[1].timestamp().to_string(),
        "2026-01-02T03:04:05.000006Z"
    );
    assert_eq!(events[2].data(), &json!({"k": 2}));
    c.shutdown(LONG).unwrap();
}

#[test]
fn bad_input_is_refused_whole_with_a_json_error() {
    let (c, sink, _) = collector("events-bad", "max_body_bytes = 2000\nmax_batch_events = 3");
    let deep = format!(
        "{{\"name\": \"a\", \"data\": {}{}}}",
        "[".repeat(70),
        "]".repeat(70)
    );
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("application/json", "{not json".into(), 400, "invalid JSON"),
        (
            "application/json",
            r#"[{"name": "ok"}, {"name": ""}]"#.into(),
            400,
            "event 1: field `name`: event name is empty",
        ),
        (
            "application/json",
            r#"{"data": {}}"#.into(),
            400,
            "missing field `name`",
        ),
        ("application/json", deep, 400, "nests deeper than 64"),
        (
            "application/json",
            "3".into(),
            400,
            "expected an event object or an array of events",
        ),
        (
            "application/json",
            format!(r#"{{"name": "a", "data": "{}"}}"#, "x".repeat(3000)),
            413,
            "body is over 2000 bytes",
        ),
        (
            "application/json",
            r#"[{"name": "a"}, {"name": "a"}, {"name": "a"}, {"name": "a"}]"#.into(),
            413,
            "batch holds 4 events, the limit is 3",
        ),
        (
            "application/xml",
            "<a/>".into(),
            415,
            "content type \"application/xml\" is not supported",
        ),
    ];
    for (content_type, body, status, message) in cases {
        let (got, headers, text) = send(&c, post("/events", content_type, body));
        assert_eq!(got, status, "{text}");
        assert_eq!(headers["content-type"], "application/json");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert!(
            error["error"].as_str().unwrap().contains(message),
            "{text} should say {message:?}"
        );
        assert_eq!(error["status"], status);
    }
    c.shutdown(LONG).unwrap();
    assert!(
        sink.events().is_empty(),
        "nothing of a refused request is accepted"
    );
}

#[test]
fn gzip_bodies_are_accepted_and_capped_once_decompressed() {
    let (c, sink, _) = collector("events-gzip", "max_body_bytes = 10000");
    let gzip = |data: &[u8]| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    };
    let mut request = post(
        "/events",
        "application/json",
        gzip(br#"[{"name": "zipped"}]"#),
    );
    request
        .headers_mut()
        .insert("content-encoding", "gzip".parse().unwrap());
    assert_eq!(send(&c, request).0, 202);

    let bomb = gzip(&vec![b' '; 1_000_000]);
    assert!(bomb.len() < 10_000);
    let mut request = post("/events", "application/json", bomb);
    request
        .headers_mut()
        .insert("content-encoding", "gzip".parse().unwrap());
    let (status, _, body) = send(&c, request);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("once decompressed"));

    let mut request = post("/events", "application/json", "{}");
    request
        .headers_mut()
        .insert("content-encoding", "br".parse().unwrap());
    assert_eq!(send(&c, request).0, 415);
    wait_for(&sink, 1);
    c.shutdown(LONG).unwrap();
}

#[test]
fn write_keys_are_required_when_configured() {
    let (c, _sink, _) = collector("events-keys", r#"write_keys = ["k-one", "k-two"]"#);
    let body = r#"{"name": "a"}"#;
    let (status, headers, text) = send(&c, post("/events", "application/json", body));
    assert_eq!(status, 401, "{text}");
    assert_eq!(headers["www-authenticate"], "Bearer");
    let mut wrong = post("/events", "application/json", body);
    wrong
        .headers_mut()
        .insert("authorization", "Bearer nope".parse().unwrap());
    assert_eq!(send(&c, wrong).0, 401);
    let mut right = post("/events", "application/json", body);
    right
        .headers_mut()
        .insert("authorization", "Bearer k-two".parse().unwrap());
    assert_eq!(send(&c, right).0, 202);
    assert_eq!(
        send(&c, post("/events?write_key=k-one", "text/plain", body)).0,
        202
    );
    assert!(
        !c.metrics_text().contains("k-one"),
        "keys never appear in metrics"
    );
    c.shutdown(LONG).unwrap();
}

#[test]
fn event_log_turns_parameters_into_string_data() {
    let (c, sink, _) = collector("event-log", "");
    let request = post(
        "/event/log?__event__=app.EventName&param=value",
        "application/x-www-form-urlencoded",
        "form=1",
    );
    assert_eq!(send(&c, request).0, 202);
    let (status, _, body) = send(
        &c,
        post(
            "/event/log?param=value",
            "application/x-www-form-urlencoded",
            "",
        ),
    );
    assert_eq!(status, 400);
    assert!(body.contains("__event__"));
    wait_for(&sink, 1);
    assert_eq!(sink.events()[0].name(), "app.EventName");
    assert_eq!(
        sink.events()[0].data(),
        &json!({"param": "value", "form": "1", "__ip_address__": "127.0.0.0"})
    );
    c.shutdown(LONG).unwrap();
}

#[test]
fn flume_logs_the_filtered_properties_and_routes_the_event() {
    let (c, sink, log) = collector(
        "flume",
        r#"flume_allowed_properties = ["url", "page.title"]"#,
    );
    let data = r#"{"event": "page.view", "properties": {"url": "/a", "email": "pii@example.com", "page": {"title": "A", "author": "x"}}}"#;
    let body = serde_urlencoded::to_string([("data", data)]).unwrap();
    assert_eq!(
        send(
            &c,
            post("/flume", "application/x-www-form-urlencoded", body)
        )
        .0,
        202
    );
    let line = log.text();
    let line: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(
        line,
        json!({"message": "page.view", "context": {"url": "/a", "page": {"title": "A"}}})
    );
    wait_for(&sink, 1);
    assert_eq!(
        sink.events()[0].data(),
        &json!({"url": "/a", "page": {"title": "A"}})
    );
    let (status, _, _) = send(
        &c,
        post("/flume", "application/x-www-form-urlencoded", "other=1"),
    );
    assert_eq!(status, 400);
    c.shutdown(LONG).unwrap();
}

#[test]
fn spade_takes_base64_json_objects_and_arrays() {
    let (c, sink, _) = collector("spade", "");
    let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for data in [
        r#"{"event": "one", "properties": {"k": 1}}"#,
        r#"[{"event": "two"}, {"event": "three"}]"#,
    ] {
        let body = serde_urlencoded::to_string([("data", encode(data))]).unwrap();
        assert_eq!(
            send(
                &c,
                post("/spade", "application/x-www-form-urlencoded", body)
            )
            .0,
            202
        );
    }
    wait_for(&sink, 3);
    assert_eq!(
        sink.events()
            .iter()
            .map(|e| e.name().to_string())
            .collect::<Vec<_>>(),
        ["one", "two", "three"]
    );
    c.shutdown(LONG).unwrap();
}

#[test]
fn health_metrics_unknown_routes_and_wrong_methods() {
    let (c, _sink, _) = collector("misc", "");
    let get = |uri: &str| {
        http::Request::get(uri)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    };
    let (status, headers, body) = send(&c, get("/healthz"));
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    assert_eq!(headers["content-type"], "application/json");
    let (status, _, script) = send(&c, get("/tidings.js"));
    assert_eq!(
        (status, script.as_str()),
        (200, tidings_collector::BROWSER_SCRIPT)
    );
    let (status, headers, _) = send(&c, post("/tidings.js", "text/plain", ""));
    assert_eq!(
        (status, headers["allow"].to_str().unwrap()),
        (405, "GET, HEAD")
    );
    assert_eq!(send(&c, get("/nope")).0, 404);
    let (status, headers, _) = send(&c, get("/events"));
    assert_eq!(
        (status, headers["allow"].to_str().unwrap()),
        (405, "POST, OPTIONS")
    );
    assert_eq!(send(&c, post("/healthz", "text/plain", "")).0, 405);
    send(&c, post("/events", "application/json", r#"{"name": "m"}"#));
    send(&c, post("/events", "application/json", "{"));
    let (status, headers, metrics) = send(&c, get("/metrics"));
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0")
    );
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    for line in [
        "tidings_collector_events_accepted_total 1",
        "tidings_collector_rejected_requests_total{reason=\"bad_request\"} 1",
        "tidings_collector_requests_total{route=\"/events\",status=\"202\"} 1",
        "tidings_collector_requests_total{route=\"other\",status=\"404\"} 1",
        "tidings_router_received_total{router=\"root\"}",
        "tidings_backend_received_total{backend=\"backends.mem\"}",
        "tidings_backend_dropped_total{backend=\"backends.mem\",reason=\"queue_full\"} 0",
        "tidings_backend_queue_depth{backend=\"intake\"}",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    assert!(
        metrics
            .lines()
            .filter(|l| !l.starts_with('#'))
            .all(|l| l.starts_with("tidings_"))
    );
    c.shutdown(LONG).unwrap();
}

#[test]
fn an_applications_own_registry_shows_the_collectors_families() {
    let (c, _sink, _) = collector("registry", "");
    send(&c, post("/events", "application/json", r#"{"name": "m"}"#));
    let mut registry = prometheus_client::registry::Registry::default();
    let app_counter: prometheus_client::metrics::counter::Counter = Default::default();
    registry.register(
        "app_requests",
        "The application's own.",
        app_counter.clone(),
    );
    app_counter.inc();
    registry.register_collector(Box::new(c.collector.metrics_collector()));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        "app_requests_total 1",
        "tidings_collector_events_accepted_total 1",
        "tidings_backend_received_total{backend=\"backends.mem\"}",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // The registry does not keep the collector alive; once it is gone its
    // families are simply absent.
    let metrics = c.collector.metrics_collector();
    c.shutdown(LONG).unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(metrics));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert_eq!(text, "# EOF\n");
}

#[test]
fn cors_allows_exactly_the_configured_origins() {
    let (c, _sink, _) = collector("cors", r#"allowed_origins = ["https://app.example"]"#);
    let preflight = |origin: &str| {
        http::Request::options("/events")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    };
    let (status, headers, _) = send(&c, preflight("https://app.example"));
    assert_eq!(status, 204);
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let (status, headers, body) = send(&c, preflight("https://evil.example"));
    assert_eq!(status, 403);
    assert!(headers.get("access-control-allow-origin").is_none());
    assert_eq!(headers["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], 403, "{body}");

    let mut request = post("/events", "text/plain", r#"{"name": "a"}"#);
    request
        .headers_mut()
        .insert("origin", "https://app.example".parse().unwrap());
    let (_, headers, _) = send(&c, request);
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(headers["vary"], "Origin");
    c.shutdown(LONG).unwrap();
}

#[test]
fn a_full_pipeline_answers_503_with_retry_after_and_accepts_nothing_of_the_request() {
    // The sink never answers and blocks its feeder, so the collector's queue
    // (5 events) fills up.
    let c = support::stuck_collector("stuck-503");
    let mut accepted = 0;
    let mut refused = None;
    for n in 0..50 {
        let (status, headers, body) = send(
            &c,
            post(
                "/events",
                "application/json",
                format!(r#"[{{"name": "n{n}"}}, {{"name": "m{n}"}}]"#),
            ),
        );
        match status {
            202 => accepted += 2,
            503 => {
                refused = Some((headers, body));
                break;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let (headers, body) = refused.expect("the queue never filled");
    assert_eq!(headers["retry-after"], "1");
    assert!(
        body.contains("nothing of this request was accepted"),
        "{body}"
    );
    assert!(c.metrics_text().contains(&format!(
        "tidings_collector_events_accepted_total {accepted}"
    )));
    assert!(
        c.metrics_text()
            .contains("tidings_collector_rejected_requests_total{reason=\"queue_full\"} 1")
    );
    let _ = c.shutdown(Duration::from_millis(200));
}

#[test]
fn the_browser_snippet_is_served_as_cacheable_javascript() {
    let (c, _sink, _) = collector("script", r#"write_keys = ["k"]"#);
    let request = |method: &str| support::request(method, "/tidings.js");
    let (status, headers, body) = send(&c, request("GET"));
    assert_eq!(status, 200, "no write key is needed for the script");
    assert_eq!(
        headers["content-type"],
        "application/javascript; charset=utf-8"
    );
    assert_eq!(headers["cache-control"], "public, max-age=300");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(body, tidings_collector::BROWSER_SCRIPT);
    assert!(body.contains("sendBeacon"));

    let (status, headers, body) = send(&c, request("HEAD"));
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(
        headers["content-type"],
        "application/javascript; charset=utf-8"
    );
    for method in ["POST", "OPTIONS", "PUT"] {
        let (status, headers, _) = send(&c, request(method));
        assert_eq!(
            (status, headers["allow"].to_str().unwrap()),
            (405, "GET, HEAD"),
            "{method}"
        );
    }
    let metrics = c.metrics_text();
    for line in [
        "tidings_collector_requests_total{route=\"/tidings.js\",status=\"200\"} 2",
        "tidings_collector_requests_total{route=\"/tidings.js\",status=\"405\"} 3",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }

    use tidings_collector::Route;
    assert_eq!(Route::from_path("/tidings.js"), Some(Route::Script));
    assert_eq!(Route::Script.path(), "/tidings.js");
    for route in Route::ALL {
        assert_eq!(Route::from_path(route.path()), Some(route));
    }
    c.shutdown(LONG).unwrap();
}
