//! `NatsSink`: pipelined JetStream publishes, one message per event, each
//! carrying the event id as `Nats-Msg-Id`.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, ErrorCode};
use async_nats::{Client, ConnectOptions};
use bytes::Bytes;
use tidings_core::{RedactedUrl, Sink, SinkError, async_trait};
use tidings_event::Event;

use crate::SubjectTemplate;
use crate::io::IoThread;

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
const TARGET: &str = "tidings::sink::nats";

/// Room left in the server's `max_payload` for the message's headers.
const HEADER_ROOM: usize = 128;

/// The NATS sink could not be configured or could not start.
///
/// Messages never contain credentials: URLs are shown without their user
/// information.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// The subject template is not usable.
    #[error("invalid subject template {template:?}: {reason}")]
    InvalidSubject {
        /// The template.
        template: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An option is out of range or missing.
    #[error("invalid NATS sink option `{option}`: {reason}")]
    InvalidOption {
        /// The option (its builder setter and config key).
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The server could not be reached or refused the connection.
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect {
        /// The server URL, without credentials.
        url: String,
        /// What the client reported.
        reason: String,
    },
    /// The stream could not be found, created or read.
    #[error("cannot use JetStream stream {stream:?} at {url}: {reason}")]
    Stream {
        /// The stream's name.
        stream: String,
        /// The server URL, without credentials.
        url: String,
        /// What the server or client reported.
        reason: String,
    },
    /// No stream captures the template's subjects, and none was named.
    #[error(
        "no JetStream stream at {url} captures subject {subject:?} ({reason}); create one, \
         name it with `stream`, or set `create_stream`"
    )]
    NoStream {
        /// The server URL, without credentials.
        url: String,
        /// The sample subject that was looked up.
        subject: String,
        /// What the lookup answered.
        reason: String,
    },
    /// The sink's I/O thread could not be started.
    #[error("cannot start the NATS sink's I/O thread: {0}")]
    Thread(#[source] std::io::Error),
}

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
struct Checked {
    template: SubjectTemplate,
    create: Option<(String, String)>,
}

impl NatsSinkBuilder {
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
fn stream_name_problem(name: &str) -> Option<&'static str> {
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

/// The connection options and stream wishes, moved onto the I/O thread.
struct Setup {
    url: String,
    redacted: Arc<str>,
    ack_timeout: Duration,
    max_in_flight: usize,
    stream: Option<String>,
    create: Option<(String, String)>,
    duplicate_window: Duration,
    sample: String,
}

struct Connected {
    client: Client,
    jetstream: jetstream::Context,
    stream: String,
    duplicate_window: Duration,
}

/// Reconnect attempts follow each other quickly and forever: 0, 100, 200
/// ms, then every 500 ms, so delivery resumes within about half a second
/// of the server coming back.
fn reconnect_delay(attempts: usize) -> Duration {
    let steps = u64::try_from(attempts.saturating_sub(1)).unwrap_or(u64::MAX);
    Duration::from_millis(steps.saturating_mul(100).min(500))
}

impl Setup {
    async fn run(&self) -> Result<Connected, NatsError> {
        let url = self.redacted.clone();
        let options = ConnectOptions::new()
            .name("tidings")
            .connection_timeout(self.ack_timeout)
            .reconnect_delay_callback(reconnect_delay)
            .event_callback(move |event| {
                let url = url.clone();
                async move {
                    match event {
                        async_nats::Event::Disconnected => {
                            tracing::warn!(target: TARGET, %url, "disconnected from NATS; reconnecting");
                        }
                        async_nats::Event::Connected => {
                            tracing::info!(target: TARGET, %url, "connected to NATS");
                        }
                        other => {
                            tracing::debug!(target: TARGET, %url, event = %other, "NATS client event");
                        }
                    }
                }
            });
        let client = async_nats::connect_with_options(self.url.as_str(), options)
            .await
            .map_err(|e| NatsError::Connect {
                url: self.redacted.to_string(),
                reason: e.to_string(),
            })?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(self.ack_timeout)
            .ack_timeout(self.ack_timeout)
            // The sink bounds what is in flight itself; this only has to
            // leave room for the acks of abandoned attempts.
            .max_ack_inflight(self.max_in_flight.saturating_mul(8).max(4096))
            .backpressure_on_inflight(true)
            .build(client.clone());
        let stream_error = |stream: &str, reason: String| NatsError::Stream {
            stream: stream.to_owned(),
            url: self.redacted.to_string(),
            reason,
        };
        let stream = match (&self.create, &self.stream) {
            (Some((name, subject)), _) => jetstream
                .get_or_create_stream(jetstream::stream::Config {
                    name: name.clone(),
                    subjects: vec![subject.clone()],
                    duplicate_window: self.duplicate_window,
                    ..Default::default()
                })
                .await
                .map_err(|e| stream_error(name, e.to_string()))?,
            (None, Some(name)) => jetstream
                .get_stream(name)
                .await
                .map_err(|e| stream_error(name, e.to_string()))?,
            (None, None) => {
                let name = jetstream
                    .stream_by_subject(self.sample.clone())
                    .await
                    .map_err(|e| NatsError::NoStream {
                        url: self.redacted.to_string(),
                        subject: self.sample.clone(),
                        reason: e.to_string(),
                    })?;
                jetstream
                    .get_stream(&name)
                    .await
                    .map_err(|e| stream_error(&name, e.to_string()))?
            }
        };
        let config = &stream.cached_info().config;
        Ok(Connected {
            stream: config.name.clone(),
            duplicate_window: config.duplicate_window,
            client,
            jetstream,
        })
    }
}

/// Publishes each event to a NATS JetStream stream, as the tidings wire
/// format (`Content-Type: application/json`) with the event id in
/// `Nats-Msg-Id`, so that the stream's duplicate window drops what a retry
/// sends again.
///
/// `send_batch` pipelines: it publishes up to
/// [`max_in_flight`](NatsSinkBuilder::max_in_flight) messages before
/// waiting for the oldest acknowledgement, and succeeds only when every
/// message of the batch is acknowledged (an acknowledgement marked
/// `duplicate` counts as delivered). A timed-out or failed publish makes
/// the batch fail as retryable; the engine then sends the whole batch
/// again, and the stream stores each event once.
///
/// The client lives on a thread of the sink's own, with a current-thread
/// tokio runtime, created by [`NatsSinkBuilder::build`], which connects
/// there and fails fast when the server is unreachable. The client
/// reconnects by itself after an outage; publishes meanwhile fail within
/// the ack timeout, as retryable errors, and never hang. `shutdown` stops
/// the thread and closes the connection.
pub struct NatsSink {
    url: Arc<str>,
    template: SubjectTemplate,
    stream: String,
    duplicate_window: Duration,
    max_in_flight: usize,
    ack_timeout: Duration,
    client: Client,
    jetstream: jetstream::Context,
    closed: AtomicBool,
    io: IoThread,
}

impl fmt::Debug for NatsSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsSink")
            .field("url", &self.url)
            .field("subject", &self.template)
            .field("stream", &self.stream)
            .field("max_in_flight", &self.max_in_flight)
            .field("ack_timeout", &self.ack_timeout)
            .finish_non_exhaustive()
    }
}

