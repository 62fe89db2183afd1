//! `FlumeSink`: one form `POST` per event, `data` = JSON
//! `{"event", "properties"}` holding only the allowed properties.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use http::header::HeaderMap;
use tidings_core::{Sink, SinkError, async_trait};
use tidings_event::{Event, EventId};
use tidings_processors::PropertyAllowlist;

use crate::endpoint::{Endpoint, FORM};
use crate::properties::{Element, identify, merged};
use crate::{BuildError, HttpClient};

const SINK: &str = "flume";

/// Mirrors events to a flume endpoint (tachyon's flume reporter), keeping
/// only allowed properties so that no PII leaks.
///
/// Every event is its own `POST` of `application/x-www-form-urlencoded`
/// with one field, `data`: JSON `{"event": name, "properties": {...}}`,
/// where the properties are the event's context with its data merged on
/// top (as the spade sink does), then filtered by `allowed_properties`
/// (dotted paths, [`PropertyAllowlist`]).
///
/// # Partial failures
///
/// `send_batch` posts the batch's events in order and stops at the first
/// failure, returning an error that says which event failed and how many of
/// the batch were delivered ([`PartialDelivery`]), classified like that
/// event's failure. The sink remembers the ids of the events it delivered
/// from a batch that failed, and skips them when the same events come again
/// (the `SinkBackend` retrying the batch, or its halves after a 413), so
/// only the unsent rest is retried. It forgets them once that batch
/// succeeds, or when a batch sharing no event with them arrives (the failed
/// batch was dropped). Delivery is still at-least-once: a request whose
/// answer is lost (a timeout or reset after the server took it) is sent
/// again. And since a `Sink` reports a batch all or nothing, a batch that is
/// dropped after a partial failure counts its delivered events as dropped
/// too: use `BatchConfig::default().with_max_events(1)` for exact counts.
pub struct FlumeSink {
    client: HttpClient,
    endpoint: Arc<Endpoint>,
    allowlist: PropertyAllowlist,
    /// Ids delivered from batches that have not succeeded as a whole yet.
    delivered: Mutex<HashSet<EventId>>,
}

/// Builds a [`FlumeSink`]. Created by [`FlumeSink::builder`]; the setters
/// are named after the keys of a `type = "flume"` backend in the TOML config.
#[must_use = "a builder does nothing until `build` is called"]
#[derive(Default)]
pub struct FlumeSinkBuilder {
    url: Option<String>,
    allowed_properties: Vec<String>,
    client: Option<HttpClient>,
}

impl FlumeSinkBuilder {
    /// The flume endpoint. Required.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// The properties sent, as dotted paths into the merged context and
    /// data (`page.title` keeps only that key of `page`). Defaults to none:
    /// every event is sent with empty properties, so nothing leaks unless
    /// listed.
    pub fn allowed_properties<I>(mut self, paths: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.allowed_properties = paths.into_iter().map(Into::into).collect();
        self
    }

    /// The HTTP client to send with. Defaults to a new [`HttpClient`] with
    /// default timeouts.
    pub fn client(mut self, client: HttpClient) -> Self {
        self.client = Some(client);
        self
    }

    /// Builds the sink.
    ///
    /// # Errors
    ///
    /// [`BuildError`]: no `url`, a `url` that is not absolute `http(s)`, an
    /// invalid entry of `allowed_properties`, or a client that cannot start.
    pub fn build(self) -> Result<FlumeSink, BuildError> {
        let endpoint = Endpoint::required(SINK, "url", self.url.as_deref())?;
        let allowlist = PropertyAllowlist::new(self.allowed_properties)?;
        let client = HttpClient::or_new(self.client)?;
        Ok(FlumeSink {
            client,
            endpoint: Arc::new(endpoint),
            allowlist,
            delivered: Mutex::default(),
        })
    }
}

impl fmt::Debug for FlumeSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlumeSinkBuilder")
            .field("url", &self.url.as_ref().map(|_| "…"))
            .field("allowed_properties", &self.allowed_properties)
            .field("client", &self.client)
            .finish()
    }
}

