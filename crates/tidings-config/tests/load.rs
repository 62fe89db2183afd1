//! Loading configs: every mistake reported with its path, trees printed and
//! built, and third-party types registered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tidings_config::{
    AckMode, ClientIp, ConfigErrorKind, ConfigErrors, Delivery, Feed, Registry, SinkType,
    StageKind, load,
};
use tidings_event::{Event, EventName};
use tidings_routing::{Backend, BoxError, ProcessorsOn, Sink, WhenFull};
use tidings_test::RecordingSink;

/// A third-party sink type: records into a named, process-wide recorder.
struct MemoryType;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryOptions {
    id: String,
}

fn recorders() -> &'static Mutex<HashMap<String, RecordingSink>> {
    static RECORDERS: OnceLock<Mutex<HashMap<String, RecordingSink>>> = OnceLock::new();
    RECORDERS.get_or_init(Default::default)
}

fn recorder(id: &str) -> RecordingSink {
    recorders()
        .lock()
        .unwrap()
        .entry(id.to_owned())
        .or_default()
        .clone()
}

impl SinkType for MemoryType {
    const NAME: &'static str = "memory";
    type Options = MemoryOptions;

    fn validate(options: &MemoryOptions) -> Vec<(String, String)> {
        if options.id.is_empty() {
            vec![("id".into(), "must not be empty".into())]
        } else {
            Vec::new()
        }
    }

    fn build(options: &MemoryOptions, _delivery: &Delivery) -> Result<Arc<dyn Sink>, BoxError> {
        Ok(Arc::new(recorder(&options.id)))
    }

    fn describe(options: &MemoryOptions) -> String {
        format!("id={}", options.id)
    }
}

fn registry() -> Registry {
    let mut registry = Registry::default();
    registry.register_sink::<MemoryType>();
    registry
}

fn errors(text: &str) -> Vec<(String, ConfigErrorKind, String)> {
    let ConfigErrors(errors) = load(text, &registry()).unwrap_err();
    errors
        .into_iter()
        .map(|e| (e.path, e.kind, e.message))
        .collect()
}

fn event(name: &'static str) -> Event {
    Event::new(EventName::new(name).unwrap(), json!({"k": 1}))
}

const DESIGN_EXAMPLE: &str = r#"
[collector]
listen = "127.0.0.1:8080"

[[processors]]                 # root chain, in order
type = "regex_filter"
filter = "allowlist"           # or "blocklist"
patterns = ['^edx\.', '^navigation\.']

[backends.logs]
type = "memory"
id = "design-logs"
max_events = 10

[backends.spade]
type = "async_router"
queue_capacity = 10000
when_full = "drop_newest"
[[backends.spade.processors]]
type = "regex_filter"
filter = "blocklist"
patterns = ['^edx\.internal\.']
[backends.spade.backends.ingest]
type = "memory"
id = "design-ingest"
retry = { max_attempts = 3, initial_backoff_ms = 10, max_backoff_ms = 100 }
"#;

