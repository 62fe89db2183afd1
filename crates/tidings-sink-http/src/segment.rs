//! `SegmentSink`: batches as the body of a Segment `/v1/batch` request,
//! `{"batch": [message, ...], "sentAt": now}`, with the write key as Basic
//! auth; within Segment's limits of 32 KiB a message and 500 KiB a request.

use std::fmt;
use std::io;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use tidings_core::{Sink, SinkError, async_trait};
use tidings_event::{Event, Map, Timestamp, Value};

use crate::endpoint::Endpoint;
use crate::json::json_post;
use crate::{BuildError, HttpClient};

const SINK: &str = "segment";

/// Segment's limit on one message: 32 KiB of JSON.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Segment's limit on one request: 500 KiB of JSON (before compression).
pub const MAX_REQUEST_BYTES: usize = 500 * 1024;
/// Default for [`SegmentSinkBuilder::user_id_context_key`]: `user_id`.
pub const DEFAULT_USER_ID_CONTEXT_KEY: &str = "user_id";

/// The fields of a message the sink sets itself: the ones of the same
/// names in a Segment event's data are not copied. `originalTimestamp` and
/// `sentAt` are the first client's clock readings that the ingest kept:
/// sent again, they would make the next receiver correct the event's
/// (already corrected) timestamp by the first client's skew.
const SET_BY_THE_SINK: [&str; 6] = [
    "type",
    "messageId",
    "timestamp",
    "context",
    "originalTimestamp",
    "sentAt",
];

/// Forwards events to any endpoint that speaks Segment's HTTP Tracking
/// API (Segment itself, RudderStack, another tidings collector), as
/// `/v1/batch` requests.
///
/// Each batch is one `POST` of `application/json` (gzipped with `gzip`)
/// to `url`, the whole URL of the batch endpoint (such as
/// `https://api.segment.io/v1/batch`): `{"batch": [...], "sentAt": "..."}`
/// with one message per event and the time of sending as `sentAt`. The
/// write key goes as `Authorization: Basic base64("KEY:")`; it never
/// appears in `Debug` output, logs or errors.
///
/// # From an event to a message
///
/// An event that came from a Segment client (its data is an object whose
/// `type` is one of `track`, `page`, `screen`, `identify`, `group`,
/// `alias`, or its name is `segment.page`, `segment.screen`,
/// `segment.identify`, `segment.group` or `segment.alias` with object data)
/// becomes that call again: its data's fields are the message's fields,
/// a track's `event` is the event's name, `messageId` is the data's
/// `messageId` if it is a string and otherwise the event's id, `timestamp`
/// is the event's timestamp, `context` its context. The data's
/// `originalTimestamp` and `sentAt` are not sent: the event's timestamp
/// is already corrected for the first client's clock skew, and the
/// receiver corrects it again only by the sink's own `sentAt`.
///
/// Any other event becomes a track: `event` is its name, `properties` its
/// data (data that is not an object goes under `properties.data`; no data,
/// `null`, is `{}`), `messageId` its id, `timestamp` and `context` its own.
///
/// Segment requires a `userId` or an `anonymousId` in every message: a
/// message without either (a non-empty string or a number) gets the
/// context's `user_id_context_key` (a non-empty string, or a number, sent as
/// a string) as `userId`, or else the event's id as `anonymousId`.
///
/// # Limits
///
/// A message longer than [`MAX_MESSAGE_BYTES`] can never be accepted: a
/// batch holding one fails as too large ([`SinkErrorKind::TooLarge`](tidings_core::SinkErrorKind::TooLarge))
/// without being sent, so that the `SinkBackend` splits it until the
/// message is alone and dead-letters it (reason `too_large`) while its
/// neighbours are delivered. A batch whose body would be longer than
/// [`MAX_REQUEST_BYTES`] fails the same way and is split. The
/// [`size_hint`](Sink::size_hint) of an event is its message's length plus
/// one, so the batch config's `max_bytes` bounds the `batch` array, and the
/// default 500 000 keeps every request under the limit with no split.
///
/// Answers are classified as by the other HTTP sinks: `408`, `429` and
/// `5xx` are retried (after their `Retry-After`), `413` splits the batch,
/// `400` and `422` split it to find the messages at fault, other statuses
/// (a `401` for a wrong write key) drop it.
pub struct SegmentSink {
    client: HttpClient,
    endpoint: Arc<Endpoint>,
    headers: HeaderMap,
    gzip: bool,
    user_id_context_key: String,
}

