//! The async `Source` trait: events read from outside (a broker's durable
//! consumer), each acknowledged once the tree is done with it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use tidings_event::Event;

use crate::{Backend, BoxError};

/// Reads events from an external system (a broker's durable consumer) for
/// a backend tree, and acknowledges each message only once the events read
/// from it are **settled**: every copy delivered, dead-lettered, or dropped
/// by a policy the tree declares.
///
/// # Settlement
///
/// Every event `fetch` returns carries a [`Lease`](tidings_event::Lease)
/// on its message (the events of one message share it). The delivery
/// engine drops each copy of an event once it is done with it, so the
/// lease's value is dropped once the event is settled; the source
/// acknowledges the message then, off the dropping thread. One case is not
/// a settlement: an event a shutdown drops because the drain ran out of
/// time. So a runner that stops calls [`Source::hold`] before it drains,
/// and [`Source::release`] only when the drain delivered everything; what
/// a source holds unacknowledged is redelivered by the broker to the next
/// consumer.
///
/// A message that cannot be decoded is never returned: the source hands
/// it to its dead letters (if it has any) and tells the broker not to
/// redeliver it.
///
/// # Concurrency
///
/// One runner calls `fetch`, one call at a time; `hold`, `release` and
/// `metrics` may be called from any thread meanwhile. `close` is the last
/// call.
#[async_trait]
pub trait Source: Send + Sync + fmt::Debug + 'static {
    /// Waits at most `wait` for up to `max` events; an empty batch when
    /// none came in time.
    ///
    /// # Errors
    ///
    /// [`SourceError`] when the broker cannot be read (the runner logs it
    /// and tries again after a pause).
    async fn fetch(&self, max: usize, wait: Duration) -> Result<Vec<Event>, SourceError>;

    /// Gives back events fetched but never admitted (the tree was
    /// stopping): the broker redelivers their messages at once.
    async fn unfetch(&self, events: Vec<Event>) {
        drop(events);
    }

    /// From now on, keeps the messages of settled events unacknowledged
    /// (for a shutdown: see [Settlement](Source#settlement)).
    fn hold(&self);

    /// Ends [`Source::hold`]: acknowledges what was settled meanwhile.
    fn release(&self);

    /// Stops reading. Messages not acknowledged by now are redelivered by
    /// the broker.
    ///
    /// # Errors
    ///
    /// [`SourceError`] when the connection did not close cleanly.
    async fn close(&self) -> Result<(), SourceError>;

    /// The source's counters now.
    fn metrics(&self) -> SourceMetrics;
}

/// Why a source could not be read, with its cause.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl SourceError {
    /// An error saying `message`, caused by `source` if given.
    pub fn new(message: impl Into<String>, source: Option<BoxError>) -> Self {
        Self {
            message: message.into(),
            source,
        }
    }
}

/// The counters of a [`Source`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceMetrics {
    /// Its name in the config (`sources.NAME`).
    pub name: String,
    /// Messages read.
    pub fetched: u64,
    /// Of those, messages the broker had delivered before (to this or
    /// another consumer).
    pub redelivered: u64,
    /// Messages acknowledged once their events were settled.
    pub acked: u64,
    /// Undecodable messages handed to the dead letters and not redelivered.
    pub dead_lettered: u64,
    /// Messages read and not yet acknowledged (in the tree, or held).
    pub unsettled: u64,
    /// Messages in the broker not yet delivered to the consumer, as last
    /// reported by the broker.
    pub lag: u64,
}

impl SourceMetrics {
    /// Zero counters for the source `name`.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// A source type that config files can name with `type = "NAME"` in a
/// `[sources.*]` table.
pub trait SourceType: Send + Sync + 'static {
    /// The name used in `type = "..."`.
    const NAME: &'static str;
    /// The source's options (every key of its table but `type` and
    /// `dead_letter`), only ever shown through [`SourceType::describe`].
    type Options: DeserializeOwned + Send + Sync + 'static;

    /// Checks what serde cannot, without any I/O: each problem is the key
    /// (relative to the source's table) and a message.
    fn validate(options: &Self::Options) -> Vec<(String, String)> {
        let _ = options;
        Vec::new()
    }

    /// Builds the source, named `name` in logs and metrics; undecodable
    /// messages go to `dead_letter` when there is one. May connect.
    ///
    /// # Errors
    ///
    /// Any error that keeps the source from starting.
    fn build(
        options: &Self::Options,
        name: &str,
        dead_letter: Option<Arc<dyn Backend>>,
    ) -> Result<Arc<dyn Source>, BoxError>;

    /// A one-line summary for `tidings check`, without secrets.
    fn describe(options: &Self::Options) -> String;
}
