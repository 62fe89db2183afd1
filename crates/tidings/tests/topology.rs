//! A built tree can be listed: each router's processors (described as in
//! a config) and backends by name, level by level, with each queue's
//! settings; a backend can be found by name (edX's `get_backend`).

use std::time::Duration;

use tidings::{
    AsyncRouter, FilterMode, NameFilter, ProcessorsOn, PropertyAllowlist, RegexFilter,
    RoutingBackend, SinkBackend, Tracker, Verdict, WhenFull, processor_fn,
};

use tidings_test::{RecordingBackend, RecordingSink};

fn tree() -> Tracker {
    let public = RoutingBackend::builder()
        .processor(PropertyAllowlist::new(["url", "page.title"]).unwrap())
        .backend("mirror", RecordingBackend::new())
        .build()
        .unwrap();
    let spade = RoutingBackend::builder()
        .processor(NameFilter::new(FilterMode::Blocklist, ["b.two", "a.one"]))
        .backend(
            "ingest",
            SinkBackend::builder("ingest", RecordingSink::new())
                .queue_capacity(50)
                .when_full(WhenFull::Block(Duration::from_millis(250)))
                .dead_letter(std::sync::Arc::new(RecordingBackend::new()))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    Tracker::builder()
        .processor(RegexFilter::allowlist([r"edx\.", r"navigation\."]).unwrap())
        .processor(processor_fn("tag", |_| Ok(Verdict::Keep)))
        .backend("public", public)
        .backend(
            "spade",
            AsyncRouter::builder("spade", spade)
                .queue_capacity(100)
                .build()
                .unwrap(),
        )
        .backend(
            "slow",
            AsyncRouter::builder("slow", RecordingBackend::new())
                .processors_on(ProcessorsOn::Worker)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

#[test]
fn the_tree_is_listed_level_by_level_with_processors_described_as_in_a_config() {
    let tracker = tree();
    let listed = tracker.topology().to_string();
    assert_eq!(
        listed,
        r#"router
  processor [0] regex_filter allowlist ["edx\\.", "navigation\\."]
  processor [1] processor_fn "tag"
  public: router
    processor [0] property_allowlist allowed ["url", "page.title"]
    mirror: RecordingBackend
  slow: async_router queue_capacity=10000 when_full=drop_newest processors_on=worker
    inner: RecordingBackend
  spade: async_router queue_capacity=100 when_full=drop_newest processors_on=caller
    processor [0] name_filter blocklist ["a.one", "b.two"]
    ingest: sink ingest queue_capacity=50 when_full=block(250ms)
      dead_letter: RecordingBackend
"#
    );
    let topology = tracker.topology();
    assert_eq!(topology.find("spade.ingest").unwrap().kind, "sink");
    assert_eq!(
        topology.find("spade.ingest.dead_letter").unwrap().kind,
        "RecordingBackend"
    );
    assert!(topology.find("spade.mirror").is_none());
    tracker.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn a_backend_is_found_by_name_and_the_processors_are_listed_in_order() {
    let tracker = tree();
    let root = tracker.root();
    let names: Vec<String> = root.processors().map(|p| p.describe()).collect();
    assert_eq!(names.len(), 2);
    assert!(names[1].contains("tag"), "{names:?}");
    let spade = root.backend("spade").expect("the spade backend");
    assert_eq!(spade.topology().kind, "async_router");
    assert!(root.backend("nobody").is_none());
    tracker.shutdown(Duration::from_secs(5)).unwrap();
}

#[cfg(feature = "config")]
#[test]
fn a_tree_from_a_config_describes_its_processors_as_the_config_printout_does() {
    let text = r#"
[[processors]]
type = "regex_filter"
filter = "blocklist"
patterns = ['^debug\.']

[[processors]]
type = "name_filter"
filter = "allowlist"
names = ["edx.course.enrollment", "navigation.request"]

[backends.public]
type = "async_router"
processors_on = "worker"
[[backends.public.processors]]
type = "property_allowlist"
allowed = ["url"]
[backends.public.backends.out]
type = "console"
"#;
    let printed = tidings_config::load(text, &tidings_config::Registry::default())
        .unwrap()
        .to_string();
    let tracker = Tracker::from_config_str(text).unwrap();
    let listed = tracker.topology().to_string();
    let processor_lines = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|line| line.trim().strip_prefix("processor "))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        processor_lines(&listed),
        processor_lines(&printed),
        "{listed}\n{printed}"
    );
    assert_eq!(processor_lines(&listed).len(), 3);
    assert!(listed.contains("processors_on=worker"), "{listed}");
    tracker.shutdown(Duration::from_secs(5)).unwrap();
}