#[test]
fn the_design_example_loads_prints_builds_and_routes() {
    let config = load(DESIGN_EXAMPLE, &registry()).unwrap();
    assert_eq!(config.collector().listen.to_string(), "127.0.0.1:8080");
    let tree = config.to_string();
    for expected in [
        r#"processor [0] regex_filter allowlist ["^edx\\.", "^navigation\\."]"#,
        "logs: memory id=design-logs",
        "max_events=10",
        "spade: async_router queue_capacity=10000 when_full=drop_newest",
        "ingest: memory id=design-ingest",
        "retry=3x 10..100ms",
    ] {
        assert!(tree.contains(expected), "missing {expected:?} in:\n{tree}");
    }

    let (root, stages) = config.build().unwrap().into_parts();
    let paths: Vec<&str> = stages.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "backends.logs.dead_letter",
            "backends.logs",
            "backends.spade.backends.ingest.dead_letter",
            "backends.spade.backends.ingest",
            "backends.spade.router",
            "backends.spade"
        ]
    );
    for name in [
        "edx.course.enrollment.activated",
        "edx.internal.tick",
        "navigation.request",
        "debug.x",
    ] {
        root.send(event(name)).unwrap();
    }
    root.flush(Duration::from_secs(5)).unwrap();
    let names = |id: &str| {
        recorder(id)
            .events()
            .iter()
            .map(|e| e.name().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names("design-logs"),
        [
            "edx.course.enrollment.activated",
            "edx.internal.tick",
            "navigation.request"
        ]
    );
    assert_eq!(
        names("design-ingest"),
        ["edx.course.enrollment.activated", "navigation.request"]
    );
    for stage in &stages {
        if let StageKind::Sink(sink) = &stage.kind {
            assert_eq!(sink.metrics().pending(), 0);
        }
    }
    root.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn every_mistake_is_reported_together_with_its_path() {
    let found = errors(
        r#"
        colector = 1

        [collector]
        listen = "not an address"
        max_body_bytes = "big"

        [[processors]]
        type = "regex_filter"
        filter = "allowlist"
        patterns = ['ok', '(unclosed']

        [[processors]]
        type = "regex_filter"
        filter = "maybe"
        patterns = []

        [[processors]]
        type = "regex_filter"
        filter = "blocklist"

        [[processors]]
        type = "no_such_processor"

        [backends.a]
        type = "memory"
        id = "a"
        colour = "blue"

        [backends.b]
        type = "nope"

        [backends.c]
        id = "c"

        [backends.d]
        type = "memory"
        id = ""

        [backends.e]
        type = "memory"
        id = "e"
        when_full = "panic"
        retry = "sometimes"

        [backends.f]
        type = "router"
        queue_capacity = 5

        [backends.g]
        type = "async_router"
        queue_capacity = "lots"
        [[backends.g.processors]]
        type = "property_allowlist"
        allowed = ["a..b"]
        "#,
    );
    let paths: Vec<&str> = found.iter().map(|(p, _, _)| p.as_str()).collect();
    // Every mistake, two in one table included, in the order of the file.
    assert_eq!(
        paths,
        [
            "colector",
            "collector.listen",
            "collector.max_body_bytes",
            "processors[0].patterns[1]",
            "processors[1].filter",
            "processors[2]",
            "processors[3].type",
            "backends.a.colour",
            "backends.b.type",
            "backends.c",
            "backends.d.id",
            "backends.e.when_full",
            "backends.e.retry",
            "backends.f.queue_capacity",
            "backends.g.queue_capacity",
            "backends.g.processors[0].allowed[0]",
        ],
        "{found:#?}"
    );
    let by_path = |p: &str| found.iter().find(|(path, _, _)| path == p).unwrap().clone();
    assert_eq!(by_path("backends.a.colour").1, ConfigErrorKind::UnknownKey);
    assert_eq!(
        by_path("backends.a.colour").2,
        "unknown key `colour`. The keys here are: id, type, queue_capacity, when_full, \
         block_timeout_ms, max_events, max_bytes, flush_interval_ms, retry, batch_key, \
         requeue_failed, log_dispatch, dead_letter"
    );
    assert_eq!(
        by_path("colector").2,
        "unknown key `colector`; did you mean `collector`? \
         The keys of the file are: collector, processors, backends, sources"
    );
    assert_eq!(
        by_path("collector.max_body_bytes").2,
        "expected a whole number of bytes, like 1048576, found the string \"big\""
    );
    assert!(
        by_path("backends.e.when_full")
            .2
            .starts_with("unknown value \"panic\". Expected one of: \"drop_newest\""),
        "{:?}",
        by_path("backends.e.when_full")
    );
    assert_eq!(
        by_path("backends.f.queue_capacity").2,
        "unknown key `queue_capacity`. The keys of a router are: type, processors, backends"
    );
    assert_eq!(by_path("backends.b.type").1, ConfigErrorKind::UnknownType);
    let unknown = by_path("backends.b.type").2;
    // Sink types sort by name after the routers; optional ones (`amqp`) may
    // come before `console`.
    assert!(
        unknown.contains("The backend types are: router, async_router, ")
            && unknown.contains(", console, "),
        "{unknown}"
    );
    assert!(
        unknown.contains(", memory"),
        "registered third-party types are listed: {unknown}"
    );
    assert_eq!(
        by_path("backends.c"),
        (
            "backends.c".into(),
            ConfigErrorKind::Missing,
            "the required key `type` is missing".into()
        )
    );
    assert_eq!(by_path("backends.d.id").2, "must not be empty");
    assert!(
        by_path("backends.e.retry")
            .2
            .contains("expected \"none\" or a table"),
        "{:?}",
        by_path("backends.e.retry")
    );
    assert_eq!(by_path("processors[2]").1, ConfigErrorKind::Missing);
    assert!(
        by_path("processors[2]")
            .2
            .contains("the required key `patterns` is missing")
    );
    assert!(
        by_path("processors[0].patterns[1]")
            .2
            .starts_with("invalid regex \"(unclosed\" (pattern 1)")
    );
    assert_eq!(
        by_path("processors[3].type").1,
        ConfigErrorKind::UnknownType
    );
}

#[test]
fn syntax_errors_say_where_in_the_file() {
    let found = load("[backends.a]\ntype = = 1", &registry()).unwrap_err();
    let [error] = found.errors() else {
        panic!("{found}")
    };
    assert_eq!(error.kind, ConfigErrorKind::Syntax);
    assert_eq!(
        error.location,
        Some(tidings_config::Location { line: 2, column: 8 })
    );
    assert!(
        error
            .to_string()
            .starts_with("line 2, column 8: not valid TOML: "),
        "{error}"
    );
}

#[test]
fn mistakes_carry_their_line_and_column_and_the_nearest_key() {
    let text = "[backends.out]\ntype = \"memory\"\nid = \"x\"\nmax_evnts = 5\n\n[backends.other]\ntype = \"memroy\"\n";
    let found = load(text, &registry()).unwrap_err();
    let lines: Vec<String> = found.errors().iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(
        lines[0],
        "line 4, column 1: `backends.out.max_evnts`: unknown key `max_evnts`; did you mean \
         `max_events`? The keys here are: id, type, queue_capacity, when_full, block_timeout_ms, \
         max_events, max_bytes, flush_interval_ms, retry, batch_key, requeue_failed, \
         log_dispatch, dead_letter",
    );
    // The optional types (amqp, nats, postgres) are listed when enabled.
    assert!(
        lines[1].starts_with(
            "line 7, column 1: `backends.other.type`: unknown backend type \"memroy\"; did you \
             mean \"memory\"? The backend types are: router, async_router, "
        ) && lines[1].contains(", memory, "),
        "{}",
        lines[1]
    );
}

#[test]
fn the_errors_display_lists_every_mistake_on_its_own_line() {
    let err = load("[backends.a]\ntype = \"x\"\n[backends.b]\n", &registry()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            "invalid config (2 problems):\n  line 2, column 1: `backends.a.type`: unknown backend type \"x\""
        ),
        "{text}"
    );
    assert!(
        text.contains("\n  line 3, column 11: `backends.b`: the required key `type` is missing"),
        "{text}"
    );
}

