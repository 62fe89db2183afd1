//! [`Dispatch`]: stamps events at the call site and hands them to a backend.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tidings_event::{DataError, Event, EventId, EventName, NameError};

use crate::{Backend, BoxError, DrainError, Interest, SendError};

/// How long a [`FlushGuard`](crate::FlushGuard) waits for backends to
/// drain: 5 s.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Emits events into a backend (usually the root of a routing tree).
///
/// [`emit`](Dispatch::emit) validates the name, stamps a UUID v7 id and the
/// current time, and attaches the context current on the calling thread
/// (see [`enter_context`](crate::enter_context)) before the backend sees
/// the event, so workers never read thread-locals. Cloning is cheap; clones
/// share the backend. `B` is the backend's type; [`Dispatch::into_dyn`]
/// forgets it, which is what the default ([`set_default`](crate::set_default),
/// [`try_init`](crate::try_init)) holds.
///
/// Call [`Dispatch::shutdown`] before the program exits. When the last
/// clone of a dispatch made by [`Dispatch::new`] goes with events not
/// delivered and `shutdown` was never called, one summary line goes to
/// stderr (or to `tracing`, when a subscriber is installed): events are
/// never lost without a word.
///
/// ```
/// use tidings_core::{Dispatch, Event, EventName};
/// use tidings_test::RecordingBackend;
///
/// let recorder = RecordingBackend::new();
/// let dispatch = Dispatch::new(recorder.clone());
/// let _user = tidings_core::enter_context("user", serde_json::json!({"user_id": 7}));
/// dispatch.emit("page.view", serde_json::json!({"path": "/"}))?;
/// assert_eq!(recorder.events()[0].context()["user_id"], 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Dispatch<B: Backend + ?Sized = dyn Backend> {
    inner: Arc<Inner<B>>,
    /// What [`Dispatch::emit`] checks each event against before the
    /// backend sees it (a strict catalog), if anything.
    check: Option<Arc<dyn EmitCheck>>,
}

/// A check [`Dispatch::emit`] runs on each event it builds, before the
/// backend sees it, so that an event the application must not emit fails
/// at the call instead of being dropped somewhere in the tree: what a
/// tracker with a catalog installs (`tidings-catalog`'s `CatalogProcessor`).
///
/// It runs on the emitting thread for every event that gets past the name
/// filters, so it must be cheap, and must not block.
pub trait EmitCheck: Send + Sync + fmt::Debug {
    /// Passes `event` (`Ok`), or refuses it: the emit then returns
    /// [`EmitError::Invalid`] with this error, and the backend never sees
    /// the event.
    ///
    /// # Errors
    ///
    /// Why the event may not be emitted, naming the event and what is
    /// wrong with it.
    fn check(&self, event: &Event) -> Result<(), BoxError>;
}

struct Inner<B: Backend + ?Sized> {
    /// This dispatch's key in the per-thread name cache (never 0).
    id: u64,
    /// `shutdown` was called: its result told the caller.
    shut_down: AtomicBool,
    /// Whether dropping the last clone reports what was not delivered:
    /// false when something else owns the backend too.
    report_when_dropped: bool,
    backend: B,
}

impl<B: Backend + ?Sized> Drop for Inner<B> {
    fn drop(&mut self) {
        if self.report_when_dropped && !self.shut_down.load(Ordering::Acquire) {
            crate::report(
                &crate::Undelivered::of(&self.backend),
                "when the last tracker was dropped without `shutdown(timeout)`, which delivers what is queued",
            );
        }
    }
}

impl<B: Backend + ?Sized> Clone for Dispatch<B> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            check: self.check.clone(),
        }
    }
}

impl<B: Backend + ?Sized> fmt::Debug for Dispatch<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatch")
            .field("id", &self.inner.id)
            .field("backend", &&self.inner.backend)
            .field("check", &self.check)
            .finish()
    }
}

/// The key of the next dispatch in [`NAME_CACHE`]; 0 marks an empty slot.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Slots of the per-thread cache of names a backend refuses.
const NAME_CACHE_SLOTS: usize = 256;

/// One cached decision: a dispatch, a static name (address and length), and
/// whether the backend refuses every event of that name.
type NameSlot = (u64, usize, usize, bool);

thread_local! {
    /// Per thread, direct-mapped by the name's address: whether a
    /// dispatch's backend drops every event of a `&'static str` name,
    /// decided once (as `tracing` caches a callsite's interest). A
    /// collision just decides again; a backend's interest never changes.
    static NAME_CACHE: [Cell<NameSlot>; NAME_CACHE_SLOTS] =
        const { [const { Cell::new((0, 0, 0, false)) }; NAME_CACHE_SLOTS] };
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
    /// The event failed a check made at the call (a typed event's own
    /// `validate`, the dispatch's [`EmitCheck`]: a strict catalog); nothing
    /// was emitted. The error is the check's (a `tidings-catalog`
    /// `Violation`, naming the event, the property and what is wrong).
    #[error(transparent)]
    Invalid(BoxError),
    /// The backend did not take the event (a routing tree never refuses:
    /// it isolates and counts each branch's failure).
    #[error("the event was not taken: {0}")]
    NotSent(#[from] SendError),
}

impl<B: Backend + 'static> Dispatch<B> {
    /// A dispatch that owns `backend`: dropping its last clone without
    /// [`shutdown`](Dispatch::shutdown) reports events not delivered.
    pub fn new(backend: B) -> Self {
        Self::with_report(backend, true)
    }

    /// A dispatch over a backend something else also owns and shuts down
    /// (the tree of an embedded collector, as an `Arc`): dropping it
    /// reports nothing, since the backend goes on.
    pub fn over_shared(backend: B) -> Self {
        Self::with_report(backend, false)
    }

    fn with_report(backend: B, report_when_dropped: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                shut_down: AtomicBool::new(false),
                report_when_dropped,
                backend,
            }),
            check: None,
        }
    }

    /// The same dispatch, with its backend's type forgotten: what the
    /// default dispatch ([`set_default`](crate::set_default),
    /// [`try_init`](crate::try_init)) holds. Clones of either share one
    /// backend and one name cache.
    #[must_use]
    pub fn into_dyn(self) -> Dispatch {
        let inner: Arc<Inner<dyn Backend>> = self.inner;
        Dispatch {
            inner,
            check: self.check,
        }
    }
}

