//! The worker of a [`SinkBackend`](super::SinkBackend): it owns the sink
//! and the batch being formed, delivers each batch with retries, splits a
//! batch refused for its content until the culprits are alone, and accounts
//! for every event (delivered, dead-lettered or dropped with its reason,
//! or requeued to be sent again).

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tidings_event::{Event, FailureStreak, StreakLog};

use super::batch::Batch;
use super::listeners::Listeners;
use super::sink_backend::{BatchHook, BatchOutcome, BatchReport};
use super::stage::Stage;
use super::{BatchConfig, BatchKey, DispatchAttempt, Metrics, RetryPolicy};
use crate::{Backend, DropReason, Sink, SinkErrorKind};

/// The worker: owns the sink and the batch being formed.
pub(super) struct Worker {
    pub(super) shared: Arc<Stage>,
    pub(super) sink: Arc<dyn Sink>,
    pub(super) batch: BatchConfig,
    pub(super) retry: RetryPolicy,
    pub(super) batch_key: Option<BatchKey>,
    pub(super) requeue_failed: bool,
    pub(super) listeners: Arc<Listeners>,
    pub(super) on_batch: Option<BatchHook>,
    pub(super) dead_letter: Option<Arc<dyn Backend>>,
    /// The current streak of failed attempts, for the log.
    pub(super) failing: FailureStreak,
    /// Batches requeued since one was last delivered: each lengthens the
    /// pause after the next.
    pub(super) requeued_in_a_row: AtomicU32,
}

/// The head of the queue, taken by the worker and not yet in a batch: the
/// events of requeued batches first (holding room reserved in the queue),
/// then events popped from the queue.
#[derive(Debug, Default)]
pub(super) struct Front {
    events: VecDeque<Event>,
    /// How many of the first `events` were requeued (each holds a place
    /// reserved in the queue, given back as it leaves).
    requeued: usize,
    /// A batch was requeued: send the next batch without waiting for its
    /// flush interval (the pause after the requeue was the wait).
    due: bool,
}

/// A batch out of retries, to be requeued at the end of its dispatch.
struct Kept {
    events: Vec<Event>,
    attempts: u32,
    reason: DropReason,
    error: String,
    retry_after: Option<Duration>,
}

