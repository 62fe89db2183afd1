//! `BatchConfig`: when a batch is sent; `BatchKey`: which events may
//! share one.

use std::time::{Duration, Instant};

use serde_json::Value;
use tidings_event::{Event, Map};

/// Default for [`BatchConfig::max_events`].
pub const DEFAULT_MAX_EVENTS: usize = 100;
/// Default for [`BatchConfig::max_bytes`].
pub const DEFAULT_MAX_BYTES: usize = 500_000;
/// Default for [`BatchConfig::flush_interval`]: 1 s.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(1000);

/// When a batch is sent: on the first of `max_events` events, `max_bytes`
/// bytes (before compression), or `flush_interval` after its first event.
///
/// A batch must fit in its queue: [`SinkBackendBuilder::build`](crate::SinkBackendBuilder::build)
/// refuses a `max_events` set above the queue's capacity
/// ([`BatchLargerThanQueue`]), and lowers the default `max_events` to the
/// capacity of a queue smaller than it ([`BatchConfig::for_queue`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// `None`: [`DEFAULT_MAX_EVENTS`], lowered to a smaller queue's capacity.
    max_events: Option<usize>,
    max_bytes: usize,
    flush_interval: Duration,
}

/// A [`BatchConfig`] whose `max_events` is larger than the capacity of its
/// queue (Optimizely's `BatchSize > MaxQueueSize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "max_events {max_events} is larger than queue_capacity {queue_capacity}: a batch must fit in its queue"
)]
pub struct BatchLargerThanQueue {
    /// The batch's `max_events`.
    pub max_events: usize,
    /// The queue's capacity.
    pub queue_capacity: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_events: None,
            max_bytes: DEFAULT_MAX_BYTES,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
        }
    }
}

impl BatchConfig {
    /// The most events in a batch; at least 1, and at most the queue's
    /// capacity. Defaults to 100, or the queue's capacity when that is
    /// smaller.
    #[must_use]
    pub fn with_max_events(mut self, max_events: usize) -> Self {
        self.max_events = Some(max_events.max(1));
        self
    }