#[test]
fn collector_options_have_the_documented_defaults_and_never_print_write_keys() {
    let config = load("[collector]\nwrite_keys = [\"s3cret\"]\n", &registry()).unwrap();
    let c = config.collector();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(
        (c.max_body_bytes, c.max_batch_events, c.queue_capacity),
        (1_048_576, 1000, 10_000)
    );
    assert_eq!(c.flume_allowed_properties, None);
    assert!(!format!("{c:?}").contains("s3cret"));
    assert!(!config.to_string().contains("s3cret"));
    assert!(config.to_string().contains("write_keys=1 (redacted)"));
    assert_eq!(c.ack, AckMode::Fast);
    assert_eq!(
        (c.wal_path.as_str(), c.wal_max_bytes),
        ("tidings-wal", 1 << 30)
    );
}

#[test]
fn durable_ack_is_a_collector_option_shown_in_the_tree() {
    let config = load(
        "[collector]\nack = \"durable\"\nwal_path = \"/var/lib/tidings/wal\"\nwal_max_bytes = 1000000\n",
        &registry(),
    )
    .unwrap();
    let c = config.collector();
    assert_eq!((c.ack, c.wal_max_bytes), (AckMode::Durable, 1_000_000));
    assert!(
        config
            .to_string()
            .contains("collector ack=durable wal_path=/var/lib/tidings/wal wal_max_bytes=1000000"),
        "{config}"
    );
    let errors = load("[collector]\nack = \"sometimes\"\n", &registry()).unwrap_err();
    let text = errors.to_string();
    assert!(
        text.contains("collector") && text.contains("durable"),
        "{text}"
    );
}

#[test]
fn delivery_keys_configure_the_sink_backend() {
    let config = load(
        r#"
        [backends.m]
        type = "memory"
        id = "delivery-keys"
        queue_capacity = 3
        when_full = "drop_oldest"
        max_events = 2
        retry = "none"
        "#,
        &registry(),
    )
    .unwrap();
    assert!(
        config
            .to_string()
            .contains("queue_capacity=3 when_full=drop_oldest max_events=2")
    );
    assert!(config.to_string().contains("retry=none"));
    let (root, _stages) = config.build().unwrap().into_parts();
    for n in 0..5 {
        root.send(event(if n % 2 == 0 { "a" } else { "b" }))
            .unwrap();
    }
    root.flush(Duration::from_secs(5)).unwrap();
    assert!(
        recorder("delivery-keys")
            .batches()
            .iter()
            .all(|b| b.len() <= 2)
    );
}

#[test]
fn optimizely_batching_keys_configure_the_sink_backend() {
    // Scripted before the build: the first batch fails, once.
    recorders().lock().unwrap().insert(
        "optimizely-keys".to_owned(),
        RecordingSink::scripted([tidings_test::Answer::Status(500, None)]),
    );
    let config = load(
        r#"
        [backends.m]
        type = "memory"
        id = "optimizely-keys"
        batch_key = ["name", "data.k"]
        requeue_failed = true
        log_dispatch = true
        flush_interval_ms = 20
        retry = { max_attempts = 1, initial_backoff_ms = 1, max_backoff_ms = 2 }
        "#,
        &registry(),
    )
    .unwrap();
    let tree = config.to_string();
    assert!(
        tree.contains(
            r#"retry=none batch_key=["name", "data.k"] requeue_failed=true log_dispatch=true"#
        ),
        "{tree}"
    );
    let (root, stages) = config.build().unwrap().into_parts();
    for k in [1, 1, 2] {
        root.send(Event::new(EventName::new("a").unwrap(), json!({"k": k})))
            .unwrap();
    }
    root.flush(Duration::from_secs(5)).unwrap();
    let sink = recorder("optimizely-keys");
    let sizes: Vec<usize> = sink.batches().iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 1], "one batch per key, the failed one requeued");
    assert_eq!(sink.calls().len(), 3);
    let metrics = stages
        .iter()
        .find_map(|stage| match stage.metrics() {
            tidings_config::StageMetrics::Delivery(m) if stage.path == "backends.m" => Some(m),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (metrics.delivered, metrics.dropped_total(), metrics.retried),
        (3, 0, 2)
    );

    // Unset, they are not printed.
    let plain = load(
        "[backends.m]\ntype = \"memory\"\nid = \"plain-keys\"\n",
        &registry(),
    )
    .unwrap();
    let tree = plain.to_string();
    assert!(
        !tree.contains("batch_key")
            && !tree.contains("requeue_failed")
            && !tree.contains("log_dispatch"),
        "{tree}"
    );
}

