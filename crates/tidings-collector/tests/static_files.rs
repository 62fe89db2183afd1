//! `static_dir`: `GET /` and files from a directory, off by default, after
//! the collector's own routes, never outside the directory.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use support::{Served, collector, exchange, registry};
use tidings_collector::Collector;
use tidings_config::load;

const LONG: Duration = Duration::from_secs(10);

/// `BASE/public` with a page, a script, a subdirectory and a big file, and
/// a secret next to it (outside).
fn site(name: &str) -> (PathBuf, PathBuf) {
    let base = std::env::temp_dir().join(format!("tidings-site-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let public = base.join("public");
    std::fs::create_dir_all(public.join("docs")).unwrap();
    std::fs::create_dir_all(public.join("empty")).unwrap();
    std::fs::write(public.join("index.html"), "<h1>first party</h1>").unwrap();
    std::fs::write(public.join("app.js"), "tidings.track('x')").unwrap();
    std::fs::write(public.join("style.css"), "h1{}").unwrap();
    std::fs::write(public.join("docs/index.html"), "docs").unwrap();
    std::fs::write(public.join("healthz"), "a file shadowed by the route").unwrap();
    std::fs::write(public.join(".env"), "SECRET=1").unwrap();
    std::fs::write(base.join("secret.txt"), "outside").unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(base.join("secret.txt"), public.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(&base, public.join("up")).unwrap();
    }
    (base, public)
}

fn serve_dir(public: &std::path::Path, id: &str) -> Served {
    let text = format!(
        "[collector]\nstatic_dir = {:?}\n[backends.mem]\ntype = \"memory\"\nid = \"{id}\"\n",
        public.display().to_string()
    );
    let config = load(&text, &registry()).unwrap();
    Served::start(Collector::from_config(&config).unwrap())
}

fn get(served: &Served, method: &str, path: &str) -> (u16, http::HeaderMap, String) {
    exchange(served.addr, method, path, &[], b"")
}

#[test]
fn without_static_dir_nothing_is_served() {
    let (c, _sink, _) = collector("static-off", "");
    for path in ["/", "/index.html", "/app.js"] {
        let (status, headers, _) = get(&c, "GET", path);
        assert_eq!(status, 404, "{path}");
        assert_eq!(headers["content-type"], "application/json");
    }
    c.shutdown(LONG).unwrap();
}

#[test]
fn the_page_and_its_files_are_served_with_their_types() {
    let (base, public) = site("serve");
    let c = serve_dir(&public, "static-serve");
    let (status, headers, body) = get(&c, "GET", "/");
    assert_eq!((status, body.as_str()), (200, "<h1>first party</h1>"));
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let types = [
        ("/index.html", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
    ];
    for (path, expected) in types {
        let (status, headers, _) = get(&c, "GET", path);
        assert_eq!(status, 200, "{path}");
        let content_type = headers["content-type"].to_str().unwrap();
        assert!(content_type.starts_with(expected), "{path}: {content_type}");
    }
    assert_eq!(get(&c, "GET", "/docs/").2, "docs");
    let (status, headers, body) = get(&c, "HEAD", "/app.js");
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(headers["content-length"], "18");
    let (status, headers, text) = get(&c, "GET", "/missing.js");
    assert_eq!(status, 404);
    assert_eq!(headers["content-type"], "application/json");
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["status"], 404);
    assert_eq!(
        get(&c, "GET", "/empty/").0,
        404,
        "a directory without index.html"
    );
    assert!(c.metrics_text().contains(r#"route="static""#));
    c.shutdown(LONG).unwrap();
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn the_collectors_routes_come_first() {
    let (base, public) = site("routes");
    let c = serve_dir(&public, "static-routes");
    let (status, _, body) = get(&c, "GET", "/healthz");
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, headers, _) = get(&c, "GET", "/tidings.js");
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    assert_eq!(get(&c, "GET", "/metrics").0, 200);
    assert_eq!(get(&c, "GET", "/events").0, 405, "an ingest route's answer");
    let (status, _, _) = exchange(
        c.addr,
        "POST",
        "/event/log?__event__=app.Page",
        &[("content-type", "application/x-www-form-urlencoded")],
        b"",
    );
    assert_eq!(status, 202);
    assert_eq!(
        get(&c, "POST", "/").0,
        404,
        "files answer GET and HEAD only"
    );
    assert_eq!(get(&c, "DELETE", "/app.js").0, 404);
    c.shutdown(LONG).unwrap();
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn nothing_outside_the_directory_is_ever_served() {
    let (base, public) = site("traversal");
    let c = serve_dir(&public, "static-traversal");
    let attempts = [
        "/../secret.txt",
        "/docs/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/docs/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/..%5csecret.txt",
        "/%2e%2e%5csecret.txt",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/.env",
        "/%2eenv",
        "/leak.txt",
        "/up/secret.txt",
        "/index.html%00.js",
    ];
    for path in attempts {
        let (status, _, body) = get(&c, "GET", path);
        assert!(
            !body.contains("outside") && !body.contains("SECRET") && !body.contains("root:"),
            "{path} leaked: {body}"
        );
        assert!(status == 404 || status == 400, "{path}: {status}");
    }
    // What is inside is still served, even through a link inside.
    assert_eq!(get(&c, "GET", "/up/public/app.js").0, 200);
    c.shutdown(LONG).unwrap();
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn files_bigger_than_a_body_are_streamed_whole() {
    let (base, public) = site("big");
    let big: String = "0123456789abcdef".repeat(256 * 1024); // 4 MiB, over max_body_bytes
    std::fs::write(public.join("big.txt"), &big).unwrap();
    let c = serve_dir(&public, "static-big");
    let (status, headers, body) = get(&c, "GET", "/big.txt");
    assert_eq!(status, 200);
    assert_eq!(headers["content-length"], big.len().to_string().as_str());
    assert!(body == big, "the whole file");
    c.shutdown(LONG).unwrap();
    std::fs::remove_dir_all(&base).unwrap();
}
