//! Plain backends from config files: a third-party `BackendType`
//! registered, validated, printed with its "after 202" line, built into
//! the tree and sent to in line.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tidings_config::{BackendType, ConfigErrorKind, Delivery, Registry, SinkType, load};
use tidings_event::{Event, EventName};
use tidings_routing::{Backend, BoxError, SendError, Sink};
use tidings_test::RecordingSink;

/// Counts the events it is given, in a process-wide tally named `label`.
#[derive(Debug)]
struct Tally(Arc<AtomicU64>);

impl Backend for Tally {
    fn send(&self, _event: Event) -> Result<(), SendError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn tally(label: &str) -> Arc<AtomicU64> {
    static TALLIES: OnceLock<Mutex<HashMap<String, Arc<AtomicU64>>>> = OnceLock::new();
    TALLIES
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(label.to_owned())
        .or_default()
        .clone()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TallyOptions {
    label: String,
    #[serde(default)]
    fail_to_build: bool,
}

/// `type = "tally"`: keeps nothing, so it says nothing of `may_drop` (the
/// default applies).
struct TallyType;

impl BackendType for TallyType {
    const NAME: &'static str = "tally";
    type Options = TallyOptions;

    fn validate(options: &TallyOptions) -> Vec<(String, String)> {
        if options.label.is_empty() {
            vec![("label".into(), "must not be empty".into())]
        } else {
            Vec::new()
        }
    }

    fn build(options: &TallyOptions) -> Result<Arc<dyn Backend>, BoxError> {
        if options.fail_to_build {
            return Err(format!("tally {} cannot start", options.label).into());
        }
        Ok(Arc::new(Tally(tally(&options.label))))
    }

    fn describe(options: &TallyOptions) -> String {
        format!("label={}", options.label)
    }
}

/// `type = "keeping_tally"`: the same, claiming to keep what it accepts.
struct KeepingTallyType;

impl BackendType for KeepingTallyType {
    const NAME: &'static str = "keeping_tally";
    type Options = TallyOptions;

    fn build(options: &TallyOptions) -> Result<Arc<dyn Backend>, BoxError> {
        TallyType::build(options)
    }

    fn describe(options: &TallyOptions) -> String {
        TallyType::describe(options)
    }

    fn may_drop(_options: &TallyOptions) -> Option<String> {
        None
    }
}

fn registry() -> Registry {
    let mut registry = Registry::default();
    registry
        .register_backend::<TallyType>()
        .register_backend::<KeepingTallyType>();
    registry
}

fn event(name: &'static str) -> Event {
    Event::new(EventName::new(name).unwrap(), json!({}))
}

#[test]
fn a_plain_backend_is_sent_to_in_line_under_a_router_and_by_the_worker_under_an_async_one() {
    let config = load(
        r#"
        [backends.inline]
        type = "tally"
        label = "inline"

        [backends.later]
        type = "async_router"
        [backends.later.backends.count]
        type = "keeping_tally"
        label = "later"
        "#,
        &registry(),
    )
    .unwrap();
    let (root, stages) = config.build().unwrap().into_parts();
    // A plain backend is no stage: only the async router and its router are.
    let paths: Vec<&str> = stages.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["backends.later.router", "backends.later"]);

    root.send(event("a.b")).unwrap();
    root.send(event("a.c")).unwrap();
    assert_eq!(tally("inline").load(Ordering::SeqCst), 2, "counted in line");
    root.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(tally("later").load(Ordering::SeqCst), 2);
    root.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn check_shows_a_plain_backend_and_what_it_may_drop_after_202() {
    let config = load(
        r#"
        [backends.count]
        type = "tally"
        label = "shown"
        [backends.kept]
        type = "keeping_tally"
        label = "kept"
        "#,
        &registry(),
    )
    .unwrap();
    let tree = config.to_string();
    for expected in [
        "count: tally label=shown",
        "delivery: none (a plain backend, sent to in line)",
        "after 202: MAY DROP events (a plain `tally` backend: what it keeps once `send` returns is its own)",
        "kept: keeping_tally label=kept",
        "after 202: keeps every event it accepts",
    ] {
        assert!(tree.contains(expected), "missing {expected:?} in:\n{tree}");
    }
    let sinks = config.sinks();
    let listed: Vec<(&str, &str, bool)> = sinks
        .iter()
        .map(|s| (s.path.as_str(), s.type_name, s.may_drop.is_some()))
        .collect();
    assert_eq!(
        listed,
        [
            ("backends.count", "tally", true),
            ("backends.kept", "keeping_tally", false)
        ]
    );
    assert_eq!(sinks[0].description, "label=shown");
    assert_eq!(sinks[0].dead_letters, None);
}

#[test]
fn a_plain_backend_takes_no_delivery_keys_and_its_mistakes_carry_their_path() {
    let errors = load(
        r#"
        [backends.a]
        type = "tally"
        label = "a"
        max_events = 10
        [backends.b]
        type = "tally"
        label = ""
        [backends.c]
        type = "tally"
        dead_letter = "none"
        label = "c"
        "#,
        &registry(),
    )
    .unwrap_err();
    let found: Vec<(&str, ConfigErrorKind)> = errors
        .errors()
        .iter()
        .map(|e| (e.path.as_str(), e.kind))
        .collect();
    assert_eq!(
        found,
        [
            ("backends.a.max_events", ConfigErrorKind::UnknownKey),
            ("backends.b.label", ConfigErrorKind::Invalid),
            ("backends.c.dead_letter", ConfigErrorKind::UnknownKey),
        ],
        "{errors}"
    );
    assert!(errors.errors()[1].message.contains("must not be empty"));
}

#[test]
fn a_plain_backend_that_cannot_start_fails_the_build_at_its_path() {
    let config = load(
        "[backends.broken]\ntype = \"tally\"\nlabel = \"broken\"\nfail_to_build = true\n",
        &registry(),
    )
    .unwrap();
    let Err(errors) = config.build() else {
        panic!("a backend that cannot start must fail the build");
    };
    let error = &errors.errors()[0];
    assert_eq!(
        (error.path.as_str(), error.kind),
        ("backends.broken", ConfigErrorKind::Build)
    );
    assert!(
        error.message.contains("tally broken cannot start"),
        "{error}"
    );
}

#[test]
fn plain_types_are_named_among_the_backend_types_and_share_their_names_with_sinks() {
    let errors = load("[backends.x]\ntype = \"taly\"\n", &registry()).unwrap_err();
    let message = &errors.errors()[0].message;
    assert!(message.contains("did you mean \"tally\"?"), "{message}");
    assert!(message.contains("keeping_tally"), "{message}");

    let mut registry = registry();
    assert!(registry.backend_types().any(|t| t == "tally"));
    // A sink type of the same name replaces the plain one, and back.
    struct TallySink;
    impl SinkType for TallySink {
        const NAME: &'static str = "tally";
        type Options = TallyOptions;
        fn build(_: &TallyOptions, _: &Delivery) -> Result<Arc<dyn Sink>, BoxError> {
            Ok(Arc::new(RecordingSink::default()))
        }
        fn describe(options: &TallyOptions) -> String {
            format!("sink label={}", options.label)
        }
    }
    let text = "[backends.out]\ntype = \"tally\"\nlabel = \"x\"\n";
    registry.register_sink::<TallySink>();
    assert!(!registry.backend_types().any(|t| t == "tally"));
    let tree = load(text, &registry).unwrap().to_string();
    assert!(tree.contains("out: tally sink label=x"), "{tree}");
    registry.register_backend::<TallyType>();
    assert!(!registry.sink_types().any(|t| t == "tally"));
    let tree = load(text, &registry).unwrap().to_string();
    assert!(tree.contains("out: tally label=x"), "{tree}");
}

#[test]
fn a_plain_backend_can_take_a_sinks_dead_letters() {
    let config = load(
        r#"
        [backends.out]
        type = "console"
        dead_letter = { type = "keeping_tally", label = "dead" }
        "#,
        &registry(),
    )
    .unwrap();
    assert!(
        config
            .to_string()
            .contains("dead letters: keeping_tally label=dead"),
        "{config}"
    );
    assert_eq!(
        config.sinks()[0].dead_letters.as_deref(),
        Some("keeping_tally label=dead")
    );
}
