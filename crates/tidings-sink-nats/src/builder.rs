//! `NatsSinkBuilder`: the sink's options, their defaults and the checks
//! made without I/O (stream names, subjects, the deduplication window).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tidings_core::RedactedUrl;

use crate::SubjectTemplate;
use crate::connection::Setup;
use crate::error::{NatsError, scrub_error};
use crate::io::IoThread;
use crate::sink::NatsSink;

/// Default for [`NatsSinkBuilder::url`].
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";
/// Default for [`NatsSinkBuilder::subject`].
pub const DEFAULT_SUBJECT: &str = "events.{name}";
/// Default for [`NatsSinkBuilder::max_in_flight`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;
/// Default for [`NatsSinkBuilder::ack_timeout_ms`].
pub const DEFAULT_ACK_TIMEOUT_MS: u64 = 5_000;
/// Default for [`NatsSinkBuilder::duplicate_window_seconds`].
pub const DEFAULT_DUPLICATE_WINDOW_SECONDS: u64 = 120;
/// Default for [`NatsSinkBuilder::retry_horizon`]: 2 minutes.
pub const DEFAULT_RETRY_HORIZON: Duration = Duration::from_secs(120);

/// Log target of the sink's own messages.
pub(crate) const TARGET: &str = "tidings::sink::nats";

/// Room left in the server's `max_payload` for the message's headers.
pub(crate) const HEADER_ROOM: usize = 128;

/// Builds a [`NatsSink`]. Created by [`NatsSink::builder`]; each setter
/// is also the option's key in a config file.
#[derive(Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct NatsSinkBuilder {
    url: String,
    subject: String,
    stream: Option<String>,
    create_stream: bool,
    duplicate_window_seconds: u64,
    max_in_flight: usize,
    ack_timeout_ms: u64,
    retry_horizon: Duration,
}

impl fmt::Debug for NatsSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsSinkBuilder")
            .field("url", &RedactedUrl::new(&self.url))
            .field("subject", &self.subject)
            .field("stream", &self.stream)
            .field("create_stream", &self.create_stream)
            .field("duplicate_window_seconds", &self.duplicate_window_seconds)
            .field("max_in_flight", &self.max_in_flight)
            .field("ack_timeout_ms", &self.ack_timeout_ms)
            .field("retry_horizon", &self.retry_horizon)
            .finish()
    }
}

/// What `check` approved, ready to connect with.
pub(crate) struct Checked {
    template: SubjectTemplate,
    create: Option<(String, String)>,
}

impl NatsSinkBuilder {
    /// A builder with every default ([`NatsSink::builder`]).
    pub(crate) fn new() -> Self {
        Self {
            url: DEFAULT_URL.to_owned(),
            subject: DEFAULT_SUBJECT.to_owned(),
            stream: None,
            create_stream: false,
            duplicate_window_seconds: DEFAULT_DUPLICATE_WINDOW_SECONDS,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            ack_timeout_ms: DEFAULT_ACK_TIMEOUT_MS,
            retry_horizon: DEFAULT_RETRY_HORIZON,
        }
    }

    /// The server, such as `nats://127.0.0.1:4222` (user and password or a
    /// token may be given in the URL; several servers separated by
    /// commas). Defaults to [`DEFAULT_URL`].
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// The subject template: `{name}` is replaced by the event name,
    /// sanitised as described on [`SubjectTemplate`]. Defaults to
    /// [`DEFAULT_SUBJECT`] (`events.{name}`).
    pub fn subject(mut self, template: impl Into<String>) -> Self {
        self.subject = template.into();
        self
    }

