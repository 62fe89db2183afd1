//! What dispatch listeners log: `log_dispatch` one line per attempt, and a
//! panicking listener a warning the first time, then debug lines. Its own
//! test binary: the worker threads log through the global subscriber.

use std::time::Duration;

use serde_json::json;
use tidings_event::{Event, EventName};
use tidings_routing::{Backend, RetryPolicy, SinkBackend, log_dispatch};
use tidings_test::{Answer, RecordingSink, SharedBuffer};

const LONG: Duration = Duration::from_secs(10);

#[test]
fn log_dispatch_logs_each_attempt_and_a_panicking_listener_warns_once() {
    let buffer = SharedBuffer::default();
    tracing::subscriber::set_global_default(buffer.subscriber(tracing::Level::INFO)).unwrap();
    let sink = RecordingSink::scripted([Answer::Status(503, None)]);
    let backend = SinkBackend::builder("logged", sink.clone())
        .retry(
            RetryPolicy::default()
                .with_initial_backoff(Duration::from_millis(1))
                .with_max_backoff(Duration::from_millis(2)),
        )
        .build()
        .unwrap();
    backend.add_dispatch_listener(log_dispatch);
    backend.add_dispatch_listener(|_| panic!("a listener's bug"));
    let event = Event::new(EventName::new("logged.one").unwrap(), json!({}));
    let id = event.id().to_string();
    backend.send(event).unwrap();
    backend.flush(LONG).unwrap();
    backend
        .send(Event::new(EventName::new("logged.two").unwrap(), json!({})))
        .unwrap();
    backend.shutdown(LONG).unwrap();
    assert_eq!(sink.events().len(), 2, "delivered despite the panics");
    let text = buffer.text();
    let sending: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("sending a batch"))
        .collect();
    assert_eq!(sending.len(), 3, "two attempts, then one: {text}");
    for (line, attempt) in sending.iter().zip([1, 2]) {
        assert!(
            line.contains("INFO")
                && line.contains("tidings::dispatch")
                && line.contains("backend=\"logged\"")
                && line.contains(&format!("attempt={attempt}"))
                && line.contains("events=1")
                && line.contains(&format!("first={id}"))
                && line.contains(&format!("last={id}")),
            "{line}"
        );
    }
    let panics: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("dispatch listener panicked"))
        .collect();
    assert_eq!(panics.len(), 1, "warned once, later at debug: {text}");
    assert!(panics[0].contains("WARN"), "{text}");
}