impl Worker {
    pub(super) async fn run(self) {
        let mut batch = Batch::default();
        let mut incoming = Front::default();
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
            if !batch.is_empty()
                && (shutdown.is_some() || flush.is_some() || interval_over || incoming.due)
            {
                self.dispatch(&mut batch, &mut incoming).await;
                continue;
            }
            // `take_queued` leaves `incoming` empty.
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

    /// Moves queued events into batches, dispatching each batch as it
    /// fills, or as an event with another batch key comes.
    async fn take_queued(&self, batch: &mut Batch, incoming: &mut Front) {
        let metrics = &self.shared.metrics;
        loop {
            if incoming.events.is_empty() {
                self.shared
                    .queue
                    .pop_up_to(self.batch.max_events(), &mut incoming.events);
                if incoming.events.is_empty() {
                    return;
                }
                Metrics::add(&metrics.buffered, incoming.events.len());
            }
            while let Some(event) = incoming.events.pop_front() {
                if incoming.requeued > 0 {
                    incoming.requeued -= 1;
                    self.shared.queue.unreserve(1);
                }
                let size = self.sink.size_hint(&event);
                if size > self.batch.max_bytes() {
                    let error = format!(
                        "the event alone is {size} bytes, over the batch's max_bytes {}",
                        self.batch.max_bytes()
                    );
                    self.give_up(vec![event], 0, DropReason::TooLarge, &error);
                    continue;
                }
                let other_key = self
                    .batch_key
                    .as_ref()
                    .is_some_and(|key| !batch.is_empty() && !key.matches(&event, &batch.key));
                if (other_key || (!batch.is_empty() && batch.bytes + size > self.batch.max_bytes()))
                    && self.dispatch(batch, incoming).await
                {
                    // The requeued batch goes first, then this event.
                    incoming.events.insert(incoming.requeued, event);
                    continue;
                }
                if let Some(key) = &self.batch_key
                    && batch.is_empty()
                {
                    batch.key = key.of(&event);
                }
                batch.push(event, size);
                Metrics::add(&metrics.buffered_bytes, size);
                if batch.events.len() >= self.batch.max_events() {
                    self.dispatch(batch, incoming).await;
                }
            }
        }
    }

    /// Sends the batch; `true` when (part of) it was requeued.
    async fn dispatch(&self, batch: &mut Batch, incoming: &mut Front) -> bool {
        let (events, bytes) = batch.take();
        incoming.due = false;
        Metrics::sub(&self.shared.metrics.buffered_bytes, bytes);
        let mut kept = Vec::new();
        self.deliver(events, Instant::now(), &mut kept).await;
        !kept.is_empty() && self.requeue(kept, incoming).await
    }

    /// Puts the batches in `kept` (the parts of one dispatched batch, in
    /// order) back at the head of the queue if it has room for all of
    /// them, then pauses the sink; otherwise settles them as without
    /// `requeue_failed`. `true` when requeued.
    async fn requeue(&self, kept: Vec<Kept>, incoming: &mut Front) -> bool {
        let n = kept.iter().map(|k| k.events.len()).sum();
        let draining = self.shared.control.shutdown_deadline().is_some();
        if draining || self.shared.queue.reserve(n).is_err() {
            for k in kept {
                self.give_up(k.events, k.attempts, k.reason, &k.error);
            }
            return false;
        }
        Metrics::add(&self.shared.metrics.retried, n);
        for k in &kept {
            self.tell(&k.events, k.attempts, BatchOutcome::Requeued(k.reason));
        }
        let attempts = kept.iter().map(|k| k.attempts).max().unwrap_or(1);
        let retry_after = kept.iter().filter_map(|k| k.retry_after).max();
        for event in kept
            .into_iter()
            .rev()
            .flat_map(|k| k.events.into_iter().rev())
        {
            incoming.events.push_front(event);
        }
        incoming.requeued += n;
        incoming.due = true;
        let in_a_row = self.requeued_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        let wait = self
            .retry
            .backoff_ceiling(attempts.saturating_add(in_a_row))
            .max(self.batch.flush_interval())
            .max(retry_after.unwrap_or_default());
        tracing::debug!(target: "tidings::delivery", backend = %self.shared.name, events = n, ?wait, "batch out of retries requeued");
        self.shared.metrics.paused(Some(wait));
        self.pause(Instant::now() + wait).await;
        self.shared.metrics.paused(None);
        true
    }

    /// Sends one batch until it is delivered, dropped or dead-lettered, or
    /// out of retries and kept in `kept` to be requeued; a batch too large
    /// or refused for its content is split in halves.
    fn deliver<'a>(
        &'a self,
        events: Vec<Event>,
        formed: Instant,
        kept: &'a mut Vec<Kept>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let deadline = self.shared.control.shutdown_deadline();
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return self.drop_batch(events, attempt - 1, DropReason::Shutdown);
                }
                self.listeners.notify(&DispatchAttempt {
                    backend: &self.shared.name,
                    events: &events,
                    attempt,
                });
                let result = self.until_deadline(self.sink.send_batch(&events)).await;
                let error = match result {
                    None => return self.drop_batch(events, attempt, DropReason::Shutdown),
                    Some(Ok(())) => {
                        self.requeued_in_a_row.store(0, Ordering::Relaxed);
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
                        self.deliver(left, formed, kept).await;
                        return self.deliver(right, formed, kept).await;
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
                if self.requeue_failed
                    && deadline.is_none()
                    && matches!(give_up, DropReason::RetriesExhausted | DropReason::Expired)
                {
                    kept.push(Kept {
                        events,
                        attempts: attempt,
                        reason: give_up,
                        error: error.to_string(),
                        retry_after: error.retry_after(),
                    });
                    return;
                }
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
            // Still pending: `requeue` tells the hook, never this.
            BatchOutcome::Requeued(_) => {}
        }
        self.report(events, attempts, outcome);
    }

    /// Settles the batch in the gauges and tells the `on_batch` hook.
    fn report(&self, events: &[Event], attempts: u32, outcome: BatchOutcome) {
        Metrics::sub(&self.shared.metrics.buffered, events.len());
        self.tell(events, attempts, outcome);
    }

    /// Tells the `on_batch` hook what became of a batch.
    fn tell(&self, events: &[Event], attempts: u32, outcome: BatchOutcome) {
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
