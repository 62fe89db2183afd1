//! Installing a [`Tracker`] as the default that [`emit`](crate::emit) uses.
//! The default itself lives in `tidings-core`, so that an instrumented
//! library that only emits depends on that crate alone.

use tidings_core::{DefaultGuard, FlushGuard, SetGlobalError};

use crate::Tracker;

/// Installs `tracker` as the process-wide default used by
/// [`emit`](crate::emit).
///
/// # Errors
///
/// [`SetGlobalError`] when a global default was already installed (it stays).
pub fn try_init(tracker: Tracker) -> Result<FlushGuard, SetGlobalError> {
    tidings_core::try_init(tracker.dispatch())
}

/// Installs `tracker` as the process-wide default used by
/// [`emit`](crate::emit). Keep the returned guard alive until the program
/// exits: dropping it drains the tracker's backends.
///
/// # Panics
///
/// When a global default was already installed; use [`try_init`] to handle that.
pub fn init(tracker: Tracker) -> FlushGuard {
    tidings_core::init(tracker.dispatch())
}

/// Makes `tracker` the default for this thread until the guard is dropped,
/// taking precedence over the global default. Meant for tests.
pub fn set_default(tracker: &Tracker) -> DefaultGuard {
    tidings_core::set_default(&tracker.dispatch())
}
