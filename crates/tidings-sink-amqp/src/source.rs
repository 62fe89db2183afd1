//! `AmqpSource`: events read from a RabbitMQ queue with manual
//! acknowledgements, each message acknowledged once its events are settled.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::{Acker, Connection, ConnectionProperties, Consumer};
use tidings_core::{
    Backend, Outcome, Settlements, Source, SourceError, SourceMetrics, async_trait, undecodable,
};
use tidings_event::{Event, Lease, Limits, decode};
use tokio::sync::{mpsc, oneshot};

use crate::BuildError;
use crate::builder::DEFAULT_URL;
use crate::url::BrokerUrl;

/// Default for [`AmqpSourceBuilder::prefetch`].
pub const DEFAULT_PREFETCH: u16 = 1000;

const TARGET: &str = "tidings::source::amqp";

/// Builds an [`AmqpSource`]. Created by [`AmqpSource::builder`]; each setter
/// is named after its key in a config file.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct AmqpSourceBuilder {
    url: String,
    queue: String,
    prefetch: u16,
    name: String,
    dead_letter: Option<Arc<dyn Backend>>,
}

impl AmqpSourceBuilder {
    /// The broker, `amqp://user:password@host:port/vhost`. Defaults to
    /// `amqp://127.0.0.1:5672/%2f`.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// How many messages the broker may deliver before the first is
    /// acknowledged. Defaults to 1000.
    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// The source's name in logs and metrics. Defaults to `amqp`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Where undecodable messages go, as [`UNDECODABLE`](tidings_core::UNDECODABLE) events (the
    /// payload as text and the routing key); they are then rejected
    /// without requeueing, so a dead-letter exchange set on the queue gets
    /// them too.
    pub fn dead_letter(mut self, backend: Arc<dyn Backend>) -> Self {
        self.dead_letter = Some(backend);
        self
    }

    /// Checks the options, without connecting.
    ///
    /// # Errors
    ///
    /// [`BuildError`] naming the option at fault.
    pub fn check(&self) -> Result<(), BuildError> {
        self.checked().map(drop)
    }

    fn checked(&self) -> Result<BrokerUrl, BuildError> {
        let url =
            BrokerUrl::parse(&self.url).map_err(|(url, reason)| BuildError::Url { url, reason })?;
        if self.queue.is_empty() {
            return Err(BuildError::Requires {
                option: "queue",
                requires: "the name of the queue to read",
            });
        }
        if self.queue.len() > 255 {
            return Err(BuildError::TooLong {
                option: "queue",
                len: self.queue.len(),
            });
        }
        if self.prefetch == 0 {
            return Err(BuildError::Requires {
                option: "prefetch",
                requires: "at least 1",
            });
        }
        Ok(url)
    }

    /// Checks the options and starts the settler. The source connects on
    /// its first fetch, and again after an outage.
    ///
    /// # Errors
    ///
    /// [`BuildError`] naming the option at fault.
    pub fn build(self) -> Result<AmqpSource, BuildError> {
        let url = self.checked()?;
        let counters = Arc::new(Counters::default());
        let (notes, receiver) = mpsc::unbounded_channel();
        // The settler ends once every sender is gone: the source's at
        // `close`, each message's with its last event.
        std::thread::Builder::new()
            .name(format!("tidings-settle-{}", self.name))
            .spawn({
                let counters = counters.clone();
                move || {
                    if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        runtime.block_on(settle(receiver, counters));
                    }
                }
            })
            .map_err(|e| BuildError::Url {
                url: url.redacted().to_owned(),
                reason: format!("cannot start the settler thread: {e}"),
            })?;
        Ok(AmqpSource {
            name: self.name,
            url,
            queue: self.queue,
            prefetch: self.prefetch,
            dead_letter: self.dead_letter,
            session: tokio::sync::Mutex::new(None),
            notes: Mutex::new(Some(notes)),
            next_key: AtomicU64::new(1),
            counters,
            limits: Limits::default(),
        })
    }
}

/// Reads a RabbitMQ queue with manual acknowledgements: the source of a
/// relay (`[sources.NAME] type = "amqp"`).
///
/// Each message holds one event or a JSON array of them in the wire format
/// (what [`AmqpSink`](crate::AmqpSink) publishes, or a plain JSON event);
/// ids and times are kept, nothing is added. A message is acknowledged once
/// its events are settled (see [`Source`]); several relays reading the same
/// queue share its messages (competing consumers), `prefetch` bounding what
/// each holds. A message given back (never admitted) is requeued at once;
/// an undecodable one is dead-lettered and rejected without requeueing.
/// What a stopped or killed relay held unacknowledged is requeued by the
/// broker when its channel closes. RabbitMQ closes a channel that holds a
/// message unacknowledged longer than its `consumer_timeout` (30 minutes by
/// default): the message is then requeued, and delivered again.
pub struct AmqpSource {
    name: String,
    url: BrokerUrl,
    queue: String,
    prefetch: u16,
    dead_letter: Option<Arc<dyn Backend>>,
    session: tokio::sync::Mutex<Option<Session>>,
    notes: Mutex<Option<mpsc::UnboundedSender<Note>>>,
    next_key: AtomicU64,
    counters: Arc<Counters>,
    limits: Limits,
}

