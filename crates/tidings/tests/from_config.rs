//! A tracker built from TOML routes events exactly like the equivalent
//! builder code, and config errors carry their paths.

#![cfg(feature = "config")]

use std::time::Duration;

use serde_json::{Value, json};
use tidings::{PropertyAllowlist, RegexFilter, RoutingBackend, SinkBackend, Tracker};
use tidings_test::{MemorySinkType, RecordingSink, memory_sink};

fn registry() -> tidings_config::Registry {
    let mut registry = tidings_config::Registry::default();
    registry.register_sink::<MemorySinkType>();
    registry
}

fn emit_workload(tracker: &Tracker) {
    let _user = tidings::enter_context("user", json!({"user_id": 7}));
    for name in [
        "edx.course.enrolled",
        "edx.internal.tick",
        "navigation.request",
        "debug.noise",
    ] {
        tracker.emit(name, json!({"url": "/x", "email": "pii@example.com", "page": {"title": "T", "secret": 1}})).unwrap();
    }
    tracker.flush(Duration::from_secs(5)).unwrap();
}

/// What a sink received, without ids and timestamps.
fn seen(sink: &RecordingSink) -> Vec<(String, Value, Value)> {
    sink.events()
        .iter()
        .map(|e| {
            (
                e.name().to_string(),
                Value::Object(e.context().clone()),
                e.data().clone(),
            )
        })
        .collect()
}

#[test]
fn a_tracker_from_toml_routes_like_the_same_tree_built_in_code() {
    let text = r#"
        [[processors]]
        type = "regex_filter"
        filter = "allowlist"
        patterns = ['^edx\.', '^navigation\.']

        [backends.all]
        type = "memory"
        id = "toml-all"

        [backends.public]
        type = "router"
        [[backends.public.processors]]
        type = "regex_filter"
        filter = "blocklist"
        patterns = ['^edx\.internal\.']
        [[backends.public.processors]]
        type = "property_allowlist"
        allowed = ["url", "page.title"]
        [backends.public.backends.mirror]
        type = "memory"
        id = "toml-public"
    "#;
    let from_toml = Tracker::from_config_str_with(text, &registry()).unwrap();
    emit_workload(&from_toml);

    let (all, public) = (memory_sink("code-all"), memory_sink("code-public"));
    let from_code = Tracker::builder()
        .processor(RegexFilter::allowlist([r"^edx\.", r"^navigation\."]).unwrap())
        .backend(
            "all",
            SinkBackend::builder("all", all.clone()).build().unwrap(),
        )
        .backend(
            "public",
            RoutingBackend::builder()
                .processor(RegexFilter::blocklist([r"^edx\.internal\."]).unwrap())
                .processor(PropertyAllowlist::new(["url", "page.title"]).unwrap())
                .backend(
                    "mirror",
                    SinkBackend::builder("mirror", public.clone())
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    emit_workload(&from_code);

    assert_eq!(seen(&memory_sink("toml-all")), seen(&all));
    assert_eq!(seen(&memory_sink("toml-public")), seen(&public));
    assert_eq!(seen(&public).len(), 2);
    assert_eq!(
        seen(&public)[0].2,
        json!({"url": "/x", "page": {"title": "T"}})
    );
    assert_eq!(from_toml.stats(), from_code.stats());
}

#[test]
fn a_tracker_can_be_built_from_a_config_file() {
    let path = std::env::temp_dir().join(format!("tidings-tracker-{}.toml", std::process::id()));
    std::fs::write(&path, "[[processors]]\ntype = \"regex_filter\"\nfilter = \"blocklist\"\npatterns = ['^debug\\.']\n").unwrap();
    let tracker = Tracker::from_config_file(&path).unwrap();
    tracker.emit("debug.noise", json!({})).unwrap();
    tracker.emit("kept", json!({})).unwrap();
    let stats = tracker.stats();
    assert_eq!((stats.received, stats.filtered), (2, 1));
    std::fs::remove_file(path).unwrap();
}

#[test]
fn config_errors_are_the_path_carrying_errors_of_tidings_check() {
    let err = Tracker::from_config_str("[backends.a]\ntype = \"nope\"\n").unwrap_err();
    assert_eq!(err.errors()[0].path, "backends.a.type");
    let err = Tracker::from_config_file("/nonexistent/tidings.toml").unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot read config file /nonexistent/tidings.toml"),
        "{err}"
    );
}
