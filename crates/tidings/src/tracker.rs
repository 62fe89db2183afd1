//! `Tracker`: stamps events at the call site and hands them to the routing tree.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tidings_event::{DataError, Event, EventId, EventName, NameError};
use tidings_processors::Processor;
use tidings_routing::{
    Backend, BuildError, DrainError, IntoBackend, RouterStats, RoutingBackend,
    RoutingBackendBuilder,
};

/// How long [`FlushGuard`](crate::FlushGuard) waits for backends to drain: 5 s.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Emits events into a routing tree.
///
/// `emit` validates the name, stamps a UUID v7 id and the current time, and
/// attaches the context current on the calling thread (see
/// [`enter_context`](crate::enter_context)) before any processor or backend
/// runs, so workers never read thread-locals. The root of the tree is a
/// [`RoutingBackend`]: processors in order, then every backend in name
/// order. Cloning a tracker is cheap; clones share the tree.
///
/// Call [`Tracker::shutdown`] before the program exits: it delivers what
/// the backends queued and says what it could not. When the last clone of
/// a tracker that owns its tree is dropped with events not delivered and
/// `shutdown` was never called, one summary line goes to stderr (or to
/// `tracing`, when a subscriber is installed): events are never lost
/// without a word.
#[derive(Debug, Clone)]
pub struct Tracker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// This tree's key in the per-thread name cache (never 0).
    id: u64,
    root: Arc<RoutingBackend>,
    /// `shutdown` was called: its result told the caller.
    shut_down: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A tree shared with something else (an embedded collector) is
        // still running: its queues are not lost.
        if !self.shut_down.load(Ordering::Acquire) && Arc::strong_count(&self.root) == 1 {
            report(
                &undelivered(&*self.root),
                "when the last tracker was dropped without `shutdown(timeout)`, which delivers what is queued",
            );
        }
    }
}

/// The key of the next tree in [`NAME_CACHE`]; 0 marks an empty slot.
static NEXT_TRACKER_ID: AtomicU64 = AtomicU64::new(1);

/// Slots of the per-thread cache of names the root refuses.
const NAME_CACHE_SLOTS: usize = 256;

/// One cached decision: a tree, a static name (address and length), and
/// whether the tree's root drops every event of that name.
type NameSlot = (u64, usize, usize, bool);

thread_local! {
    /// Per thread, direct-mapped by the name's address: whether a tree's
    /// root processors drop every event of a `&'static str` name, decided
    /// once (as `tracing` caches a callsite's interest). A collision just
    /// decides again; the processors of a built tree never change.
    static NAME_CACHE: [std::cell::Cell<NameSlot>; NAME_CACHE_SLOTS] =
        const { [const { std::cell::Cell::new((0, 0, 0, false)) }; NAME_CACHE_SLOTS] };
}

/// What the delivery stages of a tracker's tree accepted and did not
/// deliver ([`Tracker::undelivered`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Undelivered {
    /// Dropped: a full queue with a drop policy, a batch given up on with
    /// no dead-letter destination, the end of a drain.
    pub dropped: u64,
    /// Given up on and handed to a dead-letter destination (kept there,
    /// not lost).
    pub dead_lettered: u64,
    /// Still queued, batched or in flight.
    pub pending: u64,
    /// Each stage with events dropped or pending, and how many.
    pub by_stage: Vec<(String, u64)>,
}

impl Undelivered {
    /// Events that reached no destination: dropped or still pending.
    #[must_use]
    pub fn lost(&self) -> u64 {
        self.dropped + self.pending
    }
}

impl fmt::Display for Undelivered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} not delivered (dropped {}, still queued or in flight {}",
            self.lost(),
            if self.lost() == 1 { "event" } else { "events" },
            self.dropped,
            self.pending
        )?;
        if self.dead_lettered > 0 {
            write!(f, "; {} more kept as dead letters", self.dead_lettered)?;
        }
        for (i, (stage, n)) in self.by_stage.iter().enumerate() {
            write!(f, "{}{stage}: {n}", if i == 0 { "; " } else { ", " })?;
        }
        f.write_str(")")
    }
}