#[test]
fn max_events_over_queue_capacity_and_bad_batch_keys_are_config_errors() {
    let found = errors(
        r#"
        [backends.m]
        type = "memory"
        id = "too-big"
        queue_capacity = 10
        max_events = 11
        batch_key = ["data.k", "user.id"]
        requeue_failed = "yes"
        "#,
    );
    let summary: Vec<(&str, ConfigErrorKind, &str)> = found
        .iter()
        .map(|(p, k, m)| (p.as_str(), *k, m.as_str()))
        .collect();
    assert_eq!(
        summary,
        [(
            "backends.m.requeue_failed",
            ConfigErrorKind::Invalid,
            "expected true or false, found the string \"yes\""
        ),],
        "a type error stops the table's other checks"
    );
    let found = errors(
        r#"
        [backends.m]
        type = "memory"
        id = "too-big"
        queue_capacity = 10
        max_events = 11
        batch_key = ["data.k", "user.id"]
        "#,
    );
    let summary: Vec<(&str, ConfigErrorKind, &str)> = found
        .iter()
        .map(|(p, k, m)| (p.as_str(), *k, m.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "backends.m.max_events",
                ConfigErrorKind::Invalid,
                "max_events 11 is larger than queue_capacity 10: a batch must fit in its queue"
            ),
            (
                "backends.m.batch_key[1]",
                ConfigErrorKind::Invalid,
                "invalid batch_key path \"user.id\" (entry 1): a path starts with `name`, `context` or `data` (as `context.project_id`)"
            ),
        ]
    );
    // Equal is fine; a default max_events is lowered to a smaller queue.
    let config = load(
        "[backends.a]\ntype = \"memory\"\nid = \"eq\"\nqueue_capacity = 10\nmax_events = 10\n\
         [backends.b]\ntype = \"memory\"\nid = \"small\"\nqueue_capacity = 5\n",
        &registry(),
    )
    .unwrap();
    let tree = config.to_string();
    assert!(
        tree.contains("queue_capacity=10 when_full=backpressure max_events=10"),
        "{tree}"
    );
    assert!(
        tree.contains("queue_capacity=5 when_full=backpressure max_events=5"),
        "{tree}"
    );
}

#[test]
fn file_sinks_require_a_path_and_positive_rolls() {
    let found = errors(
        "[backends.f]\ntype = \"file\"\n[backends.g]\ntype = \"file\"\npath = \"x\"\nroll_events = 0\n",
    );
    let summary: Vec<(&str, &str)> = found
        .iter()
        .map(|(p, _, m)| (p.as_str(), m.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("backends.f", "the required key `path` is missing"),
            ("backends.g.roll_events", "must be at least 1")
        ]
    );
}

