//! `SourceRunner`: a [`Source`] read on a thread of its own into an
//! [`AsyncRouter`], never faster than the router's queue takes events.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tidings_core::{Source, SourceMetrics};
use tidings_event::{Event, FailureStreak, StreakLog};

use super::control::spawn_worker;
use super::{AsyncRouter, SpawnError};
use crate::SendError;

/// The most events asked of a source at once.
pub const DEFAULT_FETCH_MAX: usize = 500;

/// How long one fetch waits for messages: a stop is seen within this.
const FETCH_WAIT: Duration = Duration::from_millis(500);

/// The pause while the router's queue has no room for a fetch.
const ROOM_BACKOFF: Duration = Duration::from_millis(2);

/// The pause after a failed fetch.
const ERROR_BACKOFF: Duration = Duration::from_millis(500);

/// Reads a [`Source`] into an [`AsyncRouter`] on a thread of its own.
///
/// It fetches only when the router's queue has room for a whole fetch, so
/// a slow tree slows the reading (the broker keeps the backlog) and memory
/// stays bounded by the queue. [`SourceRunner::stop`] ends the reading;
/// the owner then drains the router between the source's
/// [`hold`](Source::hold) and [`release`](Source::release), as
/// [`Source`] documents.
pub struct SourceRunner {
    name: String,
    source: Arc<dyn Source>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for SourceRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceRunner")
            .field("name", &self.name)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl SourceRunner {
    /// Starts reading `source` into `into`, at most `fetch_max` events at a
    /// time, on a thread named after `name`.
    ///
    /// # Errors
    ///
    /// [`SpawnError`] when the thread cannot be started.
    pub fn start(
        name: impl Into<String>,
        source: Arc<dyn Source>,
        into: Arc<AsyncRouter>,
        fetch_max: usize,
    ) -> Result<Self, SpawnError> {
        let name = name.into();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = Reader {
            name: name.clone(),
            source: source.clone(),
            into,
            fetch_max: fetch_max.max(1),
            stop: stop.clone(),
        };
        let thread =
            spawn_worker(&name, reader.run()).map_err(|error| SpawnError::new(&name, error))?;
        Ok(Self {
            name,
            source,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The source read.
    #[must_use]
    pub fn source(&self) -> &Arc<dyn Source> {
        &self.source
    }

    /// The source's counters.
    #[must_use]
    pub fn metrics(&self) -> SourceMetrics {
        self.source.metrics()
    }

    /// Stops reading and waits for the thread to end (a fetch under way
    /// ends within half a second; its events are given back to the source
    /// if the router no longer takes them). Idempotent.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for SourceRunner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

struct Reader {
    name: String,
    source: Arc<dyn Source>,
    into: Arc<AsyncRouter>,
    fetch_max: usize,
    stop: Arc<AtomicBool>,
}

impl Reader {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    async fn run(self) {
        let failing = FailureStreak::default();
        while !self.stopped() {
            if !self.into.has_room(self.fetch_max) {
                tokio::time::sleep(ROOM_BACKOFF).await;
                continue;
            }
            let events = match self.source.fetch(self.fetch_max, FETCH_WAIT).await {
                Ok(events) => {
                    if let Some(failures) = failing.succeeded() {
                        tracing::info!(target: "tidings::source", source = %self.name, failures, "reading again after {failures} failures");
                    }
                    events
                }
                Err(error) => {
                    match failing.failed() {
                        StreakLog::First => {
                            tracing::warn!(target: "tidings::source", source = %self.name, %error, "cannot read the source; retrying, with a summary every 30 s while it lasts")
                        }
                        StreakLog::Reminder { failures, .. } => {
                            tracing::warn!(target: "tidings::source", source = %self.name, %error, failures, "still cannot read the source: {failures} failures so far")
                        }
                        _ => {}
                    }
                    tokio::time::sleep(ERROR_BACKOFF).await;
                    continue;
                }
            };
            if events.is_empty() {
                continue;
            }
            if let Some(events) = self.admit(events).await {
                self.source.unfetch(events).await;
            }
        }
    }

    /// Puts `events` in the router's queue, waiting for room; gives them
    /// back when the router is closed or the runner stops first.
    async fn admit(&self, events: Vec<Event>) -> Option<Vec<Event>> {
        loop {
            match self.into.reserve(events.len()) {
                Ok(reservation) => {
                    return reservation.send_all(events).err().map(|(_, events)| events);
                }
                Err(SendError::QueueFull) if !self.stopped() => {
                    tokio::time::sleep(ROOM_BACKOFF).await;
                }
                Err(_) => return Some(events),
            }
        }
    }
}