/// Sums what the stages under `root` did not deliver.
fn undelivered(root: &dyn Backend) -> Undelivered {
    let mut total = Undelivered::default();
    root.for_each_stage(&mut |stage| {
        let (dropped, pending) = (stage.dropped_total(), stage.pending());
        total.dropped += dropped;
        total.pending += pending;
        total.dead_lettered += stage.dead_lettered_total();
        if dropped + pending > 0 {
            total.by_stage.push((stage.name, dropped + pending));
        }
    });
    total
}

/// One line about `undelivered` events, `when` saying when it was seen:
/// through `tracing` when a subscriber is installed, else on stderr.
pub(crate) fn report(undelivered: &Undelivered, when: &str) {
    if undelivered.lost() == 0 {
        return;
    }
    if tracing::dispatcher::has_been_set() {
        tracing::error!(target: "tidings", "{undelivered} {when}");
    } else {
        #[allow(clippy::print_stderr)] // the only voice left without a subscriber
        {
            eprintln!("tidings: {undelivered} {when} (install a `tracing` subscriber to see why)");
        }
    }
}

/// Builds a [`Tracker`]. Created by [`Tracker::builder`].
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct TrackerBuilder {
    root: RoutingBackendBuilder,
}

/// An event could not be emitted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The name is not a valid event name.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// The data could not be converted to JSON.
    #[error(transparent)]
    InvalidData(#[from] DataError),
    /// A typed event failed its own checks ([`Tracker::emit_typed`]).
    #[cfg(feature = "catalog")]
    #[error(transparent)]
    Invalid(#[from] tidings_catalog::Violation),
}

impl TrackerBuilder {
    /// Appends a processor to the root chain; processors run in the order added.
    pub fn processor(mut self, processor: impl Processor + 'static) -> Self {
        self.root = self.root.processor(processor);
        self
    }

    /// Adds a backend under `name`: a [`Backend`], or a [`Sink`](crate::Sink),
    /// which gets a [`SinkBackend`](crate::SinkBackend) of its own under the
    /// same name with the default queue, batching and retry (build one with
    /// [`SinkBackend::builder`](crate::SinkBackend::builder) to choose them).
    /// Backends receive events in name order.
    ///
    /// ```
    /// use tidings::Tracker;
    /// use tidings::sinks::console::{ConsoleSink, Format, Stream};
    ///
    /// let sink = ConsoleSink::new(Format::Json, Stream::Stdout);
    /// let tracker = Tracker::builder().backend("console", sink).build()?;
    /// # tracker.shutdown(std::time::Duration::from_secs(1))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn backend<Kind>(
        mut self,
        name: impl Into<Cow<'static, str>>,
        backend: impl IntoBackend<Kind>,
    ) -> Self {
        self.root = self.root.backend(name, backend);
        self
    }

    /// Builds the tracker.
    ///
    /// # Errors
    ///
    /// [`BuildError`] when two backends share a name.
    pub fn build(self) -> Result<Tracker, BuildError> {
        Ok(Tracker::from_root(self.root.build()?))
    }
}

impl Tracker {
    /// A builder for a tracker.
    pub fn builder() -> TrackerBuilder {
        TrackerBuilder::default()
    }

    /// A tracker over an already built routing tree.
    #[must_use]
    pub fn from_root(root: RoutingBackend) -> Self {
        Self::from_shared_root(Arc::new(root))
    }

    /// A tracker over a routing tree shared with something else, such as an
    /// embedded collector (`collector.root()`), so that one config and one
    /// set of sinks serve both.
    ///
    /// The collector's tree applies backpressure by default: while a sink's
    /// queue is full, an emit through this tracker waits for room. Declare
    /// `when_full = "drop_newest"` on branches your threads must never wait
    /// for, or emit through an `async_router` branch of its own.
    #[must_use]
    pub fn from_shared_root(root: Arc<RoutingBackend>) -> Self {
        Self {
            inner: Arc::new(Inner {
                id: NEXT_TRACKER_ID.fetch_add(1, Ordering::Relaxed),
                root,
                shut_down: AtomicBool::new(false),
            }),
        }
    }