#[test]
fn http_sink_types_validate_and_never_print_credentials() {
    let config = load(
        r#"
        [backends.spade]
        type = "spade"
        url = "http://user:s3cret@127.0.0.1:9/track?key=s3cret"
        rotator_url = "http://127.0.0.1:9/rotate"
        refresh_seconds = 60
        max_events = 100
        retry = "none"
        [backends.flume]
        type = "flume"
        url = "http://127.0.0.1:9/flume"
        allowed_properties = ["url", "page.title"]
        [backends.json]
        type = "http"
        url = "http://127.0.0.1:9/ingest"
        gzip = true
        headers = { authorization = "Bearer s3cret" }
        "#,
        &registry(),
    )
    .unwrap();
    let tree = config.to_string();
    assert!(tree.contains("spade: spade url=http://***@127.0.0.1:9/… rotator_url=http://127.0.0.1:9/… refresh_seconds=60"), "{tree}");
    assert!(
        tree.contains(
            r#"flume: flume url=http://127.0.0.1:9/… allowed_properties=["url", "page.title"]"#
        ),
        "{tree}"
    );
    assert!(
        tree.contains(r#"json: http url=http://127.0.0.1:9/… gzip=true headers=["authorization"]"#),
        "{tree}"
    );
    assert!(!tree.contains("s3cret") && !format!("{config:?}").contains("s3cret"));

    let found = errors(
        "[backends.s]\ntype = \"spade\"\nrefresh_seconds = 5\n[backends.f]\ntype = \"flume\"\n",
    );
    let summary: Vec<(&str, &str)> = found
        .iter()
        .map(|(p, _, m)| (p.as_str(), m.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("backends.s", "needs `url`, `rotator_url`, or both"),
            (
                "backends.s.refresh_seconds",
                "only applies with `rotator_url`"
            ),
            ("backends.f", "the required key `url` is missing"),
        ]
    );
}

#[test]
fn block_waits_for_block_timeout_ms() {
    let config = load(
        "[backends.m]\ntype = \"memory\"\nid = \"block\"\nwhen_full = \"block\"\nblock_timeout_ms = 250\n[backends.a]\ntype = \"async_router\"\nwhen_full = \"block\"\n",
        &registry(),
    )
    .unwrap();
    let tree = config.to_string();
    assert!(tree.contains("m: memory id=block"), "{tree}");
    assert!(tree.contains("when_full=block(250ms)"), "{tree}");
    assert!(
        tree.contains("a: async_router queue_capacity=10000 when_full=block(1000ms)"),
        "{tree}"
    );
}

#[test]
fn an_empty_file_is_a_valid_config_with_no_backends() {
    let config = load("", &registry()).unwrap();
    assert!(
        config
            .to_string()
            .contains("(no backends: events stop here)")
    );
}

/// A file in the temp dir holding `text`, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(text: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "tidings-config-test-{}-{}.toml",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }

    fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn catalog_and_pii_filter_processors_validate_and_scrub() {
    let catalog = TempFile::new(
        r#"
[events."page.view"]
properties.url = { type = "string", required = true }
properties.email = { type = "string", pii = true }
"#,
    );
    let text = format!(
        r#"
[[processors]]
type = "catalog"
path = {path:?}
strict = true

[backends.mirror]
type = "router"
[[backends.mirror.processors]]
type = "pii_filter"
catalog = {path:?}
[backends.mirror.backends.out]
type = "memory"
id = "catalog-mirror"

[backends.raw]
type = "memory"
id = "catalog-raw"
"#,
        path = catalog.path()
    );
    let config = load(&text, &registry()).unwrap();
    assert!(
        config
            .to_string()
            .contains("(strict, invalid events dropped)")
    );
    let (root, _stages) = config.build().unwrap().into_parts();
    let send =
        |name: &'static str, data| root.send(Event::new(EventName::new(name).unwrap(), data));
    send("page.view", json!({"url": "/", "email": "a@b.c"})).unwrap();
    send("page.view", json!({"email": "a@b.c"})).unwrap();
    send("page.unknown", json!({})).unwrap();
    root.flush(Duration::from_secs(5)).unwrap();
    let data = |id: &str| {
        recorder(id)
            .events()
            .iter()
            .map(|e| e.data().clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(data("catalog-raw"), [json!({"url": "/", "email": "a@b.c"})]);
    assert_eq!(data("catalog-mirror"), [json!({"url": "/"})]);
    root.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn a_bad_catalog_is_reported_at_its_option() {
    let bad = TempFile::new("[events.a]\nproperties.p = { type = 'text' }\n");
    let text = format!(
        "[[processors]]\ntype = \"pii_filter\"\ncatalog = {:?}\n",
        bad.path()
    );
    let invalid = errors(&text);
    assert_eq!(invalid[0].0, "processors[0].catalog");
    assert!(
        invalid[0].2.contains("events.a.properties.p.type"),
        "{}",
        invalid[0].2
    );
    let missing = errors(
        "[[processors]]\ntype = \"catalog\"\npath = \"/nonexistent.toml\"\non_invalid = \"annotate\"\n",
    );
    assert_eq!(missing[0].0, "processors[0].path");
    assert!(
        missing[0].2.contains("/nonexistent.toml"),
        "{}",
        missing[0].2
    );
}

#[test]
fn sinks_keep_every_event_by_default_and_say_which_branches_may_drop() {
    let text = r#"
        [backends.keeps]
        type = "memory"
        id = "keeps"
        [backends.mirror]
        type = "memory"
        id = "mirror"
        retry = "none"
        [backends.lossy]
        type = "memory"
        id = "lossy"
        when_full = "drop_newest"
        [backends.fan]
        type = "async_router"
        [backends.fan.backends.below]
        type = "memory"
        id = "below"
        dead_letter = "none"
    "#;
    let config = load(text, &registry()).unwrap();
    let tree = config.to_string();
    for expected in [
        "keeps: memory id=keeps\n    delivery: queue_capacity=10000 when_full=backpressure",
        "after 202: keeps every event (backpressure up to the door)\n    dead letters: file path=tidings-dead-letter/backends.keeps",
        "after 202: MAY DROP events (retry = \"none\": fire-and-forget, a failed batch is dropped)\n    dead letters: none",
        "after 202: MAY DROP events (when_full = \"drop_newest\" drops events while its queue is full)",
        "fan: async_router queue_capacity=10000 when_full=backpressure\n",
        "below: memory id=below\n      delivery: queue_capacity=10000 when_full=backpressure",
        "      dead letters: none (events the sink gives up on are dropped and counted)",
    ] {
        assert!(tree.contains(expected), "missing {expected:?} in:\n{tree}");
    }
    let (_root, stages) = config.build().unwrap().into_parts();
    let paths: Vec<&str> = stages.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "backends.fan.backends.below",
            "backends.fan.router",
            "backends.fan",
            "backends.keeps.dead_letter",
            "backends.keeps",
            "backends.lossy",
            "backends.mirror",
        ]
    );
    let policy = |path: &str| match &stages.iter().find(|s| s.path == path).unwrap().kind {
        StageKind::Sink(sink) => sink.when_full(),
        StageKind::AsyncRouter(router) => router.when_full(),
        _ => unreachable!("{path} is a router"),
    };
    assert_eq!(policy("backends.keeps"), WhenFull::Backpressure);
    assert_eq!(policy("backends.lossy"), WhenFull::DropNewest);

    // Fed by application threads (a tracker), a stage never makes `emit`
    // wait unless told to; below an async router, backpressure again.
    let config = load(text, &registry()).unwrap();
    let (_root, stages) = config.build_fed_by(Feed::Callers).unwrap().into_parts();
    let policy = |path: &str| match &stages.iter().find(|s| s.path == path).unwrap().kind {
        StageKind::Sink(sink) => sink.when_full(),
        StageKind::AsyncRouter(router) => router.when_full(),
        _ => unreachable!("{path} is a router"),
    };
    assert_eq!(policy("backends.keeps"), WhenFull::DropNewest);
    assert_eq!(policy("backends.fan"), WhenFull::DropNewest);
    assert_eq!(
        policy("backends.fan.backends.below"),
        WhenFull::Backpressure
    );
    let paths: Vec<&str> = stages.iter().map(|s| s.path.as_str()).collect();
    assert!(!paths.contains(&"backends.keeps.dead_letter"), "{paths:?}");
}

#[test]
fn a_dead_letter_backend_of_its_own_receives_the_events_the_sink_refuses() {
    recorders().lock().unwrap().insert(
        "picky".to_owned(),
        RecordingSink::new().refusing_events_named("poison"),
    );
    let config = load(
        r#"
        [backends.picky]
        type = "memory"
        id = "picky"
        dead_letter = { type = "memory", id = "picky-dead", max_events = 7 }
        "#,
        &registry(),
    )
    .unwrap();
    assert!(
        config
            .to_string()
            .contains("dead letters: memory id=picky-dead"),
        "{config}"
    );
    let (root, _stages) = config.build().unwrap().into_parts();
    for name in ["a", "poison", "b"] {
        root.send(event(name)).unwrap();
    }
    root.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(recorder("picky").events().len(), 2);
    let dead = recorder("picky-dead").events();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].name().as_str(), "poison");
    assert_eq!(dead[0].context()["dead_letter"]["reason"], "invalid");
    assert_eq!(
        dead[0].context()["dead_letter"]["backend"],
        "backends.picky"
    );
}

