//! `Stage`: what `SinkBackend` and `AsyncRouter` share — a named bounded
//! queue, its counters, and the flush and shutdown hand-shakes with the
//! stage's worker thread.

use std::time::{Duration, Instant};

use tidings_event::Event;

use super::control::{Control, SHUTDOWN_SLACK};
use super::queue::{Pushed, Queue};
use super::{Metrics, WhenFull};
use crate::{DrainError, SendError};
use crate::{DropReason, MetricsSnapshot};

/// How long a stage dropped without a shutdown keeps delivering.
const ABANDON_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(crate) struct Stage {
    pub(crate) name: String,
    pub(crate) queue: Queue,
    pub(crate) metrics: Metrics,
    pub(crate) control: Control,
}

impl Stage {
    pub(crate) fn new(name: String, capacity: usize, policy: WhenFull) -> Self {
        Self {
            name,
            queue: Queue::new(capacity, policy),
            metrics: Metrics::default(),
            control: Control::default(),
        }
    }

    /// Queues `event`, counting it and anything the queue's policy drops.
    /// The event counts as received once the queue has decided (a sender
    /// waiting for room still holds it, and its own stage counts it).
    pub(crate) fn send(&self, event: Event) -> Result<(), SendError> {
        let pushed = self.queue.push(event);
        Metrics::add(&self.metrics.received, 1);
        match pushed {
            Pushed::Accepted => Ok(()),
            Pushed::Displaced => {
                self.metrics.dropped(&self.name, DropReason::QueueFull, 1);
                Ok(())
            }
            Pushed::Full => {
                self.metrics.dropped(&self.name, DropReason::QueueFull, 1);
                Err(SendError::QueueFull)
            }
            Pushed::Closed => {
                self.metrics.dropped(&self.name, DropReason::Shutdown, 1);
                Err(SendError::Closed)
            }
        }
    }

    /// `queue_capacity=10000 when_full=drop_newest`, as in a config.
    pub(crate) fn describe_queue(&self) -> String {
        format!(
            "queue_capacity={} when_full={}",
            self.queue.capacity(),
            self.queue.policy()
        )
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        self.metrics
            .snapshot(&self.name, self.queue.len(), self.queue.waiting())
    }

    /// Asks the worker to flush and waits for it, at most `timeout`.
    pub(crate) fn flush(&self, timeout: Duration) -> Result<(), DrainError> {
        let deadline = Instant::now() + timeout;
        let ticket = self.control.request_flush(deadline);
        self.queue.wake.notify_one();
        if self.control.wait_flush(ticket, deadline + SHUTDOWN_SLACK) {
            Ok(())
        } else {
            Err(DrainError::TimedOut {
                timeout,
                pending: self.snapshot().pending(),
            })
        }
    }

    /// Stops accepting and tells the worker to finish by `timeout` from
    /// now; returns whether it did (waiting a little past the deadline for
    /// it to report).
    pub(crate) fn shut_down(&self, timeout: Duration, slack: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.control.request_shutdown(deadline);
        self.queue.close();
        self.control.wait_done(deadline + slack)
    }

    /// For `Drop` without a shutdown: stop accepting and let the worker
    /// deliver what it has for a few more seconds, without waiting.
    pub(crate) fn abandon(&self) {
        if !self.control.is_done() {
            self.control
                .request_shutdown(Instant::now() + ABANDON_DEADLINE);
            self.queue.close();
        }
    }
}
