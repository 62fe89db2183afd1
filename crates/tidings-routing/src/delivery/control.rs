//! Flush and shutdown requests between callers and a worker thread.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct State {
    flush_requested: u64,
    flush_done: u64,
    flush_deadline: Option<Instant>,
    shutdown_deadline: Option<Instant>,
    done: bool,
}

/// Shared between the callers of `flush`/`shutdown` (blocking, with a
/// timeout) and the worker (which polls it whenever it is woken).
#[derive(Debug, Default)]
pub(crate) struct Control {
    state: Mutex<State>,
    changed: Condvar,
}

impl Control {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks for a flush finishing by `deadline`; returns its ticket.
    pub(crate) fn request_flush(&self, deadline: Instant) -> u64 {
        let mut state = self.lock();
        state.flush_requested += 1;
        state.flush_deadline = Some(deadline);
        state.flush_requested
    }

    /// Waits until flush `ticket` is done (or the worker ended), at most until `deadline`.
    pub(crate) fn wait_flush(&self, ticket: u64, deadline: Instant) -> bool {
        self.wait_until(deadline, |s| s.flush_done >= ticket || s.done)
    }

    /// Starts shutdown with `deadline` (an earlier shutdown's deadline stays).
    pub(crate) fn request_shutdown(&self, deadline: Instant) {
        let mut state = self.lock();
        state.shutdown_deadline.get_or_insert(deadline);
    }

    /// Waits until the worker ended, at most until `deadline`.
    pub(crate) fn wait_done(&self, deadline: Instant) -> bool {
        self.wait_until(deadline, |s| s.done)
    }

    fn wait_until(&self, deadline: Instant, mut ready: impl FnMut(&State) -> bool) -> bool {
        let mut state = self.lock();
        loop {
            if ready(&state) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The newest flush ticket not yet done, and its deadline.
    pub(crate) fn pending_flush(&self) -> Option<(u64, Option<Instant>)> {
        let state = self.lock();
        (state.flush_requested > state.flush_done)
            .then_some((state.flush_requested, state.flush_deadline))
    }

    pub(crate) fn complete_flush(&self, ticket: u64) {
        let mut state = self.lock();
        state.flush_done = state.flush_done.max(ticket);
        drop(state);
        self.changed.notify_all();
    }

    pub(crate) fn shutdown_deadline(&self) -> Option<Instant> {
        self.lock().shutdown_deadline
    }

    pub(crate) fn finish(&self) {
        self.lock().done = true;
        self.changed.notify_all();
    }

    pub(crate) fn is_done(&self) -> bool {
        self.lock().done
    }
}

/// Runs `worker` on a thread of its own with a single-threaded tokio
/// runtime (with the I/O and time drivers, so sinks can use tokio's sockets), so delivery works the same from a plain `fn main` and from
/// inside any runtime, and a slow sink never stalls another.
pub(crate) fn spawn_worker<F>(name: &str, worker: F) -> std::io::Result<JoinHandle<()>>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    // The runtime is built (and dropped) on the worker's own thread: one
    // dropped on the caller's thread panics when the caller is itself inside
    // a runtime (a collector building its tree), should the spawn fail.
    let (started, start) = std::sync::mpsc::sync_channel(1);
    let handle = std::thread::Builder::new()
        .name(format!("tidings-{name}"))
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => {
                    let _ = started.send(Ok(()));
                    runtime.block_on(worker);
                }
                Err(error) => {
                    let _ = started.send(Err(error));
                }
            }
        })?;
    match start.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(error)) => {
            let _ = handle.join();
            Err(error)
        }
        Err(_) => Err(std::io::Error::other(
            "the worker thread ended before it started",
        )),
    }
}

/// Joins `handle` if its worker has finished; a worker still running past
/// the caller's deadline is left to finish on its own.
pub(crate) fn join_if_done(control: &Control, handle: &Mutex<Option<JoinHandle<()>>>) {
    if control.is_done() {
        let handle = handle.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

/// Time a caller of `shutdown` waits beyond its timeout for the worker to
/// observe the deadline and report.
pub(crate) const SHUTDOWN_SLACK: Duration = Duration::from_millis(50);
