//! `AsyncRouter`: moves a backend (usually a `RoutingBackend`'s fan-out,
//! its processors running on the caller) off the emitting thread, through
//! a bounded queue.

use std::any::Any;
use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tidings_event::Event;
use tidings_processors::Interest;

use super::control::{SHUTDOWN_SLACK, join_if_done, spawn_worker};
use super::disk_buffer::{DiskBuffer, Refused};
use super::queue::Pushed;
use super::sink_backend::{DEFAULT_QUEUE_CAPACITY, SpawnError};
use super::stage::Stage;
use super::{Metrics, WhenFull};
use crate::router::FanOut;
use crate::{Backend, DrainError, RoutingBackend, SendError, Topology};
use crate::{DropReason, MetricsSnapshot};

/// Events a worker hands on between checks for flush and shutdown requests.
const CHUNK: usize = 256;

/// A [`Backend`] that runs another backend on a worker thread (edX's
/// `AsyncRoutingBackend`).
///
/// `send` queues the event (applying [`WhenFull`] when the queue is full);
/// the worker hands each event to the inner backend. Events the inner
/// backend refuses are counted as dropped. Flush and shutdown go through to
/// the inner backend.
///
/// When the inner backend is a [`RoutingBackend`] (or an `Arc` of one), its
/// processors run in `send`, on the calling thread, and only its fan-out
/// runs on the worker, as in edX: an event a processor drops never takes
/// room in the queue, and a processor sees the event as it was emitted.
/// [`AsyncRouterBuilder::processors_on`] moves them to the worker, for
/// processors too slow for the emitting thread.
///
/// With a [`DiskBuffer`] ([`AsyncRouterBuilder::disk_buffer`]), `send`
/// first writes the event to disk, and what a crash of the application
/// left there is handed on when the next router on that buffer starts.
#[derive(Debug)]
pub struct AsyncRouter {
    shared: Arc<Shared>,
    /// The router whose processors `send` runs, with
    /// [`ProcessorsOn::Caller`]; the worker then runs its fan-out only.
    front: Option<Arc<RoutingBackend>>,
    /// The worker's backend, kept to close it from here when the worker
    /// does not finish by the shutdown deadline.
    inner: Arc<dyn Backend>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    stage: Stage,
    /// What the inner backend's last flush or shutdown reported.
    inner_error: Mutex<Option<DrainError>>,
    buffer: Option<DiskBuffer>,
}

/// Where an [`AsyncRouter`] runs the processors of its inner
/// [`RoutingBackend`]. Set with [`AsyncRouterBuilder::processors_on`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessorsOn {
    /// In `send`, on the thread that emits (edX's `AsyncRoutingBackend`):
    /// what a processor drops is never queued. The default.
    #[default]
    Caller,
    /// On the router's worker, with the fan-out: `send` only queues.
    Worker,
}

/// The inner backend, with a [`RoutingBackend`] told apart so that its
/// processors can run on the caller.
#[derive(Debug)]
enum Inner {
    Router(Arc<RoutingBackend>),
    Other(Arc<dyn Backend>),
}

impl Inner {
    fn of<B: Backend + 'static>(backend: B) -> Self {
        let backend: Box<dyn Any> = Box::new(backend);
        let backend = match backend.downcast::<RoutingBackend>() {
            Ok(router) => return Self::Router(Arc::new(*router)),
            Err(other) => other,
        };
        let backend = match backend.downcast::<Arc<RoutingBackend>>() {
            Ok(router) => return Self::Router(*router),
            Err(other) => other,
        };
        match backend.downcast::<B>() {
            Ok(backend) => Self::Other(Arc::new(*backend)),
            Err(_) => unreachable!("a boxed `B` downcasts to `B`"),
        }
    }
}

/// Builds an [`AsyncRouter`]. Created by [`AsyncRouter::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct AsyncRouterBuilder {
    name: Cow<'static, str>,
    inner: Inner,
    processors_on: ProcessorsOn,
    queue_capacity: usize,
    when_full: WhenFull,
    buffer: Option<DiskBuffer>,
}

