//! `assert_sink_compliance`: the checks every sink must pass, run through
//! the real delivery engine against the sink's real destination.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tidings_event::{Event, EventId, EventName};
use tidings_routing::{Backend, BatchConfig, DropReason, SendError, Sink, SinkBackend};

/// How [`Compliance::check`] exercises a sink. [`Compliance::default`]
/// sends 1000 events in batches of at most 100 and allows 10 s for the
/// flush and 5 s for the shutdown.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Compliance {
    /// Events sent in all (half before the flush, half before the shutdown).
    pub events: usize,
    /// The engine's `max_events` per batch.
    pub max_events: usize,
    /// How long the flush may take.
    pub flush_timeout: Duration,
    /// The shutdown's deadline; `shutdown` must also return by it (plus
    /// 250 ms of slack for a loaded machine).
    pub shutdown_timeout: Duration,
}

impl Default for Compliance {
    fn default() -> Self {
        Self {
            events: 1000,
            max_events: 100,
            flush_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

/// What [`Compliance::check`] measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ComplianceReport {
    /// Events sent (and delivered).
    pub events: usize,
    /// How long the flush of the first half took.
    pub flush: Duration,
    /// How long the shutdown (draining the second half) took.
    pub shutdown: Duration,
}

impl Compliance {
    /// Sends `events` events to `sink` through a [`SinkBackend`] and
    /// panics, saying what is wrong, unless:
    ///
    /// 1. `flush` returns in time and afterwards `read_back` finds every
    ///    event sent so far, each id exactly once, and no other id;
    /// 2. the metrics then say every event was delivered, none dropped or
    ///    pending;
    /// 3. `shutdown` delivers the second half and returns `Ok` by its
    ///    deadline, after which `read_back` finds every event exactly once;
    /// 4. a `send` after shutdown is refused as closed and counted as
    ///    dropped, and `received == delivered + dropped + pending` holds at
    ///    every step.
    ///
    /// `read_back` returns the ids of the events at the sink's destination
    /// (a table, a directory, a stream), read with the destination's own
    /// client; it must see only what this check sent. It is called from
    /// the calling thread, after the flush and after the shutdown.
    ///
    /// # Panics
    ///
    /// When the sink breaks one of the rules above.
    pub fn check(
        &self,
        sink: Arc<dyn Sink>,
        mut read_back: impl FnMut() -> Vec<EventId>,
    ) -> ComplianceReport {
        let described = format!("{sink:?}");
        let backend = SinkBackend::builder_arc("compliance", sink)
            .batch(
                BatchConfig::default()
                    .with_max_events(self.max_events.max(1))
                    .with_flush_interval(Duration::from_secs(3600)),
            )
            .queue_capacity(self.events.max(1))
            .build()
            .unwrap_or_else(|e| panic!("cannot start the backend of {described}: {e}"));

        let first = self.events / 2;
        let mut sent = Vec::with_capacity(self.events);
        for n in 0..first {
            sent.push(send(&backend, n));
        }
        let started = Instant::now();
        if let Err(error) = backend.flush(self.flush_timeout) {
            panic!("flush of {described} failed: {error}");
        }
        let flush = started.elapsed();
        assert_ids(&described, "after flush", &sent, read_back());
        let metrics = backend.metrics();
        assert_accounted(&described, &metrics);
        assert_eq!(
            (
                metrics.delivered,
                metrics.dropped_total(),
                metrics.pending()
            ),
            (first as u64, 0, 0),
            "{described}: after flush, every event must be delivered (delivered, dropped, pending): {metrics:?}"
        );

        for n in first..self.events {
            sent.push(send(&backend, n));
        }
        let started = Instant::now();
        let shut = backend.shutdown(self.shutdown_timeout);
        let shutdown = started.elapsed();
        assert!(
            shut.is_ok(),
            "shutdown of {described} lost events: {shut:?}"
        );
        assert!(
            shutdown <= self.shutdown_timeout + Duration::from_millis(250),
            "shutdown of {described} took {shutdown:?}, past its deadline of {:?}",
            self.shutdown_timeout
        );
        assert_ids(&described, "after shutdown", &sent, read_back());
        let metrics = backend.metrics();
        assert_accounted(&described, &metrics);
        assert_eq!(
            (
                metrics.delivered,
                metrics.dropped_total(),
                metrics.pending()
            ),
            (self.events as u64, 0, 0),
            "{described}: after shutdown, every event must be delivered (delivered, dropped, pending): {metrics:?}"
        );

        let late = backend.send(event(self.events));
        assert!(
            matches!(late, Err(SendError::Closed)),
            "{described}: a send after shutdown must be refused as closed, got {late:?}"
        );
        let metrics = backend.metrics();
        assert_accounted(&described, &metrics);
        assert_eq!(metrics.dropped(DropReason::Shutdown), 1, "{metrics:?}");

        ComplianceReport {
            events: self.events,
            flush,
            shutdown,
        }
    }
}

/// [`Compliance::default`]`.check(sink, read_back)`: see [`Compliance::check`].
///
/// ```
/// use std::sync::Arc;
/// use tidings_test::{RecordingSink, assert_sink_compliance};
///
/// let sink = RecordingSink::new();
/// let record = sink.clone();
/// assert_sink_compliance(Arc::new(sink), move || {
///     record.events().iter().map(|e| e.id()).collect()
/// });
/// ```
///
/// # Panics
///
/// When the sink breaks one of the rules of [`Compliance::check`].
pub fn assert_sink_compliance(
    sink: Arc<dyn Sink>,
    read_back: impl FnMut() -> Vec<EventId>,
) -> ComplianceReport {
    Compliance::default().check(sink, read_back)
}

fn event(n: usize) -> Event {
    let name = EventName::new("compliance.check").unwrap_or_else(|e| panic!("{e}"));
    let context = json!({"suite": "compliance", "n": n});
    let context = match context {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    Event::new(name, json!({"n": n, "text": "\"quoted\" \\ and ünïcode"})).with_context(context)
}

pub(crate) fn send(backend: &SinkBackend, n: usize) -> EventId {
    let event = event(n);
    let id = event.id();
    if let Err(error) = backend.send(event) {
        panic!("send of event {n} failed: {error}");
    }
    id
}

pub(crate) fn assert_accounted(described: &str, m: &tidings_routing::MetricsSnapshot) {
    assert_eq!(
        m.received,
        m.delivered + m.dropped_total() + m.pending(),
        "{described}: received must equal delivered + dropped + pending: {m:?}"
    );
}

pub(crate) fn assert_ids(described: &str, when: &str, sent: &[EventId], found: Vec<EventId>) {
    let mut counts: HashMap<EventId, usize> = HashMap::with_capacity(found.len());
    for id in found {
        *counts.entry(id).or_default() += 1;
    }
    let missing = sent.iter().filter(|id| !counts.contains_key(id)).count();
    let duplicated = counts.values().filter(|&&n| n > 1).count();
    let unknown = counts.len() - (sent.len() - missing);
    assert!(
        missing == 0 && duplicated == 0 && unknown == 0,
        "{described} {when}: of {} events sent, {missing} are missing, {duplicated} stored more than once, and {unknown} unknown ids were found",
        sent.len()
    );
}
