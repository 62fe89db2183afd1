//! The collector mounted in a host axum application: under a prefix, and
//! one route alone, with the standalone server's limits, errors and
//! back-pressure.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use support::{exchange, wait_for};
use tidings_collector::{Collector, Route};
use tidings_config::load;
use tidings_test::{Answer, RecordingSink, install_memory_sink, memory_sink};
use tower_service::Service;

/// Method, path, headers, body and the expected status.
type Case = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
    Vec<u8>,
    u16,
);

const KEY: (&str, &str) = ("authorization", "Bearer host-key");
const JSON: (&str, &str) = ("content-type", "application/json");

fn collector(id: &str, extra: &str) -> Collector {
    let text = format!(
        "[collector]\nwrite_keys = [\"host-key\"]\nmax_body_bytes = 4096\n{extra}\n[backends.mem]\ntype = \"memory\"\nid = \"{id}\"\nflush_interval_ms = 10\nqueue_capacity = 1\nwhen_full = \"block\"\nblock_timeout_ms = 60000\nmax_events = 1\n"
    );
    Collector::from_config(&load(&text, &support::registry()).unwrap()).unwrap()
}

/// Serves `app` on an ephemeral port from a thread of its own.
fn serve(app: axum::Router) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

#[test]
fn the_routes_mounted_under_a_prefix_in_a_host_app_behave_like_the_standalone_server() {
    let ingest = collector("embed-prefix", "");
    let busy_sink = RecordingSink::scripted([Answer::Hang]);
    install_memory_sink("embed-busy", busy_sink);
    let busy = collector("embed-busy", "queue_capacity = 2");
    let app = axum::Router::new()
        .route(
            "/own",
            axum::routing::get(|| async { "the host's own route" }),
        )
        .nest_service("/api", ingest.clone())
        .route_service("/hooks/flume", ingest.route(Route::Flume))
        .nest_service("/busy", busy.clone());
    let addr = serve(app);

    let (status, _, body) = exchange(addr, "GET", "/own", &[], b"");
    assert_eq!((status, body.as_str()), (200, "the host's own route"));
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/api/events",
            vec![KEY, JSON],
            br#"{"name": "embedded.ok"}"#.to_vec(),
            202,
        ),
        (
            "POST",
            "/api/events",
            vec![JSON],
            br#"{"name": "no.key"}"#.to_vec(),
            401,
        ),
        (
            "POST",
            "/api/events",
            vec![KEY, JSON],
            b"{oops".to_vec(),
            400,
        ),
        (
            "POST",
            "/api/events",
            vec![KEY, JSON],
            vec![b' '; 5000],
            413,
        ),
        (
            "POST",
            "/api/events",
            vec![KEY, ("content-type", "application/xml")],
            b"<a/>".to_vec(),
            415,
        ),
        ("GET", "/api/events", vec![KEY], Vec::new(), 405),
        ("POST", "/api/nope", vec![KEY, JSON], b"{}".to_vec(), 404),
        ("GET", "/api/healthz", vec![], Vec::new(), 200),
        (
            "POST",
            "/hooks/flume",
            vec![KEY, ("content-type", "application/x-www-form-urlencoded")],
            serde_urlencoded::to_string([(
                "data",
                r#"{"event": "embedded.flume", "properties": {"k": 1}}"#,
            )])
            .unwrap()
            .into_bytes(),
            202,
        ),
    ];
    for (method, path, headers, body, expected) in cases {
        let (status, _, text) = exchange(addr, method, path, &headers, &body);
        assert_eq!(status, expected, "{method} {path}: {text}");
    }
    wait_for(&memory_sink("embed-prefix"), 2);
    let names: Vec<String> = memory_sink("embed-prefix")
        .events()
        .iter()
        .map(|e| e.name().to_string())
        .collect();
    assert_eq!(names, ["embedded.ok", "embedded.flume"]);

    // The busy collector's sink never answers: its queues fill, then 503.
    let mut statuses = Vec::new();
    for n in 0..20 {
        let body = format!(r#"{{"name": "busy.{n}"}}"#);
        let (status, headers, _) =
            exchange(addr, "POST", "/busy/events", &[KEY, JSON], body.as_bytes());
        statuses.push(status);
        if status == 503 {
            assert_eq!(headers["retry-after"], "1");
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&503), "{statuses:?}");
    assert!(statuses[..statuses.len() - 1].iter().all(|s| *s == 202));
    ingest.shutdown(Duration::from_secs(5)).unwrap();
    let _ = busy.shutdown(Duration::from_millis(100));
}

#[tokio::test]
async fn under_prefix_serves_plain_hyper_hosts_and_answers_404_outside_it() {
    let c = collector("embed-plain", "");
    let mut service = c.under_prefix("/ingest/");
    let request = |path: &str| {
        http::Request::post(path)
            .header(KEY.0, KEY.1)
            .header(JSON.0, JSON.1)
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                br#"{"name": "plain.ok"}"#,
            )))
            .unwrap()
    };
    let ok: Result<_, Infallible> = service.call(request("/ingest/events")).await;
    assert_eq!(ok.unwrap().status(), 202);
    assert_eq!(
        service.call(request("/events")).await.unwrap().status(),
        404
    );
    assert_eq!(
        service
            .call(request("/ingest/other"))
            .await
            .unwrap()
            .status(),
        404
    );
    c.drain(Duration::from_secs(5)).await.unwrap();
    assert_eq!(memory_sink("embed-plain").events().len(), 1);
}

#[tokio::test]
async fn the_browser_snippet_is_served_under_a_prefix_and_as_a_route_alone() {
    let c = collector("embed-script", "");
    let get = |path: &str| {
        http::Request::get(path)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    };
    let mut prefixed = c.under_prefix("/ingest");
    let mut alone = c.route(Route::Script);
    for response in [
        prefixed.call(get("/ingest/tidings.js")).await.unwrap(),
        alone.call(get("/static/t.js")).await.unwrap(),
    ] {
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "application/javascript; charset=utf-8"
        );
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(body, tidings_collector::BROWSER_SCRIPT.as_bytes());
    }
    c.drain(Duration::from_secs(5)).await.unwrap();
}