impl<B: Backend + ?Sized> Dispatch<B> {
    /// The same dispatch, checking each event [`emit`](Dispatch::emit)
    /// builds with `check` before the backend sees it (replacing any check
    /// it had): an event the check refuses fails the emit with
    /// [`EmitError::Invalid`]. Clones made from the result check too;
    /// [`send`](Dispatch::send) does not (its events are already built).
    #[must_use]
    pub fn with_check(mut self, check: Arc<dyn EmitCheck>) -> Self {
        self.check = Some(check);
        self
    }

    /// Emits the event `name` with `data`, in the current context.
    ///
    /// `data` is any serializable value; `null` (or `()`) becomes `{}`, as
    /// in edX.
    ///
    /// Returns the event's id, or `None` when no event was made because the
    /// backend's [`interest`](Backend::interest) in this name is
    /// [`Interest::Never`] (root name filters), decided once per name and
    /// thread for a `&'static str` name. Such an emit costs a few
    /// nanoseconds: no data is serialized, no id drawn, no context read; the
    /// backend counts it as received and filtered all the same.
    ///
    /// With a check ([`Dispatch::with_check`]), each event built is
    /// checked before the backend sees it (after the name filters above:
    /// a name the backend never wants is not checked).
    ///
    /// # Errors
    ///
    /// [`EmitError`] when the name is invalid, the data cannot be
    /// represented as JSON (a map with non-string keys, say), the check
    /// refuses the event ([`EmitError::Invalid`]), or the backend did not
    /// take the event.
    pub fn emit(
        &self,
        name: impl Into<Cow<'static, str>>,
        data: impl Serialize,
    ) -> Result<Option<EventId>, EmitError> {
        let name = name.into();
        if let Cow::Borrowed(name) = name
            && self.refuses(name)
        {
            self.inner.backend.count_refused_by_name();
            return Ok(None);
        }
        // Two copies of the same lines: without a check, the event is built
        // where `send` takes it; a check holds it in place first.
        let Some(check) = &self.check else {
            let event = Event::from_serializable(EventName::new(name)?, &data)?
                .with_context(tidings_context::current());
            return Ok(Some(self.send(event)?));
        };
        let event = Event::from_serializable(EventName::new(name)?, &data)?
            .with_context(tidings_context::current());
        check.check(&event).map_err(EmitError::Invalid)?;
        Ok(Some(self.send(event)?))
    }

    /// Whether the backend drops every event named `name` (a valid name
    /// whose interest is `Never`), from this thread's cache.
    fn refuses(&self, name: &'static str) -> bool {
        let (id, address) = (self.inner.id, name.as_ptr() as usize);
        let slot = (address >> 3) % NAME_CACHE_SLOTS;
        NAME_CACHE.with(|cache| {
            let (cached_id, cached_address, cached_len, refused) = cache[slot].get();
            if (cached_id, cached_address, cached_len) == (id, address, name.len()) {
                return refused;
            }
            let refused = EventName::new(name).is_ok()
                && self.inner.backend.interest(name) == Interest::Never;
            cache[slot].set((id, address, name.len(), refused));
            refused
        })
    }

    /// Hands an already built event to the backend as it is: its context
    /// is not merged with the current one. Returns its id.
    ///
    /// # Errors
    ///
    /// [`SendError`] when the backend did not take it.
    pub fn send(&self, event: Event) -> Result<EventId, SendError> {
        let id = event.id();
        self.inner.backend.send(event).map(|()| id)
    }

    /// Delivers everything accepted so far, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`DrainError`] when not everything was delivered in time.
    pub fn flush(&self, timeout: Duration) -> Result<(), DrainError> {
        self.inner.backend.flush(timeout)
    }

    /// Stops the backend, delivering what it accepted, waiting at most
    /// `timeout`; then [`Dispatch::undelivered`] says what never arrived.
    ///
    /// # Errors
    ///
    /// [`DrainError`] when not everything was delivered in time.
    pub fn shutdown(&self, timeout: Duration) -> Result<(), DrainError> {
        self.inner.shut_down.store(true, Ordering::Release);
        self.inner.backend.shutdown(timeout)
    }

    /// What the delivery stages under the backend accepted and did not
    /// deliver: dropped, dead-lettered, still pending, by stage.
    #[must_use]
    pub fn undelivered(&self) -> crate::Undelivered {
        crate::Undelivered::of(&self.inner.backend)
    }

    /// The check [`emit`](Dispatch::emit) runs, if any.
    #[must_use]
    pub fn check(&self) -> Option<&Arc<dyn EmitCheck>> {
        self.check.as_ref()
    }

    /// The backend.
    #[must_use]
    pub fn backend(&self) -> &B {
        &self.inner.backend
    }
}