#[test]
fn a_bad_dead_letter_is_reported_at_its_path() {
    assert_eq!(
        errors(
            r#"
            [backends.a]
            type = "memory"
            id = "a"
            dead_letter = 5
            [backends.b]
            type = "memory"
            id = "b"
            dead_letter = { type = "memory" }
            "#
        ),
        [
            (
                "backends.a.dead_letter".to_owned(),
                ConfigErrorKind::Invalid,
                "expected \"none\" or a backend table such as { type = \"file\", path = \"dead\" }, found a whole number".to_owned()
            ),
            (
                "backends.b.dead_letter".to_owned(),
                ConfigErrorKind::Missing,
                "the required key `id` is missing".to_owned()
            ),
        ]
    );
}

/// A fresh directory under the system's temporary directory.
fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tidings-config-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[cfg(all(feature = "file", feature = "catalog"))]
#[test]
fn relative_paths_resolve_against_the_config_files_directory() {
    let dir = temp_dir("relative");
    std::fs::write(
        dir.join("catalog.toml"),
        "[events.\"a.b\"]\ndescription = \"x\"\nowner = \"o\"\n",
    )
    .unwrap();
    let file = dir.join("tidings.toml");
    std::fs::write(
        &file,
        r#"
        [collector]
        wal_path = "wal"
        catalog = { path = "catalog.toml" }

        [[processors]]
        type = "catalog"
        path = "catalog.toml"

        [[processors]]
        type = "pii_filter"
        catalog = "catalog.toml"

        [backends.out]
        type = "file"
        path = "data"
        "#,
    )
    .unwrap();
    // Loaded from elsewhere: the working directory does not matter.
    let config = tidings_config::load_file(&file, &registry()).unwrap();
    let options = config.collector();
    assert_eq!(options.wal_path, dir.join("wal").display().to_string());
    assert_eq!(
        options.catalog.as_ref().unwrap().path,
        dir.join("catalog.toml").display().to_string()
    );
    let tree = config.to_string();
    assert!(
        tree.contains(&format!("out: file path={}", dir.join("data").display())),
        "{tree}"
    );
    assert!(
        tree.contains(&format!(
            "dead letters: file path={}",
            dir.join("tidings-dead-letter/backends.out").display()
        )),
        "{tree}"
    );
    // Loaded from text, relative paths stay relative (to the working
    // directory).
    let text = std::fs::read_to_string(&file).unwrap();
    let text = text.replace(
        "catalog.toml",
        &dir.join("catalog.toml").display().to_string(),
    );
    let config = load(&text, &registry()).unwrap();
    assert_eq!(config.collector().wal_path, "wal");
    assert!(config.to_string().contains("out: file path=data "));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(feature = "file")]
