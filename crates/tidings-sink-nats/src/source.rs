//! `NatsSource`: events read from a JetStream stream through a durable pull
//! consumer, each message acknowledged once its events are settled.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt as _;
use tidings_core::{
    Backend, RedactedUrl, Source, SourceError, SourceMetrics, async_trait, undecodable,
};
use tidings_event::{Event, Lease, Limits, decode};
use tokio::sync::{mpsc, oneshot};

use crate::builder::{DEFAULT_URL, TARGET};
use crate::connection::connect;
use crate::error::NatsError;
use crate::io::IoThread;
use crate::settle::{self, Counters, Note, Settle};

/// Default for [`NatsSourceBuilder::consumer`].
pub const DEFAULT_CONSUMER: &str = "tidings";
/// Default for [`NatsSourceBuilder::ack_wait_ms`].
pub const DEFAULT_ACK_WAIT_MS: u64 = 30_000;
/// Default for [`NatsSourceBuilder::max_ack_pending`].
pub const DEFAULT_MAX_ACK_PENDING: i64 = 20_000;

/// How long a message that the dead letters could not take waits before
/// the server redelivers it.
const DEAD_LETTER_RETRY: Duration = Duration::from_secs(5);

/// Builds a [`NatsSource`]. Created by [`NatsSource::builder`]; each setter
/// is named after its key in a config file.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct NatsSourceBuilder {
    url: String,
    stream: String,
    consumer: String,
    subject: Option<String>,
    ack_wait_ms: u64,
    max_deliver: i64,
    max_ack_pending: i64,
    name: String,
    dead_letter: Option<Arc<dyn Backend>>,
}

impl NatsSourceBuilder {
    /// The server, `nats://[user:password@]host:port`. Defaults to
    /// `nats://127.0.0.1:4222`.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// The durable consumer's name, shared by every process reading this
    /// stream together (each message goes to one of them). Created when
    /// missing. Defaults to `tidings`.
    pub fn consumer(mut self, consumer: impl Into<String>) -> Self {
        self.consumer = consumer.into();
        self
    }

    /// Only the messages of this subject (wildcards allowed). Defaults to
    /// every message of the stream.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// How long the server waits for an acknowledgement before it
    /// redelivers (the source sends progress notes for what the tree still
    /// holds every half of it). Defaults to 30 000 ms.
    pub fn ack_wait_ms(mut self, ms: u64) -> Self {
        self.ack_wait_ms = ms;
        self
    }

    /// How many times a message is delivered at most; `-1` (the default)
    /// for no limit, which never gives up on an event.
    pub fn max_deliver(mut self, max: i64) -> Self {
        self.max_deliver = max;
        self
    }

    /// How many messages may be read and unacknowledged at once across
    /// the consumer's readers. Defaults to 20 000.
    pub fn max_ack_pending(mut self, max: i64) -> Self {
        self.max_ack_pending = max;
        self
    }

    /// The source's name in logs and metrics. Defaults to `nats`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Where undecodable messages go, as [`UNDECODABLE`](tidings_core::UNDECODABLE)
    /// events (the payload as text, the subject and the error); without
    /// one they are logged and terminated.
    pub fn dead_letter(mut self, backend: Arc<dyn Backend>) -> Self {
        self.dead_letter = Some(backend);
        self
    }

