//! `Tracker`: stamps events at the call site and hands them to the routing tree.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tidings_core::{
    Backend, Dispatch, DrainError, EmitError, Event, EventId, Processor, Topology, Undelivered,
};
use tidings_routing::{
    BuildError, IntoBackend, RouterStats, RoutingBackend, RoutingBackendBuilder,
};

/// Emits events into a routing tree.
///
/// `emit` validates the name, stamps a UUID v7 id and the current time, and
/// attaches the context current on the calling thread (see
/// [`enter_context`](crate::enter_context)) before any processor or backend
/// runs, so workers never read thread-locals. The root of the tree is a
/// [`RoutingBackend`]: processors in order, then every backend in name
/// order. Cloning a tracker is cheap; clones share the tree. A tracker is a
/// [`Dispatch`] over a [`RoutingBackend`] with the builders and the config
/// loading of this crate; [`Tracker::dispatch`] gives the dispatch itself.
///
/// Call [`Tracker::shutdown`] before the program exits: it delivers what
/// the backends queued and says what it could not. When the last clone of
/// a tracker that owns its tree is dropped with events not delivered and
/// `shutdown` was never called, one summary line goes to stderr (or to
/// `tracing`, when a subscriber is installed): events are never lost
/// without a word.
#[derive(Debug, Clone)]
pub struct Tracker {
    dispatch: Dispatch<Arc<RoutingBackend>>,
    /// The catalog processor `emit` checks with (also in the root chain).
    #[cfg(feature = "catalog")]
    catalog: Option<Arc<tidings_catalog::CatalogProcessor>>,
}

impl From<Tracker> for Dispatch {
    fn from(tracker: Tracker) -> Self {
        tracker.dispatch.into_dyn()
    }
}

/// Builds a [`Tracker`]. Created by [`Tracker::builder`].
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct TrackerBuilder {
    root: RoutingBackendBuilder,
    #[cfg(feature = "catalog")]
    catalog: Option<Arc<tidings_catalog::CatalogProcessor>>,
}

impl TrackerBuilder {
    /// Appends a processor to the root chain; processors run in the order added.
    pub fn processor(mut self, processor: impl Processor + 'static) -> Self {
        self.root = self.root.processor(processor);
        self
    }

    /// Adds a backend under `name`: a [`Backend`](crate::Backend), or a [`Sink`](crate::Sink),
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

    /// Validates events against `catalog`: appends a
    /// [`CatalogProcessor`](tidings_catalog::CatalogProcessor) to the root
    /// chain here and checks every [`emit`](Tracker::emit) with it before
    /// routing, as eventlib's `log()` does.
    ///
    /// - `strict`: an event whose name the catalog does not declare, or
    ///   whose data does not match its declaration, fails the emit with
    ///   [`EmitError::Invalid`] holding the
    ///   [`Violation`](tidings_catalog::Violation) (`event
    ///   "navigation.requst" is not in the catalog`, `event
    ///   "navigation.request": property "url" is required`); nothing is
    ///   routed.
    /// - lenient: undeclared names pass; an event of a declared name that
    ///   does not match is logged as a `tracing` warning the first time its
    ///   name violates, and is dropped by the processor (counted), as a
    ///   `catalog` processor always did.
    ///
    /// An event that passed at the call is not validated again by the
    /// processor. Events given to [`Tracker::send`] are not checked at
    /// the call; the processor validates them. One catalog checks emits:
    /// a second call replaces the first's check (both processors stay in
    /// the chain).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use serde_json::json;
    /// use tidings::Tracker;
    /// use tidings::catalog::{Catalog, Violation, ViolationKind};
    /// use tidings_test::RecordingBackend;
    ///
    /// let catalog = Catalog::from_toml_str(r#"
    ///     [events."navigation.request"]
    ///     properties.url = { type = "string", required = true }
    /// "#, "catalog.toml")?;
    /// let recorder = RecordingBackend::new();
    /// let tracker = Tracker::builder()
    ///     .catalog(Arc::new(catalog), true)
    ///     .backend("memory", recorder.clone())
    ///     .build()?;
    ///
    /// let typo = tracker.emit("navigation.requst", json!({"url": "/"})).unwrap_err();
    /// assert_eq!(typo.to_string(), r#"event "navigation.requst" is not in the catalog"#);
    /// let missing = tracker.emit("navigation.request", json!({})).unwrap_err();
    /// assert_eq!(Violation::of(&missing).unwrap().path(), "url");
    /// tracker.emit("navigation.request", json!({"url": "/"}))?;
    /// assert_eq!(recorder.names(), ["navigation.request"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "catalog")]
    pub fn catalog(self, catalog: Arc<tidings_catalog::Catalog>, strict: bool) -> Self {
        self.catalog_processor(Arc::new(
            tidings_catalog::CatalogProcessor::new(catalog).strict(strict),
        ))
    }