impl AsyncRouterBuilder {
    /// Where the processors of the inner [`RoutingBackend`] run. Defaults
    /// to [`ProcessorsOn::Caller`]. Without a `RoutingBackend` inside,
    /// everything runs on the worker whatever this says.
    pub fn processors_on(mut self, on: ProcessorsOn) -> Self {
        self.processors_on = on;
        self
    }

    /// Keeps every accepted event on disk until it is settled, and hands
    /// on first what an earlier run left in `buffer` (see [`DiskBuffer`]).
    /// `send` then waits for a write.
    pub fn disk_buffer(mut self, buffer: DiskBuffer) -> Self {
        self.buffer = Some(buffer);
        self
    }

    /// The queue's capacity, in events. Defaults to 10 000.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// What `send` does when the queue is full. Defaults to
    /// [`WhenFull::DropNewest`]: an application thread that emits never
    /// waits, and what a full queue refuses is counted as dropped
    /// (`queue_full`). [`WhenFull::Backpressure`] is for a router fed by
    /// another worker.
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// Starts the worker thread.
    ///
    /// # Errors
    ///
    /// [`SpawnError`] when the thread or its runtime cannot be created.
    pub fn build(self) -> Result<AsyncRouter, SpawnError> {
        let (front, inner): (_, Arc<dyn Backend>) = match (self.inner, self.processors_on) {
            (Inner::Router(router), ProcessorsOn::Caller) => {
                (Some(router.clone()), Arc::new(FanOut(router)))
            }
            (Inner::Router(router), ProcessorsOn::Worker) => (None, router),
            (Inner::Other(backend), _) => (None, backend),
        };
        let shared = Arc::new(Shared {
            stage: Stage::new(self.name.to_string(), self.queue_capacity, self.when_full),
            inner_error: Mutex::new(None),
            buffer: self.buffer,
        });
        let handle = spawn_worker(&shared.stage.name, run(shared.clone(), inner.clone()))
            .map_err(|e| SpawnError::new(&shared.stage.name, e))?;
        Ok(AsyncRouter {
            shared,
            front,
            inner,
            worker: Mutex::new(Some(handle)),
        })
    }
}

impl AsyncRouter {
    /// A builder running `inner` on a worker, named `name` in logs and
    /// metrics. A [`RoutingBackend`] (or an `Arc` of one) keeps its
    /// processors on the calling thread (see [`ProcessorsOn`]).
    pub fn builder(
        name: impl Into<Cow<'static, str>>,
        inner: impl Backend + 'static,
    ) -> AsyncRouterBuilder {
        AsyncRouterBuilder {
            name: name.into(),
            inner: Inner::of(inner),
            processors_on: ProcessorsOn::default(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            when_full: WhenFull::default(),
            buffer: None,
        }
    }

    /// Queues every event of `events` or none of them (a collector's
    /// all-or-nothing batch), whatever the `when_full` policy. On refusal
    /// the events are handed back with the reason, and counted as dropped.
    ///
    /// # Errors
    ///
    /// [`SendError::QueueFull`] when there is no room for all of them,
    /// [`SendError::Closed`] after shutdown.
    pub fn send_all(&self, events: Vec<Event>) -> Result<(), (SendError, Vec<Event>)> {
        let mut events = self.receive_all(events);
        if events.is_empty() {
            return Ok(());
        }
        let shared = &self.shared;
        Metrics::add(&shared.stage.metrics.received, events.len());
        if let Err(refused) = shared.persist(&mut events) {
            return Err((shared.refuse(refused, events.len()), events));
        }
        shared
            .stage
            .queue
            .push_all(events)
            .map_err(|(pushed, events)| {
                let (error, reason) = match pushed {
                    Pushed::Closed => (SendError::Closed, DropReason::Shutdown),
                    _ => (SendError::QueueFull, DropReason::QueueFull),
                };
                shared
                    .stage
                    .metrics
                    .dropped(&shared.stage.name, reason, events.len());
                (error, events)
            })
    }

    /// Reserves room for `n` events in the queue, kept from every other
    /// sender until [`Reservation::send_all`] fills it or the reservation is
    /// dropped. For a producer that must know there is room before it does
    /// something it cannot undo (the collector's durable mode writes a
    /// request to its log, then queues it). Nothing is counted until the
    /// events are sent.
    ///
    /// # Errors
    ///
    /// [`SendError::QueueFull`] without room for `n` more events (queued
    /// and reserved), [`SendError::Closed`] after shutdown.
    pub fn reserve(&self, n: usize) -> Result<Reservation<'_>, SendError> {
        match self.shared.stage.queue.reserve(n) {
            Ok(()) => Ok(Reservation { router: self, n }),
            Err(Pushed::Closed) => Err(SendError::Closed),
            Err(_) => Err(SendError::QueueFull),
        }
    }