    /// Checks the options, without connecting.
    ///
    /// # Errors
    ///
    /// [`NatsError::InvalidOption`] naming the option out of range.
    pub fn check(&self) -> Result<(), NatsError> {
        let invalid = |option: &'static str, reason: &str| NatsError::InvalidOption {
            option,
            reason: reason.to_owned(),
        };
        if self.stream.is_empty() {
            return Err(invalid("stream", "must name the JetStream stream to read"));
        }
        if self.consumer.is_empty() || self.consumer.contains(['.', '*', '>', ' ']) {
            return Err(invalid(
                "consumer",
                "must be a name without `.`, `*`, `>` or spaces",
            ));
        }
        if self.ack_wait_ms < 1000 {
            return Err(invalid("ack_wait_ms", "must be at least 1000"));
        }
        if self.max_deliver == 0 || self.max_deliver < -1 {
            return Err(invalid(
                "max_deliver",
                "must be -1 (no limit) or at least 1",
            ));
        }
        if self.max_ack_pending < 1 {
            return Err(invalid("max_ack_pending", "must be at least 1"));
        }
        Ok(())
    }

    /// Connects, finds the stream and creates (or reuses) the consumer, on
    /// the source's own I/O thread.
    ///
    /// # Errors
    ///
    /// [`NatsError`]: an option out of range, the server unreachable, the
    /// stream missing or the consumer refused.
    pub fn build(self) -> Result<NatsSource, NatsError> {
        self.check()?;
        let redacted: Arc<str> = RedactedUrl::new(&self.url).as_str().into();
        let io = IoThread::start().map_err(NatsError::Thread)?;
        let ack_wait = Duration::from_millis(self.ack_wait_ms);
        let (tx, rx) = std::sync::mpsc::channel();
        let setup = self.clone();
        let url = redacted.clone();
        let connecting = io.spawn(async move {
            let deadline = Duration::from_secs(15);
            let result = tokio::time::timeout(deadline, setup.connect(url.clone(), ack_wait))
                .await
                .unwrap_or_else(|_| {
                    Err(NatsError::Connect {
                        url: url.to_string(),
                        reason: format!("setting up took longer than {deadline:?}"),
                    })
                });
            let _ = tx.send(result);
        });
        let connected = rx.recv().unwrap_or_else(|_| {
            Err(NatsError::Connect {
                url: redacted.to_string(),
                reason: "the I/O thread stopped while connecting".to_owned(),
            })
        });
        drop(connecting);
        let (client, consumer) = connected?;
        let counters = Arc::new(Counters::default());
        let (notes, receiver) = mpsc::unbounded_channel();
        // The settler has a thread of its own: its acknowledgements (one per
        // message) never wait behind a fetch on the I/O thread. It ends once
        // every sender of its notes is gone (the source's at `close`, each
        // message's with its last event).
        let settling = counters.clone();
        std::thread::Builder::new()
            .name(format!("tidings-settle-{}", self.name))
            .spawn(move || {
                if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                {
                    runtime.block_on(settle::run(client, receiver, settling, ack_wait));
                }
            })
            .map_err(NatsError::Thread)?;
        tracing::info!(target: TARGET, url = %redacted, stream = %self.stream, consumer = %self.consumer, "reading JetStream");
        Ok(NatsSource {
            name: self.name,
            url: redacted,
            stream: self.stream,
            consumer_name: self.consumer,
            consumer,
            io,
            notes: std::sync::Mutex::new(Some(notes)),
            counters,
            dead_letter: self.dead_letter,
            limits: Limits::default(),
        })
    }

    async fn connect(
        self,
        url: Arc<str>,
        ack_wait: Duration,
    ) -> Result<(Client, consumer::PullConsumer), NatsError> {
        let client = connect(&self.url, &url, "tidings-source", Duration::from_secs(5)).await?;
        let jetstream = jetstream::new(client.clone());
        let stream_error = |reason: String| NatsError::Stream {
            stream: self.stream.clone(),
            url: url.to_string(),
            reason,
        };
        let stream = jetstream
            .get_stream(&self.stream)
            .await
            .map_err(|e| stream_error(e.to_string()))?;
        let config = consumer::pull::Config {
            durable_name: Some(self.consumer.clone()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait,
            max_deliver: self.max_deliver,
            max_ack_pending: self.max_ack_pending,
            filter_subject: self.subject.clone().unwrap_or_default(),
            ..Default::default()
        };
        let consumer = stream
            .get_or_create_consumer(&self.consumer, config)
            .await
            .map_err(|e| stream_error(format!("consumer {:?}: {e}", self.consumer)))?;
        Ok((client, consumer))
    }
}

