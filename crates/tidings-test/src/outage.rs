//! [`Outage`]: the outage every network sink must survive, run through the
//! real delivery engine against the real service behind a
//! [`CuttableProxy`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tidings_event::EventId;
use tidings_routing::{Backend, BatchConfig, RetryPolicy, Sink, SinkBackend};

use crate::CuttableProxy;
use crate::compliance::{assert_accounted, assert_ids, send};

/// How [`Outage::check`] cuts a sink off. [`Outage::default`] sends 300
/// events in each of three phases (before, during and after the cut), in
/// batches of at most 50, and gives delivery 2 s to resume.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Outage {
    /// Events sent in each phase.
    pub events_per_phase: usize,
    /// The engine's `max_events` per batch.
    pub max_events: usize,
    /// How soon after the service is reachable again every event must be
    /// delivered.
    pub resume_within: Duration,
    /// The longest any wait of the scenario may take before it fails.
    pub patience: Duration,
}

impl Default for Outage {
    fn default() -> Self {
        Self {
            events_per_phase: 300,
            max_events: 50,
            resume_within: Duration::from_secs(2),
            patience: Duration::from_secs(10),
        }
    }
}

/// What [`Outage::check`] measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutageReport {
    /// Events sent in all.
    pub events: usize,
    /// From the restore of the connection to the last event delivered.
    pub resumed_after: Duration,
    /// Connections the sink opened through the proxy (at least two: it
    /// reconnected).
    pub connections: usize,
}

impl Outage {
    /// Runs the outage against `sink`, which was built to reach its service
    /// through `proxy`, and panics, saying what is wrong, unless:
    ///
    /// 1. before the cut, a flush delivers every event;
    /// 2. while every connection is cut and new ones refused, nothing is
    ///    delivered, nothing is dropped, and the engine retries;
    /// 3. once the proxy forwards again, the sink reconnects by itself and
    ///    every event, those sent during the cut included, is delivered
    ///    within `resume_within`;
    /// 4. after shutdown, `read_back` finds every event exactly once, and
    ///    `received == delivered` with nothing dropped.
    ///
    /// `read_back` returns the ids at the sink's destination, read with the
    /// service's own client (not through the proxy); it must see only what
    /// this check sent.
    ///
    /// # Panics
    ///
    /// When the sink breaks one of the rules above.
    pub fn check(
        &self,
        proxy: &CuttableProxy,
        sink: Arc<dyn Sink>,
        mut read_back: impl FnMut() -> Vec<EventId>,
    ) -> OutageReport {
        let described = format!("{sink:?}");
        let backend = SinkBackend::builder_arc("outage", sink)
            .batch(
                BatchConfig::default()
                    .with_max_events(self.max_events.max(1))
                    .with_flush_interval(Duration::from_millis(10)),
            )
            .retry(
                RetryPolicy::default()
                    .with_initial_backoff(Duration::from_millis(10))
                    .with_max_backoff(Duration::from_millis(100)),
            )
            .queue_capacity(3 * self.events_per_phase.max(1))
            .build()
            .unwrap_or_else(|e| panic!("cannot start the backend of {described}: {e}"));
        let phase = self.events_per_phase;
        let mut sent = Vec::with_capacity(3 * phase);

        // Before: delivered through the proxy.
        sent.extend((0..phase).map(|n| send(&backend, n)));
        if let Err(error) = backend.flush(self.patience) {
            panic!("{described}: the flush before the cut failed: {error}");
        }
        assert_ids(&described, "before the cut", &sent, read_back());

        // During: every connection cut, new ones refused.
        proxy.cut();
        sent.extend((phase..2 * phase).map(|n| send(&backend, n)));
        let cut = Instant::now();
        while backend.metrics().retried == 0 {
            assert!(
                cut.elapsed() < self.patience,
                "{described}: no batch was retried while the service was cut off: {:?}",
                backend.metrics()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let during = backend.metrics();
        assert_accounted(&described, &during);
        assert_eq!(
            (during.delivered, during.dropped_total()),
            (phase as u64, 0),
            "{described}: while cut off, nothing is delivered and nothing dropped: {during:?}"
        );

        // After: delivery resumes by itself.
        proxy.restore();
        let restored = Instant::now();
        sent.extend((2 * phase..3 * phase).map(|n| send(&backend, n)));
        while backend.metrics().delivered < (3 * phase) as u64 {
            assert!(
                restored.elapsed() < self.patience,
                "{described}: delivery did not resume: {:?}",
                backend.metrics()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let resumed_after = restored.elapsed();
        assert!(
            resumed_after <= self.resume_within,
            "{described}: every event was delivered {resumed_after:?} after the service came back, more than {:?}",
            self.resume_within
        );
        if let Err(error) = backend.shutdown(self.patience) {
            panic!("{described}: shutdown after the outage failed: {error}");
        }
        assert_ids(&described, "after the outage", &sent, read_back());
        let metrics = backend.metrics();
        assert_accounted(&described, &metrics);
        assert_eq!(
            (metrics.received, metrics.delivered, metrics.dropped_total()),
            ((3 * phase) as u64, (3 * phase) as u64, 0),
            "{described}: after the outage (received, delivered, dropped): {metrics:?}"
        );
        let connections = proxy.accepted();
        assert!(
            connections >= 2,
            "{described}: the sink never reconnected ({connections} connection)"
        );
        OutageReport {
            events: 3 * phase,
            resumed_after,
            connections,
        }
    }
}