impl FlumeSink {
    /// A builder; `url` is required.
    pub fn builder() -> FlumeSinkBuilder {
        FlumeSinkBuilder::default()
    }

    /// The allowed property paths.
    #[must_use]
    pub fn allowed_properties(&self) -> &[String] {
        self.allowlist.paths()
    }

    /// The request body for `event`: the form `data=<JSON>`.
    #[must_use]
    pub fn encode(&self, event: &Event) -> Vec<u8> {
        let mut properties = merged(event);
        self.allowlist.filter_map(&mut properties);
        // Not personal, and what tells a retried post from a new event.
        identify(event, &mut properties);
        let element = Element {
            event: event.name().as_str(),
            properties,
        };
        // Serializing JSON values into memory cannot fail.
        let json = serde_json::to_string(&element).unwrap_or_default();
        serde_urlencoded::to_string([("data", json)])
            .unwrap_or_default()
            .into_bytes()
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<EventId>> {
        self.delivered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The ids of `batch` delivered by earlier, failed calls.
    fn already_delivered(&self, batch: &[Event]) -> HashSet<EventId> {
        let mut delivered = self.lock();
        let skip: HashSet<EventId> = batch
            .iter()
            .map(Event::id)
            .filter(|id| delivered.contains(id))
            .collect();
        if skip.is_empty() {
            // A new batch: whatever failed before was dropped.
            delivered.clear();
        }
        skip
    }
}

impl fmt::Debug for FlumeSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlumeSink")
            .field("url", &self.endpoint)
            .field("allowed_properties", &self.allowlist.paths())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Sink for FlumeSink {
    /// One `POST` per event, in order, skipping events delivered by an
    /// earlier failed call; stops at the first failure.
    async fn send_batch(&self, batch: &[Event]) -> Result<(), SinkError> {
        let skip = self.already_delivered(batch);
        let mut delivered = skip.len();
        for (index, event) in batch.iter().enumerate() {
            if skip.contains(&event.id()) {
                continue;
            }
            let body = Bytes::from(self.encode(event));
            match self
                .client
                .deliver(self.endpoint.post(FORM, &HeaderMap::new(), body))
                .await
            {
                Ok(()) => {
                    self.lock().insert(event.id());
                    delivered += 1;
                }
                Err(error) => {
                    let kind = error.kind();
                    let retry_after = error.retry_after();
                    let partial = PartialDelivery {
                        failed: index,
                        name: event.name().as_str().to_owned(),
                        total: batch.len(),
                        delivered,
                        source: error,
                    };
                    let error = SinkError::new(kind, partial);
                    return Err(match retry_after {
                        Some(delay) => error.with_retry_after(delay),
                        None => error,
                    });
                }
            }
        }
        let mut remembered = self.lock();
        for event in batch {
            remembered.remove(&event.id());
        }
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// A flume batch failed part way: the source of the [`SinkError`] that
/// [`FlumeSink`] returns.
#[derive(Debug, thiserror::Error)]
#[error(
    "event {} of {total} ({name}) failed, {delivered} of the batch delivered (skipped if the batch is retried): {source}",
    failed + 1
)]
pub struct PartialDelivery {
    failed: usize,
    name: String,
    total: usize,
    delivered: usize,
    #[source]
    source: SinkError,
}

impl PartialDelivery {
    /// The position in the batch (0-based) of the event that failed.
    #[must_use]
    pub fn failed_index(&self) -> usize {
        self.failed
    }

    /// The name of the event that failed.
    #[must_use]
    pub fn failed_name(&self) -> &str {
        &self.name
    }

    /// How many events of the batch the server has taken, in this call or
    /// earlier ones.
    #[must_use]
    pub fn delivered(&self) -> usize {
        self.delivered
    }

    /// The size of the batch.
    #[must_use]
    pub fn total(&self) -> usize {
        self.total
    }
}
