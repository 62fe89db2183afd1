//! `type = "log"`, the plain backend writing events to the application's
//! log as edX's `LoggerBackend` does: each event one JSON line at the
//! configured level, an event over `max_event_bytes` left out with a
//! warning, and its "after 202" line saying so.

use serde_json::{Value, json};
use tidings_config::{ConfigErrorKind, LOG_TARGET, Registry, load};
use tidings_event::{Event, EventName};
use tidings_routing::Backend;
use tidings_test::SharedBuffer;

fn event(name: &'static str, text: &str) -> Event {
    Event::new(EventName::new(name).unwrap(), json!({ "text": text }))
}

#[test]
fn events_are_logged_as_json_lines_and_an_oversized_one_is_named_not_written() {
    let config = load(
        "[backends.logs]\ntype = \"log\"\nlevel = \"warn\"\nlogger = \"tracking\"\nmax_event_bytes = 300\n",
        &Registry::default(),
    )
    .unwrap();
    let tree = config.to_string();
    assert!(
        tree.contains("logs: log level=warn logger=tracking max_event_bytes=300"),
        "{tree}"
    );
    assert!(
        tree.contains("after 202: MAY DROP events (events over 300 bytes are not logged"),
        "{tree}"
    );
    let (root, _) = config.build().unwrap().into_parts();

    let buffer = SharedBuffer::default();
    let subscriber = buffer.subscriber(tracing::Level::WARN);
    let small = event("page.view", "hello");
    let big = event("page.big", &"x".repeat(400));
    tracing::subscriber::with_default(subscriber, || {
        root.send(small.clone()).unwrap();
        root.send(big.clone()).unwrap();
    });
    let text = buffer.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    // The small event: a WARN record whose message is its JSON.
    assert!(
        lines[0].contains(" WARN ") && lines[0].contains(LOG_TARGET),
        "{text}"
    );
    assert!(lines[0].contains("logger=tracking"), "{text}");
    let json_start = lines[0].find('{').unwrap();
    let logged: Value = serde_json::Deserializer::from_str(&lines[0][json_start..])
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(logged["id"], small.id().to_string());
    assert_eq!(logged["data"]["text"], "hello");
    // The big one: named and sized, not written.
    assert!(
        lines[1].contains("event over max_event_bytes: not logged"),
        "{text}"
    );
    assert!(lines[1].contains("name=page.big"), "{text}");
    assert!(!text.contains(&"x".repeat(400)), "{text}");
}

#[test]
fn below_its_level_nothing_is_written_and_a_zero_size_is_refused() {
    let config = load(
        "[backends.logs]\ntype = \"log\"\nlevel = \"debug\"\n",
        &Registry::default(),
    )
    .unwrap();
    let (root, _) = config.build().unwrap().into_parts();
    let buffer = SharedBuffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        root.send(event("page.view", "quiet")).unwrap();
    });
    assert_eq!(buffer.text(), "");

    let errors = load(
        "[backends.logs]\ntype = \"log\"\nmax_event_bytes = 0\n",
        &Registry::default(),
    )
    .unwrap_err();
    let error = &errors.errors()[0];
    assert_eq!(
        (error.path.as_str(), error.kind),
        ("backends.logs.max_event_bytes", ConfigErrorKind::Invalid)
    );
}
