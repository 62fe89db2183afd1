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
    /// Undecodable messages, never redelivered: handed to the dead letters,
    /// or dropped when the source has none (`dead_letter = "none"`).
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

/// The name of the event that carries an undecodable message to a
/// source's dead letters ([`undecodable`]).
pub const UNDECODABLE: &str = "tidings.source.undecodable";

/// The event that takes an undecodable message of the source `source` to
/// its dead letters: named [`UNDECODABLE`], its data the message's `payload`
/// (as text) with `about` (where it came from: a subject, a routing key),
/// and in its context the `dead_letter` object every dead letter carries
/// (`backend` = `sources.NAME`, `reason` = `undecodable`, `error`,
/// `attempts`). `None` never happens in practice: it is the name's check.
#[must_use]
pub fn undecodable(
    source: &str,
    payload: &[u8],
    about: tidings_event::Map,
    error: &dyn fmt::Display,
) -> Option<Event> {
    let mut data = about;
    data.insert(
        "payload".to_owned(),
        String::from_utf8_lossy(payload).into_owned().into(),
    );
    let name = tidings_event::EventName::new(UNDECODABLE).ok()?;
    let mut event = Event::new(name, serde_json::Value::Object(data));
    event.context_mut().insert(
        "dead_letter".to_owned(),
        serde_json::json!({
            "backend": format!("sources.{source}"),
            "reason": "undecodable",
            "error": error.to_string(),
            "attempts": 1,
        }),
    );
    Some(event)
}

/// What to tell the broker of a settled message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledge it: its events were delivered (or dropped by policy).
    Ack,
    /// Never deliver it again: it was undecodable and the dead letters
    /// took it.
    Term,
}

/// The bookkeeping of a source's unacknowledged messages, without I/O: a
/// source's settler task feeds it what happened and does what it answers.
///
/// A message is known by a key unique in its stream (a sequence number, a
/// counter) and by its delivery (the broker's count, or any number that
/// grows with each delivery): a settlement of an older delivery than the
/// one read last settles nothing, since the message is in the tree again.
/// `T` is what acknowledging takes (a reply subject, an acker).
///
/// ```
/// use tidings_core::{Outcome, Settlements};
///
/// let mut book = Settlements::default();
/// book.fetched(7, 1, "reply-7");
/// book.hold();
/// assert_eq!(book.settled(7, 1, Outcome::Ack), None); // kept while held
/// assert_eq!(book.release(), vec![("reply-7", Outcome::Ack)]);
/// assert_eq!(book.unsettled(), 0);
/// ```
#[derive(Debug)]
pub struct Settlements<T> {
    unsettled: std::collections::HashMap<u64, (T, u64)>,
    kept: Vec<(T, Outcome)>,
    holding: bool,
}

impl<T> Default for Settlements<T> {
    fn default() -> Self {
        Self {
            unsettled: std::collections::HashMap::new(),
            kept: Vec::new(),
            holding: false,
        }
    }
}

impl<T> Settlements<T> {
    /// Delivery `delivery` of message `key` was read; `handle` acknowledges
    /// it.
    pub fn fetched(&mut self, key: u64, delivery: u64, handle: T) {
        self.unsettled.insert(key, (handle, delivery));
    }

    /// Delivery `delivery` of message `key` is settled: what to tell the
    /// broker now, if anything (nothing while held, or for a delivery that
    /// is not the last one read).
    pub fn settled(&mut self, key: u64, delivery: u64, outcome: Outcome) -> Option<(T, Outcome)> {
        if self.unsettled.get(&key).is_none_or(|(_, d)| *d != delivery) {
            return None;
        }
        let (handle, _) = self.unsettled.remove(&key)?;
        if self.holding {
            self.kept.push((handle, outcome));
            None
        } else {
            Some((handle, outcome))
        }
    }

    /// Message `key` goes back to the broker unsettled (never admitted):
    /// its handle, to refuse it with.
    pub fn give_back(&mut self, key: u64) -> Option<T> {
        self.unsettled.remove(&key).map(|(handle, _)| handle)
    }

    /// Keeps what is settled from now on.
    pub fn hold(&mut self) {
        self.holding = true;
    }

    /// Stops keeping: what was kept, to tell the broker now.
    pub fn release(&mut self) -> Vec<(T, Outcome)> {
        self.holding = false;
        std::mem::take(&mut self.kept)
    }

