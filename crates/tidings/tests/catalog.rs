//! A tracker with a catalog checks each emit at the call, as eventlib's
//! `log()` does: strict, an invalid event is an error naming the event and
//! the violation, and nothing is routed; lenient, it warns once per event
//! name and the catalog processor filters it as before. The same holds for
//! the global `emit` and for a tracker built from a config whose root chain
//! has a `catalog` processor.

#![cfg(feature = "catalog")]

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tidings::catalog::{
    Catalog, CatalogProcessor, OnInvalid, TypedEvent, VIOLATION_KEY, Violation, ViolationKind,
};
use tidings::{EmitError, SinkBackend, Tracker};
use tidings_test::{RecordingBackend, RecordingSink, SharedBuffer};

const CATALOG: &str = r#"
    title = "web"

    [events."navigation.request"]
    properties.url = { type = "string", required = true, pattern = '^https?://' }
    properties.depth = { type = "integer" }

    [events."edx.video.*"]
    properties.video_id = { type = "string", required = true }
"#;

fn catalog() -> Arc<Catalog> {
    Arc::new(Catalog::from_toml_str(CATALOG, "catalog.toml").unwrap())
}

fn tracker(strict: bool, recorder: &RecordingBackend) -> Tracker {
    Tracker::builder()
        .catalog(catalog(), strict)
        .backend("memory", recorder.clone())
        .build()
        .unwrap()
}

/// The violation an emit was refused for.
fn violation(error: &EmitError) -> &Violation {
    Violation::of(error).unwrap_or_else(|| panic!("not a catalog refusal: {error:?}"))
}

#[test]
fn strict_an_undeclared_name_fails_the_emit_and_nothing_is_routed() {
    let sink = RecordingSink::new();
    let tracker = Tracker::builder()
        .catalog(catalog(), true)
        .backend(
            "sink",
            SinkBackend::builder("sink", sink.clone()).build().unwrap(),
        )
        .build()
        .unwrap();

    let error = tracker
        .emit("navigation.requst", json!({"url": "https://example.com/"}))
        .unwrap_err();
    assert!(matches!(error, EmitError::Invalid(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        r#"event "navigation.requst" is not in the catalog"#
    );
    let refused = violation(&error);
    assert_eq!(refused.event(), "navigation.requst");
    assert_eq!(refused.kind(), &ViolationKind::UnknownEvent);

    tracker.shutdown(Duration::from_secs(5)).unwrap();
    assert!(sink.events().is_empty(), "{:?}", sink.events());
    let stats = tracker.stats();
    assert_eq!((stats.received, stats.filtered), (0, 0), "never routed");
    // Counted by the catalog processor, as a drop in the chain would have been.
    let catalog = tracker.catalog().unwrap().stats();
    assert_eq!(catalog.checked, 1);
    assert_eq!(catalog.invalid["unknown_event"], 1);
}

#[test]
fn strict_a_missing_or_invalid_property_fails_the_emit_naming_it() {
    let recorder = RecordingBackend::new();
    let tracker = tracker(true, &recorder);

    let missing = tracker
        .emit("navigation.request", json!({"depth": 2}))
        .unwrap_err();
    assert_eq!(
        missing.to_string(),
        r#"event "navigation.request": property "url" is required"#
    );
    assert_eq!(violation(&missing).path(), "url");
    assert_eq!(violation(&missing).kind(), &ViolationKind::Missing);

    let wrong = tracker
        .emit(
            "navigation.request",
            json!({"url": "https://example.com/", "depth": "deep"}),
        )
        .unwrap_err();
    assert_eq!(
        wrong.to_string(),
        r#"event "navigation.request": property "depth": expected integer, found string"#
    );

    // A family's declaration applies to every name under it.
    let family = tracker.emit("edx.video.played", json!({})).unwrap_err();
    assert_eq!(
        family.to_string(),
        r#"event "edx.video.played": property "video_id" is required"#
    );

    assert!(recorder.is_empty(), "{:?}", recorder.names());
    assert_eq!(tracker.stats().received, 0);
}

#[test]
fn strict_a_valid_event_is_delivered_and_validated_once() {
    let recorder = RecordingBackend::new();
    let tracker = tracker(true, &recorder);

    let id = tracker
        .emit(
            "navigation.request",
            json!({"url": "https://example.com/", "depth": 1}),
        )
        .unwrap();
    assert!(id.is_some());
    tracker
        .emit("edx.video.played", json!({"video_id": "v1"}))
        .unwrap();
    assert_eq!(recorder.names(), ["navigation.request", "edx.video.played"]);
    assert_eq!(recorder.events()[0].id(), id.unwrap());
    let stats = tracker.catalog().unwrap().stats();
    assert_eq!(stats.checked, 2, "one check per event, not one per look");
    assert!(stats.invalid.is_empty(), "{stats:?}");
}

#[test]
fn an_event_changed_after_the_call_is_validated_again_in_the_chain() {
    // A processor ahead of the catalog in the root chain removes `url`:
    // what reaches the catalog processor is no longer what passed at the
    // call, so the processor validates it again and drops it.
    let recorder = RecordingBackend::new();
    let tracker = Tracker::builder()
        .processor(tidings::processor_fn("strip-url", |event| {
            if let Some(data) = event.data_mut().as_object_mut() {
                data.remove("url");
            }
            Ok(tidings::Verdict::Keep)
        }))
        .catalog(catalog(), true)
        .backend("memory", recorder.clone())
        .build()
        .unwrap();
    tracker
        .emit("navigation.request", json!({"url": "https://example.com/"}))
        .unwrap();
    assert!(recorder.is_empty(), "{:?}", recorder.events());
    assert_eq!(tracker.stats().filtered, 1);
    let stats = tracker.catalog().unwrap().stats();
    assert_eq!(stats.invalid["missing"], 1);
}

#[test]
fn events_sent_as_built_are_validated_in_the_chain_as_before() {
    let recorder = RecordingBackend::new();
    let tracker = tracker(true, &recorder);
    let typo = tidings::Event::new("navigation.requst".try_into().unwrap(), json!({}));
    tracker.send(typo);
    assert!(recorder.is_empty());
    assert_eq!(tracker.stats().filtered, 1);
}

#[derive(Serialize)]
struct Played<'a> {
    video_id: Option<&'a str>,
}

impl TypedEvent for Played<'_> {
    const NAME: &'static str = "edx.video.played";
}