    /// The stream the subjects belong to. Required with
    /// [`create_stream`](Self::create_stream); otherwise, when not given,
    /// the stream capturing the template's subjects is looked up.
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.stream = Some(name.into());
        self
    }

    /// Creates the stream at `build` if it does not exist, capturing the
    /// template's subjects (`events.{name}` → `events.>`) with the
    /// [`duplicate_window_seconds`](Self::duplicate_window_seconds). An
    /// existing stream is used as it is. Defaults to false.
    pub fn create_stream(mut self, create: bool) -> Self {
        self.create_stream = create;
        self
    }

    /// The duplicate window of a stream this sink creates: within it, a
    /// message whose `Nats-Msg-Id` was already stored is acknowledged as a
    /// duplicate and not stored again. Defaults to 120.
    pub fn duplicate_window_seconds(mut self, seconds: u64) -> Self {
        self.duplicate_window_seconds = seconds;
        self
    }

    /// How many publishes may await their acknowledgement at once.
    /// Defaults to 256.
    pub fn max_in_flight(mut self, messages: usize) -> Self {
        self.max_in_flight = messages;
        self
    }

    /// How long a publish may wait for its acknowledgement (and for room
    /// in the client's buffer while the server is unreachable); also the
    /// timeout of connecting and of JetStream API requests at `build`.
    /// Defaults to 5000.
    pub fn ack_timeout_ms(mut self, millis: u64) -> Self {
        self.ack_timeout_ms = millis;
        self
    }

    /// How long after its first attempt a batch may still be retried
    /// (pass the delivery engine's `RetryPolicy::max_batch_age`). `build`
    /// warns when the stream's duplicate window is shorter, since a retry
    /// after the window closed could store an event twice. Defaults to
    /// [`DEFAULT_RETRY_HORIZON`] (2 minutes).
    pub fn retry_horizon(mut self, horizon: Duration) -> Self {
        self.retry_horizon = horizon;
        self
    }

    /// Checks the options without any I/O, as [`build`](Self::build) does
    /// first.
    ///
    /// # Errors
    ///
    /// [`NatsError::InvalidSubject`] or [`NatsError::InvalidOption`].
    pub fn check(&self) -> Result<(), NatsError> {
        self.checked().map(drop)
    }

    fn checked(&self) -> Result<Checked, NatsError> {
        let invalid = |option, reason: &str| NatsError::InvalidOption {
            option,
            reason: reason.to_owned(),
        };
        if self.url.trim().is_empty() {
            return Err(invalid("url", "must not be empty"));
        }
        let template = SubjectTemplate::new(self.subject.clone())?;
        if self.max_in_flight == 0 {
            return Err(invalid("max_in_flight", "must be at least 1"));
        }
        if self.ack_timeout_ms == 0 {
            return Err(invalid("ack_timeout_ms", "must be at least 1"));
        }
        if self.duplicate_window_seconds == 0 {
            return Err(invalid("duplicate_window_seconds", "must be at least 1"));
        }
        if let Some(stream) = &self.stream
            && let Some(reason) = stream_name_problem(stream)
        {
            return Err(invalid("stream", reason));
        }
        let create = if self.create_stream {
            let Some(stream) = &self.stream else {
                return Err(invalid(
                    "stream",
                    "is required when `create_stream` is true",
                ));
            };
            Some((stream.clone(), template.stream_subject()?))
        } else {
            None
        };
        Ok(Checked { template, create })
    }

    /// Starts the sink's I/O thread, connects (failing fast when the
    /// server cannot be reached), then finds the stream (creating it with
    /// [`create_stream`](Self::create_stream)) and warns through `tracing`
    /// when its duplicate window is shorter than the
    /// [`retry_horizon`](Self::retry_horizon). Blocks the calling thread
    /// for at most about three [`ack_timeout_ms`](Self::ack_timeout_ms);
    /// it may be called from inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`NatsError`]: invalid options, an unreachable server, a stream
    /// that cannot be found or created, or no thread.
    pub fn build(self) -> Result<NatsSink, NatsError> {
        let Checked { template, create } = self.checked()?;
        let ack_timeout = Duration::from_millis(self.ack_timeout_ms);
        let redacted: Arc<str> = RedactedUrl::new(&self.url).as_str().into();
        let io = IoThread::start().map_err(NatsError::Thread)?;
        let setup = Setup {
            url: self.url.clone(),
            redacted: redacted.clone(),
            ack_timeout,
            max_in_flight: self.max_in_flight,
            stream: self.stream.clone(),
            create,
            duplicate_window: Duration::from_secs(self.duplicate_window_seconds),
            sample: template.sample(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let deadline = ack_timeout.saturating_mul(3) + Duration::from_millis(500);
        let connecting = io.spawn(async move {
            let result = match tokio::time::timeout(deadline, setup.run()).await {
                Ok(result) => result,
                Err(_) => Err(NatsError::Connect {
                    url: setup.redacted.to_string(),
                    reason: format!("setting up took longer than {deadline:?}"),
                }),
            };
            let _ = tx.send(result);
        });
        let connected = rx.recv().unwrap_or_else(|_| {
            Err(NatsError::Connect {
                url: redacted.to_string(),
                reason: "the I/O thread stopped while connecting".to_owned(),
            })
        });
        drop(connecting);
        let connected = match connected {
            Ok(connected) => connected,
            Err(error) => {
                let error = scrub_error(error, &self.url);
                return Err(error);
            }
        };
        if let Some(warning) =
            duplicate_window_warning(connected.duplicate_window, self.retry_horizon)
        {
            tracing::warn!(
                target: TARGET,
                stream = %connected.stream,
                url = %redacted,
                duplicate_window = ?connected.duplicate_window,
                retry_horizon = ?self.retry_horizon,
                "{warning}"
            );
        }
        Ok(NatsSink {
            url: redacted,
            template,
            stream: connected.stream,
            duplicate_window: connected.duplicate_window,
            max_in_flight: self.max_in_flight,
            ack_timeout,
            client: connected.client,
            jetstream: connected.jetstream,
            closed: AtomicBool::new(false),
            io,
        })
    }
}

/// Why `name` cannot name a JetStream stream, if it cannot.
pub(crate) fn stream_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("must not be empty")
    } else if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
    {
        Some("must not contain whitespace, `.`, `*`, `>`, `/` or `\\`")
    } else {
        None
    }
}

