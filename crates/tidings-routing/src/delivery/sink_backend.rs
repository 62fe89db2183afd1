//! `SinkBackend`: the adapter from the synchronous `Backend` to an async
//! `Sink`: bounded queue → batching → retry → sink, on a worker thread.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tidings_event::{Event, FailureStreak};

use super::control::{SHUTDOWN_SLACK, join_if_done, spawn_worker};
use super::listeners::Listeners;
use super::stage::Stage;
use super::worker::Worker;
use super::{
    BatchConfig, BatchKey, BatchLargerThanQueue, DispatchAttempt, ListenerId, RetryPolicy, WhenFull,
};
use crate::{Backend, DrainError, DropReason, MetricsSnapshot, SendError, Sink, Topology};

/// Default for [`SinkBackendBuilder::queue_capacity`].
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;

/// What became of a batch, as told to a [`SinkBackendBuilder::on_batch`] hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchOutcome {
    /// The sink accepted the batch.
    Delivered,
    /// The batch was dropped.
    Dropped(DropReason),
    /// The sink gave up on the batch, which went to the dead-letter
    /// destination ([`SinkBackendBuilder::dead_letter`]).
    DeadLettered(DropReason),
    /// The batch ran out of retries for the reason given
    /// ([`DropReason::RetriesExhausted`] or [`DropReason::Expired`]) and
    /// went back to the queue, ahead of newer events, to be sent again
    /// ([`SinkBackendBuilder::requeue_failed`]). Its events are told of
    /// again when that batch ends.
    Requeued(DropReason),
}

/// A dispatched batch, as told to a [`SinkBackendBuilder::on_batch`] hook
/// (Optimizely's batch notification).
#[derive(Debug)]
#[non_exhaustive]
pub struct BatchReport<'a> {
    /// The backend's name.
    pub backend: &'a str,
    /// The events of the batch.
    pub events: &'a [Event],
    /// Attempts made.
    pub attempts: u32,
    /// What became of it (for now, when [`BatchOutcome::Requeued`]).
    pub outcome: BatchOutcome,
}

pub(super) type BatchHook = Arc<dyn Fn(&BatchReport<'_>) + Send + Sync>;

/// A [`Backend`] that delivers to a [`Sink`] without ever doing I/O on the
/// emitting thread.
///
/// `send` puts the event on a bounded queue (applying [`WhenFull`] when it is
/// full); a worker thread forms batches ([`BatchConfig`]), hands them to the
/// sink and retries failures ([`RetryPolicy`]), one batch at a time, so a
/// `Retry-After` pauses the whole sink. Every event is accounted for in
/// [`SinkBackend::metrics`]: at quiet points
/// `received = delivered + dropped + pending`. The order of the wrappers is
/// fixed: queue, then batching, then retry, then the sink.
///
/// Call [`Backend::shutdown`] (or keep the facade's `FlushGuard`) before the
/// process exits: dropping a `SinkBackend` starts a shutdown with a 5 s
/// deadline but does not wait for it.
#[derive(Debug)]
pub struct SinkBackend {
    shared: Arc<Stage>,
    listeners: Arc<Listeners>,
    /// Flushed and shut down after this backend, whose worker feeds it.
    dead_letter: Option<Arc<dyn Backend>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

/// Builds a [`SinkBackend`]. Created by [`SinkBackend::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct SinkBackendBuilder {
    name: Cow<'static, str>,
    sink: Arc<dyn Sink>,
    queue_capacity: usize,
    when_full: WhenFull,
    batch: BatchConfig,
    retry: RetryPolicy,
    batch_key: Option<BatchKey>,
    requeue_failed: bool,
    on_batch: Option<BatchHook>,
    dead_letter: Option<Arc<dyn Backend>>,
}

impl std::fmt::Debug for SinkBackendBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkBackendBuilder")
            .field("name", &self.name)
            .field("sink", &self.sink)
            .field("queue_capacity", &self.queue_capacity)
            .field("when_full", &self.when_full)
            .field("batch", &self.batch)
            .field("retry", &self.retry)
            .field("batch_key", &self.batch_key)
            .field("requeue_failed", &self.requeue_failed)
            .field("dead_letter", &self.dead_letter)
            .finish_non_exhaustive()
    }
}

/// A worker thread could not be started.
#[derive(Debug, thiserror::Error)]
#[error("could not start the worker of backend {name:?}: {source}")]
pub struct SpawnError {
    name: String,
    #[source]
    source: std::io::Error,
}

impl SpawnError {
    pub(crate) fn new(name: &str, source: std::io::Error) -> Self {
        Self {
            name: name.to_owned(),
            source,
        }
    }
}

/// A [`SinkBackend`] could not be built ([`SinkBackendBuilder::build`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkBuildError {
    /// `max_events` was set above `queue_capacity` (see
    /// [`BatchConfig::for_queue`]).
    #[error("backend {backend:?}: {source}")]
    BatchLargerThanQueue {
        /// The backend's name.
        backend: String,
        /// The two values.
        #[source]
        source: BatchLargerThanQueue,
    },
    /// The worker thread could not be started.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
}