    /// This config for a queue of `queue_capacity` events, as
    /// [`SinkBackendBuilder::build`](crate::SinkBackendBuilder::build) applies
    /// it: a `max_events` left at its default is lowered to the capacity
    /// when the queue is smaller than [`DEFAULT_MAX_EVENTS`].
    ///
    /// # Errors
    ///
    /// [`BatchLargerThanQueue`], naming both values, when `max_events` was
    /// set above `queue_capacity`. Optimizely's `BatchEventProcessor` resets
    /// both to its defaults with a warning instead; an explicit
    /// contradiction is refused here, so that neither value the user chose
    /// is silently replaced.
    pub fn for_queue(self, queue_capacity: usize) -> Result<Self, BatchLargerThanQueue> {
        let queue_capacity = queue_capacity.max(1);
        match self.max_events {
            Some(max_events) if max_events > queue_capacity => Err(BatchLargerThanQueue {
                max_events,
                queue_capacity,
            }),
            Some(_) => Ok(self),
            None => Ok(Self {
                max_events: Some(DEFAULT_MAX_EVENTS.min(queue_capacity)),
                ..self
            }),
        }
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

    /// The most events in a batch (before [`BatchConfig::for_queue`]
    /// lowers a default one to a smaller queue).
    #[must_use]
    pub fn max_events(&self) -> usize {
        self.max_events.unwrap_or(DEFAULT_MAX_EVENTS)
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

/// Which events may share a batch: those whose values at these paths are
/// equal (Optimizely batches events of one project id and revision
/// together).
///
/// A path is `name` (the event name), or `context` or `data` followed by
/// a dotted path into it (`context.project_id`, `data.page.revision`);
/// `context` or `data` alone is the whole object. Paths follow the dotted
/// paths of [`PropertyAllowlist`](tidings_processors::PropertyAllowlist):
/// segments are property names, never empty, so a property whose name
/// contains a dot cannot be reached. A path that is missing from an event
/// (or crosses a value that is not an object) is a value of its own,
/// *absent*, different from `null`.
///
/// The worker forms batches in queue order and sends the batch being
/// formed as soon as an event with another key comes, then starts a new
/// batch with it (Optimizely's rule): events are never reordered, and
/// keys that alternate make small batches. Reading a `data` path parses an
/// event's data if it is still JSON text, on the worker thread.
///
/// ```
/// use tidings_routing::BatchKey;
///
/// let key = BatchKey::new(["context.project_id", "data.revision"])?;
/// assert_eq!(key.paths(), ["context.project_id", "data.revision"]);
/// assert!(BatchKey::new(["user.id"]).is_err(), "paths start at name, context or data");
/// # Ok::<(), tidings_routing::BatchKeyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchKey {
    paths: Vec<String>,
    parsed: Vec<KeyPath>,
}

/// A [`BatchKey`] path that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid batch_key path {path:?} (entry {index}): {reason}")]
pub struct BatchKeyError {
    /// Position of the entry in the list.
    pub index: usize,
    /// The entry.
    pub path: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyPath {
    Name,
    Context(Vec<String>),
    Data(Vec<String>),
}

/// One key value of an event, borrowed from it.
enum Found<'a> {
    Name(&'a str),
    Object(&'a Map),
    Value(&'a Value),
    Absent,
}

impl Found<'_> {
    fn to_owned(&self) -> Option<Value> {
        match self {
            Self::Name(name) => Some(Value::String((*name).to_owned())),
            Self::Object(map) => Some(Value::Object((*map).clone())),
            Self::Value(value) => Some((*value).clone()),
            Self::Absent => None,
        }
    }

    fn equals(&self, kept: Option<&Value>) -> bool {
        match (self, kept) {
            (Self::Name(name), Some(Value::String(kept))) => name == kept,
            (Self::Object(map), Some(Value::Object(kept))) => *map == kept,
            (Self::Value(value), Some(kept)) => *value == kept,
            (Self::Absent, None) => true,
            _ => false,
        }
    }
}

impl BatchKey {
    /// A key of the values at `paths`, in order.
    ///
    /// # Errors
    ///
    /// [`BatchKeyError`] for the first path that does not start with
    /// `name`, `context` or `data`, has an empty segment (`""`,
    /// `"data..a"`, `"data."`) or goes below `name`.
    pub fn new<I>(paths: I) -> Result<Self, BatchKeyError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let paths: Vec<String> = paths.into_iter().map(Into::into).collect();
        let parsed = paths
            .iter()
            .enumerate()
            .map(|(index, path)| {
                let error = |reason| BatchKeyError {
                    index,
                    path: path.clone(),
                    reason,
                };
                if path.split('.').any(str::is_empty) {
                    return Err(error("segments must not be empty"));
                }
                let mut segments = path.split('.');
                let root = segments.next().unwrap_or_default();
                let rest: Vec<String> = segments.map(str::to_owned).collect();
                match root {
                    "name" if rest.is_empty() => Ok(KeyPath::Name),
                    "name" => Err(error("the event name has no fields")),
                    "context" => Ok(KeyPath::Context(rest)),
                    "data" => Ok(KeyPath::Data(rest)),
                    _ => Err(error(
                        "a path starts with `name`, `context` or `data` (as `context.project_id`)",
                    )),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { paths, parsed })
    }

    /// The paths, as given.
    #[must_use]
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    fn find<'a>(path: &KeyPath, event: &'a Event) -> Found<'a> {
        let (root, segments) = match path {
            KeyPath::Name => return Found::Name(event.name().as_str()),
            KeyPath::Context(segments) => (event.context(), segments),
            KeyPath::Data(segments) => match event.data() {
                Value::Object(data) => (data, segments),
                other if segments.is_empty() => return Found::Value(other),
                _ => return Found::Absent,
            },
        };
        let Some((last, parents)) = segments.split_last() else {
            return Found::Object(root);
        };
        let mut object = root;
        for segment in parents {
            match object.get(segment) {
                Some(Value::Object(inner)) => object = inner,
                _ => return Found::Absent,
            }
        }
        object.get(last).map_or(Found::Absent, Found::Value)
    }

    /// The key of `event`, to keep with the batch it starts.
    pub(crate) fn of(&self, event: &Event) -> Vec<Option<Value>> {
        self.parsed
            .iter()
            .map(|path| Self::find(path, event).to_owned())
            .collect()
    }

    /// Whether `event`'s key is `key`, without copying its values.
    pub(crate) fn matches(&self, event: &Event, key: &[Option<Value>]) -> bool {
        self.parsed
            .iter()
            .zip(key)
            .all(|(path, kept)| Self::find(path, event).equals(kept.as_ref()))
    }
}

/// The batch being formed.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) events: Vec<Event>,
    pub(crate) bytes: usize,
    pub(crate) started: Option<Instant>,
    /// The [`BatchKey`] of its events (empty without a key).
    pub(crate) key: Vec<Option<Value>>,
}

impl Batch {
    pub(crate) fn push(&mut self, event: Event, size: usize) {
        self.started.get_or_insert_with(Instant::now);
        self.events.push(event);
        self.bytes += size;
    }

    pub(crate) fn take(&mut self) -> (Vec<Event>, usize) {
        self.started = None;
        self.key.clear();
        (
            std::mem::take(&mut self.events),
            std::mem::take(&mut self.bytes),
        )
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}