/// Reads a JetStream stream through a durable pull consumer: the source
/// of a relay (`[sources.NAME] type = "nats"`).
///
/// Each message holds one event or a JSON array of them in the tidings
/// wire format (what [`NatsSink`](crate::NatsSink) publishes, or a plain
/// JSON event); the events keep their ids and times, and nothing is added.
/// A message is acknowledged once its events are settled (see
/// [`Source`]); meanwhile the source sends progress notes every half
/// `ack_wait`, so the server redelivers only what a stopped or killed
/// reader held. Several processes with the same `consumer` share the
/// stream's messages. An undecodable message goes to the dead letters and
/// is terminated (never redelivered).
pub struct NatsSource {
    name: String,
    url: Arc<str>,
    stream: String,
    consumer_name: String,
    consumer: consumer::PullConsumer,
    io: IoThread,
    notes: std::sync::Mutex<Option<mpsc::UnboundedSender<Note>>>,
    counters: Arc<Counters>,
    dead_letter: Option<Arc<dyn Backend>>,
    limits: Limits,
}

impl std::fmt::Debug for NatsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSource")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("stream", &self.stream)
            .field("consumer", &self.consumer_name)
            .finish_non_exhaustive()
    }
}

impl NatsSource {
    /// A builder reading `stream`.
    pub fn builder(stream: impl Into<String>) -> NatsSourceBuilder {
        NatsSourceBuilder {
            url: DEFAULT_URL.to_owned(),
            stream: stream.into(),
            consumer: DEFAULT_CONSUMER.to_owned(),
            subject: None,
            ack_wait_ms: DEFAULT_ACK_WAIT_MS,
            max_deliver: -1,
            max_ack_pending: DEFAULT_MAX_ACK_PENDING,
            name: "nats".to_owned(),
            dead_letter: None,
        }
    }