impl SinkBackendBuilder {
    /// The queue's capacity, in events. Defaults to 10 000.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// What `send` does when the queue is full. Defaults to [`WhenFull::DropNewest`].
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// When batches are sent. Defaults to [`BatchConfig::default`]. Its
    /// `max_events` must not be over the queue's capacity (see
    /// [`BatchConfig::for_queue`]).
    pub fn batch(mut self, batch: BatchConfig) -> Self {
        self.batch = batch;
        self
    }

    /// Which events may share a batch: only those with the same values at
    /// the key's paths; an event with another key has the batch being
    /// formed sent first (see [`BatchKey`]). Defaults to none: any events
    /// may share a batch.
    pub fn batch_key(mut self, key: BatchKey) -> Self {
        self.batch_key = Some(key);
        self
    }

    /// Whether a batch that ran out of retries (`max_attempts` reached, or
    /// older than `max_batch_age`) goes back to the queue instead of to the
    /// dead-letter destination, as Optimizely keeps failed events queued
    /// for its next flush. Defaults to `false`.
    ///
    /// When on, such a batch goes back whole, ahead of every newer event
    /// and in its order, if the queue has room for all of it (it then
    /// counts against `queue_capacity`); otherwise, or once a shutdown has
    /// started, it is settled as without this option (dead letters, or
    /// dropped and counted). Each time, the whole sink then pauses for the
    /// flush interval, or longer: the retry policy's backoff ceiling, grown
    /// by one doubling for each batch requeued in a row since a batch was
    /// last delivered (up to `max_backoff`), and at least the receiver's
    /// `Retry-After`. Then the batch formed from the queue's head is sent
    /// at once. Its retries and its age start again, so an event can wait
    /// as long as the sink fails and its queue has room: the queue's
    /// capacity bounds what is kept. Requeued events are counted in
    /// [`MetricsSnapshot::retried`] and stay pending in the accounting.
    pub fn requeue_failed(mut self, requeue: bool) -> Self {
        self.requeue_failed = requeue;
        self
    }

    /// How failed batches are retried. Defaults to [`RetryPolicy::default`];
    /// [`RetryPolicy::none`] is fire-and-forget.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Where events the sink gave up on go: the events at fault in a batch
    /// the receiver refused for its content ([`SinkErrorKind::Invalid`](crate::SinkErrorKind::Invalid)),
    /// events too large alone, and batches refused for good, out of
    /// retries or too old. Each event keeps its id and gets a
    /// `dead_letter` object in its context (`backend`, `reason`, `error`,
    /// `attempts`), so any backend can keep them: a file, a table. Counted
    /// in [`MetricsSnapshot::dead_lettered`]; an event the destination
    /// refuses is counted as dropped. Without one, those events are
    /// dropped and counted.
    pub fn dead_letter(mut self, backend: Arc<dyn Backend>) -> Self {
        self.dead_letter = Some(backend);
        self
    }

    /// Calls `hook` on the worker thread after every batch is delivered,
    /// dropped, dead-lettered or requeued. A panicking hook is caught and
    /// logged. To hear of each attempt before it is made, add a dispatch
    /// listener ([`SinkBackend::add_dispatch_listener`]).
    pub fn on_batch(mut self, hook: impl Fn(&BatchReport<'_>) + Send + Sync + 'static) -> Self {
        self.on_batch = Some(Arc::new(hook));
        self
    }

    /// Starts the worker thread.
    ///
    /// # Errors
    ///
    /// [`SinkBuildError::BatchLargerThanQueue`] when the batch's
    /// `max_events` was set above `queue_capacity`;
    /// [`SinkBuildError::Spawn`] when the thread or its runtime cannot be
    /// created.
    pub fn build(self) -> Result<SinkBackend, SinkBuildError> {
        let batch = self
            .batch
            .for_queue(self.queue_capacity)
            .map_err(|source| SinkBuildError::BatchLargerThanQueue {
                backend: self.name.to_string(),
                source,
            })?;
        let shared = Arc::new(Stage::new(
            self.name.to_string(),
            self.queue_capacity,
            self.when_full,
        ));
        let listeners = Arc::new(Listeners::default());
        let worker = Worker {
            shared: shared.clone(),
            sink: self.sink,
            batch,
            retry: self.retry,
            batch_key: self.batch_key,
            requeue_failed: self.requeue_failed,
            listeners: listeners.clone(),
            on_batch: self.on_batch,
            dead_letter: self.dead_letter.clone(),
            failing: FailureStreak::default(),
            requeued_in_a_row: std::sync::atomic::AtomicU32::new(0),
        };
        let handle = spawn_worker(&shared.name, worker.run())
            .map_err(|e| SpawnError::new(&shared.name, e))?;
        Ok(SinkBackend {
            shared,
            listeners,
            dead_letter: self.dead_letter,
            worker: Mutex::new(Some(handle)),
        })
    }
}

impl SinkBackend {
    /// A builder delivering to `sink`, named `name` in logs and metrics.
    pub fn builder(name: impl Into<Cow<'static, str>>, sink: impl Sink) -> SinkBackendBuilder {
        Self::builder_arc(name, Arc::new(sink))
    }

