//! `RoutingBackend`: a processor chain, then fan-out to named backends.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tidings_event::Event;
use tidings_processors::{Interest, Processor, Verdict};

use crate::{Backend, DrainError, SendError, Sink, Topology};

/// Counters of one [`RoutingBackend`], read with [`RoutingBackend::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouterStats {
    /// Events given to the router.
    pub received: u64,
    /// Events a processor dropped ([`Verdict::Drop`]).
    pub filtered: u64,
    /// Processor calls that failed or panicked (the event went on).
    pub processor_errors: u64,
    /// Per backend, in name order.
    pub backends: Vec<BranchStats>,
}

/// Counters of one named backend of a router.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BranchStats {
    /// The backend's name.
    pub name: String,
    /// Events the backend accepted.
    pub sent: u64,
    /// Events the backend refused with an error.
    pub failed: u64,
    /// Sends that panicked.
    pub panicked: u64,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    filtered: AtomicU64,
    /// Refused by name before they were built: received and filtered too
    /// (one atomic add on that path instead of two).
    refused_by_name: AtomicU64,
    processor_errors: AtomicU64,
}

#[derive(Debug)]
struct Branch {
    name: Cow<'static, str>,
    backend: Arc<dyn Backend>,
    sent: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
}

/// Runs its processors in order, then hands the event to every named
/// backend, in name order.
///
/// Each backend gets its own copy of the event, so what one branch's
/// processors change is never seen by another. A processor that fails or
/// panics is logged and counted and the event goes on; a processor that
/// drops the event ends its journey through this router. A backend that
/// fails or panics is logged and counted, and the others still get the
/// event. Routers are backends, so they nest to any depth.
#[derive(Debug)]
pub struct RoutingBackend {
    processors: Vec<Arc<dyn Processor>>,
    branches: Vec<Branch>,
    counters: Counters,
}

/// Builds a [`RoutingBackend`]. Created by [`RoutingBackend::builder`].
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct RoutingBackendBuilder {
    processors: Vec<Arc<dyn Processor>>,
    backends: BTreeMap<Cow<'static, str>, Arc<dyn Backend>>,
    duplicate: Option<String>,
    /// The first sink whose worker could not start.
    failed: Option<(String, String)>,
}

/// A router could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Two backends were given the same name.
    #[error("backend name {0:?} is used twice")]
    DuplicateBackend(String),
    /// A sink given to [`RoutingBackendBuilder::backend`] could not get the
    /// worker of its [`SinkBackend`](crate::SinkBackend).
    #[error("the sink {name:?} could not start: {message}")]
    SinkWorker {
        /// The backend's name.
        name: String,
        /// Why.
        message: String,
    },
}

/// What [`RoutingBackendBuilder::backend`] (and the facade's
/// `TrackerBuilder::backend`) takes: a [`Backend`], or a [`Sink`], which
/// gets a [`SinkBackend`](crate::SinkBackend) of its own under the same name,
/// with the default queue, batching and retry (build one with
/// `SinkBackend::builder` to choose them).
///
/// `Kind` is [`AsBackend`] or [`AsSink`], inferred: callers never name it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is neither a `Backend` nor a `Sink`",
    label = "a backend or a sink goes here",
    note = "a type that sends events somewhere implements `Sink` (batched, retried, off the caller's thread) or `Backend` (called on the emitting thread)"
)]
pub trait IntoBackend<Kind> {
    /// The backend, named `name`.
    ///
    /// # Errors
    ///
    /// A message when a sink's worker could not start.
    fn into_backend(self, name: &str) -> Result<Arc<dyn Backend>, String>;
}

/// [`IntoBackend`]'s kind for a [`Backend`].
#[derive(Debug)]
pub enum AsBackend {}

/// [`IntoBackend`]'s kind for a [`Sink`].
#[derive(Debug)]
pub enum AsSink {}

impl<B: Backend + 'static> IntoBackend<AsBackend> for B {
    fn into_backend(self, _name: &str) -> Result<Arc<dyn Backend>, String> {
        Ok(Arc::new(self))
    }
}

