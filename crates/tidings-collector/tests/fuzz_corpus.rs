//! Replays the committed fuzz corpus of `collector_routes` (`fuzz/corpus/`)
//! on stable, the way the fuzz target reads an input: the first byte picks
//! the route and content type (and gzip), the rest is the body. Every
//! answer is one of the documented statuses.

use std::path::Path;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tidings_collector::Collector;
use tidings_config::{Registry, load};

/// As in `fuzz/fuzz_targets/collector_routes.rs` (its own workspace, so
/// the table cannot be shared): change both together.
const ROUTES: [(&str, &str); 8] = [
    ("/events", "application/json"),
    ("/events", "text/plain;charset=UTF-8"),
    (
        "/event/log?__event__=page.view&k=v",
        "application/x-www-form-urlencoded",
    ),
    ("/flume", "application/x-www-form-urlencoded"),
    ("/spade", "application/x-www-form-urlencoded"),
    ("/events", "application/x-www-form-urlencoded"),
    ("/event/log", "application/x-www-form-urlencoded"),
    ("/spade", "application/json"),
];

#[tokio::test]
async fn the_collector_routes_corpus_gets_documented_answers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let catalog = root.join("examples/catalog/catalog.toml");
    let text = format!(
        "[collector]\nqueue_capacity = 100000\nflume_allowed_properties = [\"url\"]\n\
         catalog = {{ path = {:?}, strict = false }}\n",
        catalog.display().to_string()
    );
    let config = load(&text, &Registry::default()).unwrap();
    let collector = Collector::from_config(&config)
        .unwrap()
        .with_flume_log(std::io::sink());
    let dir = root.join("fuzz/corpus/collector_routes");
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let Some((&selector, body)) = data.split_first() else {
            continue;
        };
        inputs += 1;
        let (route, content_type) = ROUTES[usize::from(selector) % ROUTES.len()];
        let mut request = Request::post(route).header("content-type", content_type);
        if selector & 0x80 != 0 {
            request = request.header("content-encoding", "gzip");
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .unwrap();
        let status = collector.handle(request).await.status().as_u16();
        assert!(
            matches!(status, 202 | 400 | 401 | 413 | 415 | 503),
            "status {status} for {} ({route})",
            path.display()
        );
    }
    assert!(inputs > 0, "no corpus under {}", dir.display());
}
