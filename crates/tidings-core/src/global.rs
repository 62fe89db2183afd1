//! The process-wide default dispatch and per-thread scoped overrides.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use tidings_event::EventId;

use crate::{DEFAULT_DRAIN_TIMEOUT, Dispatch, EmitError};

static GLOBAL: OnceLock<Dispatch> = OnceLock::new();

/// Live [`DefaultGuard`]s across all threads; while zero, no thread-local is
/// read on the emit path.
static SCOPED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static LOCAL: RefCell<Option<Dispatch>> = const { RefCell::new(None) };
}

/// A global default was already installed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("a global default tracker is already installed")]
pub struct SetGlobalError(());

/// Drains the global default's backends when dropped, waiting at most
/// [`DEFAULT_DRAIN_TIMEOUT`]. Returned by [`init`] and [`try_init`].
///
/// Bind it to a named variable in `main` (`let _guard = tidings::init(..);`):
/// `let _ = ...` drops it, and so shuts the backends down, at once.
#[must_use = "dropping the guard shuts the global tracker's backends down; bind it with `let _guard = ...`"]
#[derive(Debug)]
pub struct FlushGuard(());

impl Drop for FlushGuard {
    fn drop(&mut self) {
        if let Some(dispatch) = GLOBAL.get() {
            if let Err(error) = dispatch.shutdown(DEFAULT_DRAIN_TIMEOUT) {
                tracing::warn!(%error, "tidings: backends did not drain at shutdown");
            }
            crate::report(
                &dispatch.undelivered(),
                "when the `init` guard was dropped (its drain waits at most 5 s)",
            );
        }
    }
}

/// Installs `dispatch` as the process-wide default used by [`emit`].
///
/// # Errors
///
/// [`SetGlobalError`] when a global default was already installed (it stays).
pub fn try_init(dispatch: Dispatch) -> Result<FlushGuard, SetGlobalError> {
    GLOBAL.set(dispatch).map_err(|_| SetGlobalError(()))?;
    Ok(FlushGuard(()))
}

/// Installs `dispatch` as the process-wide default used by [`emit`].
///
/// # Panics
///
/// When a global default was already installed; use [`try_init`] to handle that.
pub fn init(dispatch: Dispatch) -> FlushGuard {
    match try_init(dispatch) {
        Ok(guard) => guard,
        Err(err) => panic!("tidings::init: {err}"),
    }
}

/// Restores the previous thread default when dropped. Returned by [`set_default`].
#[must_use = "the default is removed as soon as the guard is dropped; bind it with `let _guard = ...`"]
#[derive(Debug)]
pub struct DefaultGuard {
    previous: Option<Dispatch>,
}

impl Drop for DefaultGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = LOCAL.try_with(|local| *local.borrow_mut() = previous);
        SCOPED.fetch_sub(1, Ordering::Release);
    }
}

/// Makes `dispatch` the default for this thread until the guard is
/// dropped, taking precedence over the global default. Meant for tests.
pub fn set_default(dispatch: &Dispatch) -> DefaultGuard {
    SCOPED.fetch_add(1, Ordering::Acquire);
    let previous = LOCAL.with(|local| local.borrow_mut().replace(dispatch.clone()));
    DefaultGuard { previous }
}

/// Runs `f` with the current default: this thread's, else the global one.
/// Returns `None` when there is neither.
pub fn with_default<R>(f: impl FnOnce(&Dispatch) -> R) -> Option<R> {
    if SCOPED.load(Ordering::Acquire) > 0 {
        let local = LOCAL
            .try_with(|local| local.borrow().clone())
            .ok()
            .flatten();
        if let Some(dispatch) = local {
            return Some(f(&dispatch));
        }
    }
    GLOBAL.get().map(f)
}

/// Emits through the default dispatch (see [`Dispatch::emit`]): what an
/// instrumented library calls, leaving the choice of backends to the
/// application.
///
/// Returns `Ok(None)` without looking at `name` or `data` when no default
/// is installed, so instrumented libraries cost almost nothing in programs
/// that do not track (and, as [`Dispatch::emit`], when the backend drops
/// every event of this name).
///
/// # Errors
///
/// [`EmitError`] when the name is invalid or the data is not representable
/// as JSON.
pub fn emit(
    name: impl Into<Cow<'static, str>>,
    data: impl Serialize,
) -> Result<Option<EventId>, EmitError> {
    with_default(|dispatch| dispatch.emit(name, data))
        .transpose()
        .map(Option::flatten)
}