/// One message ready to publish.
struct Outgoing {
    subject: String,
    id: String,
    body: Bytes,
}

impl NatsSink {
    /// A builder with every option at its default.
    pub fn builder() -> NatsSinkBuilder {
        NatsSinkBuilder {
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

    /// The stream published to (named, found or created at `build`).
    #[must_use]
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The stream's duplicate window, as read at `build`.
    #[must_use]
    pub fn duplicate_window(&self) -> Duration {
        self.duplicate_window
    }

    /// The subject template.
    #[must_use]
    pub fn subject_template(&self) -> &SubjectTemplate {
        &self.template
    }

    /// The server URL, without credentials.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    fn prepare(&self, batch: &[Event]) -> Result<Vec<Outgoing>, SinkError> {
        let max_payload = self.client.server_info().max_payload;
        let mut messages = Vec::with_capacity(batch.len());
        for event in batch {
            let mut body = Vec::new();
            event.write_json(&mut body);
            if max_payload > 0 && body.len() + HEADER_ROOM > max_payload {
                return Err(SinkError::too_large(format!(
                    "event {} is {} bytes, over the max_payload of {max_payload} bytes of NATS at {}",
                    event.id(),
                    body.len(),
                    self.url
                )));
            }
            messages.push(Outgoing {
                subject: self.template.render(event.name().as_str()),
                id: event.id().to_string(),
                body: Bytes::from(body),
            });
        }
        Ok(messages)
    }
}

#[async_trait]
impl Sink for NatsSink {
    async fn send_batch(&self, batch: &[Event]) -> Result<(), SinkError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SinkError::fatal(format!(
                "the NATS sink for {} is shut down",
                self.url
            )));
        }
        if batch.is_empty() {
            return Ok(());
        }
        let messages = self.prepare(batch)?;
        let publishing = self.io.spawn(publish_all(
            self.jetstream.clone(),
            messages,
            self.max_in_flight,
            self.ack_timeout,
            self.url.clone(),
        ));
        match publishing.join().await {
            Ok(result) => result,
            Err(_) => Err(SinkError::fatal(format!(
                "the NATS sink for {} is shut down",
                self.url
            ))),
        }
    }

    async fn shutdown(&self) -> Result<(), SinkError> {
        self.closed.store(true, Ordering::Release);
        let client = self.client.clone();
        let timeout = self.ack_timeout;
        let flushed = self
            .io
            .spawn(async move { tokio::time::timeout(timeout, client.flush()).await })
            .join()
            .await;
        self.io.stop().await;
        match flushed {
            Ok(Ok(Err(error))) => Err(SinkError::retryable(format!(
                "flushing the connection to NATS at {}: {error}",
                self.url
            ))),
            Ok(Err(_)) => Err(SinkError::retryable(format!(
                "flushing the connection to NATS at {} took longer than {timeout:?}",
                self.url
            ))),
            _ => Ok(()),
        }
    }

    fn size_hint(&self, _event: &Event) -> usize {
        // Each event is its own message: there is no request size to keep
        // a batch under (an event over the server's max_payload is
        // refused as too large by `send_batch`).
        0
    }
}