    /// A tracker over the backend tree of a TOML config (the `[collector]`
    /// table, if any, is validated and otherwise ignored), with the stock
    /// sink types of this crate's features.
    ///
    /// `emit` never waits: a stage your threads send to that does not set
    /// `when_full` drops the newest event while its queue is full (counted
    /// as `queue_full`). Stages below an `async_router` apply backpressure
    /// to its queue instead ([`Feed::Callers`](tidings_config::Feed)).
    ///
    /// # Errors
    ///
    /// [`ConfigErrors`](tidings_config::ConfigErrors): every mistake with its
    /// path, as `tidings check` prints them, or a sink that cannot start.
    #[cfg(feature = "config")]
    pub fn from_config_str(text: &str) -> Result<Self, tidings_config::ConfigErrors> {
        Self::from_config_str_with(text, &tidings_config::Registry::default())
    }

    /// [`Tracker::from_config_str`] with the sink and processor types of
    /// `registry` (third-party types registered).
    ///
    /// # Errors
    ///
    /// As [`Tracker::from_config_str`].
    #[cfg(feature = "config")]
    pub fn from_config_str_with(
        text: &str,
        registry: &tidings_config::Registry,
    ) -> Result<Self, tidings_config::ConfigErrors> {
        let (root, _stages) = tidings_config::load(text, registry)?
            .build_fed_by(tidings_config::Feed::Callers)?
            .into_parts();
        Ok(Self::from_root(root))
    }

    /// [`Tracker::from_config_str`] on the file at `path`.
    ///
    /// # Errors
    ///
    /// As [`Tracker::from_config_str`], or when the file cannot be read.
    #[cfg(feature = "config")]
    pub fn from_config_file(
        path: impl AsRef<std::path::Path>,
    ) -> Result<Self, tidings_config::ConfigErrors> {
        let (root, _stages) =
            tidings_config::load_file(path, &tidings_config::Registry::default())?
                .build_fed_by(tidings_config::Feed::Callers)?
                .into_parts();
        Ok(Self::from_root(root))
    }

    /// Emits the event `name` with `data`, in the current context.
    ///
    /// `data` is any serializable value; `null` (or `()`) becomes `{}`, as
    /// in edX. Processor and backend failures do not fail the emit: they are
    /// isolated and counted (see [`Tracker::stats`]).
    ///
    /// Returns the event's id, or `None` when no event was made: the root
    /// processors drop every event of this name, decided from the name
    /// alone (a root `RegexFilter`), once per name and thread for a
    /// `&'static str` name. Such an emit costs a few nanoseconds: no data is
    /// serialized, no id drawn, no context read; it is counted as received
    /// and filtered all the same.
    ///
    /// # Errors
    ///
    /// [`EmitError`] when the name is invalid or the data cannot be
    /// represented as JSON (a map with non-string keys, say).
    pub fn emit(
        &self,
        name: impl Into<Cow<'static, str>>,
        data: impl Serialize,
    ) -> Result<Option<EventId>, EmitError> {
        let name = name.into();
        if let Cow::Borrowed(name) = name
            && self.refuses(name)
        {
            self.inner.root.count_refused_by_name();
            return Ok(None);
        }
        let event = Event::from_serializable(EventName::new(name)?, &data)?
            .with_context(tidings_context::current());
        Ok(Some(self.send(event)))
    }

    /// Whether the root drops every event named `name` (a valid name whose
    /// root interest is `Never`), from this thread's cache.
    fn refuses(&self, name: &'static str) -> bool {
        let (id, address) = (self.inner.id, name.as_ptr() as usize);
        let slot = (address >> 3) % NAME_CACHE_SLOTS;
        NAME_CACHE.with(|cache| {
            let (cached_id, cached_address, cached_len, refused) = cache[slot].get();
            if (cached_id, cached_address, cached_len) == (id, address, name.len()) {
                return refused;
            }
            let refused = EventName::new(name).is_ok()
                && self.inner.root.interest(name) == tidings_processors::Interest::Never;
            cache[slot].set((id, address, name.len(), refused));
            refused
        })
    }