    /// Whether `n` more events would fit in the queue now (a hint: another
    /// sender may take the room first). Lets a producer refuse work early,
    /// as the collector answers 503 before reading a body.
    #[must_use]
    pub fn has_room(&self, n: usize) -> bool {
        self.shared.stage.queue.has_room(n)
    }

    /// Where this router runs the processors of its inner
    /// [`RoutingBackend`] (always [`ProcessorsOn::Worker`] for another
    /// inner backend).
    #[must_use]
    pub fn processors_on(&self) -> ProcessorsOn {
        if self.front.is_some() {
            ProcessorsOn::Caller
        } else {
            ProcessorsOn::Worker
        }
    }

    /// Runs the caller's half of the inner router on `event`, if it has
    /// one; `None` when a processor dropped the event.
    fn receive(&self, event: Event) -> Option<Event> {
        match &self.front {
            Some(router) => router.receive(event),
            None => Some(event),
        }
    }

    /// [`Self::receive`] for each of `events`, keeping what is left.
    fn receive_all(&self, events: Vec<Event>) -> Vec<Event> {
        match &self.front {
            Some(router) => events
                .into_iter()
                .filter_map(|event| router.receive(event))
                .collect(),
            None => events,
        }
    }

    /// What `send` does when the queue is full.
    #[must_use]
    pub fn when_full(&self) -> WhenFull {
        self.shared.stage.queue.policy()
    }

    /// What the disk buffer holds and has done, if there is one: bytes on
    /// disk, events replayed after a restart, writes that failed.
    #[must_use]
    pub fn buffer_stats(&self) -> Option<tidings_wal::WalStats> {
        self.shared.buffer.as_ref().map(DiskBuffer::stats)
    }

    /// A snapshot of the counters; `delivered` counts events handed to the
    /// inner backend.
    #[must_use]
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.stage.snapshot()
    }
}

/// Room for events held in an [`AsyncRouter`]'s queue, from
/// [`AsyncRouter::reserve`]. Dropping it gives the room back.
#[derive(Debug)]
#[must_use = "the room is given back when the reservation is dropped"]
pub struct Reservation<'a> {
    router: &'a AsyncRouter,
    n: usize,
}

impl Reservation<'_> {
    /// How many events the reservation holds room for.
    #[must_use]
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether it holds no room.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Queues `events` in the reserved room (all of them or none), and gives
    /// back what they do not use.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] when the router was shut down meanwhile (the
    /// events are handed back and counted as dropped), and
    /// [`SendError::QueueFull`] when there are more events than reserved
    /// room (handed back, not counted).
    pub fn send_all(mut self, events: Vec<Event>) -> Result<(), (SendError, Vec<Event>)> {
        if events.len() > self.n {
            return Err((SendError::QueueFull, events));
        }
        let shared = &self.router.shared;
        let stage = &shared.stage;
        let reserved = std::mem::take(&mut self.n);
        let mut events = self.router.receive_all(events);
        Metrics::add(&stage.metrics.received, events.len());
        if let Err(refused) = shared.persist(&mut events) {
            stage.queue.unreserve(reserved);
            return Err((shared.refuse(refused, events.len()), events));
        }
        stage
            .queue
            .push_reserved(events, reserved)
            .map_err(|(_, events)| {
                stage
                    .metrics
                    .dropped(&stage.name, DropReason::Shutdown, events.len());
                (SendError::Closed, events)
            })
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.n > 0 {
            self.router.shared.stage.queue.unreserve(self.n);
        }
    }
}

