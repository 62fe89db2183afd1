//! Delivery counters: received, delivered, retried, dropped by reason, and
//! the gauges of what is still pending.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tidings_core::{DropReason, LastError, MetricsSnapshot};
use tidings_event::{FailureStreak, StreakLog, Timestamp};

/// The live counters of one delivery stage.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) received: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) batches: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    dead_lettered: [AtomicU64; DropReason::ALL.len()],
    /// Events taken off the queue and not yet delivered or dropped.
    pub(crate) buffered: AtomicU64,
    pub(crate) buffered_bytes: AtomicU64,
    /// Drops, for the log.
    drops: FailureStreak,
    /// The last failed attempt and the current retry pause.
    health: Mutex<Health>,
}

/// What a status page shows besides the counters.
#[derive(Debug, Default)]
struct Health {
    last_error: Option<LastError>,
    paused_until: Option<Timestamp>,
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn sub(counter: &AtomicU64, n: usize) {
        counter.fetch_sub(n as u64, Ordering::Relaxed);
    }

    /// Counts `n` dropped events; the first drop of a stage warns, then a
    /// summary every 30 s while drops go on.
    pub(crate) fn dropped(&self, name: &str, reason: DropReason, n: usize) {
        if n == 0 {
            return;
        }
        self.dropped[reason.index()].fetch_add(n as u64, Ordering::Relaxed);
        match self.drops.failed() {
            StreakLog::First => tracing::warn!(
                target: "tidings::delivery",
                backend = name,
                %reason,
                events = n,
                "dropping events; the metrics count every drop, and a summary is logged every 30 s while drops go on"
            ),
            StreakLog::Reminder { failures, .. } => tracing::warn!(
                target: "tidings::delivery",
                backend = name,
                %reason,
                drops = failures,
                "still dropping events: {failures} drops so far (by reason in tidings_backend_dropped_total)"
            ),
            _ => {}
        }
    }

    /// Counts `n` events handed to the dead-letter destination.
    pub(crate) fn dead_lettered(&self, reason: DropReason, n: usize) {
        self.dead_lettered[reason.index()].fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Remembers a failed attempt of the sink, as the stage's last error.
    pub(crate) fn failed(&self, error: &dyn fmt::Display) {
        self.health().last_error = Some(LastError::new(Timestamp::now(), error.to_string()));
    }

    /// The worker waits `wait` before trying again (`None`: it tries now).
    pub(crate) fn paused(&self, wait: Option<Duration>) {
        self.health().paused_until = wait.map(|wait| {
            let wait = i64::try_from(wait.as_micros()).unwrap_or(i64::MAX);
            Timestamp::from_unix_micros(Timestamp::now().unix_micros().saturating_add(wait))
        });
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn snapshot(&self, name: &str, queued: usize, waiting: usize) -> MetricsSnapshot {
        let (last_error, paused_until) = {
            let health = self.health();
            (health.last_error.clone(), health.paused_until)
        };
        let mut snapshot = MetricsSnapshot::new(name);
        snapshot.received = self.received.load(Ordering::Relaxed);
        snapshot.delivered = self.delivered.load(Ordering::Relaxed);
        snapshot.retried = self.retried.load(Ordering::Relaxed);
        snapshot.batches = self.batches.load(Ordering::Relaxed);
        snapshot.dropped =
            DropReason::ALL.map(|r| (r, self.dropped[r.index()].load(Ordering::Relaxed)));
        snapshot.dead_lettered =
            DropReason::ALL.map(|r| (r, self.dead_lettered[r.index()].load(Ordering::Relaxed)));
        snapshot.queued = queued as u64;
        snapshot.waiting = waiting as u64;
        snapshot.buffered = self.buffered.load(Ordering::Relaxed);
        snapshot.buffered_bytes = self.buffered_bytes.load(Ordering::Relaxed);
        snapshot.last_error = last_error;
        snapshot.paused_until = paused_until;
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_never_counts_an_event_moving_from_queue_to_batch_twice() {
        let metrics = Metrics::default();
        Metrics::add(&metrics.received, 27);
        // The queue read before the worker took one event, its batch after.
        metrics.buffered.store(1, Ordering::Relaxed);
        assert_eq!(metrics.snapshot("s", 27, 0).pending(), 27);
        // At a quiet point the two agree.
        assert_eq!(metrics.snapshot("s", 26, 0).pending(), 27);
        Metrics::add(&metrics.delivered, 1);
        metrics.buffered.store(0, Ordering::Relaxed);
        assert_eq!(metrics.snapshot("s", 26, 0).pending(), 26);
    }
}