    /// Messages read and not yet told to the broker.
    #[must_use]
    pub fn unsettled(&self) -> usize {
        self.unsettled.len() + self.kept.len()
    }

    /// The handles of every message the broker still waits for, for
    /// progress notes.
    pub fn waiting(&self) -> impl Iterator<Item = &T> {
        self.unsettled
            .values()
            .map(|(handle, _)| handle)
            .chain(self.kept.iter().map(|(handle, _)| handle))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settlement_acknowledges_the_last_delivery_read_only() {
        let mut book = Settlements::default();
        book.fetched(1, 1, "a");
        book.fetched(2, 1, "b");
        assert_eq!(book.unsettled(), 2);
        // Read again (redelivered) before the first delivery settled.
        book.fetched(1, 2, "a2");
        assert_eq!(book.settled(1, 1, Outcome::Ack), None, "an older delivery");
        assert_eq!(book.settled(1, 2, Outcome::Ack), Some(("a2", Outcome::Ack)));
        assert_eq!(book.settled(1, 2, Outcome::Ack), None, "settled once");
        assert_eq!(
            book.settled(2, 1, Outcome::Term),
            Some(("b", Outcome::Term))
        );
        assert_eq!(book.settled(9, 1, Outcome::Ack), None, "never read");
        assert_eq!(book.unsettled(), 0);
    }

    #[test]
    fn a_hold_keeps_settlements_until_released_and_counts_them_unsettled() {
        let mut book = Settlements::default();
        book.fetched(1, 1, "a");
        book.fetched(2, 1, "b");
        book.fetched(3, 1, "c");
        book.hold();
        assert_eq!(book.settled(1, 1, Outcome::Ack), None);
        assert_eq!(book.settled(2, 1, Outcome::Term), None);
        assert_eq!(book.unsettled(), 3, "kept ones still wait for the broker");
        let mut waiting: Vec<&str> = book.waiting().copied().collect();
        waiting.sort_unstable();
        assert_eq!(waiting, ["a", "b", "c"]);
        assert_eq!(
            book.release(),
            vec![("a", Outcome::Ack), ("b", Outcome::Term)]
        );
        assert_eq!(book.release(), vec![], "released once");
        assert_eq!(
            book.settled(3, 1, Outcome::Ack),
            Some(("c", Outcome::Ack)),
            "no longer held"
        );
        assert_eq!(book.unsettled(), 0);
    }

    #[test]
    fn the_undecodable_event_carries_the_payload_where_it_came_from_and_why() {
        let mut about = tidings_event::Map::new();
        about.insert("subject".to_owned(), "events.x".into());
        let event = undecodable("in", b"not json {", about, &"expected value").unwrap();
        assert_eq!(event.name().as_str(), UNDECODABLE);
        assert_eq!(
            event.data(),
            &serde_json::json!({"subject": "events.x", "payload": "not json {"})
        );
        assert_eq!(
            event.context()["dead_letter"],
            serde_json::json!({
                "backend": "sources.in",
                "reason": "undecodable",
                "error": "expected value",
                "attempts": 1,
            })
        );
        let lossy = undecodable("in", &[0xff, b'a'], tidings_event::Map::new(), &"e").unwrap();
        assert_eq!(lossy.data()["payload"], "\u{fffd}a");
    }

    #[test]
    fn a_source_type_checks_nothing_unless_it_says_so() {
        struct Plain;
        impl SourceType for Plain {
            const NAME: &'static str = "plain";
            type Options = ();
            fn build(
                _: &(),
                _: &str,
                _: Option<Arc<dyn Backend>>,
            ) -> Result<Arc<dyn Source>, BoxError> {
                Err("never built here".into())
            }
            fn describe(_: &()) -> String {
                String::new()
            }
        }
        assert!(Plain::validate(&()).is_empty());
    }

    #[test]
    fn a_message_given_back_settles_nothing_later() {
        let mut book = Settlements::default();
        book.fetched(4, 1, "d");
        assert_eq!(book.give_back(4), Some("d"));
        assert_eq!(book.give_back(4), None);
        assert_eq!(book.settled(4, 1, Outcome::Ack), None);
        assert_eq!(book.unsettled(), 0);
        assert_eq!(book.waiting().count(), 0);
    }
}