/// Builds a [`SegmentSink`]. Created by [`SegmentSink::builder`]; the
/// setters are named after the keys of a `type = "segment"` backend in the
/// TOML config.
#[must_use = "a builder does nothing until `build` is called"]
pub struct SegmentSinkBuilder {
    url: Option<String>,
    write_key: Option<String>,
    gzip: bool,
    user_id_context_key: String,
    client: Option<HttpClient>,
}

impl Default for SegmentSinkBuilder {
    fn default() -> Self {
        Self {
            url: None,
            write_key: None,
            gzip: false,
            user_id_context_key: DEFAULT_USER_ID_CONTEXT_KEY.to_owned(),
            client: None,
        }
    }
}

impl SegmentSinkBuilder {
    /// The whole URL of the batch endpoint, such as
    /// `https://api.segment.io/v1/batch` (Segment's, in its US region),
    /// `https://events.eu1.segmentapis.com/v1/batch` (its EU region), a
    /// RudderStack data plane's `https://HOST/v1/batch`, or a tidings
    /// collector's `http://HOST:PORT/v1/batch`. Required.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// The source's write key, sent as `Authorization: Basic
    /// base64("KEY:")`. Unset by default (a tidings collector without
    /// `write_keys` needs none; Segment and RudderStack do).
    pub fn write_key(mut self, write_key: impl Into<String>) -> Self {
        self.write_key = Some(write_key.into());
        self
    }

    /// Whether bodies are gzipped (`Content-Encoding: gzip`). Defaults to
    /// `false`. The limits apply to the JSON before compression.
    pub fn gzip(mut self, gzip: bool) -> Self {
        self.gzip = gzip;
        self
    }

    /// The context key whose value becomes the `userId` of a message that
    /// has neither `userId` nor `anonymousId`. Defaults to `user_id`.
    pub fn user_id_context_key(mut self, key: impl Into<String>) -> Self {
        self.user_id_context_key = key.into();
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
    /// [`BuildError`] naming the option: no `url`, a `url` that is not
    /// absolute `http(s)`, an empty `write_key`, a `write_key` together with
    /// credentials in the URL, an empty `user_id_context_key`, or a client
    /// that cannot start.
    pub fn build(self) -> Result<SegmentSink, BuildError> {
        let endpoint = Endpoint::required(SINK, "url", self.url.as_deref())?;
        let mut headers = HeaderMap::new();
        if let Some(key) = &self.write_key {
            let invalid = |reason| BuildError::InvalidOption {
                sink: SINK,
                option: "write_key",
                reason,
            };
            if key.is_empty() {
                return Err(invalid("it must not be empty"));
            }
            if endpoint.has_credentials() {
                return Err(invalid(
                    "the URL carries credentials too: give the write key one way",
                ));
            }
            headers.insert(AUTHORIZATION, basic_authorization(key));
        }
        if self.user_id_context_key.is_empty() {
            return Err(BuildError::InvalidOption {
                sink: SINK,
                option: "user_id_context_key",
                reason: "it must not be empty",
            });
        }
        let client = HttpClient::or_new(self.client)?;
        Ok(SegmentSink {
            client,
            endpoint: Arc::new(endpoint),
            headers,
            gzip: self.gzip,
            user_id_context_key: self.user_id_context_key,
        })
    }
}

/// `Basic base64("KEY:")`, marked sensitive.
fn basic_authorization(key: &str) -> HeaderValue {
    let mut value = HeaderValue::try_from(format!("Basic {}", STANDARD.encode(format!("{key}:"))))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

impl fmt::Debug for SegmentSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentSinkBuilder")
            .field("url", &self.url.as_ref().map(|_| "…"))
            .field("write_key", &self.write_key.as_ref().map(|_| "…"))
            .field("gzip", &self.gzip)
            .field("user_id_context_key", &self.user_id_context_key)
            .field("client", &self.client)
            .finish()
    }
}

