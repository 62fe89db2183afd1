//! `BatchConfig`: when a batch is sent.

use std::time::{Duration, Instant};

use tidings_event::Event;

/// Default for [`BatchConfig::max_events`].
pub const DEFAULT_MAX_EVENTS: usize = 100;
/// Default for [`BatchConfig::max_bytes`].
pub const DEFAULT_MAX_BYTES: usize = 500_000;
/// Default for [`BatchConfig::flush_interval`]: 1 s.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(1000);

/// When a batch is sent: on the first of `max_events` events, `max_bytes`
/// bytes (before compression), or `flush_interval` after its first event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    max_events: usize,
    max_bytes: usize,
    flush_interval: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_events: DEFAULT_MAX_EVENTS,
            max_bytes: DEFAULT_MAX_BYTES,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
        }
    }
}

impl BatchConfig {
    /// The most events in a batch; at least 1. Defaults to 100.
    #[must_use]
    pub fn with_max_events(mut self, max_events: usize) -> Self {
        self.max_events = max_events.max(1);
        self
    }

    /// The most bytes in a batch, measured with
    /// [`Sink::size_hint`](crate::Sink::size_hint). An event larger than
    /// this alone is dropped as too large. Defaults to 500 000.
    #[must_use]
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes.max(1);
        self
    }

    /// The longest a batch waits after its first event. Defaults to 1 s.
    #[must_use]
    pub fn with_flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// The most events in a batch.
    #[must_use]
    pub fn max_events(&self) -> usize {
        self.max_events
    }

    /// The most bytes in a batch.
    #[must_use]
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The longest a batch waits after its first event.
    #[must_use]
    pub fn flush_interval(&self) -> Duration {
        self.flush_interval
    }
}

/// The batch being formed.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) events: Vec<Event>,
    pub(crate) bytes: usize,
    pub(crate) started: Option<Instant>,
}

impl Batch {
    pub(crate) fn push(&mut self, event: Event, size: usize) {
        self.started.get_or_insert_with(Instant::now);
        self.events.push(event);
        self.bytes += size;
    }

    pub(crate) fn take(&mut self) -> (Vec<Event>, usize) {
        self.started = None;
        (
            std::mem::take(&mut self.events),
            std::mem::take(&mut self.bytes),
        )
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}