    /// [`SinkBackend::builder`] for an already shared sink.
    pub fn builder_arc(
        name: impl Into<Cow<'static, str>>,
        sink: Arc<dyn Sink>,
    ) -> SinkBackendBuilder {
        SinkBackendBuilder {
            name: name.into(),
            sink,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            when_full: WhenFull::default(),
            batch: BatchConfig::default(),
            retry: RetryPolicy::default(),
            batch_key: None,
            requeue_failed: false,
            on_batch: None,
            dead_letter: None,
        }
    }

    /// The backend's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// What `send` does when the queue is full.
    #[must_use]
    pub fn when_full(&self) -> WhenFull {
        self.shared.queue.policy()
    }

    /// A snapshot of the counters.
    #[must_use]
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.snapshot()
    }

    /// Calls `listener` on the worker thread before each attempt to send a
    /// batch, retries included (Optimizely's `OnEventDispatch`), until it
    /// is removed; returns its id for
    /// [`SinkBackend::remove_dispatch_listener`].
    ///
    /// Listeners run in the order they were added, while the sink waits,
    /// so keep them short. One that panics is caught and logged (`warn`
    /// the first time, `debug` after) and the attempt goes on. An attempt
    /// that starts after this returns is told to the listener; one under
    /// way is not. With no listener, an attempt costs one atomic load.
    /// See [`SinkBackendBuilder::on_batch`] for a hook after each batch.
    pub fn add_dispatch_listener(
        &self,
        listener: impl Fn(&DispatchAttempt<'_>) + Send + Sync + 'static,
    ) -> ListenerId {
        self.listeners.add(Arc::new(listener))
    }

    /// Removes the dispatch listener `id`; `false` when this backend has
    /// none by that id (removed already, or another backend's). An attempt that
    /// starts after this returns is not told to it.
    pub fn remove_dispatch_listener(&self, id: ListenerId) -> bool {
        self.listeners.remove(id)
    }
}

impl Backend for SinkBackend {
    fn send(&self, event: Event) -> Result<(), SendError> {
        self.shared.send(event)
    }

    fn for_each_stage(&self, visit: &mut dyn FnMut(MetricsSnapshot)) {
        visit(self.metrics());
        if let Some(dead_letter) = &self.dead_letter {
            dead_letter.for_each_stage(visit);
        }
    }

    /// `sink`, its name and queue, and its dead-letter backend.
    fn topology(&self) -> Topology {
        let mut topology = Topology::new("sink").with_detail(format!(
            "{} {}",
            self.shared.name,
            self.shared.describe_queue()
        ));
        if let Some(dead_letter) = &self.dead_letter {
            topology
                .backends
                .push(("dead_letter".to_owned(), dead_letter.topology()));
        }
        topology
    }

    fn flush(&self, timeout: Duration) -> Result<(), DrainError> {
        let deadline = Instant::now() + timeout;
        self.shared.flush(timeout)?;
        self.with_dead_letter(deadline, |dead_letter, left| dead_letter.flush(left))
    }

    /// Stops accepting and delivers what was accepted, retrying failed
    /// batches (backoff capped to the time left) until the deadline; then
    /// the dead-letter destination, with the time left. What is not
    /// delivered by then is counted as dropped (`shutdown`).
    fn shutdown(&self, timeout: Duration) -> Result<(), DrainError> {
        let deadline = Instant::now() + timeout;
        let own = self.shut_down_self(timeout);
        let dead_letter =
            self.with_dead_letter(deadline, |dead_letter, left| dead_letter.shutdown(left));
        own.and(dead_letter)
    }
}

impl SinkBackend {
    fn with_dead_letter(
        &self,
        deadline: Instant,
        op: impl FnOnce(&dyn Backend, Duration) -> Result<(), DrainError>,
    ) -> Result<(), DrainError> {
        match &self.dead_letter {
            Some(dead_letter) => op(
                &**dead_letter,
                deadline.saturating_duration_since(Instant::now()),
            )
            .map_err(|e| DrainError::Backends(vec![("dead_letter".to_owned(), e)])),
            None => Ok(()),
        }
    }

    fn shut_down_self(&self, timeout: Duration) -> Result<(), DrainError> {
        let before = self.metrics().dropped(DropReason::Shutdown);
        let finished = self.shared.shut_down(timeout, SHUTDOWN_SLACK);
        join_if_done(&self.shared.control, &self.worker);
        let metrics = self.metrics();
        tracing::info!(
            target: "tidings::delivery",
            backend = %self.shared.name,
            received = metrics.received,
            delivered = metrics.delivered,
            retried = metrics.retried,
            dropped = metrics.dropped_total(),
            dead_lettered = metrics.dead_lettered_total(),
            pending = metrics.pending(),
            "backend shut down"
        );
        let lost = metrics.dropped(DropReason::Shutdown) - before + metrics.pending();
        if finished && lost == 0 {
            Ok(())
        } else {
            Err(DrainError::TimedOut {
                timeout,
                pending: lost,
            })
        }
    }
}

impl Drop for SinkBackend {
    fn drop(&mut self) {
        self.shared.abandon();
    }
}