/// Publishes `messages` with at most `window` acknowledgements pending,
/// then waits for the rest; fails on the first failed or late one.
async fn publish_all(
    jetstream: jetstream::Context,
    messages: Vec<Outgoing>,
    window: usize,
    timeout: Duration,
    url: Arc<str>,
) -> Result<(), SinkError> {
    let mut pending: VecDeque<(PublishAckFuture, String)> =
        VecDeque::with_capacity(window.min(messages.len()));
    let mut duplicates = 0_usize;
    for message in messages {
        if pending.len() >= window
            && let Some((ack, id)) = pending.pop_front()
        {
            duplicates += usize::from(wait_ack(ack, &id, timeout, &url).await?);
        }
        let publish = PublishMessage::build()
            .payload(message.body)
            .message_id(&message.id)
            .header("Content-Type", "application/json");
        let sent = tokio::time::timeout(
            timeout,
            jetstream.send_publish(message.subject.clone(), publish),
        )
        .await;
        let what = || {
            format!(
                "publishing event {} to {} at {url}",
                message.id, message.subject
            )
        };
        let ack = match sent {
            Err(_) => {
                return Err(SinkError::retryable(format!(
                    "{}: no room in the client's buffer within {timeout:?} (is the server reachable?)",
                    what()
                )));
            }
            Ok(Err(error)) => return Err(classify(&error, &what())),
            Ok(Ok(ack)) => ack,
        };
        pending.push_back((ack, message.id));
    }
    while let Some((ack, id)) = pending.pop_front() {
        duplicates += usize::from(wait_ack(ack, &id, timeout, &url).await?);
    }
    if duplicates > 0 {
        tracing::debug!(target: TARGET, %url, duplicates, "events already in the stream were acknowledged as duplicates");
    }
    Ok(())
}

/// Waits for one acknowledgement; `true` when it says duplicate.
async fn wait_ack(
    ack: PublishAckFuture,
    id: &str,
    timeout: Duration,
    url: &str,
) -> Result<bool, SinkError> {
    // The client applies the same timeout; this one also covers its queue.
    match tokio::time::timeout(timeout + Duration::from_millis(50), ack).await {
        Ok(Ok(ack)) => Ok(ack.duplicate),
        Ok(Err(error)) => Err(classify(
            &error,
            &format!("acknowledgement of event {id} from NATS at {url}"),
        )),
        Err(_) => Err(SinkError::retryable(format!(
            "acknowledgement of event {id} from NATS at {url}: none within {timeout:?}"
        ))),
    }
}

/// Sorts a publish failure into the engine's kinds: timeouts, a lost
/// connection and "no stream for the subject" (a stream being created or
/// electing a leader) are retryable; a JetStream refusal is classified by
/// its HTTP-like code, a message over the stream's size limit being too
/// large.
fn classify(error: &PublishError, what: &str) -> SinkError {
    let message = format!("{what}: {error}");
    match error.kind() {
        PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending
        | PublishErrorKind::StreamNotFound => SinkError::retryable(message),
        _ => {
            let refusal = std::error::Error::source(error)
                .and_then(|source| source.downcast_ref::<jetstream::Error>());
            match refusal {
                Some(refusal)
                    if refusal.error_code() == ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM =>
                {
                    SinkError::too_large(message)
                }
                Some(refusal) => match refusal.code() {
                    408 | 429 | 500 | 502 | 503 | 504 => SinkError::retryable(message),
                    413 => SinkError::too_large(message),
                    _ => SinkError::fatal(message),
                },
                None => SinkError::retryable(message),
            }
        }
    }
}

/// Removes the user information of `url` from `text`, should a client
/// message quote it.
fn scrub(text: &str, url: &str) -> String {
    let mut text = text.to_owned();
    for one in url.split(',') {
        let rest = one.trim().split_once("://").map_or(one.trim(), |(_, r)| r);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && !userinfo.is_empty()
        {
            text = text.replace(userinfo, "***");
        }
    }
    text
}

fn scrub_error(error: NatsError, url: &str) -> NatsError {
    match error {
        NatsError::Connect { url: shown, reason } => NatsError::Connect {
            url: shown,
            reason: scrub(&reason, url),
        },
        NatsError::Stream {
            stream,
            url: shown,
            reason,
        } => NatsError::Stream {
            stream,
            url: shown,
            reason: scrub(&reason, url),
        },
        NatsError::NoStream {
            url: shown,
            subject,
            reason,
        } => NatsError::NoStream {
            url: shown,
            subject,
            reason: scrub(&reason, url),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_quoting_the_url_lose_its_user_information() {
        assert_eq!(
            scrub("bad auth for user:secret here", "nats://user:secret@h:1"),
            "bad auth for *** here"
        );
    }

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
    fn reconnects_are_attempted_at_most_half_a_second_apart() {
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), Duration::from_millis(100));
        assert_eq!(reconnect_delay(100), Duration::from_millis(500));
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