#[test]
fn preflight_finds_a_directory_that_cannot_be_created_and_changes_nothing() {
    let dir = temp_dir("preflight");
    let text = format!(
        "[backends.ok]\ntype = \"file\"\npath = \"{}\"\n\n[backends.bad]\ntype = \"file\"\npath = \"/proc/nope/x\"\n",
        dir.join("a/b").display()
    );
    let config = load(&text, &registry()).unwrap();
    let found = config.preflight().unwrap_err();
    let [error] = found.errors() else {
        panic!("{found}")
    };
    assert_eq!(error.path, "backends.bad.path");
    assert_eq!(error.kind, ConfigErrorKind::Build);
    assert_eq!(
        error.location,
        Some(tidings_config::Location { line: 7, column: 1 })
    );
    assert!(
        error
            .message
            .contains("cannot create directory /proc/nope/x"),
        "{error}"
    );
    assert!(!dir.join("a").exists(), "preflight created a directory");
    let fine = load(
        &text.replace("/proc/nope/x", &dir.join("c").display().to_string()),
        &registry(),
    )
    .unwrap();
    fine.preflight().unwrap();
    // A sink type without checks of its own passes.
    load(
        "[backends.m]\ntype = \"memory\"\nid = \"preflight\"\n",
        &registry(),
    )
    .unwrap()
    .preflight()
    .unwrap();
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn listen_takes_a_host_name() {
    let config = load("[collector]\nlisten = \"localhost:19001\"\n", &registry()).unwrap();
    assert_eq!(
        config.collector().listen,
        "127.0.0.1:19001".parse().unwrap()
    );
    let found = errors("[collector]\nlisten = \"localhost\"\n");
    assert_eq!(found[0].0, "collector.listen");
    assert!(found[0].2.contains("is not HOST:PORT"), "{found:?}");
}

#[cfg(feature = "file")]
#[test]
fn sinks_lists_each_sink_with_its_destination_and_whether_it_may_drop() {
    let config = load(
        r#"
        [backends.a]
        type = "memory"
        id = "sinks-a"
        when_full = "drop_newest"

        [backends.r]
        type = "router"
        [backends.r.backends.c]
        type = "memory"
        id = "sinks-c"
        "#,
        &registry(),
    )
    .unwrap();
    let sinks = config.sinks();
    let summary: Vec<(&str, &str, &str, bool, Option<&str>)> = sinks
        .iter()
        .map(|s| {
            (
                s.path.as_str(),
                s.type_name,
                s.description.as_str(),
                s.may_drop.is_some(),
                s.dead_letters.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("backends.a", "memory", "id=sinks-a", true, None),
            (
                "backends.r.backends.c",
                "memory",
                "id=sinks-c",
                false,
                Some(
                    "file path=tidings-dead-letter/backends.r.backends.c roll_events=10000 roll_seconds=60 gzip=false"
                )
            ),
        ]
    );
}

#[test]
fn a_name_filter_keeps_exact_names_only_and_refuses_an_empty_one() {
    let config = load(
        r#"
        [[processors]]
        type = "name_filter"
        filter = "allowlist"
        names = ["edx.course.enrollment"]
        [backends.logs]
        type = "memory"
        id = "name-filter"
        "#,
        &registry(),
    )
    .unwrap();
    assert!(
        config
            .to_string()
            .contains(r#"processor [0] name_filter allowlist ["edx.course.enrollment"]"#),
        "{config}"
    );
    let (root, _) = config.build().unwrap().into_parts();
    for name in [
        "edx.course.enrollment",
        "edx.course.enrollment.activated",
        "edx.course",
    ] {
        root.send(event(name)).unwrap();
    }
    root.flush(Duration::from_secs(5)).unwrap();
    let kept: Vec<String> = recorder("name-filter")
        .events()
        .iter()
        .map(|e| e.name().to_string())
        .collect();
    assert_eq!(kept, ["edx.course.enrollment"]);
    root.shutdown(Duration::from_secs(5)).unwrap();

    let found = errors(
        "[[processors]]\ntype = \"name_filter\"\nfilter = \"blocklist\"\nnames = [\"a\", \"\"]\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "processors[0].names[1]");
    assert!(found[0].2.contains("never empty"), "{found:?}");
}

#[test]
fn python_look_around_and_backreference_patterns_load_and_filter() {
    let config = load(
        r#"
        [[processors]]
        type = "regex_filter"
        filter = "allowlist"
        patterns = ['(?!debug\.)', '(\w+)\.\1$']
        [backends.logs]
        type = "memory"
        id = "look-around"
        "#,
        &registry(),
    )
    .unwrap();
    let (root, _) = config.build().unwrap().into_parts();
    for name in ["edx.x", "debug.x", "debug.debug", "navigation.request"] {
        root.send(event(name)).unwrap();
    }
    root.flush(Duration::from_secs(5)).unwrap();
    let kept: Vec<String> = recorder("look-around")
        .events()
        .iter()
        .map(|e| e.name().to_string())
        .collect();
    assert_eq!(kept, ["edx.x", "debug.debug", "navigation.request"]);
    root.shutdown(Duration::from_secs(5)).unwrap();

    // Neither engine takes it: an error at the pattern, saying why.
    let text = "[[processors]]\ntype = \"regex_filter\"\nfilter = \"blocklist\"\npatterns = ['ok', '(?<=a)(b']\n";
    let found = load(text, &registry()).unwrap_err();
    let lines: Vec<String> = found.errors().iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with(
            "line 4, column 19: `processors[0].patterns[1]`: invalid regex \"(?<=a)(b\" (pattern 1): "
        ) && lines[0].contains("parenthesis"),
        "{}",
        lines[0]
    );
}

#[test]
fn an_async_router_runs_its_processors_on_the_caller_unless_told_otherwise() {
    let text = |on: &str| {
        format!(
            r#"
[backends.spade]
type = "async_router"
{on}
[[backends.spade.processors]]
type = "regex_filter"
filter = "blocklist"
patterns = ['^debug\.']
[backends.spade.backends.out]
type = "memory"
id = "processors-on"
"#
        )
    };
    for (key, expected, printed) in [
        ("", ProcessorsOn::Caller, false),
        (r#"processors_on = "caller""#, ProcessorsOn::Caller, false),
        (r#"processors_on = "worker""#, ProcessorsOn::Worker, true),
    ] {
        let config = load(&text(key), &registry()).unwrap();
        assert_eq!(
            config.to_string().contains("processors_on=worker"),
            printed,
            "{key:?}: {config}"
        );
        let (root, stages) = config.build().unwrap().into_parts();
        let on = stages.iter().find_map(|stage| match &stage.kind {
            StageKind::AsyncRouter(router) => Some(router.processors_on()),
            _ => None,
        });
        assert_eq!(on, Some(expected), "{key:?}");
        root.shutdown(Duration::from_secs(5)).unwrap();
    }
    let refused = errors(&text(r#"processors_on = "elsewhere""#));
    assert!(
        refused
            .iter()
            .any(|(path, _, message)| path == "backends.spade.processors_on"
                && message.contains("\"worker\"")),
        "{refused:?}"
    );
}

#[test]
fn client_ip_trusted_proxies_and_static_dir_are_collector_options() {
    let c = load("", &registry()).unwrap();
    let defaults = c.collector();
    assert_eq!(
        defaults.client_ip,
        ClientIp::Anonymized,
        "privacy by default"
    );
    assert!(defaults.trusted_proxies.is_empty());
    assert_eq!(defaults.static_dir, None, "off by default");
    assert!(!c.to_string().contains("client_ip"), "{c}");

    let dir = std::env::temp_dir().join(format!("tidings-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        "[collector]\nclient_ip = \"full\"\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\"]\nstatic_dir = {:?}\n",
        dir.display().to_string()
    );
    let config = load(&text, &registry()).unwrap();
    let c = config.collector();
    assert_eq!(c.client_ip, ClientIp::Full);
    assert!(c.trusted_proxies.contains("10.9.9.9".parse().unwrap()));
    assert!(c.trusted_proxies.contains("192.0.2.7".parse().unwrap()));
    assert!(!c.trusted_proxies.contains("192.0.2.8".parse().unwrap()));
    assert_eq!(c.static_dir.as_deref(), Some(dir.to_str().unwrap()));
    let printed = config.to_string();
    assert!(
        printed.contains("collector client_ip=full trusted_proxies=[10.0.0.0/8, 192.0.2.7/32]"),
        "{printed}"
    );
    assert!(
        printed.contains("collector static files at / from"),
        "{printed}"
    );
    for (mode, expected) in [
        ("off", ClientIp::Off),
        ("anonymized", ClientIp::Anonymized),
        ("anonymised", ClientIp::Anonymized),
    ] {
        let config = load(
            &format!("[collector]\nclient_ip = \"{mode}\"\n"),
            &registry(),
        )
        .unwrap();
        assert_eq!(config.collector().client_ip, expected);
    }
    std::fs::remove_dir_all(&dir).unwrap();

    let errors = load(
        "[collector]\ntrusted_proxies = [\"10.0.0.0/8\", \"proxy.local\"]\nclient_ip = \"hashed\"\n",
        &registry(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        errors.contains("entry 1: \"proxy.local\" is neither"),
        "{errors}"
    );
    let errors = load("[collector]\nclient_ip = \"hashed\"\n", &registry())
        .unwrap_err()
        .to_string();
    assert!(errors.contains("anonymized"), "{errors}");
    let errors = load(
        "[collector]\nstatic_dir = \"/nonexistent-tidings-public\"\n",
        &registry(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        errors.contains("`collector.static_dir`")
            && errors.contains("\"/nonexistent-tidings-public\" is not a directory"),
        "{errors}"
    );
}