impl Backend for AsyncRouter {
    fn send(&self, event: Event) -> Result<(), SendError> {
        let Some(event) = self.receive(event) else {
            return Ok(());
        };
        let mut one = [event];
        if let Err(refused) = self.shared.persist(&mut one) {
            Metrics::add(&self.shared.stage.metrics.received, 1);
            return Err(self.shared.refuse(refused, 1));
        }
        let [event] = one;
        self.shared.stage.send(event)
    }

    fn for_each_stage(&self, visit: &mut dyn FnMut(MetricsSnapshot)) {
        visit(self.metrics());
        self.inner.for_each_stage(visit);
    }

    /// The inner backend's interest: an event no processor below would
    /// keep is not built, let alone queued.
    fn interest(&self, name: &str) -> Interest {
        self.inner.interest(name)
    }

    fn count_refused_by_name(&self) {
        self.inner.count_refused_by_name();
    }

    /// `async_router` and its queue; over a [`RoutingBackend`], that
    /// router's processors and backends as its own (as in a config).
    fn topology(&self) -> Topology {
        let detail = format!(
            "{} processors_on={}",
            self.shared.stage.describe_queue(),
            match self.processors_on() {
                ProcessorsOn::Caller => "caller",
                ProcessorsOn::Worker => "worker",
            }
        );
        let mut topology = self.inner.topology();
        if topology.kind != "router" {
            let inner = std::mem::take(&mut topology);
            topology.backends.push(("inner".to_owned(), inner));
        }
        topology.kind = "async_router".to_owned();
        topology.detail = detail;
        topology
    }

    fn flush(&self, timeout: Duration) -> Result<(), DrainError> {
        self.shared.stage.flush(timeout)?;
        self.shared.take_inner_error().map_or(Ok(()), Err)
    }

    /// Stops accepting, hands what is queued on to the inner backend, then
    /// shuts that down with the time left. When the deadline passes first
    /// (the worker waits for room in a full queue below, say), the inner
    /// backend is shut down from here with no time left, which releases
    /// the worker: every event not handed on is counted as dropped
    /// (`shutdown`), and every stage below reports its own.
    fn shutdown(&self, timeout: Duration) -> Result<(), DrainError> {
        let stage = &self.shared.stage;
        let before = stage.snapshot().dropped(DropReason::Shutdown);
        if let Some(buffer) = &self.shared.buffer {
            // What the deadline drops is settled too, yet must stay on disk.
            buffer.hold();
        }
        let mut forced = None;
        if !stage.shut_down(timeout, 2 * SHUTDOWN_SLACK) {
            forced = Some(self.inner.shutdown(Duration::ZERO));
            stage.control.wait_done(Instant::now() + 2 * SHUTDOWN_SLACK);
        }
        join_if_done(&stage.control, &self.worker);
        let metrics = self.metrics();
        let lost = metrics.dropped(DropReason::Shutdown) - before + metrics.pending();
        if let Some(buffer) = &self.shared.buffer {
            buffer.close();
            if lost == 0 {
                buffer.release();
            }
        }
        if lost > 0 {
            return Err(DrainError::TimedOut {
                timeout,
                pending: lost,
            });
        }
        let inner = match forced {
            Some(result) => result.err(),
            None => self.shared.take_inner_error(),
        };
        inner.map_or(Ok(()), Err)
    }
}

