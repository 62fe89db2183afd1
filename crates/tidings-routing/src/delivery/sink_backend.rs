//! `SinkBackend`: the adapter from the synchronous `Backend` to an async
//! `Sink`: bounded queue → batching → retry → sink, on a worker thread.

use std::borrow::Cow;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tidings_event::{Event, FailureStreak, StreakLog};

use super::batch::Batch;
use super::control::{SHUTDOWN_SLACK, join_if_done, spawn_worker};
use super::stage::Stage;
use super::{BatchConfig, Metrics, RetryPolicy, WhenFull};
use crate::{Backend, DrainError, DropReason, MetricsSnapshot, SendError, Sink, SinkErrorKind};

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
    /// What became of it.
    pub outcome: BatchOutcome,
}

type BatchHook = Arc<dyn Fn(&BatchReport<'_>) + Send + Sync>;

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

    /// When batches are sent. Defaults to [`BatchConfig::default`].
    pub fn batch(mut self, batch: BatchConfig) -> Self {
        self.batch = batch;
        self
    }

    /// How failed batches are retried. Defaults to [`RetryPolicy::default`];
    /// [`RetryPolicy::none`] is fire-and-forget.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Where events the sink gave up on go: the events at fault in a batch
    /// the receiver refused for its content ([`SinkErrorKind::Invalid`]),
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

    /// Calls `hook` on the worker thread after every batch is delivered or
    /// dropped. A panicking hook is caught and logged.
    pub fn on_batch(mut self, hook: impl Fn(&BatchReport<'_>) + Send + Sync + 'static) -> Self {
        self.on_batch = Some(Arc::new(hook));
        self
    }

    /// Starts the worker thread.
    ///
    /// # Errors
    ///
    /// [`SpawnError`] when the thread or its runtime cannot be created.
    pub fn build(self) -> Result<SinkBackend, SpawnError> {
        let shared = Arc::new(Stage::new(
            self.name.to_string(),
            self.queue_capacity,
            self.when_full,
        ));
        let worker = Worker {
            shared: shared.clone(),
            sink: self.sink,
            batch: self.batch,
            retry: self.retry,
            on_batch: self.on_batch,
            dead_letter: self.dead_letter.clone(),
            failing: FailureStreak::default(),
        };
        let handle = spawn_worker(&shared.name, worker.run())
            .map_err(|e| SpawnError::new(&shared.name, e))?;
        Ok(SinkBackend {
            shared,
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

/// The worker: owns the sink and the batch being formed.
struct Worker {
    shared: Arc<Stage>,
    sink: Arc<dyn Sink>,
    batch: BatchConfig,
    retry: RetryPolicy,
    on_batch: Option<BatchHook>,
    dead_letter: Option<Arc<dyn Backend>>,
    /// The current streak of failed attempts, for the log.
    failing: FailureStreak,
}

impl Worker {
    async fn run(self) {
        let mut batch = Batch::default();
        let mut incoming = Vec::with_capacity(self.batch.max_events());
        let tick_every = self.sink.tick_interval();
        let mut next_tick = tick_every.map(|every| Instant::now() + every);
        loop {
            if let (Some(every), Some(due)) = (tick_every, next_tick)
                && Instant::now() >= due
            {
                if let Err(error) = self.sink.tick().await {
                    tracing::warn!(target: "tidings::delivery", backend = %self.shared.name, %error, "sink tick failed");
                }
                next_tick = Some(Instant::now() + every);
            }
            self.take_queued(&mut batch, &mut incoming).await;
            let shutdown = self.shared.control.shutdown_deadline();
            let flush = self.shared.control.pending_flush();
            let interval_over = batch
                .started
                .is_some_and(|t| t.elapsed() >= self.batch.flush_interval());
            if !batch.is_empty() && (shutdown.is_some() || flush.is_some() || interval_over) {
                self.dispatch(&mut batch).await;
                continue;
            }
            if self.shared.queue.len() > 0 {
                continue;
            }
            if let Some(deadline) = shutdown
                && self.shared.queue.is_closed()
            {
                let _ = tokio::time::timeout_at(deadline.into(), self.sink.shutdown()).await;
                self.shared.control.finish();
                return;
            }
            if let Some((ticket, deadline)) = flush {
                let flushed = self.sink.flush();
                match deadline {
                    Some(deadline) => drop(tokio::time::timeout_at(deadline.into(), flushed).await),
                    None => drop(flushed.await),
                }
                self.shared.control.complete_flush(ticket);
                continue;
            }
            let batch_due = batch
                .started
                .map(|started| started + self.batch.flush_interval());
            match batch_due.into_iter().chain(next_tick).min() {
                Some(due) => {
                    tokio::select! {
                        () = self.shared.queue.wake.notified() => {}
                        () = tokio::time::sleep_until(due.into()) => {}
                    }
                }
                None => self.shared.queue.wake.notified().await,
            }
        }
    }

    /// Moves queued events into batches, dispatching each batch as it fills.
    async fn take_queued(&self, batch: &mut Batch, incoming: &mut Vec<Event>) {
        let metrics = &self.shared.metrics;
        loop {
            self.shared
                .queue
                .pop_up_to(self.batch.max_events(), incoming);
            if incoming.is_empty() {
                return;
            }
            Metrics::add(&metrics.buffered, incoming.len());
            for event in incoming.drain(..) {
                let size = self.sink.size_hint(&event);
                if size > self.batch.max_bytes() {
                    let error = format!(
                        "the event alone is {size} bytes, over the batch's max_bytes {}",
                        self.batch.max_bytes()
                    );
                    self.give_up(vec![event], 0, DropReason::TooLarge, &error);
                    continue;
                }
                if !batch.is_empty() && batch.bytes + size > self.batch.max_bytes() {
                    self.dispatch(batch).await;
                }
                batch.push(event, size);
                Metrics::add(&metrics.buffered_bytes, size);
                if batch.events.len() >= self.batch.max_events() {
                    self.dispatch(batch).await;
                }
            }
        }
    }

    async fn dispatch(&self, batch: &mut Batch) {
        let (events, bytes) = batch.take();
        Metrics::sub(&self.shared.metrics.buffered_bytes, bytes);
        self.deliver(events, Instant::now()).await;
    }

    /// Sends one batch until it is delivered, dropped or dead-lettered;
    /// a batch too large or refused for its content is split in halves.
    fn deliver(
        &self,
        events: Vec<Event>,
        formed: Instant,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let deadline = self.shared.control.shutdown_deadline();
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return self.drop_batch(events, attempt - 1, DropReason::Shutdown);
                }
                let result = self.until_deadline(self.sink.send_batch(&events)).await;
                let error = match result {
                    None => return self.drop_batch(events, attempt, DropReason::Shutdown),
                    Some(Ok(())) => {
                        if let Some(failures) = self.failing.succeeded() {
                            tracing::info!(target: "tidings::delivery", backend = %self.shared.name, failures, "sink recovered: batch delivered after {failures} failed attempts");
                        }
                        return self.finish(&events, attempt, BatchOutcome::Delivered);
                    }
                    Some(Err(error)) => error,
                };
                self.shared.metrics.failed(&error);
                match self.failing.failed() {
                    StreakLog::First => {
                        tracing::warn!(target: "tidings::delivery", backend = %self.shared.name, %error, attempt, "batch failed; while the sink keeps failing, a summary is logged every 30 s")
                    }
                    StreakLog::Reminder {
                        failures,
                        suppressed,
                    } => {
                        tracing::warn!(target: "tidings::delivery", backend = %self.shared.name, %error, failures, suppressed, "the sink is still failing: {failures} failed attempts so far, {suppressed} not logged since the last line")
                    }
                    _ => {
                        tracing::debug!(target: "tidings::delivery", backend = %self.shared.name, %error, attempt, "batch failed")
                    }
                }
                let give_up = match error.kind() {
                    SinkErrorKind::TooLarge | SinkErrorKind::Invalid if events.len() > 1 => {
                        let mut left = events;
                        let right = left.split_off(left.len() / 2);
                        self.deliver(left, formed).await;
                        return self.deliver(right, formed).await;
                    }
                    SinkErrorKind::TooLarge => DropReason::TooLarge,
                    SinkErrorKind::Invalid => DropReason::Invalid,
                    SinkErrorKind::Retryable if attempt >= self.retry.max_attempts() => {
                        DropReason::RetriesExhausted
                    }
                    SinkErrorKind::Retryable => {
                        let wait = self.retry.backoff(attempt, error.retry_after());
                        // While draining, the deadline bounds the wait instead.
                        if deadline.is_none()
                            && formed.elapsed() + wait > self.retry.max_batch_age()
                        {
                            DropReason::Expired
                        } else {
                            Metrics::add(&self.shared.metrics.retried, events.len());
                            self.shared.metrics.paused(Some(wait));
                            self.pause(Instant::now() + wait).await;
                            self.shared.metrics.paused(None);
                            continue;
                        }
                    }
                    _ => DropReason::NonRetryable,
                };
                return self.give_up(events, attempt, give_up, &error);
            }
        })
    }

    /// Runs `call` to its end, or until the shutdown deadline (`None`),
    /// even when the shutdown starts while it runs.
    async fn until_deadline<F: Future>(&self, call: F) -> Option<F::Output> {
        tokio::pin!(call);
        loop {
            match self.shared.control.shutdown_deadline() {
                Some(deadline) => return tokio::time::timeout_at(deadline.into(), call).await.ok(),
                None => tokio::select! {
                    out = &mut call => return Some(out),
                    // Woken by events arriving and by a shutdown starting.
                    () = self.shared.queue.wake.notified() => {}
                },
            }
        }
    }

    /// Sleeps until `until`. When a shutdown starts meanwhile the sleep
    /// ends at once (the batch is tried again straight away); during a
    /// shutdown it ends at the deadline at the latest, so retries go on
    /// until the deadline, never past it.
    async fn pause(&self, until: Instant) {
        let draining = self.shared.control.shutdown_deadline().is_some();
        loop {
            let deadline = self.shared.control.shutdown_deadline();
            if deadline.is_some() && !draining {
                return;
            }
            let until = deadline.map_or(until, |d| until.min(d));
            if Instant::now() >= until {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(until.into()) => {}
                () = self.shared.queue.wake.notified() => {}
            }
        }
    }

    fn drop_batch(&self, events: Vec<Event>, attempts: u32, reason: DropReason) {
        self.finish(&events, attempts, BatchOutcome::Dropped(reason));
    }

    /// The sink will not take `events`: they go to the dead-letter
    /// destination, marked with why, or are dropped without one.
    fn give_up(
        &self,
        mut events: Vec<Event>,
        attempts: u32,
        reason: DropReason,
        error: &dyn std::fmt::Display,
    ) {
        let Some(dead_letter) = &self.dead_letter else {
            return self.drop_batch(events, attempts, reason);
        };
        let mark = serde_json::json!({
            "backend": self.shared.name,
            "reason": reason.as_str(),
            "error": error.to_string(),
            "attempts": attempts,
        });
        for event in &mut events {
            event
                .context_mut()
                .insert("dead_letter".to_owned(), mark.clone());
        }
        let refused = events
            .iter()
            .filter(|event| {
                let sent = catch_unwind(AssertUnwindSafe(|| dead_letter.send((*event).clone())));
                !matches!(sent, Ok(Ok(())))
            })
            .count();
        let metrics = &self.shared.metrics;
        metrics.dead_lettered(reason, events.len() - refused);
        metrics.dropped(&self.shared.name, reason, refused);
        self.report(&events, attempts, BatchOutcome::DeadLettered(reason));
    }

    fn finish(&self, events: &[Event], attempts: u32, outcome: BatchOutcome) {
        let metrics = &self.shared.metrics;
        match outcome {
            BatchOutcome::Delivered => {
                Metrics::add(&metrics.delivered, events.len());
                Metrics::add(&metrics.batches, 1);
            }
            BatchOutcome::Dropped(reason) => {
                metrics.dropped(&self.shared.name, reason, events.len())
            }
            BatchOutcome::DeadLettered(reason) => metrics.dead_lettered(reason, events.len()),
        }
        self.report(events, attempts, outcome);
    }

    /// Settles the batch in the gauges and tells the `on_batch` hook.
    fn report(&self, events: &[Event], attempts: u32, outcome: BatchOutcome) {
        Metrics::sub(&self.shared.metrics.buffered, events.len());
        if let Some(hook) = &self.on_batch {
            let report = BatchReport {
                backend: &self.shared.name,
                events,
                attempts,
                outcome,
            };
            if catch_unwind(AssertUnwindSafe(|| hook(&report))).is_err() {
                tracing::warn!(target: "tidings::delivery", backend = %self.shared.name, "on_batch hook panicked");
            }
        }
    }
}