    fn notes(&self) -> Option<mpsc::UnboundedSender<Note>> {
        self.notes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn note(&self, note: Note) {
        if let Some(notes) = self.notes() {
            let _ = notes.send(note);
        }
    }

    /// The events of one message, or `None` when it is undecodable (then
    /// dead-lettered or terminated here).
    fn events_of(
        &self,
        message: &async_nats::Message,
        (seq, delivery): (u64, u64),
        notes: &mpsc::UnboundedSender<Note>,
    ) -> Option<Vec<Event>> {
        let lease = |term| {
            Lease::new(Arc::new(Settle {
                seq,
                delivery,
                term,
                notes: notes.clone(),
            }))
        };
        match decode(&message.payload, &self.limits) {
            Ok(mut events) => {
                let lease = lease(false);
                for event in &mut events {
                    event.set_lease(lease.clone());
                }
                Some(events)
            }
            Err(error) => {
                let mut about = tidings_event::Map::new();
                about.insert("subject".to_owned(), message.subject.as_str().into());
                let source = &self.name;
                let mut poison = undecodable(source, &message.payload, about, &error)?;
                // Kept until the dead letters have taken the event: were they
                // to refuse it, the message must be given back before its
                // lease (dropped with the refused event) could terminate it.
                let lease = lease(true);
                poison.set_lease(lease.clone());
                let refused = self
                    .dead_letter
                    .as_ref()
                    .is_some_and(|dead_letter| dead_letter.send(poison).is_err());
                if refused {
                    let _ = notes.send(Note::Nak {
                        seq,
                        delay: Some(DEAD_LETTER_RETRY),
                    });
                    tracing::warn!(target: TARGET, source = %self.name, subject = %message.subject, stream_sequence = seq, %error, "undecodable message, and the dead letters refused it: given back, tried again in {DEAD_LETTER_RETRY:?}");
                } else {
                    self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(target: TARGET, source = %self.name, subject = %message.subject, stream_sequence = seq, %error, "undecodable message: dead-lettered, not redelivered");
                }
                drop(lease);
                None
            }
        }
    }
}

#[async_trait]
impl Source for NatsSource {
    async fn fetch(&self, max: usize, wait: Duration) -> Result<Vec<Event>, SourceError> {
        let Some(notes) = self.notes() else {
            return Err(SourceError::new("the source is closed", None));
        };
        let consumer = self.consumer.clone();
        let wait = wait.max(Duration::from_millis(100));
        let fetching = self.io.spawn(async move {
            let mut batch = consumer
                .fetch()
                .max_messages(max)
                .expires(wait)
                .messages()
                .await?;
            let mut messages = Vec::new();
            while let Some(message) = batch.next().await {
                match message {
                    Ok(message) => messages.push(message),
                    // What arrived is kept; the rest comes with the next fetch.
                    Err(error) if !messages.is_empty() => {
                        tracing::debug!(target: TARGET, %error, "fetch ended early");
                        break;
                    }
                    Err(error) => return Err(error),
                }
            }
            Ok::<_, async_nats::Error>(messages)
        });
        let messages = fetching
            .join()
            .await
            .map_err(|e| SourceError::new("the NATS thread stopped", Some(e.into())))?
            .map_err(|e| {
                SourceError::new(
                    format!("cannot fetch from JetStream at {}: {e}", self.url),
                    Some(e),
                )
            })?;
        let mut events = Vec::with_capacity(messages.len());
        for message in messages {
            let (seq, delivered, pending) = match message.info() {
                Ok(info) => (info.stream_sequence, info.delivered, info.pending),
                Err(error) => {
                    tracing::warn!(target: TARGET, source = %self.name, %error, "a message without JetStream metadata: skipped");
                    continue;
                }
            };
            let Some(reply) = message.message.reply.clone() else {
                continue;
            };
            let counters = &self.counters;
            counters.fetched.fetch_add(1, Ordering::Relaxed);
            if delivered > 1 {
                counters.redelivered.fetch_add(1, Ordering::Relaxed);
            }
            counters.lag.store(pending, Ordering::Relaxed);
            let delivery = u64::try_from(delivered).unwrap_or(0);
            let _ = notes.send(Note::Fetched {
                seq,
                delivery,
                reply,
            });
            if let Some(decoded) = self.events_of(&message.message, (seq, delivery), &notes) {
                events.extend(decoded);
            }
        }
        Ok(events)
    }

    async fn unfetch(&self, events: Vec<Event>) {
        for event in &events {
            if let Some(settle) = event.lease().downcast_ref::<Settle>() {
                self.note(Note::Nak {
                    seq: settle.seq,
                    delay: None,
                });
            }
        }
    }

    fn hold(&self) {
        self.note(Note::Hold);
    }

    fn release(&self) {
        self.note(Note::Release);
    }

    async fn close(&self) -> Result<(), SourceError> {
        let (done, flushed) = oneshot::channel();
        self.note(Note::Flush(done));
        let _ = tokio::time::timeout(Duration::from_secs(5), flushed).await;
        // Events still alive (none after a drain) settle nothing now: their
        // messages are redelivered.
        drop(
            self.notes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        self.io.stop().await;
        Ok(())
    }

    fn metrics(&self) -> SourceMetrics {
        let c = &self.counters;
        let mut metrics = SourceMetrics::new(self.name.clone());
        metrics.fetched = c.fetched.load(Ordering::Relaxed);
        metrics.redelivered = c.redelivered.load(Ordering::Relaxed);
        metrics.acked = c.acked.load(Ordering::Relaxed);
        metrics.dead_lettered = c.dead_lettered.load(Ordering::Relaxed);
        metrics.unsettled = c.unsettled.load(Ordering::Relaxed);
        metrics.lag = c.lag.load(Ordering::Relaxed);
        metrics
    }
}