    /// [`TrackerBuilder::catalog`] with a processor of your own making (to
    /// choose its [`OnInvalid`](tidings_catalog::OnInvalid), or read its
    /// stats): appended to the root chain here, and every emit is checked
    /// with it.
    #[cfg(feature = "catalog")]
    pub fn catalog_processor(mut self, processor: Arc<tidings_catalog::CatalogProcessor>) -> Self {
        self.root = self.root.processor_arc(processor.clone());
        self.catalog = Some(processor);
        self
    }

    /// Builds the tracker.
    ///
    /// # Errors
    ///
    /// [`BuildError`] when two backends share a name.
    pub fn build(self) -> Result<Tracker, BuildError> {
        let tracker = Tracker::from_root(self.root.build()?);
        #[cfg(feature = "catalog")]
        let tracker = tracker.checking(self.catalog);
        Ok(tracker)
    }
}

impl Tracker {
    /// A builder for a tracker.
    pub fn builder() -> TrackerBuilder {
        TrackerBuilder::default()
    }

    /// A tracker over an already built routing tree.
    ///
    /// Emits are not checked against a catalog (the tree's `catalog`
    /// processors validate as they always do): see
    /// [`TrackerBuilder::catalog`].
    #[must_use]
    pub fn from_root(root: RoutingBackend) -> Self {
        Self {
            dispatch: Dispatch::new(Arc::new(root)),
            #[cfg(feature = "catalog")]
            catalog: None,
        }
    }

    /// This tracker, checking each emit with `catalog` (the processor in
    /// its root chain), if any.
    #[cfg(feature = "catalog")]
    fn checking(mut self, catalog: Option<Arc<tidings_catalog::CatalogProcessor>>) -> Self {
        if let Some(catalog) = &catalog {
            self.dispatch = self.dispatch.with_check(catalog.clone());
        }
        self.catalog = catalog;
        self
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
            dispatch: Dispatch::over_shared(root),
            #[cfg(feature = "catalog")]
            catalog: None,
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
    /// With feature `catalog`, the first `catalog` processor of the root
    /// chain (top-level `[[processors]]`) also checks every emit at the
    /// call, as [`TrackerBuilder::catalog`] does: `strict = true` makes an
    /// invalid event an [`EmitError::Invalid`]; lenient, it warns once per
    /// event name. A `catalog` processor in a router below the root only
    /// filters its own branch.
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
        Self::from_config(&tidings_config::load(text, registry)?)
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
        Self::from_config(&tidings_config::load_file(
            path,
            &tidings_config::Registry::default(),
        )?)
    }

