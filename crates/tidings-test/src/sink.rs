//! `RecordingSink`: an async sink that records batches and plays a script
//! of failures, for tests of delivery behaviour.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tidings_event::Event;
use tidings_routing::{Sink, SinkError, async_trait};

/// What a [`RecordingSink`] answers to one `send_batch` call.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Accept the batch.
    Ok,
    /// Fail as an HTTP receiver answering `status` would, with an optional
    /// `Retry-After`.
    Status(u16, Option<Duration>),
    /// Never answer (the call pends until cancelled).
    Hang,
}

#[derive(Debug, Default)]
struct State {
    script: VecDeque<Answer>,
    /// Batches the sink accepted.
    delivered: Vec<Vec<Event>>,
    /// When each call started, accepted or not.
    calls: Vec<(Instant, usize)>,
    refuse_over: Option<usize>,
    poison: Option<String>,
    flushes: usize,
    shutdowns: usize,
}

/// A [`Sink`] that records every batch it accepts and answers calls from a
/// script (then `Ok` once the script is exhausted).
///
/// Clones share the record: keep one to inspect while a `SinkBackend` owns
/// the other. Recorded events hold no [`Lease`](tidings_event::Lease):
/// recording them counts as delivering them.
#[derive(Debug, Clone, Default)]
pub struct RecordingSink {
    state: Arc<Mutex<State>>,
}

impl RecordingSink {
    /// A sink that accepts everything.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A sink that answers its first calls with `script`, in order.
    #[must_use]
    pub fn scripted(script: impl IntoIterator<Item = Answer>) -> Self {
        let sink = Self::new();
        sink.lock().script = script.into_iter().collect();
        sink
    }

    /// Refuses (as HTTP 413) every batch of more than `max` events.
    #[must_use]
    pub fn refusing_batches_over(self, max: usize) -> Self {
        self.lock().refuse_over = Some(max);
        self
    }

    /// Refuses (as HTTP 400, invalid content) every batch holding an
    /// event named `name`, as a database refuses a batch with one value it
    /// cannot store.
    #[must_use]
    pub fn refusing_events_named(self, name: &str) -> Self {
        self.lock().poison = Some(name.to_owned());
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The batches accepted, in order.
    #[must_use]
    pub fn batches(&self) -> Vec<Vec<Event>> {
        self.lock().delivered.clone()
    }

    /// Every accepted event, in order.
    #[must_use]
    pub fn events(&self) -> Vec<Event> {
        self.lock().delivered.iter().flatten().cloned().collect()
    }

    /// When each `send_batch` call started and how many events it carried.
    #[must_use]
    pub fn calls(&self) -> Vec<(Instant, usize)> {
        self.lock().calls.clone()
    }

    /// How many times `flush` and `shutdown` were called.
    #[must_use]
    pub fn flushes_and_shutdowns(&self) -> (usize, usize) {
        let state = self.lock();
        (state.flushes, state.shutdowns)
    }
}

#[async_trait]
impl Sink for RecordingSink {
    async fn send_batch(&self, batch: &[Event]) -> Result<(), SinkError> {
        let answer = {
            let mut state = self.lock();
            state.calls.push((Instant::now(), batch.len()));
            let poisoned = state
                .poison
                .as_deref()
                .is_some_and(|name| batch.iter().any(|e| e.name().as_str() == name));
            if state.refuse_over.is_some_and(|max| batch.len() > max) {
                Answer::Status(413, None)
            } else if poisoned {
                Answer::Status(400, None)
            } else {
                state.script.pop_front().unwrap_or(Answer::Ok)
            }
        };
        match answer {
            Answer::Ok => {
                // Recorded means delivered: the copies kept let go of any
                // lease, as a real sink's delivered events do.
                let mut copies = batch.to_vec();
                copies.iter_mut().for_each(|e| drop(e.take_lease()));
                self.lock().delivered.push(copies);
                Ok(())
            }
            Answer::Status(status, retry_after) => {
                Err(SinkError::from_http_status(status, retry_after))
            }
            Answer::Hang => {
                std::future::pending::<()>().await;
                Ok(())
            }
        }
    }

    async fn flush(&self) -> Result<(), SinkError> {
        self.lock().flushes += 1;
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), SinkError> {
        self.lock().shutdowns += 1;
        Ok(())
    }
}
