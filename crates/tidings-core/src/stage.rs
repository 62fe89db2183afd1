//! What a delivery stage reports about itself: [`MetricsSnapshot`], and the
//! reasons it drops events ([`DropReason`]). Delivery engines fill these in;
//! reports, health pages and metrics exporters read them through
//! [`Backend::for_each_stage`](crate::Backend::for_each_stage).

use std::fmt;

use tidings_event::Timestamp;

/// Why events were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DropReason {
    /// The queue was full (`when_full` refused or displaced the event).
    QueueFull,
    /// The event alone is larger than a batch may be, or the receiver refused
    /// it as too large (413) on its own.
    TooLarge,
    /// Every retry failed.
    RetriesExhausted,
    /// The receiver refused the batch for good (a non-retryable error).
    NonRetryable,
    /// The batch grew older than the retry policy's `max_batch_age`.
    Expired,
    /// Shutdown's deadline passed before the event was delivered, or the
    /// event arrived after shutdown.
    Shutdown,
    /// The receiver refused the event for what it contains (a PostgreSQL
    /// data error, an HTTP 400 or 422): the batch was split until the
    /// events at fault were found, and this is one of them.
    Invalid,
}

impl DropReason {
    /// Every reason, in a stable order.
    pub const ALL: [DropReason; 7] = [
        Self::QueueFull,
        Self::TooLarge,
        Self::RetriesExhausted,
        Self::NonRetryable,
        Self::Expired,
        Self::Shutdown,
        Self::Invalid,
    ];

    /// The reason's name in metrics and logs, such as `queue_full`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::TooLarge => "too_large",
            Self::RetriesExhausted => "retries_exhausted",
            Self::NonRetryable => "non_retryable",
            Self::Expired => "expired",
            Self::Shutdown => "shutdown",
            Self::Invalid => "invalid",
        }
    }

    /// The reason's position in [`DropReason::ALL`], for arrays of counters.
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sink's latest failed attempt ([`MetricsSnapshot::last_error`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LastError {
    /// When the attempt failed.
    pub at: Timestamp,
    /// The sink's error, as displayed (cut at 500 bytes).
    pub message: String,
}

impl LastError {
    /// The longest [`LastError::message`] kept, in bytes.
    pub const MAX_MESSAGE_LEN: usize = 500;

    /// A failure at `at`; a `message` longer than
    /// [`LastError::MAX_MESSAGE_LEN`] bytes is cut there (on a character
    /// boundary) and ends with `…`.
    #[must_use]
    pub fn new(at: Timestamp, mut message: String) -> Self {
        if message.len() > Self::MAX_MESSAGE_LEN {
            let mut end = Self::MAX_MESSAGE_LEN;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        Self { at, message }
    }
}

/// A point-in-time copy of a delivery stage's counters.
///
/// At every quiet point
/// `received == delivered + dropped_total() + dead_lettered_total() + pending()`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// The stage's name (the backend's name in the tree).
    pub name: String,
    /// Events offered to the stage, accepted or not.
    pub received: u64,
    /// Events delivered: written by the sink, or handed on by a router.
    pub delivered: u64,
    /// Event deliveries attempted again after a retryable failure.
    pub retried: u64,
    /// Batches the sink accepted.
    pub batches: u64,
    /// Events dropped, by reason.
    pub dropped: [(DropReason, u64); DropReason::ALL.len()],
    /// Events the sink gave up on and handed to its dead-letter
    /// destination, by reason (never counted as dropped as well).
    pub dead_lettered: [(DropReason, u64); DropReason::ALL.len()],
    /// Events waiting in the queue.
    pub queued: u64,
    /// Senders waiting for room in the full queue
    /// (a `when_full` of `block` or
    /// `backpressure`), each
    /// holding one event. Not yet counted as received here: a sender that
    /// is another stage's worker still counts its event as its own.
    pub waiting: u64,
    /// Events taken off the queue and not yet delivered or dropped
    /// (batching, in flight, waiting to retry).
    pub buffered: u64,
    /// Bytes of the events being batched, before compression.
    pub buffered_bytes: u64,
    /// The sink's latest failed attempt, kept after it recovers (compare
    /// its time with the deliveries since). `None` for a stage whose sink
    /// never failed, and for async routers.
    pub last_error: Option<LastError>,
    /// While the worker waits to retry a failed batch (backoff, or the
    /// receiver's `Retry-After`), when it tries again; the whole sink waits
    /// meanwhile.
    pub paused_until: Option<Timestamp>,
}

impl MetricsSnapshot {
    /// A stage named `name` with every count at zero, for a delivery engine
    /// to fill in.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            received: 0,
            delivered: 0,
            retried: 0,
            batches: 0,
            dropped: DropReason::ALL.map(|r| (r, 0)),
            dead_lettered: DropReason::ALL.map(|r| (r, 0)),
            queued: 0,
            waiting: 0,
            buffered: 0,
            buffered_bytes: 0,
            last_error: None,
            paused_until: None,
        }
    }

    /// Events dropped for `reason`.
    #[must_use]
    pub fn dropped(&self, reason: DropReason) -> u64 {
        count(&self.dropped, reason)
    }

    /// Events dropped for any reason.
    #[must_use]
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|(_, n)| n).sum()
    }

    /// Events dead-lettered for `reason`.
    #[must_use]
    pub fn dead_lettered(&self, reason: DropReason) -> u64 {
        count(&self.dead_lettered, reason)
    }

    /// Events dead-lettered for any reason.
    #[must_use]
    pub fn dead_lettered_total(&self) -> u64 {
        self.dead_lettered.iter().map(|(_, n)| n).sum()
    }

    /// Events received and neither delivered, dropped nor dead-lettered
    /// yet: queued, or taken by the worker (batching, in flight, waiting to
    /// retry).
    #[must_use]
    ///
    /// The queue and the worker's batch are read one after the other, so
    /// an event moving from one to the other could be seen in both; the
    /// stage's accounting (received − delivered − dropped − dead-lettered)
    /// bounds the sum, so an event is never counted twice.
    pub fn pending(&self) -> u64 {
        let accounted = self.delivered + self.dropped_total() + self.dead_lettered_total();
        (self.queued + self.buffered).min(self.received.saturating_sub(accounted))
    }
}

fn count(counts: &[(DropReason, u64)], reason: DropReason) -> u64 {
    counts
        .iter()
        .find(|(r, _)| *r == reason)
        .map_or(0, |(_, n)| *n)
}