impl<S: Sink> IntoBackend<AsSink> for S {
    fn into_backend(self, name: &str) -> Result<Arc<dyn Backend>, String> {
        crate::SinkBackend::builder(name.to_owned(), self)
            .build()
            .map(|backend| Arc::new(backend) as Arc<dyn Backend>)
            .map_err(|e| e.to_string())
    }
}

impl RoutingBackendBuilder {
    /// Appends a processor to the chain; processors run in the order added.
    pub fn processor(mut self, processor: impl Processor + 'static) -> Self {
        self.processors.push(Arc::new(processor));
        self
    }

    /// Appends an already shared processor to the chain.
    pub fn processor_arc(mut self, processor: Arc<dyn Processor>) -> Self {
        self.processors.push(processor);
        self
    }

    /// Adds a backend under `name`: a [`Backend`], or a [`Sink`] (which
    /// gets a [`SinkBackend`](crate::SinkBackend) of its own with the default
    /// delivery settings). Backends receive events in name order.
    pub fn backend<Kind>(
        mut self,
        name: impl Into<Cow<'static, str>>,
        backend: impl IntoBackend<Kind>,
    ) -> Self {
        let name = name.into();
        match backend.into_backend(&name) {
            Ok(backend) => self.backend_arc(name, backend),
            Err(message) => {
                self.failed.get_or_insert((name.into_owned(), message));
                self
            }
        }
    }

    /// Adds an already shared backend under `name`.
    pub fn backend_arc(
        mut self,
        name: impl Into<Cow<'static, str>>,
        backend: Arc<dyn Backend>,
    ) -> Self {
        match self.backends.entry(name.into()) {
            std::collections::btree_map::Entry::Occupied(taken) => {
                self.duplicate
                    .get_or_insert_with(|| taken.key().to_string());
            }
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(backend);
            }
        }
        self
    }

    /// Builds the router.
    ///
    /// # Errors
    ///
    /// [`BuildError::DuplicateBackend`] when a name was given twice.
    pub fn build(self) -> Result<RoutingBackend, BuildError> {
        if let Some(name) = self.duplicate {
            return Err(BuildError::DuplicateBackend(name));
        }
        if let Some((name, message)) = self.failed {
            return Err(BuildError::SinkWorker { name, message });
        }
        Ok(RoutingBackend {
            processors: self.processors,
            branches: self
                .backends
                .into_iter()
                .map(|(name, backend)| Branch {
                    name,
                    backend,
                    sent: AtomicU64::new(0),
                    failed: AtomicU64::new(0),
                    panicked: AtomicU64::new(0),
                })
                .collect(),
            counters: Counters::default(),
        })
    }
}

/// Increments `counter` and says whether this is its first increment, so
/// that a failure is logged at `warn` once and at `debug` afterwards.
fn bump(counter: &AtomicU64) -> bool {
    counter.fetch_add(1, Ordering::Relaxed) == 0
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}

impl Default for RoutingBackend {
    /// A router with no processors and no backends: events stop there.
    fn default() -> Self {
        Self {
            processors: Vec::new(),
            branches: Vec::new(),
            counters: Counters::default(),
        }
    }
}

impl RoutingBackend {
    /// A builder for a router.
    pub fn builder() -> RoutingBackendBuilder {
        RoutingBackendBuilder::default()
    }

    /// The names of the backends, in delivery order.
    pub fn backend_names(&self) -> impl Iterator<Item = &str> {
        self.branches.iter().map(|b| &*b.name)
    }

    /// The backend named `name` (edX's `get_backend`).
    #[must_use]
    pub fn backend(&self, name: &str) -> Option<&Arc<dyn Backend>> {
        self.branches
            .iter()
            .find_map(|b| (b.name == name).then_some(&b.backend))
    }

    /// The processors, in the order they run.
    pub fn processors(&self) -> impl Iterator<Item = &Arc<dyn Processor>> {
        self.processors.iter()
    }