impl std::fmt::Debug for AmqpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSource")
            .field("name", &self.name)
            .field("url", &self.url.redacted())
            .field("queue", &self.queue)
            .field("prefetch", &self.prefetch)
            .finish_non_exhaustive()
    }
}

/// An open connection and the consumer on its channel.
struct Session {
    connection: Connection,
    consumer: Consumer,
}

/// What the settler is told, in order.
enum Note {
    Fetched { key: u64, acker: Acker },
    Settled { key: u64, outcome: Outcome },
    GiveBack { key: u64 },
    Hold,
    Release,
    Flush(oneshot::Sender<()>),
}

#[derive(Debug, Default)]
struct Counters {
    fetched: AtomicU64,
    redelivered: AtomicU64,
    acked: AtomicU64,
    dead_lettered: AtomicU64,
    unsettled: AtomicU64,
}

/// The lease value of one message's events.
struct Settle {
    key: u64,
    outcome: Outcome,
    notes: mpsc::UnboundedSender<Note>,
}

impl Drop for Settle {
    fn drop(&mut self) {
        let _ = self.notes.send(Note::Settled {
            key: self.key,
            outcome: self.outcome,
        });
    }
}

/// The settler: acknowledges what [`Settlements`] answers. Each delivery
/// has a key of its own, so its delivery number is always 1.
async fn settle(mut notes: mpsc::UnboundedReceiver<Note>, counters: Arc<Counters>) {
    let mut book: Settlements<Acker> = Settlements::default();
    while let Some(note) = notes.recv().await {
        match note {
            Note::Fetched { key, acker } => book.fetched(key, 1, acker),
            Note::Settled { key, outcome } => {
                if let Some((acker, outcome)) = book.settled(key, 1, outcome) {
                    tell(&acker, outcome, &counters).await;
                }
            }
            Note::GiveBack { key } => {
                if let Some(acker) = book.give_back(key) {
                    let requeue = BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    };
                    if let Err(error) = acker.nack(requeue).await {
                        tracing::debug!(target: TARGET, %error, "cannot requeue a message (the broker requeues it when the channel closes)");
                    }
                }
            }
            Note::Hold => book.hold(),
            Note::Release => {
                for (acker, outcome) in book.release() {
                    tell(&acker, outcome, &counters).await;
                }
            }
            Note::Flush(done) => {
                let _ = done.send(());
            }
        }
        counters
            .unsettled
            .store(book.unsettled() as u64, Ordering::Relaxed);
    }
}

async fn tell(acker: &Acker, outcome: Outcome, counters: &Counters) {
    let told = match outcome {
        Outcome::Ack => acker.ack(BasicAckOptions::default()).await,
        Outcome::Term => acker.reject(BasicRejectOptions { requeue: false }).await,
    };
    match told {
        Ok(_) if outcome == Outcome::Ack => {
            counters.acked.fetch_add(1, Ordering::Relaxed);
        }
        Ok(_) => {}
        // The channel is gone: the broker requeues the message, which the
        // event's id deduplicates.
        Err(error) => tracing::debug!(target: TARGET, %error, "cannot acknowledge a message"),
    }
}

impl AmqpSource {
    /// A builder reading `queue`.
    pub fn builder(queue: impl Into<String>) -> AmqpSourceBuilder {
        AmqpSourceBuilder {
            url: DEFAULT_URL.to_owned(),
            queue: queue.into(),
            prefetch: DEFAULT_PREFETCH,
            name: "amqp".to_owned(),
            dead_letter: None,
        }
    }