    /// Emits a typed event: runs its [`validate`](tidings_catalog::TypedEvent::validate)
    /// and, if it passes, emits it as `T::NAME` with the value as data.
    ///
    /// ```
    /// use serde::Serialize;
    /// use tidings::{EmitError, Tracker};
    /// use tidings::catalog::{TypedEvent, Violation};
    /// use tidings_test::RecordingBackend;
    ///
    /// #[derive(Serialize)]
    /// struct Enrolled<'a> {
    ///     course_id: &'a str,
    ///     mode: &'a str,
    /// }
    ///
    /// impl TypedEvent for Enrolled<'_> {
    ///     const NAME: &'static str = "edx.course.enrollment.activated";
    ///     fn validate(&self) -> Result<(), Violation> {
    ///         match self.mode {
    ///             "audit" | "verified" => Ok(()),
    ///             _ => Err(Violation::custom(Self::NAME, "mode", "unknown enrollment mode")),
    ///         }
    ///     }
    /// }
    ///
    /// let recorder = RecordingBackend::new();
    /// let tracker = Tracker::builder().backend("memory", recorder.clone()).build()?;
    /// tracker.emit_typed(&Enrolled { course_id: "course-v1:X", mode: "audit" })?;
    /// let refused = tracker.emit_typed(&Enrolled { course_id: "course-v1:X", mode: "gold" });
    /// assert!(matches!(refused, Err(EmitError::Invalid(_))));
    /// assert_eq!(recorder.events().len(), 1);
    /// assert_eq!(recorder.events()[0].name(), "edx.course.enrollment.activated");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`EmitError::Invalid`] when the event's own checks fail (nothing is
    /// emitted), or as [`Tracker::emit`].
    #[cfg(feature = "catalog")]
    pub fn emit_typed<T: tidings_catalog::TypedEvent>(
        &self,
        event: &T,
    ) -> Result<Option<EventId>, EmitError> {
        event.validate()?;
        self.emit(T::NAME, event)
    }

    /// Routes an already built event as it is: its context is not merged
    /// with the current one. Returns its id.
    pub fn send(&self, event: Event) -> EventId {
        let id = event.id();
        // A `RoutingBackend` isolates and counts every failure; it never errs.
        let _ = self.inner.root.send(event);
        id
    }

    /// Delivers everything accepted so far, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`DrainError`] naming each backend that did not drain in time.
    pub fn flush(&self, timeout: Duration) -> Result<(), DrainError> {
        self.inner.root.flush(timeout)
    }

    /// Stops the backends, delivering what they accepted, waiting at most
    /// `timeout`; then [`Tracker::undelivered`] says what never arrived.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidings::{SinkBackend, Tracker};
    /// use tidings_test::RecordingSink;
    ///
    /// let tracker = Tracker::builder()
    ///     .backend("audit", SinkBackend::builder("audit", RecordingSink::new()).build()?)
    ///     .build()?;
    /// tracker.emit("app.started", ())?;
    /// tracker.shutdown(Duration::from_secs(5))?;
    /// assert_eq!(tracker.undelivered().lost(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`DrainError`] naming each backend that did not drain in time.
    pub fn shutdown(&self, timeout: Duration) -> Result<(), DrainError> {
        self.inner.shut_down.store(true, Ordering::Release);
        self.inner.root.shutdown(timeout)
    }

    /// What the delivery stages of the tree (sink backends, async routers,
    /// dead-letter destinations) accepted and did not deliver: dropped,
    /// dead-lettered, still pending, by stage.
    #[must_use]
    pub fn undelivered(&self) -> Undelivered {
        undelivered(&*self.inner.root)
    }

    /// The root router's counters.
    #[must_use]
    pub fn stats(&self) -> RouterStats {
        self.inner.root.stats()
    }

    /// The root of the routing tree.
    #[must_use]
    pub fn root(&self) -> &RoutingBackend {
        &self.inner.root
    }
}
