//! `IoThread`: the thread and single-threaded tokio runtime a `NatsSink`
//! owns, on which the async-nats client and its background tasks live.

use std::future::Future;
use std::io;
use std::sync::{Mutex, PoisonError};

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;
use tokio::task::{JoinError, JoinHandle};

/// One thread driving a current-thread runtime (I/O and time drivers)
/// until it is stopped or dropped.
///
/// async-nats spawns its connection handler on the runtime it is created
/// in; keeping that runtime here, rather than borrowing the delivery
/// worker's, lets the sink connect in `build` (from any thread, inside a
/// runtime or not) and keeps the client alive for as long as the sink.
#[derive(Debug)]
pub(crate) struct IoThread {
    handle: Handle,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    stopped: Mutex<Option<oneshot::Receiver<()>>>,
}

impl IoThread {
    /// Starts the thread.
    pub(crate) fn start() -> io::Result<Self> {
        // Built and dropped on its own thread: a runtime dropped on the
        // caller's thread panics when the caller is inside a runtime.
        let (started, start) = std::sync::mpsc::sync_channel(1);
        let (stop, stop_requested) = oneshot::channel::<()>();
        let (done, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("tidings-nats".to_owned())
            .spawn(move || {
                let runtime = match Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = started.send(Err(error));
                        return;
                    }
                };
                let _ = started.send(Ok(runtime.handle().clone()));
                // Runs until `stop` sends or is dropped (the sink was dropped).
                runtime.block_on(async {
                    let _ = stop_requested.await;
                });
                drop(runtime);
                let _ = done.send(());
            })?;
        let handle = start
            .recv()
            .map_err(|_| io::Error::other("the NATS thread ended before it started"))??;
        Ok(Self {
            handle,
            stop: Mutex::new(Some(stop)),
            stopped: Mutex::new(Some(stopped)),
        })
    }

    /// Runs `future` on the thread; dropping the returned task aborts it.
    pub(crate) fn spawn<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Task(self.handle.spawn(future))
    }

    /// Stops the runtime (dropping the client and its connection) and
    /// waits until the thread has let go of it.
    pub(crate) async fn stop(&self) {
        let stop = self
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let stopped = self
            .stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        if let Some(stopped) = stopped {
            let _ = stopped.await;
        }
    }
}

/// A task on the [`IoThread`], aborted when dropped (when the delivery
/// engine cancels a call at its shutdown deadline).
#[derive(Debug)]
pub(crate) struct Task<T>(JoinHandle<T>);

impl<T> Task<T> {
    /// Waits for the task's output; an error when it was cancelled
    /// because the runtime has stopped.
    pub(crate) async fn join(mut self) -> Result<T, JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