#[test]
fn typed_events_are_checked_against_the_catalog_too() {
    let recorder = RecordingBackend::new();
    let tracker = tracker(true, &recorder);
    let error = tracker.emit_typed(&Played { video_id: None }).unwrap_err();
    assert_eq!(violation(&error).kind(), &ViolationKind::Missing);
    tracker
        .emit_typed(&Played {
            video_id: Some("v1"),
        })
        .unwrap();
    assert_eq!(recorder.names(), ["edx.video.played"]);
}

#[test]
fn a_name_the_root_filters_drop_is_refused_before_the_check() {
    let recorder = RecordingBackend::new();
    let tracker = Tracker::builder()
        .processor(tidings::RegexFilter::allowlist([r"^navigation\."]).unwrap())
        .catalog(catalog(), true)
        .backend("memory", recorder.clone())
        .build()
        .unwrap();
    // Not declared, but no event is made: the allowlist refuses the name.
    assert_eq!(tracker.emit("debug.tick", json!({})).unwrap(), None);
    assert!(tracker.emit("navigation.typo", json!({})).is_err());
    assert!(recorder.is_empty());
}

/// Runs `f` with a subscriber recording `tidings::catalog` logs at `INFO`
/// and above on this thread; returns them.
fn logs(f: impl FnOnce()) -> String {
    let buffer = SharedBuffer::default();
    let subscriber = buffer.subscriber(tracing::Level::INFO);
    tracing::subscriber::with_default(subscriber, f);
    buffer.text()
}

#[test]
fn lenient_an_invalid_event_warns_once_per_name_and_is_filtered_as_before() {
    let recorder = RecordingBackend::new();
    let tracker = tracker(false, &recorder);
    let text = logs(|| {
        for _ in 0..3 {
            let id = tracker
                .emit("navigation.request", json!({"url": 42}))
                .unwrap();
            assert!(id.is_some(), "the emit succeeds");
            tracker.emit("edx.video.played", json!({})).unwrap();
            // Undeclared names pass in lenient mode, without a word.
            tracker.emit("navigation.typo", json!({})).unwrap();
        }
        tracker
            .emit("navigation.request", json!({"url": "https://example.com/"}))
            .unwrap();
    });

    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 2, "{text}");
    assert!(
        warnings[0].contains(
            r#"event "navigation.request": property "url": expected string, found integer"#
        ),
        "{text}"
    );
    assert!(
        warnings[0].contains("the catalog processor drops it"),
        "{text}"
    );
    assert!(
        warnings[1].contains(r#"event "edx.video.played": property "video_id" is required"#),
        "{text}"
    );
    assert!(!text.contains("navigation.typo"), "{text}");

    // As a lenient catalog processor always did: invalid events dropped and
    // counted, undeclared names passed.
    assert_eq!(
        recorder.names(),
        [
            "navigation.typo",
            "navigation.typo",
            "navigation.typo",
            "navigation.request"
        ]
    );
    let stats = tracker.catalog().unwrap().stats();
    assert_eq!(stats.checked, 10);
    assert_eq!(stats.invalid["wrong_type"], 3);
    assert_eq!(stats.invalid["missing"], 3);
    assert_eq!(tracker.stats().filtered, 6);
}