    /// A tracker over the tree of `config`, checking emits with its root
    /// catalog.
    #[cfg(feature = "config")]
    fn from_config(config: &tidings_config::Config) -> Result<Self, tidings_config::ConfigErrors> {
        let (root, _stages) = config
            .build_fed_by(tidings_config::Feed::Callers)?
            .into_parts();
        let tracker = Self::from_root(root);
        #[cfg(feature = "catalog")]
        let tracker = tracker.checking(config.root_catalog());
        Ok(tracker)
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
    /// A tracker with a catalog ([`TrackerBuilder::catalog`], or a config
    /// whose root chain has a `catalog` processor) checks the event against
    /// it here, before routing (after the name filters above).
    ///
    /// # Errors
    ///
    /// [`EmitError`] when the name is invalid, the data cannot be
    /// represented as JSON (a map with non-string keys, say), or a strict
    /// catalog refuses the event ([`EmitError::Invalid`], holding the
    /// catalog's `Violation`; nothing is routed).
    pub fn emit(
        &self,
        name: impl Into<Cow<'static, str>>,
        data: impl Serialize,
    ) -> Result<Option<EventId>, EmitError> {
        self.dispatch.emit(name, data)
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
    /// emitted), or as [`Tracker::emit`] (a strict catalog checks typed
    /// events too).
    #[cfg(feature = "catalog")]
    pub fn emit_typed<T: tidings_catalog::TypedEvent>(
        &self,
        event: &T,
    ) -> Result<Option<EventId>, EmitError> {
        event
            .validate()
            .map_err(|violation| EmitError::Invalid(Box::new(violation)))?;
        self.emit(T::NAME, event)
    }

    /// Routes an already built event as it is: its context is not merged
    /// with the current one, and it is not checked against the tracker's
    /// catalog at the call (its `catalog` processor validates it in the
    /// chain). Returns its id.
    pub fn send(&self, event: Event) -> EventId {
        let id = event.id();
        // A `RoutingBackend` isolates and counts every failure; it never errs.
        let _ = self.dispatch.send(event);
        id
    }

    /// Delivers everything accepted so far, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`DrainError`] naming each backend that did not drain in time.
    pub fn flush(&self, timeout: Duration) -> Result<(), DrainError> {
        self.dispatch.flush(timeout)
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
        self.dispatch.shutdown(timeout)
    }

    /// What the delivery stages of the tree (sink backends, async routers,
    /// dead-letter destinations) accepted and did not deliver: dropped,
    /// dead-lettered, still pending, by stage.
    #[must_use]
    pub fn undelivered(&self) -> Undelivered {
        self.dispatch.undelivered()
    }

    /// The catalog processor every emit is checked with, if any
    /// ([`TrackerBuilder::catalog`], or a config's root `catalog`): its
    /// [`stats`](tidings_catalog::CatalogProcessor::stats) count the events
    /// refused at the call too.
    #[cfg(feature = "catalog")]
    #[must_use]
    pub fn catalog(&self) -> Option<&tidings_catalog::CatalogProcessor> {
        self.catalog.as_deref()
    }

    /// The root router's counters.
    #[must_use]
    pub fn stats(&self) -> RouterStats {
        self.root().stats()
    }

    /// The root of the routing tree: its processors
    /// ([`RoutingBackend::processors`]) and backends by name
    /// ([`RoutingBackend::backend`], edX's `get_backend`).
    #[must_use]
    pub fn root(&self) -> &RoutingBackend {
        self.dispatch.backend()
    }

    /// The built tree: every router's processors and backends, level by
    /// level, with each queue's settings. Its `Display` is an indented
    /// tree, as `tidings check` prints a config.
    ///
    /// ```
    /// use tidings::{RegexFilter, Tracker};
    /// use tidings_test::RecordingBackend;
    ///
    /// let tracker = Tracker::builder()
    ///     .processor(RegexFilter::allowlist([r"edx\."])?)
    ///     .backend("audit", RecordingBackend::new())
    ///     .build()?;
    /// let tree = tracker.topology();
    /// assert_eq!(tree.processors, [r#"regex_filter allowlist ["edx\\."]"#]);
    /// assert_eq!(tree.backend("audit").unwrap().kind, "RecordingBackend");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn topology(&self) -> Topology {
        self.root().topology()
    }

    /// This tracker as a [`Dispatch`] (what [`init`](crate::init) and
    /// [`set_default`](crate::set_default) install); it shares the tree.
    #[must_use]
    pub fn dispatch(&self) -> Dispatch {
        self.dispatch.clone().into_dyn()
    }
}
