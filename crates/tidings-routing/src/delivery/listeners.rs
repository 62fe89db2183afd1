//! Dispatch listeners: callbacks added and removed at run time, told of
//! each attempt to send a batch before it is made (Optimizely's
//! `OnEventDispatch`).

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use tidings_event::Event;

/// An attempt to send a batch, as told to a dispatch listener
/// ([`SinkBackend::add_dispatch_listener`](crate::SinkBackend::add_dispatch_listener))
/// just before the sink is called.
#[derive(Debug)]
#[non_exhaustive]
pub struct DispatchAttempt<'a> {
    /// The backend's name.
    pub backend: &'a str,
    /// The events about to be sent, in order.
    pub events: &'a [Event],
    /// This attempt's number for these events: 1 for the first, 2 for
    /// the first retry, … (a half of a batch split after a refusal counts
    /// from 1 again, as does a batch sent again after
    /// [`requeue_failed`](crate::SinkBackendBuilder::requeue_failed)).
    pub attempt: u32,
}

/// The id of a dispatch listener, to remove it with
/// [`SinkBackend::remove_dispatch_listener`](crate::SinkBackend::remove_dispatch_listener);
/// unique in the process, so another backend's id removes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(u64);

type Listener = Arc<dyn Fn(&DispatchAttempt<'_>) + Send + Sync>;

/// A backend's listeners: a snapshot replaced on each change, so the
/// worker reads it without holding a lock while listeners run, and reads
/// nothing but one atomic when there are none.
#[derive(Default)]
pub(crate) struct Listeners {
    /// `list.len()`, read first on every attempt.
    count: AtomicUsize,
    list: RwLock<Arc<[(ListenerId, Listener)]>>,
    /// Whether a panic was logged at `warn` already.
    panicked: AtomicBool,
}

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listeners")
            .field("count", &self.count.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Listeners {
    pub(crate) fn add(&self, listener: Listener) -> ListenerId {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let id = ListenerId(NEXT_ID.fetch_add(1, Ordering::Relaxed));
        let mut list = self.list.write().unwrap_or_else(PoisonError::into_inner);
        let mut next: Vec<_> = list.iter().cloned().collect();
        next.push((id, listener));
        *list = next.into();
        self.count.store(list.len(), Ordering::Release);
        id
    }

    pub(crate) fn remove(&self, id: ListenerId) -> bool {
        let mut list = self.list.write().unwrap_or_else(PoisonError::into_inner);
        if !list.iter().any(|(each, _)| *each == id) {
            return false;
        }
        let next: Vec<_> = list
            .iter()
            .filter(|(each, _)| *each != id)
            .cloned()
            .collect();
        *list = next.into();
        self.count.store(list.len(), Ordering::Release);
        true
    }

    /// Tells every listener of `attempt`, in the order they were added; a
    /// listener that panics is logged and the others still run.
    pub(crate) fn notify(&self, attempt: &DispatchAttempt<'_>) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let list = self
            .list
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for (id, listener) in list.iter() {
            if catch_unwind(AssertUnwindSafe(|| listener(attempt))).is_err() {
                if self.panicked.swap(true, Ordering::Relaxed) {
                    tracing::debug!(target: "tidings::delivery", backend = attempt.backend, listener = id.0, "dispatch listener panicked");
                } else {
                    tracing::warn!(target: "tidings::delivery", backend = attempt.backend, listener = id.0, "dispatch listener panicked; the batch is sent all the same (later panics are logged at debug)");
                }
            }
        }
    }
}

/// A dispatch listener that logs each attempt at `INFO` (target
/// `tidings::dispatch`): the backend, the attempt, the number of events
/// and the ids of the first and last. What `log_dispatch = true` adds to a
/// sink in a config.
///
/// ```
/// # use tidings_routing::{SinkBackend, log_dispatch};
/// # use tidings_test::RecordingSink;
/// let backend = SinkBackend::builder("out", RecordingSink::new()).build()?;
/// let id = backend.add_dispatch_listener(log_dispatch);
/// assert!(backend.remove_dispatch_listener(id));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn log_dispatch(attempt: &DispatchAttempt<'_>) {
    tracing::info!(
        target: "tidings::dispatch",
        backend = attempt.backend,
        attempt = attempt.attempt,
        events = attempt.events.len(),
        first = %attempt.events.first().map(Event::id).map(|id| id.to_string()).unwrap_or_default(),
        last = %attempt.events.last().map(Event::id).map(|id| id.to_string()).unwrap_or_default(),
        "sending a batch"
    );
}
