//! `NatsSink`: pipelined JetStream publishes, one message per event, each
//! carrying the event id as `Nats-Msg-Id`.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self};
use bytes::Bytes;
use tidings_core::{Sink, SinkError, async_trait};
use tidings_event::Event;

use crate::SubjectTemplate;
use crate::builder::{HEADER_ROOM, NatsSinkBuilder, TARGET};
use crate::error::classify;
use crate::io::IoThread;

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
    pub(crate) url: Arc<str>,
    pub(crate) template: SubjectTemplate,
    pub(crate) stream: String,
    pub(crate) duplicate_window: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) ack_timeout: Duration,
    pub(crate) client: Client,
    pub(crate) jetstream: jetstream::Context,
    pub(crate) closed: AtomicBool,
    pub(crate) io: IoThread,
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
pub(crate) struct Outgoing {
    subject: String,
    id: String,
    body: Bytes,
}

impl NatsSink {
    /// A builder with every option at its default.
    pub fn builder() -> NatsSinkBuilder {
        NatsSinkBuilder::new()
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
pub(crate) async fn publish_all(
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
pub(crate) async fn wait_ack(
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