/// The warning `build` logs when a stream's duplicate window is shorter
/// than the retry horizon, or `None` when the window covers it.
///
/// ```
/// use std::time::Duration;
/// use tidings_sink_nats::duplicate_window_warning;
///
/// assert!(duplicate_window_warning(Duration::from_secs(120), Duration::from_secs(120)).is_none());
/// assert!(duplicate_window_warning(Duration::from_secs(30), Duration::from_secs(120)).is_some());
/// ```
#[must_use]
pub fn duplicate_window_warning(window: Duration, retry_horizon: Duration) -> Option<String> {
    (window < retry_horizon).then(|| {
        format!(
            "the stream's duplicate window ({window:?}) is shorter than the sink's retry horizon \
             ({retry_horizon:?}): an event retried after the window closed may be stored twice"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_without_io() {
        let error = |b: NatsSinkBuilder| b.check().unwrap_err().to_string();
        assert!(error(NatsSink::builder().max_in_flight(0)).contains("`max_in_flight`"));
        assert!(error(NatsSink::builder().ack_timeout_ms(0)).contains("`ack_timeout_ms`"));
        assert!(
            error(NatsSink::builder().duplicate_window_seconds(0))
                .contains("`duplicate_window_seconds`")
        );
        assert!(error(NatsSink::builder().create_stream(true)).contains("`stream`"));
        assert!(error(NatsSink::builder().stream("a.b")).contains("`stream`"));
        assert!(error(NatsSink::builder().subject("")).contains("empty"));
        assert!(
            error(
                NatsSink::builder()
                    .stream("s")
                    .create_stream(true)
                    .subject("{name}")
            )
            .contains("fixed token")
        );
        assert!(NatsSink::builder().check().is_ok());
        assert!(
            NatsSink::builder()
                .stream("S")
                .create_stream(true)
                .check()
                .is_ok()
        );
    }

    #[test]
    fn duplicate_window_warning_names_both_durations() {
        let warning =
            duplicate_window_warning(Duration::from_secs(10), Duration::from_secs(60)).unwrap();
        assert!(
            warning.contains("10s") && warning.contains("60s"),
            "{warning}"
        );
        assert!(
            duplicate_window_warning(Duration::from_secs(60), Duration::from_secs(60)).is_none()
        );
    }
}