/// A batch the sink does not send because Segment would refuse it for its
/// size; the sink reports it as too large, so that the `SinkBackend`
/// splits it (and drops or dead-letters a message too large on its own).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentLimitError {
    /// One message is longer than [`MAX_MESSAGE_BYTES`].
    #[error(
        "the message of event {index} of the batch ({name}) is {bytes} bytes, over Segment's limit of {MAX_MESSAGE_BYTES} bytes a message"
    )]
    Message {
        /// Its position in the batch, from 0.
        index: usize,
        /// The event's name.
        name: String,
        /// The message's length in bytes.
        bytes: usize,
    },
    /// The request's body would be longer than [`MAX_REQUEST_BYTES`].
    #[error(
        "the batch of {events} messages is {bytes} bytes, over Segment's limit of {MAX_REQUEST_BYTES} bytes a request"
    )]
    Request {
        /// How many messages.
        events: usize,
        /// The body's length in bytes, before compression.
        bytes: usize,
    },
}

impl SegmentSink {
    /// A builder; `url` is required.
    pub fn builder() -> SegmentSinkBuilder {
        SegmentSinkBuilder::default()
    }

    /// The context key that supplies a missing `userId`.
    #[must_use]
    pub fn user_id_context_key(&self) -> &str {
        &self.user_id_context_key
    }

    /// Whether a write key is sent.
    #[must_use]
    pub fn has_write_key(&self) -> bool {
        self.headers.contains_key(AUTHORIZATION)
    }

    /// The message `event` becomes, as compact JSON.
    #[must_use]
    pub fn message(&self, event: &Event) -> Vec<u8> {
        let mut out = Vec::with_capacity(event.encoded_len() + 64);
        self.write_message(event, &mut out);
        out
    }

    fn write_message(&self, event: &Event, out: &mut Vec<u8>) {
        let message = Message::new(event, &self.user_id_context_key);
        // Serializing JSON values into memory cannot fail.
        let _ = serde_json::to_writer(out, &message);
    }

    /// The uncompressed request body for `batch`, sent at `sent_at`.
    ///
    /// # Errors
    ///
    /// [`SegmentLimitError`] when a message or the body is over Segment's
    /// limits.
    pub fn encode(
        &self,
        batch: &[Event],
        sent_at: Timestamp,
    ) -> Result<Vec<u8>, SegmentLimitError> {
        let mut out =
            Vec::with_capacity(batch.iter().map(|e| e.encoded_len() + 64).sum::<usize>() + 64);
        out.extend_from_slice(b"{\"batch\":[");
        for (index, event) in batch.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            let start = out.len();
            self.write_message(event, &mut out);
            let bytes = out.len() - start;
            if bytes > MAX_MESSAGE_BYTES {
                return Err(SegmentLimitError::Message {
                    index,
                    name: event.name().as_str().to_owned(),
                    bytes,
                });
            }
        }
        out.extend_from_slice(b"],\"sentAt\":\"");
        out.extend_from_slice(sent_at.to_string().as_bytes());
        out.extend_from_slice(b"\"}");
        if out.len() > MAX_REQUEST_BYTES {
            return Err(SegmentLimitError::Request {
                events: batch.len(),
                bytes: out.len(),
            });
        }
        Ok(out)
    }
}

impl fmt::Debug for SegmentSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentSink")
            .field("url", &self.endpoint)
            .field("write_key", &self.has_write_key().then_some("…"))
            .field("gzip", &self.gzip)
            .field("user_id_context_key", &self.user_id_context_key)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Sink for SegmentSink {
    /// One `POST` of the whole batch, unless it is over Segment's limits
    /// (then it fails as too large, unsent).
    async fn send_batch(&self, batch: &[Event]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let json = self
            .encode(batch, Timestamp::now())
            .map_err(SinkError::too_large)?;
        let request = json_post(&self.endpoint, &self.headers, json, self.gzip)?;
        self.client.deliver(request).await
    }

    async fn shutdown(&self) -> Result<(), SinkError> {
        Ok(())
    }

    /// The length of the event's message, plus one for its comma.
    fn size_hint(&self, event: &Event) -> usize {
        let mut count = Count(0);
        let message = Message::new(event, &self.user_id_context_key);
        // Counting cannot fail.
        let _ = serde_json::to_writer(&mut count, &message);
        count.0 + 1
    }
}

/// A writer that only counts bytes.
struct Count(usize);

impl io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Segment's six calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Track,
    Page,
    Screen,
    Identify,
    Group,
    Alias,
}

