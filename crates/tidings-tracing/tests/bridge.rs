//! Marked tracing events become tidings events: fields, span context,
//! nesting, composition, and no loops.

use serde_json::json;
use tidings::{Backend, Event, SendError, Tracker};
use tidings_test::RecordingBackend;
use tidings_tracing::TidingsLayer;
use tracing_subscriber::layer::SubscriberExt;

fn setup() -> (RecordingBackend, impl tracing::Subscriber + Send + Sync) {
    let recorder = RecordingBackend::new();
    let tracker = Tracker::builder()
        .backend("memory", recorder.clone())
        .build()
        .unwrap();
    (
        recorder,
        tracing_subscriber::registry().with(TidingsLayer::new(tracker)),
    )
}

#[test]
fn fields_of_every_type_become_data() {
    let (recorder, subscriber) = setup();
    tracing::subscriber::with_default(subscriber, || {
        let error = std::io::Error::other("disk full");
        tracing::warn!(
            tidings = "upload.failed",
            bytes = 1024u64,
            delta = -3i64,
            ratio = 0.5,
            ok = false,
            who = %"alice",
            path = ?std::path::Path::new("/tmp/x"),
            error = &error as &dyn std::error::Error,
            "upload failed"
        );
    });
    let events = recorder.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name(), "upload.failed");
    assert_eq!(
        events[0].data(),
        &json!({"bytes": 1024, "delta": -3, "ratio": 0.5, "ok": false, "who": "alice",
                "path": "\"/tmp/x\"", "error": "disk full", "message": "upload failed"})
    );
}

#[test]
fn span_fields_become_context_inner_spans_winning() {
    let (recorder, subscriber) = setup();
    tracing::subscriber::with_default(subscriber, || {
        let _ctx = tidings::enter_context("app", json!({"app": "shop", "tenant": "from-context"}));
        let outer = tracing::info_span!(
            "request",
            request_id = "r-1",
            tenant = "acme",
            user = tracing::field::Empty
        );
        let _outer = outer.enter();
        outer.record("user", 7);
        let inner = tracing::info_span!("step", step = "pay", tenant = "acme-eu");
        let _inner = inner.enter();
        tracing::info!(tidings = "payment.done", amount = 10);
    });
    let event = &recorder.events()[0];
    assert_eq!(
        event.context(),
        json!({"app": "shop", "request_id": "r-1", "tenant": "acme-eu", "user": 7, "step": "pay"})
            .as_object()
            .unwrap()
    );
}

#[test]
fn unmarked_events_invalid_names_and_tidings_own_logs_are_ignored() {
    let (recorder, subscriber) = setup();
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(url = "/a", "a plain log line");
        tracing::info!(tidings = "", "an empty name is not an event");
        tracing::warn!(target: "tidings::delivery", tidings = "loop.attempt", "the library's own log");
        tracing::info!(tidings = "kept", "marked");
    });
    assert_eq!(recorder.names(), ["kept"]);
}

#[test]
fn a_custom_marker_field_can_be_used() {
    let recorder = RecordingBackend::new();
    let tracker = Tracker::builder()
        .backend("memory", recorder.clone())
        .build()
        .unwrap();
    let subscriber =
        tracing_subscriber::registry().with(TidingsLayer::new(tracker).with_marker("event_name"));
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(event_name = "custom.marker", k = 1);
        tracing::info!(tidings = "ignored.now", k = 2);
    });
    assert_eq!(recorder.names(), ["custom.marker"]);
}

/// A backend that logs through tracing while receiving an event.
#[derive(Debug, Clone, Default)]
struct Chatty(RecordingBackend);

impl Backend for Chatty {
    fn send(&self, event: Event) -> Result<(), SendError> {
        tracing::info!(tidings = "echo", "logged from inside a backend");
        self.0.send(event)
    }
}

#[test]
fn logs_written_while_emitting_do_not_loop_back() {
    let chatty = Chatty::default();
    let tracker = Tracker::builder()
        .backend("chatty", chatty.clone())
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(TidingsLayer::new(tracker));
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(tidings = "original");
    });
    assert_eq!(chatty.0.names(), ["original"]);
}

#[test]
fn the_global_layer_uses_the_default_tracker_and_costs_nothing_without_one() {
    let subscriber = tracing_subscriber::registry().with(TidingsLayer::global());
    let recorder = RecordingBackend::new();
    let tracker = Tracker::builder()
        .backend("memory", recorder.clone())
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(tidings = "nobody.listens");
        let _default = tidings::set_default(&tracker);
        tracing::info!(tidings = "heard");
    });
    assert_eq!(recorder.names(), ["heard"]);
}

#[test]
fn it_composes_with_a_fmt_layer() {
    let recorder = RecordingBackend::new();
    let tracker = Tracker::builder()
        .backend("memory", recorder.clone())
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink))
        .with(TidingsLayer::new(tracker));
    tracing::subscriber::with_default(subscriber, || tracing::info!(tidings = "both.see.it"));
    assert_eq!(recorder.names(), ["both.see.it"]);
}