impl Drop for AsyncRouter {
    /// Without a shutdown, the worker delivers what it can for a few more
    /// seconds; a disk buffer keeps all of it for the next start, since
    /// what the worker does not deliver is not known here.
    fn drop(&mut self) {
        if let Some(buffer) = &self.shared.buffer
            && !self.shared.stage.control.is_done()
        {
            buffer.hold();
        }
        self.shared.stage.abandon();
    }
}

impl Shared {
    /// Writes `events` to the disk buffer, if there is one, before they
    /// are queued.
    fn persist(&self, events: &mut [Event]) -> Result<(), Refused> {
        match &self.buffer {
            Some(buffer) => buffer.persist(events),
            None => Ok(()),
        }
    }

    /// Counts `n` events the disk buffer refused (already counted as
    /// received) as dropped; the sender's answer.
    fn refuse(&self, refused: Refused, n: usize) -> SendError {
        self.stage
            .metrics
            .dropped(&self.stage.name, refused.reason, n);
        refused.error
    }

    fn take_inner_error(&self) -> Option<DrainError> {
        self.inner_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    fn set_inner_error(&self, result: Result<(), DrainError>) {
        *self
            .inner_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = result.err();
    }
}

fn hand_on(shared: &Shared, inner: &dyn Backend, event: Event) {
    let reason = match catch_unwind(AssertUnwindSafe(|| inner.send(event))) {
        Ok(Ok(())) => {
            Metrics::add(&shared.stage.metrics.delivered, 1);
            return;
        }
        Ok(Err(SendError::QueueFull)) => DropReason::QueueFull,
        Ok(Err(SendError::Closed)) => DropReason::Shutdown,
        Ok(Err(_)) | Err(_) => DropReason::NonRetryable,
    };
    shared.stage.metrics.dropped(&shared.stage.name, reason, 1);
}

/// Hands on what an earlier run left in the disk buffer, oldest first,
/// until a shutdown's deadline passes: the rest stays on disk for the
/// next start, so it is neither counted nor lost.
fn replay(shared: &Shared, inner: &dyn Backend) {
    let Some(replay) = shared.buffer.as_ref().and_then(DiskBuffer::take_replay) else {
        return;
    };
    let control = &shared.stage.control;
    for event in replay.flatten() {
        if control
            .shutdown_deadline()
            .is_some_and(|d| Instant::now() >= d)
        {
            return;
        }
        Metrics::add(&shared.stage.metrics.received, 1);
        hand_on(shared, inner, event);
    }
}

async fn run(shared: Arc<Shared>, inner: Arc<dyn Backend>) {
    replay(&shared, &*inner);
    let mut chunk = Vec::with_capacity(CHUNK);
    loop {
        shared.stage.queue.pop_up_to(CHUNK, &mut chunk);
        if !chunk.is_empty() {
            Metrics::add(&shared.stage.metrics.buffered, chunk.len());
            let deadline = shared.stage.control.shutdown_deadline();
            for event in chunk.drain(..) {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    shared
                        .stage
                        .metrics
                        .dropped(&shared.stage.name, DropReason::Shutdown, 1);
                } else {
                    hand_on(&shared, &*inner, event);
                }
                Metrics::sub(&shared.stage.metrics.buffered, 1);
            }
            continue;
        }
        if let Some(deadline) = shared.stage.control.shutdown_deadline() {
            let left = deadline.saturating_duration_since(Instant::now());
            shared.set_inner_error(inner.shutdown(left));
            shared.stage.control.finish();
            return;
        }
        if let Some((ticket, deadline)) = shared.stage.control.pending_flush() {
            let left = deadline.map_or(Duration::ZERO, |d| {
                d.saturating_duration_since(Instant::now())
            });
            shared.set_inner_error(inner.flush(left));
            shared.stage.control.complete_flush(ticket);
            continue;
        }
        shared.stage.queue.wake.notified().await;
    }
}