impl Call {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "track" => Self::Track,
            "page" => Self::Page,
            "screen" => Self::Screen,
            "identify" => Self::Identify,
            "group" => Self::Group,
            "alias" => Self::Alias,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Track => "track",
            Self::Page => "page",
            Self::Screen => "screen",
            Self::Identify => "identify",
            Self::Group => "group",
            Self::Alias => "alias",
        }
    }

    /// The call an event's name says: `segment.page` and the like (a
    /// track is named after its own `event`).
    fn from_name(name: &str) -> Option<Self> {
        name.strip_prefix("segment.")
            .and_then(Self::parse)
            .filter(|call| *call != Self::Track)
    }
}

/// Whether `value` can be a `userId` or an `anonymousId`: a non-empty
/// string or a number.
fn is_id(value: Option<&Value>) -> bool {
    match value {
        Some(Value::String(text)) => !text.is_empty(),
        Some(Value::Number(_)) => true,
        _ => false,
    }
}

/// One event as a Segment message, serialized without building it.
struct Message<'a> {
    event: &'a Event,
    call: Call,
    /// The data's fields, for an event that came from a Segment client;
    /// `None` for any other event (its data are the properties).
    fields: Option<&'a Map>,
    /// The `userId` or `anonymousId` to add, when the message has neither.
    identity: Option<(&'static str, String)>,
}

impl<'a> Message<'a> {
    fn new(event: &'a Event, user_id_context_key: &str) -> Self {
        let object = event.data().as_object();
        let typed = object.and_then(|fields| {
            let call = fields
                .get("type")
                .and_then(Value::as_str)
                .and_then(Call::parse)?;
            Some((call, fields))
        });
        let named = || Some((Call::from_name(event.name().as_str())?, object?));
        let (call, fields) = match typed.or_else(named) {
            Some((call, fields)) => (call, Some(fields)),
            None => (Call::Track, None),
        };
        let identified =
            fields.is_some_and(|f| is_id(f.get("userId")) || is_id(f.get("anonymousId")));
        let identity = (!identified).then(|| {
            let from_context = event.context().get(user_id_context_key);
            match from_context {
                Some(Value::String(id)) if !id.is_empty() => ("userId", id.clone()),
                Some(Value::Number(id)) => ("userId", id.to_string()),
                _ => ("anonymousId", event.id().to_string()),
            }
        });
        Self {
            event,
            call,
            fields,
            identity,
        }
    }

    /// `messageId`: a Segment event's own string `messageId`, else the id.
    fn message_id(&self) -> String {
        self.fields
            .and_then(|fields| fields.get("messageId"))
            .and_then(Value::as_str)
            .map_or_else(|| self.event.id().to_string(), str::to_owned)
    }

    /// Whether the data's field `key` is copied into the message.
    fn copies(&self, key: &str) -> bool {
        !(SET_BY_THE_SINK.contains(&key)
            || (self.call == Call::Track && key == "event")
            // A message that is given an identity has no usable one of its own.
            || (self.identity.is_some() && (key == "userId" || key == "anonymousId")))
    }
}

impl Serialize for Message<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let event = self.event;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", self.call.as_str())?;
        if self.call == Call::Track {
            map.serialize_entry("event", event.name().as_str())?;
        }
        map.serialize_entry("messageId", &self.message_id())?;
        map.serialize_entry("timestamp", &event.timestamp().to_string())?;
        map.serialize_entry("context", event.context())?;
        match self.fields {
            Some(fields) => {
                for (key, value) in fields.iter().filter(|(key, _)| self.copies(key)) {
                    map.serialize_entry(key, value)?;
                }
            }
            None => match event.data() {
                data @ Value::Object(_) => map.serialize_entry("properties", data)?,
                Value::Null => map.serialize_entry("properties", &Map::new())?,
                data => map.serialize_entry("properties", &Properties(data))?,
            },
        }
        if let Some((key, id)) = &self.identity {
            map.serialize_entry(key, id)?;
        }
        map.end()
    }
}

/// `{"data": value}`: the properties of an event whose data is not an object.
struct Properties<'a>(&'a Value);

impl Serialize for Properties<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("data", self.0)?;
        map.end()
    }
}

#[cfg(test)]
mod tests;