    fn notes(&self) -> Option<mpsc::UnboundedSender<Note>> {
        self.notes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn note(&self, note: Note) {
        if let Some(notes) = self.notes() {
            let _ = notes.send(note);
        }
    }

    fn error(&self, step: &str, error: &lapin::Error) -> SourceError {
        SourceError::new(
            format!(
                "AMQP broker {}: cannot {step}: {}",
                self.url.redacted(),
                self.url.scrub(error)
            ),
            None,
        )
    }

    async fn open(&self) -> Result<Session, SourceError> {
        let properties =
            ConnectionProperties::default().with_connection_name("tidings-source-amqp".into());
        let connection = Connection::connect_uri(self.url.uri().clone(), properties)
            .await
            .map_err(|e| self.error("connect", &e))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| self.error("open a channel", &e))?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| self.error("set the prefetch", &e))?;
        let consumer = channel
            .basic_consume(
                self.queue.as_str().into(),
                format!("tidings-{}", self.name).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.error(&format!("consume queue {:?}", self.queue), &e))?;
        tracing::info!(target: TARGET, url = %self.url.redacted(), queue = %self.queue, "reading RabbitMQ");
        Ok(Session {
            connection,
            consumer,
        })
    }

    /// The events of one delivery, or `None` when it is undecodable (then
    /// dead-lettered, and rejected once settled).
    fn events_of(
        &self,
        delivery: &Delivery,
        key: u64,
        notes: &mpsc::UnboundedSender<Note>,
    ) -> Option<Vec<Event>> {
        let lease = |outcome| {
            Lease::new(Arc::new(Settle {
                key,
                outcome,
                notes: notes.clone(),
            }))
        };
        match decode(&delivery.data, &self.limits) {
            Ok(mut events) => {
                let lease = lease(Outcome::Ack);
                for event in &mut events {
                    event.set_lease(lease.clone());
                }
                Some(events)
            }
            Err(error) => {
                let mut about = tidings_event::Map::new();
                about.insert(
                    "routing_key".to_owned(),
                    delivery.routing_key.as_str().into(),
                );
                let mut poison = undecodable(&self.name, &delivery.data, about, &error)?;
                // Kept until the dead letters have taken the event: were they
                // to refuse it, the message must be requeued before its
                // lease (dropped with the refused event) could reject it.
                let lease = lease(Outcome::Term);
                poison.set_lease(lease.clone());
                let refused = self
                    .dead_letter
                    .as_ref()
                    .is_some_and(|dead_letter| dead_letter.send(poison).is_err());
                if refused {
                    let _ = notes.send(Note::GiveBack { key });
                    tracing::warn!(target: TARGET, source = %self.name, routing_key = %delivery.routing_key, %error, "undecodable message, and the dead letters refused it: requeued");
                } else {
                    self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(target: TARGET, source = %self.name, routing_key = %delivery.routing_key, %error, "undecodable message: dead-lettered, not requeued");
                }
                drop(lease);
                None
            }
        }
    }
}

#[async_trait]
impl Source for AmqpSource {
    async fn fetch(&self, max: usize, wait: Duration) -> Result<Vec<Event>, SourceError> {
        let Some(notes) = self.notes() else {
            return Err(SourceError::new("the source is closed", None));
        };
        let mut session = self.session.lock().await;
        let usable = session
            .as_ref()
            .is_some_and(|s| s.connection.status().connected());
        if !usable {
            *session = Some(self.open().await?);
        }
        let Some(open) = session.as_mut() else {
            return Ok(Vec::new());
        };
        let deadline = tokio::time::Instant::now() + wait;
        let mut events = Vec::new();
        let mut read = 0;
        while read < max {
            // Waits for the first message only; after it, takes what is
            // already here (the prefetched deliveries) and returns, so that
            // a quiet queue's events are not held for the whole wait.
            let until = if read == 0 {
                deadline
            } else {
                tokio::time::Instant::now()
            };
            let next = match tokio::time::timeout_at(until, open.consumer.next()).await {
                Err(_) => break,
                Ok(next) => next,
            };
            let delivery = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(error)) => {
                    *session = None;
                    // What was read stays in the tree; the rest comes again.
                    if events.is_empty() {
                        return Err(self.error("read the queue", &error));
                    }
                    break;
                }
                None => {
                    *session = None;
                    break;
                }
            };
            read += 1;
            let key = self.next_key.fetch_add(1, Ordering::Relaxed);
            self.counters.fetched.fetch_add(1, Ordering::Relaxed);
            if delivery.redelivered {
                self.counters.redelivered.fetch_add(1, Ordering::Relaxed);
            }
            let _ = notes.send(Note::Fetched {
                key,
                acker: delivery.acker.clone(),
            });
            if let Some(decoded) = self.events_of(&delivery, key, &notes) {
                events.extend(decoded);
            }
        }
        Ok(events)
    }

    async fn unfetch(&self, events: Vec<Event>) {
        for event in &events {
            if let Some(settle) = event.lease().downcast_ref::<Settle>() {
                self.note(Note::GiveBack { key: settle.key });
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
        let (done, settled) = oneshot::channel();
        self.note(Note::Flush(done));
        let _ = tokio::time::timeout(Duration::from_secs(5), settled).await;
        drop(
            self.notes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        // Unacknowledged messages are requeued by the broker as the channel
        // closes.
        if let Some(session) = self.session.lock().await.take() {
            let closed = session
                .connection
                .close(200, "tidings source closing".into())
                .await;
            if let Err(error) = closed {
                tracing::debug!(target: TARGET, %error, "the connection did not close cleanly");
            }
        }
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
        metrics
    }
}
