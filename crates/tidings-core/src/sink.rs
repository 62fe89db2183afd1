//! The async `Sink` trait that does the I/O, and `SinkError`.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use tidings_event::Event;

use crate::BoxError;

/// Delivers batches of events to an external system: a file, an HTTP
/// service, a database, a broker.
///
/// A sink never sees the emitting thread: a delivery engine (tidings-routing's
/// `SinkBackend`) queues events, batches them and calls the sink from a
/// worker of its own, retrying failed batches according to its retry
/// policy. The batch is borrowed so that the caller can retry it.
///
/// Sinks own connections, files or buffers, so `shutdown` is required.
///
/// # Concurrency
///
/// A `SinkBackend` calls its sink from one worker, one call at a time:
/// `send_batch`, `flush`, `tick` and `shutdown` never overlap, each call
/// finishes (or is dropped at a deadline) before the next starts, and
/// `shutdown` is the last. So state that only these methods touch may sit
/// behind a lock that is never contended, and a sink need not be written for
/// parallel batches. The exception is a sink shared by several backends
/// (`SinkBackend::builder_arc` with one `Arc` given twice): each backend's
/// worker calls it, so such a sink must be safe under concurrent calls.
/// `size_hint` and `tick_interval` are called from the same worker between
/// those calls. A call may be dropped at any `.await` (a shutdown deadline):
/// a sink must leave its state usable, or report the next call as failed,
/// when a future of its own is dropped.
#[async_trait]
pub trait Sink: Send + Sync + fmt::Debug + 'static {
    /// Delivers one batch, all or nothing.
    ///
    /// # Errors
    ///
    /// [`SinkError`]; its kind says whether the batch may be retried, must be
    /// split (too large) or dropped.
    async fn send_batch(&self, batch: &[Event]) -> Result<(), SinkError>;

    /// Makes everything sent so far durable (fsync, broker confirms). The
    /// default does nothing, which suits sinks whose `send_batch` already
    /// waits for that.
    ///
    /// # Errors
    ///
    /// [`SinkError`] when buffered data could not be written.
    async fn flush(&self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Releases the sink's resources after the last batch.
    ///
    /// # Errors
    ///
    /// [`SinkError`] when closing failed.
    async fn shutdown(&self) -> Result<(), SinkError>;

    /// How often the worker calls [`Sink::tick`] while the sink is idle
    /// (for time-based work such as rolling a file). Defaults to never.
    fn tick_interval(&self) -> Option<std::time::Duration> {
        None
    }

    /// Periodic housekeeping, called every [`Sink::tick_interval`] between
    /// batches.
    ///
    /// # Errors
    ///
    /// [`SinkError`]; it is logged, and the next tick comes as usual.
    async fn tick(&self) -> Result<(), SinkError> {
        Ok(())
    }

    /// How many bytes `event` adds to a batch, before compression; used for
    /// the batch's `max_bytes`. Defaults to the event's wire-format length.
    /// A sink without a request size to respect (a file) returns 0, which
    /// saves measuring every event.
    fn size_hint(&self, event: &Event) -> usize {
        event.encoded_len()
    }
}

/// What kind of failure a [`SinkError`] is, which decides what happens to
/// the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SinkErrorKind {
    /// Transient (connection refused or reset, timeout, 408, 429, 5xx): the
    /// batch is retried with backoff.
    Retryable,
    /// The receiver refused the batch for good (most 4xx): it is dropped.
    Fatal,
    /// The batch is too large (413): it is split in halves, and a single
    /// event that is still refused is dropped as too large.
    TooLarge,
    /// The receiver refused the batch because of what some of its events
    /// contain (a PostgreSQL data error of class 22, an HTTP 400 or 422, a
    /// message the broker refuses): the batch is split in halves until the
    /// events at fault are found alone; those go to the dead-letter
    /// destination (reason `invalid`), every other event is delivered. One
    /// event never costs its batch.
    Invalid,
}

/// A sink failed to deliver a batch.
#[derive(Debug)]
pub struct SinkError {
    kind: SinkErrorKind,
    retry_after: Option<Duration>,
    source: BoxError,
}

impl SinkError {
    /// A transient failure; the batch is retried.
    pub fn retryable(source: impl Into<BoxError>) -> Self {
        Self::new(SinkErrorKind::Retryable, source)
    }

    /// A permanent failure; the batch is dropped.
    pub fn fatal(source: impl Into<BoxError>) -> Self {
        Self::new(SinkErrorKind::Fatal, source)
    }

    /// Some events of the batch are refused for what they contain; the
    /// batch is split to find them.
    pub fn invalid(source: impl Into<BoxError>) -> Self {
        Self::new(SinkErrorKind::Invalid, source)
    }

    /// The batch is too large; it is split.
    pub fn too_large(source: impl Into<BoxError>) -> Self {
        Self::new(SinkErrorKind::TooLarge, source)
    }

    /// An error of `kind`.
    pub fn new(kind: SinkErrorKind, source: impl Into<BoxError>) -> Self {
        Self {
            kind,
            retry_after: None,
            source: source.into(),
        }
    }

    /// Classifies an HTTP status answered to a batch: 408, 429, 500, 502,
    /// 503 and 504 are retryable, 413 is too large, 400 and 422 refuse
    /// what some events contain (the batch is split to find them),
    /// anything else is fatal.
    /// `retry_after` is the parsed `Retry-After` header, if any.
    pub fn from_http_status(status: u16, retry_after: Option<Duration>) -> Self {
        let kind = match status {
            408 | 429 | 500 | 502 | 503 | 504 => SinkErrorKind::Retryable,
            413 => SinkErrorKind::TooLarge,
            400 | 422 => SinkErrorKind::Invalid,
            _ => SinkErrorKind::Fatal,
        };
        let mut error = Self::new(kind, format!("server answered HTTP {status}"));
        error.retry_after = retry_after;
        error
    }

    /// Asks the sender to wait at least `delay` before the next attempt
    /// (an HTTP `Retry-After`); the whole sink pauses for that long.
    #[must_use]
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// The kind of failure.
    #[must_use]
    pub fn kind(&self) -> SinkErrorKind {
        self.kind
    }

    /// Whether the batch may be retried.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.kind == SinkErrorKind::Retryable
    }

    /// The minimum wait before the next attempt, if the receiver asked for one.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            SinkErrorKind::Retryable => "retryable",
            SinkErrorKind::Fatal => "fatal",
            SinkErrorKind::TooLarge => "batch too large",
            SinkErrorKind::Invalid => "invalid events",
        };
        write!(f, "{kind} sink error: {}", self.source)?;
        if let Some(delay) = self.retry_after {
            write!(f, " (retry after {delay:?})")?;
        }
        Ok(())
    }
}

impl std::error::Error for SinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_are_classified_as_the_retry_policy_requires() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(
                SinkError::from_http_status(status, None).is_retryable(),
                "{status}"
            );
        }
        for status in [400, 422] {
            assert_eq!(
                SinkError::from_http_status(status, None).kind(),
                SinkErrorKind::Invalid,
                "{status}"
            );
        }
        for status in [401, 403, 404, 409, 501] {
            assert_eq!(
                SinkError::from_http_status(status, None).kind(),
                SinkErrorKind::Fatal,
                "{status}"
            );
        }
        assert_eq!(
            SinkError::from_http_status(413, None).kind(),
            SinkErrorKind::TooLarge
        );
        let err = SinkError::from_http_status(503, Some(Duration::from_secs(2)));
        assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(
            err.to_string(),
            "retryable sink error: server answered HTTP 503 (retry after 2s)"
        );
    }
}
