//! `[collector.catalog]`: events are validated before admission; a
//! violation refuses the whole request with a 400 naming the event and the
//! property.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use support::{collector, post, registry, send, wait_for};
use tidings_collector::Collector;

const LONG: Duration = Duration::from_secs(10);

/// The example catalog of the repository (`examples/catalog/catalog.toml`).
fn catalog_path() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/catalog/catalog.toml")
        .display()
        .to_string()
}

fn options(strict: bool) -> String {
    format!(
        "catalog = {{ path = {:?}, strict = {strict} }}",
        catalog_path()
    )
}

#[test]
fn strict_validation_refuses_the_whole_batch_naming_event_and_property() {
    let (c, sink, _) = collector("catalog-strict", &options(true));
    let batch = json!([
        {"name": "navigation.request", "data": {"url": "https://a.example/"}},
        {"name": "navigation.request", "data": {"url": "ftp://a.example/"}},
    ]);
    let (status, _, body) = send(&c, post("/events", "application/json", batch.to_string()));
    assert_eq!(status, 400);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["index"], 1);
    assert_eq!(body["event"], "navigation.request");
    assert_eq!(body["property"], "url");
    assert_eq!(body["reason"], "pattern");
    assert_eq!(
        body["error"],
        r#"event 1: event "navigation.request": property "url": "ftp://a.example/" does not match the pattern ^https?://; nothing of this request was accepted"#
    );

    let unknown = json!({"name": "navigation.typo", "data": {}});
    let (status, _, body) = send(&c, post("/events", "application/json", unknown.to_string()));
    assert_eq!(status, 400);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["reason"], "unknown_event");
    assert_eq!(body["property"], "");

    // The Spade route is validated too.
    let spade = base64::engine::general_purpose::STANDARD
        .encode(r#"{"event": "checkout.started", "properties": {"items": "three"}}"#);
    let form = serde_urlencoded::to_string([("data", spade)]).unwrap();
    let (status, _, body) = send(
        &c,
        post("/spade", "application/x-www-form-urlencoded", form),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(r#"property \"items\": expected integer, found string"#),
        "{body}"
    );

    // Nothing of the refused requests arrived: only the next valid one.
    let valid = json!({"name": "checkout.started", "data": {"items": 3}});
    let (status, _, _) = send(&c, post("/events", "application/json", valid.to_string()));
    assert_eq!(status, 202);
    wait_for(&sink, 1);
    std::thread::sleep(Duration::from_millis(100));
    let names: Vec<String> = sink.events().iter().map(|e| e.name().to_string()).collect();
    assert_eq!(names, ["checkout.started"]);
    let metrics = c.metrics_text();
    assert!(
        metrics.contains(r#"tidings_collector_rejected_requests_total{reason="invalid_event"} 3"#),
        "{metrics}"
    );
    for reason in ["pattern", "unknown_event", "wrong_type"] {
        assert!(
            metrics.contains(&format!(
                "tidings_collector_invalid_events_total{{reason=\"{reason}\"}} 1"
            )),
            "{metrics}"
        );
    }
    c.shutdown(LONG).unwrap();
}

#[test]
fn lenient_validation_passes_undeclared_events_but_refuses_invalid_ones() {
    let (c, sink, _) = collector("catalog-lenient", &options(false));
    let undeclared = json!({"name": "something.else", "data": {"any": "thing"}});
    let (status, _, _) = send(
        &c,
        post("/events", "application/json", undeclared.to_string()),
    );
    assert_eq!(status, 202);
    let invalid = json!({"name": "page.leave", "data": {}});
    let (status, _, body) = send(&c, post("/events", "application/json", invalid.to_string()));
    assert_eq!(status, 400);
    assert!(body.contains(r#"property \"to\" is required"#), "{body}");
    wait_for(&sink, 1);
    assert_eq!(sink.events()[0].name(), "something.else");
    c.shutdown(LONG).unwrap();
}

#[test]
fn a_missing_catalog_is_a_config_error_at_its_path() {
    let config = tidings_config::load(
        "[collector]\ncatalog = { path = \"/nonexistent/catalog.toml\" }\n",
        &registry(),
    )
    .unwrap();
    let errors = Collector::from_config(&config).unwrap_err();
    assert_eq!(errors.errors()[0].path, "collector.catalog.path");
    assert!(
        errors.to_string().contains("/nonexistent/catalog.toml"),
        "{errors}"
    );
}

fn tidings(args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn catalog_check_lints_and_fails_on_errors() {
    let (ok, stdout, _) = tidings(&["catalog", "check", &catalog_path()]);
    assert!(ok, "{stdout}");
    assert!(
        stdout.ends_with(": 14 events, 0 errors, 0 warnings\n"),
        "{stdout}"
    );

    let dir = std::env::temp_dir().join(format!("tidings-cli-catalog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[events.\"a.b\"]\nowner = \"x\"\ndescription = \"d\"\nexamples = [{ n = \"one\" }]\nproperties.n = { type = \"integer\", description = \"n\" }\n",
    )
    .unwrap();
    let (ok, stdout, _) = tidings(&["catalog", "check", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stdout.contains(r#"error: events."a.b".examples[0]: event "a.b": property "n": expected integer, found string"#),
        "{stdout}"
    );
    std::fs::write(
        &bad,
        "[events.\"a.b\"]\nproperties.n = { type = \"int\" }\n",
    )
    .unwrap();
    let (ok, _, stderr) = tidings(&["catalog", "check", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains(
            r#"line 2, column 18: `events."a.b".properties.n.type`: unknown value "int"; did you mean "integer"?"#
        ),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn catalog_docs_writes_the_golden_pages() {
    let out = std::env::temp_dir().join(format!("tidings-cli-docs-{}", std::process::id()));
    let (ok, stdout, stderr) = tidings(&[
        "catalog",
        "docs",
        &catalog_path(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("wrote 29 files under "), "{stdout}");
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/catalog/docs");
    for file in [
        "index.md",
        "events/navigation.request.md",
        "schemas/video._family_.json",
    ] {
        assert_eq!(
            std::fs::read_to_string(out.join(file)).unwrap(),
            std::fs::read_to_string(golden.join(file)).unwrap(),
            "{file}"
        );
    }
    std::fs::remove_dir_all(&out).unwrap();
}