#[test]
fn lenient_with_annotate_passes_the_event_noted() {
    let recorder = RecordingBackend::new();
    let processor = Arc::new(CatalogProcessor::new(catalog()).on_invalid(OnInvalid::Annotate));
    let tracker = Tracker::builder()
        .catalog_processor(processor)
        .backend("memory", recorder.clone())
        .build()
        .unwrap();
    let text = logs(|| {
        tracker.emit("edx.video.played", json!({})).unwrap();
    });
    assert!(text.contains("passes it annotated"), "{text}");
    let events = recorder.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].context()[VIOLATION_KEY],
        r#"event "edx.video.played": property "video_id" is required"#
    );
}

#[test]
fn the_default_tracker_checks_as_the_tracker_does() {
    let recorder = RecordingBackend::new();
    let tracker = tracker(true, &recorder);

    // The thread's default ...
    {
        let _default = tidings::set_default(&tracker);
        let error = tidings::emit("navigation.requst", json!({})).unwrap_err();
        assert_eq!(violation(&error).kind(), &ViolationKind::UnknownEvent);
        tidings::emit("edx.video.played", json!({"video_id": "v1"})).unwrap();
    }
    // ... and the process-wide one (only this test installs it).
    let _guard = tidings::init(tracker.clone());
    let error = tidings::emit("navigation.request", json!({"url": "ftp://x"})).unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"event "navigation.request": property "url": "ftp://x" does not match the pattern ^https?://"#
    );
    tidings::emit("navigation.request", json!({"url": "https://example.com/"})).unwrap();

    assert_eq!(recorder.names(), ["edx.video.played", "navigation.request"]);
}

#[cfg(feature = "config")]
mod from_config {
    use super::*;
    use tidings_test::{MemorySinkType, memory_sink};

    fn registry() -> tidings_config::Registry {
        let mut registry = tidings_config::Registry::default();
        registry.register_sink::<MemorySinkType>();
        registry
    }

    /// The catalog file, in a directory of this test's own.
    fn catalog_file(test: &str) -> String {
        let dir = std::env::temp_dir().join(format!(
            "tidings-catalog-test-{}-{test}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("catalog.toml");
        std::fs::write(&path, CATALOG).unwrap();
        path.display().to_string()
    }

    #[test]
    fn a_strict_root_catalog_in_a_config_fails_the_emit() {
        let path = catalog_file("strict");
        let text = format!(
            r#"
            [[processors]]
            type = "catalog"
            path = {path:?}
            strict = true

            [backends.out]
            type = "memory"
            id = "catalog-strict"
            "#
        );
        let tracker = Tracker::from_config_str_with(&text, &registry()).unwrap();
        let error = tracker
            .emit("navigation.requst", json!({"url": "https://example.com/"}))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"event "navigation.requst" is not in the catalog"#
        );
        let error = tracker.emit("navigation.request", json!({})).unwrap_err();
        assert_eq!(violation(&error).path(), "url");
        tracker
            .emit("navigation.request", json!({"url": "https://example.com/"}))
            .unwrap();
        tracker.shutdown(Duration::from_secs(5)).unwrap();

        let sink = memory_sink("catalog-strict");
        let names: Vec<String> = sink.events().iter().map(|e| e.name().to_string()).collect();
        assert_eq!(names, ["navigation.request"]);
        assert_eq!(tracker.stats().received, 1);
        let stats = tracker.catalog().unwrap().stats();
        assert_eq!(stats.checked, 3);
        assert_eq!(stats.invalid.values().sum::<u64>(), 2);
    }

    #[test]
    fn a_lenient_root_catalog_in_a_config_warns_once_per_name() {
        let path = catalog_file("lenient");
        let text = format!(
            r#"
            [[processors]]
            type = "catalog"
            path = {path:?}

            [backends.out]
            type = "memory"
            id = "catalog-lenient"
            "#
        );
        let tracker = Tracker::from_config_str_with(&text, &registry()).unwrap();
        let logged = logs(|| {
            for _ in 0..4 {
                tracker.emit("navigation.request", json!({})).unwrap();
            }
        });
        tracker.shutdown(Duration::from_secs(5)).unwrap();
        assert_eq!(
            logged.lines().filter(|l| l.contains("WARN")).count(),
            1,
            "{logged}"
        );
        assert!(memory_sink("catalog-lenient").events().is_empty());
        assert_eq!(tracker.stats().filtered, 4);
    }

    #[test]
    fn a_catalog_below_the_root_filters_its_branch_only() {
        let path = catalog_file("branch");
        let text = format!(
            r#"
            [backends.all]
            type = "memory"
            id = "catalog-branch-all"

            [backends.checked]
            type = "router"
            [[backends.checked.processors]]
            type = "catalog"
            path = {path:?}
            strict = true
            [backends.checked.backends.out]
            type = "memory"
            id = "catalog-branch-checked"
            "#
        );
        let tracker = Tracker::from_config_str_with(&text, &registry()).unwrap();
        assert!(tracker.catalog().is_none());
        tracker.emit("navigation.requst", json!({})).unwrap();
        tracker.shutdown(Duration::from_secs(5)).unwrap();
        assert_eq!(memory_sink("catalog-branch-all").events().len(), 1);
        assert!(memory_sink("catalog-branch-checked").events().is_empty());
    }
}
