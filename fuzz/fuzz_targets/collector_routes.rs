//! The collector's ingest routes, through its public `handle`: the first
//! byte picks the route and content type, the rest is the body. Every
//! answer is one of the documented statuses; 5xx only as 503.
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use tidings_collector::Collector;
use tidings_config::{Registry, load};

/// One collector for the whole run: a strict catalog at the door, a
/// `flume` allowlist, and a pipeline with no backends (events go nowhere).
fn collector() -> &'static (Collector, tokio::runtime::Runtime) {
    static COLLECTOR: OnceLock<(Collector, tokio::runtime::Runtime)> = OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let catalog = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/catalog/catalog.toml");
        let text = format!(
            "[collector]\nqueue_capacity = 100000\nflume_allowed_properties = [\"url\"]\n\
             catalog = {{ path = {catalog:?}, strict = false }}\n"
        );
        let config = load(&text, &Registry::default()).expect("the fuzz config loads");
        let collector = Collector::from_config(&config)
            .expect("the fuzz collector starts")
            .with_flume_log(std::io::sink());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        (collector, runtime)
    })
}

/// Replayed on stable by `crates/tidings-collector/tests/fuzz_corpus.rs`,
/// which copies this table: change both together.
const ROUTES: [(&str, &str); 8] = [
    ("/events", "application/json"),
    ("/events", "text/plain;charset=UTF-8"),
    ("/event/log?__event__=page.view&k=v", "application/x-www-form-urlencoded"),
    ("/flume", "application/x-www-form-urlencoded"),
    ("/spade", "application/x-www-form-urlencoded"),
    ("/events", "application/x-www-form-urlencoded"),
    ("/event/log", "application/x-www-form-urlencoded"),
    ("/spade", "application/json"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let (path, content_type) = ROUTES[usize::from(selector) % ROUTES.len()];
    let mut request = Request::post(path).header("content-type", content_type);
    if selector & 0x80 != 0 {
        request = request.header("content-encoding", "gzip");
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("a valid request");
    let (collector, runtime) = collector();
    let response = runtime.block_on(collector.handle(request));
    let status = response.status().as_u16();
    assert!(
        matches!(status, 202 | 400 | 401 | 413 | 415 | 503),
        "unexpected status {status} for {path}"
    );
});
