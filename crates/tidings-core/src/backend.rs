//! The `Backend` trait and its errors.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tidings_event::Event;

use crate::{Interest, MetricsSnapshot, Topology};

/// A boxed error from a backend or sink.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Receives events, synchronously, on the emitting thread.
///
/// `send` must never block on I/O: a backend that writes to a file, socket
/// or database queues the event for a worker of its own. `flush` and
/// `shutdown` have do-nothing defaults, which are only right for stateless
/// backends; a backend that owns a queue, connection, thread or file must
/// implement both.
pub trait Backend: Send + Sync + fmt::Debug {
    /// Hands one event to the backend.
    ///
    /// # Errors
    ///
    /// [`SendError`] when the backend did not take the event.
    fn send(&self, event: Event) -> Result<(), SendError>;

    /// Delivers everything accepted so far, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`DrainError`] when not everything was delivered in time.
    fn flush(&self, timeout: Duration) -> Result<(), DrainError> {
        let _ = timeout;
        Ok(())
    }

    /// Stops accepting events and delivers what was accepted, waiting at most
    /// `timeout`. Later sends fail with [`SendError::Closed`].
    ///
    /// # Errors
    ///
    /// [`DrainError`] when not everything was delivered in time.
    fn shutdown(&self, timeout: Duration) -> Result<(), DrainError> {
        let _ = timeout;
        Ok(())
    }

    /// Calls `visit` with the metrics of each delivery stage in this
    /// backend and below it (sink backends, async routers, their dead-letter
    /// destinations): how a report at shutdown or a health page finds every
    /// queue in a tree. The default visits nothing, which is right for a
    /// backend without a queue of its own; a router visits its branches.
    fn for_each_stage(&self, visit: &mut dyn FnMut(MetricsSnapshot)) {
        let _ = visit;
    }

    /// What this backend does with every event named `name`, if the name
    /// alone decides it (its processors are name filters). A
    /// [`Dispatch`](crate::Dispatch) asks once per name and thread, and does
    /// not build the events of a name whose interest is
    /// [`Interest::Never`]. The default, [`Interest::Sometimes`], is always
    /// right.
    fn interest(&self, name: &str) -> Interest {
        let _ = name;
        Interest::Sometimes
    }

    /// Counts one event that was refused before it was built because this
    /// backend's [`interest`](Backend::interest) in its name is
    /// [`Interest::Never`], as if it had been sent and dropped. The default
    /// counts nothing.
    fn count_refused_by_name(&self) {}

    /// What this backend is and holds (processors, the backends below it),
    /// for a listing of a built tree. The default is a leaf named after the
    /// type; routers and delivery stages describe themselves and what they
    /// hold.
    fn topology(&self) -> Topology {
        Topology::of_type::<Self>()
    }
}

impl<B: Backend + ?Sized> Backend for Arc<B> {
    fn send(&self, event: Event) -> Result<(), SendError> {
        (**self).send(event)
    }
    fn flush(&self, timeout: Duration) -> Result<(), DrainError> {
        (**self).flush(timeout)
    }
    fn shutdown(&self, timeout: Duration) -> Result<(), DrainError> {
        (**self).shutdown(timeout)
    }
    fn for_each_stage(&self, visit: &mut dyn FnMut(MetricsSnapshot)) {
        (**self).for_each_stage(visit);
    }
    fn interest(&self, name: &str) -> Interest {
        (**self).interest(name)
    }
    fn count_refused_by_name(&self) {
        (**self).count_refused_by_name();
    }
    fn topology(&self) -> Topology {
        (**self).topology()
    }
}

impl<B: Backend + ?Sized> Backend for Box<B> {
    fn send(&self, event: Event) -> Result<(), SendError> {
        (**self).send(event)
    }
    fn flush(&self, timeout: Duration) -> Result<(), DrainError> {
        (**self).flush(timeout)
    }
    fn shutdown(&self, timeout: Duration) -> Result<(), DrainError> {
        (**self).shutdown(timeout)
    }
    fn for_each_stage(&self, visit: &mut dyn FnMut(MetricsSnapshot)) {
        (**self).for_each_stage(visit);
    }
    fn interest(&self, name: &str) -> Interest {
        (**self).interest(name)
    }
    fn count_refused_by_name(&self) {
        (**self).count_refused_by_name();
    }
    fn topology(&self) -> Topology {
        (**self).topology()
    }
}

/// A backend did not take an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The backend's queue is full.
    #[error("queue is full")]
    QueueFull,
    /// The backend was shut down.
    #[error("backend is shut down")]
    Closed,
    /// The backend failed.
    #[error(transparent)]
    Failed(BoxError),
}

impl SendError {
    /// A failure with any error as its cause.
    pub fn failed(source: impl Into<BoxError>) -> Self {
        Self::Failed(source.into())
    }
}

/// A flush or shutdown did not deliver everything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrainError {
    /// The deadline passed with events not delivered: they are counted as
    /// dropped (`shutdown`) or still pending.
    #[error(
        "{pending} events not delivered when the deadline passed ({timeout:?} after this stage began to drain)"
    )]
    TimedOut {
        /// The time the stage was given.
        timeout: Duration,
        /// Events not delivered.
        pending: u64,
    },
    /// The backend failed.
    #[error(transparent)]
    Failed(BoxError),
    /// Some backends of a router did not drain.
    #[error("{}", describe_branches(.0))]
    Backends(Vec<(String, DrainError)>),
}

fn describe_branches(failures: &[(String, DrainError)]) -> String {
    let parts: Vec<String> = failures
        .iter()
        .map(|(name, err)| format!("backend {name:?}: {err}"))
        .collect();
    parts.join("; ")
}
