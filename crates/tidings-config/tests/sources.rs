//! `[sources.*]` tables: a third-party `SourceType` registered, its options
//! validated with their paths, printed by `tidings check`, and built with
//! its dead letters.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tidings_config::{ConfigErrorKind, Registry, load};
use tidings_core::{
    Backend, BoxError, Source, SourceError, SourceMetrics, SourceType, async_trait,
};
use tidings_event::{Event, EventName};
use tidings_test::RecordingBackend;

/// A source of nothing, remembering its name; it greets its dead letters
/// with one `quiet.started` event when it has some.
#[derive(Debug)]
struct Quiet {
    name: String,
}

#[async_trait]
impl Source for Quiet {
    async fn fetch(&self, _max: usize, _wait: Duration) -> Result<Vec<Event>, SourceError> {
        Ok(Vec::new())
    }
    fn hold(&self) {}
    fn release(&self) {}
    async fn close(&self) -> Result<(), SourceError> {
        Ok(())
    }
    fn metrics(&self) -> SourceMetrics {
        SourceMetrics::new(self.name.clone())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuietOptions {
    topic: String,
    #[serde(default)]
    fail: bool,
}

struct QuietType;

impl SourceType for QuietType {
    const NAME: &'static str = "quiet";
    type Options = QuietOptions;

    fn validate(options: &QuietOptions) -> Vec<(String, String)> {
        if options.topic.is_empty() {
            vec![("topic".into(), "must not be empty".into())]
        } else {
            Vec::new()
        }
    }

    fn build(
        options: &QuietOptions,
        name: &str,
        dead_letter: Option<Arc<dyn Backend>>,
    ) -> Result<Arc<dyn Source>, BoxError> {
        if options.fail {
            return Err(format!("cannot reach {}", options.topic).into());
        }
        if let Some(dead_letter) = dead_letter {
            let greeting = Event::new(EventName::new("quiet.started")?, serde_json::json!({}));
            dead_letter.send(greeting)?;
        }
        Ok(Arc::new(Quiet {
            name: name.to_owned(),
        }))
    }

    fn describe(options: &QuietOptions) -> String {
        format!("topic={}", options.topic)
    }
}

fn registry() -> Registry {
    let mut registry = Registry::default();
    registry.register_source::<QuietType>();
    registry
}

#[test]
fn sources_are_printed_and_built_with_their_names_and_dead_letters() {
    let dir = std::env::temp_dir().join(format!("tidings-sources-{}", std::process::id()));
    let text = format!(
        r#"
        [sources.a]
        type = "quiet"
        topic = "t1"
        dead_letter = {{ type = "file", path = "{}" }}

        [sources.b]
        type = "quiet"
        topic = "t2"
        dead_letter = "none"

        [backends.out]
        type = "console"
        "#,
        dir.join("dead").display()
    );
    let config = load(&text, &registry()).unwrap();
    let tree = config.to_string();
    for expected in [
        "source a: quiet topic=t1",
        "undecodable ones go to dead letters: file path=",
        "source b: quiet topic=t2",
        "undecodable ones go to no dead letters (dropped and counted)",
    ] {
        assert!(tree.contains(expected), "missing {expected:?} in:\n{tree}");
    }
    let mut pipeline = config.build().unwrap();
    let sources = config.build_sources(&mut pipeline).unwrap();
    let names: Vec<&str> = sources.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(sources[0].1.metrics().name, "a", "built with its name");
    // The dead letters of `a` are a stage of the pipeline.
    let paths: Vec<&str> = pipeline.stages().iter().map(|s| s.path.as_str()).collect();
    assert!(paths.contains(&"sources.a.dead_letter"), "{paths:?}");
    assert!(
        !paths.iter().any(|p| p.starts_with("sources.b")),
        "{paths:?}"
    );
    let (root, _) = pipeline.into_parts();
    root.shutdown(Duration::from_secs(5)).unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_source_without_dead_letter_gets_the_default_file() {
    let config = load(
        "[sources.x]\ntype = \"quiet\"\ntopic = \"t\"\n",
        &registry(),
    )
    .unwrap();
    assert!(
        config
            .to_string()
            .contains("dead letters: file path=tidings-dead-letter/sources.x"),
        "{config}"
    );
}

#[test]
fn source_mistakes_carry_their_paths() {
    let errors = load(
        r#"
        [sources.a]
        type = "quiet"
        topic = ""
        [sources.b]
        type = "quite"
        [sources.c]
        type = "quiet"
        topic = "t"
        max_events = 3
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
            ("sources.a.topic", ConfigErrorKind::Invalid),
            ("sources.b.type", ConfigErrorKind::UnknownType),
            ("sources.c.max_events", ConfigErrorKind::UnknownKey),
        ],
        "{errors}"
    );
    assert!(
        errors.errors()[1]
            .message
            .contains("unknown source type \"quite\"; did you mean \"quiet\"?"),
        "{errors}"
    );
}

#[test]
fn a_source_that_cannot_start_fails_at_its_path() {
    let config = load(
        "[sources.gone]\ntype = \"quiet\"\ntopic = \"far\"\nfail = true\ndead_letter = \"none\"\n",
        &registry(),
    )
    .unwrap();
    let mut pipeline = config.build().unwrap();
    let Err(errors) = config.build_sources(&mut pipeline) else {
        panic!("a source that cannot start must fail");
    };
    let error = &errors.errors()[0];
    assert_eq!(
        (error.path.as_str(), error.kind),
        ("sources.gone", ConfigErrorKind::Build)
    );
    assert!(error.message.contains("cannot reach far"), "{error}");
}

/// `type = "recorder"`: a plain backend into one process-wide recorder.
struct RecorderType;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoOptions {}

fn recorder() -> &'static RecordingBackend {
    static RECORDER: std::sync::OnceLock<RecordingBackend> = std::sync::OnceLock::new();
    RECORDER.get_or_init(RecordingBackend::new)
}

impl tidings_core::BackendType for RecorderType {
    const NAME: &'static str = "recorder";
    type Options = NoOptions;
    fn build(_: &NoOptions) -> Result<Arc<dyn Backend>, BoxError> {
        Ok(Arc::new(recorder().clone()))
    }
    fn describe(_: &NoOptions) -> String {
        String::new()
    }
}

#[test]
fn the_dead_letters_a_source_is_given_are_its_own() {
    let mut registry = registry();
    registry.register_backend::<RecorderType>();
    let config = load(
        "[sources.a]\ntype = \"quiet\"\ntopic = \"t\"\ndead_letter = { type = \"recorder\" }\n",
        &registry,
    )
    .unwrap();
    let mut pipeline = config.build().unwrap();
    config.build_sources(&mut pipeline).unwrap();
    assert_eq!(recorder().names(), ["quiet.started"]);
}