    /// A snapshot of this router's counters.
    #[must_use]
    pub fn stats(&self) -> RouterStats {
        RouterStats {
            received: self.counters.received.load(Ordering::Relaxed)
                + self.counters.refused_by_name.load(Ordering::Relaxed),
            filtered: self.counters.filtered.load(Ordering::Relaxed)
                + self.counters.refused_by_name.load(Ordering::Relaxed),
            processor_errors: self.counters.processor_errors.load(Ordering::Relaxed),
            backends: self
                .branches
                .iter()
                .map(|b| BranchStats {
                    name: b.name.to_string(),
                    sent: b.sent.load(Ordering::Relaxed),
                    failed: b.failed.load(Ordering::Relaxed),
                    panicked: b.panicked.load(Ordering::Relaxed),
                })
                .collect(),
        }
    }

    /// Counts the event as received and runs the processor chain: the
    /// first half of [`Backend::send`], which an
    /// [`AsyncRouter`](crate::AsyncRouter) runs on the calling thread.
    /// Returns `None` when a processor dropped the event.
    #[inline]
    pub(crate) fn receive(&self, event: Event) -> Option<Event> {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        self.process(event)
    }

    /// Hands the event to every backend: the second half of
    /// [`Backend::send`].
    #[inline]
    pub(crate) fn fan_out(&self, event: Event) {
        if let Some((last, rest)) = self.branches.split_last() {
            for branch in rest {
                self.deliver(branch, event.clone());
            }
            // The last branch gets the original: one copy fewer.
            self.deliver(last, event);
        }
    }

    /// Runs the processor chain. Returns `None` when a processor dropped the event.
    fn process(&self, mut event: Event) -> Option<Event> {
        for processor in &self.processors {
            match catch_unwind(AssertUnwindSafe(|| processor.process(&mut event))) {
                Ok(Ok(Verdict::Keep)) => {}
                Ok(Ok(Verdict::Drop)) => {
                    self.counters.filtered.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                Ok(Err(error)) => {
                    if bump(&self.counters.processor_errors) {
                        tracing::warn!(?processor, event = %event.name(), %error, "processor failed; the event goes on (further failures are logged at debug)");
                    } else {
                        tracing::debug!(?processor, event = %event.name(), %error, "processor failed; the event goes on");
                    }
                }
                Err(payload) => {
                    let message = panic_message(&*payload);
                    if bump(&self.counters.processor_errors) {
                        tracing::warn!(?processor, event = %event.name(), panic = message, "processor panicked; the event goes on (further failures are logged at debug)");
                    } else {
                        tracing::debug!(?processor, event = %event.name(), panic = message, "processor panicked; the event goes on");
                    }
                }
            }
        }
        Some(event)
    }

    fn deliver(&self, branch: &Branch, event: Event) {
        match catch_unwind(AssertUnwindSafe(|| branch.backend.send(event))) {
            Ok(Ok(())) => {
                branch.sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(error)) => {
                if bump(&branch.failed) {
                    tracing::warn!(backend = %branch.name, %error, "backend refused an event (further failures are logged at debug)");
                } else {
                    tracing::debug!(backend = %branch.name, %error, "backend refused an event");
                }
            }
            Err(payload) => {
                let message = panic_message(&*payload);
                if bump(&branch.panicked) {
                    tracing::warn!(backend = %branch.name, panic = message, "backend panicked (further panics are logged at debug)");
                } else {
                    tracing::debug!(backend = %branch.name, panic = message, "backend panicked");
                }
            }
        }
    }

    /// Calls `op` on every backend with what is left of `timeout`, and
    /// gathers the failures.
    /// Runs `op` on every branch with what is left of `timeout`, all
    /// branches at once (on scoped threads), so a branch that needs the
    /// whole time never takes it from its siblings.
    fn drain_all(
        &self,
        timeout: Duration,
        op: impl Fn(&dyn Backend, Duration) -> Result<(), DrainError> + Sync,
    ) -> Result<(), DrainError> {
        let deadline = Instant::now() + timeout;
        let drain = |branch: &Branch| {
            let left = deadline.saturating_duration_since(Instant::now());
            catch_unwind(AssertUnwindSafe(|| op(&*branch.backend, left)))
                .unwrap_or_else(|payload| {
                    Err(DrainError::Failed(
                        panic_message(&*payload).to_owned().into(),
                    ))
                })
                .err()
                .map(|err| (branch.name.to_string(), err))
        };
        let failures: Vec<(String, DrainError)> = match &self.branches[..] {
            [] => Vec::new(),
            [branch] => drain(branch).into_iter().collect(),
            branches => std::thread::scope(|scope| {
                let drain = &drain;
                // A thread that cannot be started drains its branch here.
                let running: Vec<_> = branches
                    .iter()
                    .map(|branch| {
                        std::thread::Builder::new()
                            .spawn_scoped(scope, move || drain(branch))
                            .map_err(|_| drain(branch))
                    })
                    .collect();
                running
                    .into_iter()
                    .filter_map(|handle| match handle {
                        Ok(handle) => handle.join().ok().flatten(),
                        Err(done) => done,
                    })
                    .collect()
            }),
        };
        if failures.is_empty() {
            Ok(())
        } else {
            Err(DrainError::Backends(failures))
        }
    }
}

impl Backend for RoutingBackend {
    /// What this router's processors decide about events named `name`
    /// from the name alone: [`Interest::Never`] when one of them drops
    /// every such event and each before it passes them unchanged,
    /// [`Interest::Always`] when each passes them unchanged,
    /// [`Interest::Sometimes`] otherwise. A [`Dispatch`](tidings_core::Dispatch)
    /// asks once per name and refuses the events its root would drop
    /// before building them.
    fn interest(&self, name: &str) -> Interest {
        for processor in &self.processors {
            match processor.interest(name) {
                Interest::Always => {}
                decided => return decided,
            }
        }
        Interest::Always
    }

    /// Counts an event refused before it was built because this router's
    /// [`Backend::interest`] in its name is [`Interest::Never`]: as
    /// received and filtered, as if it had been processed.
    fn count_refused_by_name(&self) {
        self.counters
            .refused_by_name
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Processes the event and fans it out. Failures of processors and
    /// backends are isolated and counted, so this always returns `Ok`.
    fn send(&self, event: Event) -> Result<(), SendError> {
        if let Some(event) = self.receive(event) {
            self.fan_out(event);
        }
        Ok(())
    }

    fn flush(&self, timeout: Duration) -> Result<(), DrainError> {
        self.drain_all(timeout, |backend, left| backend.flush(left))
    }

    fn shutdown(&self, timeout: Duration) -> Result<(), DrainError> {
        self.drain_all(timeout, |backend, left| backend.shutdown(left))
    }

    fn for_each_stage(&self, visit: &mut dyn FnMut(crate::MetricsSnapshot)) {
        for branch in &self.branches {
            branch.backend.for_each_stage(visit);
        }
    }

    /// `router`, its processors' descriptions and its backends.
    fn topology(&self) -> Topology {
        let mut topology = Topology::new("router");
        topology.processors = self.processors.iter().map(|p| p.describe()).collect();
        topology.backends = self
            .branches
            .iter()
            .map(|b| (b.name.to_string(), b.backend.topology()))
            .collect();
        topology
    }
}

/// The fan-out half of a [`RoutingBackend`], as the backend of an
/// [`AsyncRouter`](crate::AsyncRouter) whose caller already ran the
/// router's processors.
#[derive(Debug)]
pub(crate) struct FanOut(pub(crate) Arc<RoutingBackend>);

impl Backend for FanOut {
    fn send(&self, event: Event) -> Result<(), SendError> {
        self.0.fan_out(event);
        Ok(())
    }

    fn flush(&self, timeout: Duration) -> Result<(), DrainError> {
        self.0.flush(timeout)
    }

    fn shutdown(&self, timeout: Duration) -> Result<(), DrainError> {
        self.0.shutdown(timeout)
    }

    fn for_each_stage(&self, visit: &mut dyn FnMut(crate::MetricsSnapshot)) {
        self.0.for_each_stage(visit);
    }

    fn interest(&self, name: &str) -> Interest {
        self.0.interest(name)
    }

    fn count_refused_by_name(&self) {
        self.0.count_refused_by_name();
    }

    fn topology(&self) -> Topology {
        self.0.topology()
    }
}
