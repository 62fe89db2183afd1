//! Segment's HTTP Tracking API (`/v1/track`, ..., `/v1/batch`): its
//! messages into tidings events, as docs/segment.md maps them. Pure
//! functions, no I/O.
//!
//! A message is split into its fields without parsing their values
//! (`RawValue`); the envelope fields are read, the others are copied
//! verbatim into the event's `data`, and the events so written are read by
//! the wire decoder, so that Segment's events meet the checks of `/events`
//! (names, nesting, values no sink can store) and keep their data as text.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use tidings_event::{EventId, EventName, Limits, Map, Timestamp, WireError, decode};
use uuid::Uuid;

use crate::access::is_key;
use crate::reject::Reject;
use tidings_event::Event;

/// The most bytes one message may have, as Segment's API allows (32 KiB).
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;

/// The most bytes a request to a Segment route may have, once
/// decompressed, as Segment's API allows (500 KiB).
pub const MAX_BATCH_BYTES: usize = 500 * 1024;

/// The namespace of the UUIDs (v5) made from `messageId`s that are not
/// UUIDs: the same `messageId` always gives the same event id.
const MESSAGE_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6d1f_4c8e_2b7a_4e57_9a1c_3f0d_8e5b_2a61);

/// A route of Segment's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SegmentRoute {
    /// `POST /v1/track` (and analytics.js's `/v1/t`).
    Track,
    /// `POST /v1/page` (`/v1/p`).
    Page,
    /// `POST /v1/screen` (`/v1/s`).
    Screen,
    /// `POST /v1/identify` (`/v1/i`).
    Identify,
    /// `POST /v1/group` (`/v1/g`).
    Group,
    /// `POST /v1/alias` (`/v1/a`).
    Alias,
    /// `POST /v1/batch` (`/v1/b`): `{"batch": [messages]}`.
    Batch,
    /// `POST /v1/import`: the same as `/v1/batch`.
    Import,
}

impl SegmentRoute {
    /// Every Segment route.
    pub const ALL: [Self; 8] = [
        Self::Track,
        Self::Page,
        Self::Screen,
        Self::Identify,
        Self::Group,
        Self::Alias,
        Self::Batch,
        Self::Import,
    ];

    /// The route's path, such as `/v1/track`.
    #[must_use]
    pub const fn path(self) -> &'static str {
        match self {
            Self::Track => "/v1/track",
            Self::Page => "/v1/page",
            Self::Screen => "/v1/screen",
            Self::Identify => "/v1/identify",
            Self::Group => "/v1/group",
            Self::Alias => "/v1/alias",
            Self::Batch => "/v1/batch",
            Self::Import => "/v1/import",
        }
    }

    /// The route at `path`: its own path, or the one-letter path
    /// analytics.js posts to (`/v1/t`, ..., `/v1/b`).
    #[must_use]
    pub fn from_path(path: &str) -> Option<Self> {
        let short = match path {
            "/v1/t" => Some(Self::Track),
            "/v1/p" => Some(Self::Page),
            "/v1/s" => Some(Self::Screen),
            "/v1/i" => Some(Self::Identify),
            "/v1/g" => Some(Self::Group),
            "/v1/a" => Some(Self::Alias),
            "/v1/b" => Some(Self::Batch),
            _ => None,
        };
        short.or_else(|| Self::ALL.into_iter().find(|r| r.path() == path))
    }

    /// The call of a single-message route; `None` for a batch.
    const fn call(self) -> Option<Call> {
        match self {
            Self::Track => Some(Call::Track),
            Self::Page => Some(Call::Page),
            Self::Screen => Some(Call::Screen),
            Self::Identify => Some(Call::Identify),
            Self::Group => Some(Call::Group),
            Self::Alias => Some(Call::Alias),
            Self::Batch | Self::Import => None,
        }
    }
}

/// One of Segment's six calls: a message's `type`.
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
    fn from_type(name: &str) -> Option<Self> {
        Some(match name {
            "track" => Self::Track,
            "page" => Self::Page,
            "screen" => Self::Screen,
            "identify" => Self::Identify,
            "group" => Self::Group,
            "alias" => Self::Alias,
            _ => return None,
        })
    }

    const fn type_name(self) -> &'static str {
        match self {
            Self::Track => "track",
            Self::Page => "page",
            Self::Screen => "screen",
            Self::Identify => "identify",
            Self::Group => "group",
            Self::Alias => "alias",
        }
    }

    /// The event name of a call other than track.
    const fn event_name(self) -> &'static str {
        match self {
            Self::Track => "segment.track",
            Self::Page => "segment.page",
            Self::Screen => "segment.screen",
            Self::Identify => "segment.identify",
            Self::Group => "segment.group",
            Self::Alias => "segment.alias",
        }
    }
}

/// The top of a batch's body: its messages and what they share.
#[derive(Deserialize)]
struct BatchBody<'a> {
    #[serde(borrow)]
    batch: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    context: Option<&'a RawValue>,
    #[serde(borrow, default)]
    integrations: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "sentAt")]
    sent_at: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "writeKey")]
    write_key: Option<&'a RawValue>,
}

/// What a request's messages share: the batch's fields, or nothing for a
/// single call.
#[derive(Default)]
struct Shared<'a> {
    context: Option<Map>,
    integrations: Option<Map>,
    sent_at: Option<(&'a RawValue, Timestamp)>,
}

/// Decodes the body of a request to `route` into events.
///
/// `key_in_body`: the collector's write keys, when the request's head
/// presented none; then the body's `writeKey` must be one of them.
/// `received`: the collector's clock, for the clock-skew correction.
///
/// # Errors
///
/// 413 over [`MAX_BATCH_BYTES`] or [`MAX_MESSAGE_BYTES`] (or `limits`), 401
/// for a missing or wrong `writeKey` when one is needed, 400 for anything
/// else that is not a valid message, naming the message and field.
pub(crate) fn decode_segment(
    route: SegmentRoute,
    body: &[u8],
    limits: &Limits,
    key_in_body: Option<&[String]>,
    received: Timestamp,
) -> Result<Vec<Event>, Reject> {
    if body.len() > MAX_BATCH_BYTES {
        return Err(Reject::TooLarge(format!(
            "the body is {} bytes, over the {MAX_BATCH_BYTES} a Segment request may have",
            body.len()
        )));
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        Reject::BadRequest(format!(
            "body is not UTF-8 (valid up to byte {})",
            e.valid_up_to()
        ))
    })?;
    let (messages, shared, write_key) = match route.call() {
        Some(_) => {
            let message: &RawValue = serde_json::from_str(text)
                .map_err(|e| Reject::BadRequest(format!("body is not valid JSON: {e}")))?;
            let key = match key_in_body {
                Some(_) => write_key_of(message)?,
                None => None,
            };
            (vec![message], Shared::default(), key)
        }
        None => {
            let top: BatchBody<'_> = serde_json::from_str(text).map_err(|e| {
                Reject::BadRequest(format!(
                    "body is not a batch (an object with a `batch` array of messages): {e}"
                ))
            })?;
            let shared = Shared {
                context: optional_object(top.context, "context")?,
                integrations: optional_object(top.integrations, "integrations")?,
                // (A `null` field of the batch is read as absent.)
                sent_at: top
                    .sent_at
                    .map(|raw| timestamp(raw, "sentAt").map(|at| (raw, at)))
                    .transpose()?,
            };
            (top.batch, shared, top.write_key)
        }
    };
    if let Some(keys) = key_in_body {
        let presented = write_key.and_then(|raw| serde_json::from_str::<&str>(raw.get()).ok());
        if !presented.is_some_and(|key| is_key(keys, key)) {
            return Err(Reject::Unauthorized);
        }
    }
    if messages.len() > limits.max_events {
        return Err(Reject::TooLarge(format!(
            "the batch has {} messages, over the {} a request may have",
            messages.len(),
            limits.max_events
        )));
    }
    let mut wire = Vec::with_capacity(body.len() + messages.len() * 160);
    let mut rest = Vec::new();
    wire.push(b'[');
    for (index, message) in messages.iter().enumerate() {
        if index > 0 {
            wire.push(b',');
        }
        write_event(
            message,
            route.call(),
            &shared,
            received,
            &mut rest,
            &mut wire,
        )
        .map_err(|reject| at_message(index, reject))?;
    }
    wire.push(b']');
    // The envelope adds bytes, and a single message's fields are two
    // levels deeper in it (the array, the event) than in its body; a
    // batch's are as deep in both.
    let deeper = if route.call().is_some() { 2 } else { 0 };
    let limits = (*limits)
        .with_max_bytes(usize::MAX)
        .with_max_depth(limits.max_depth.saturating_add(deeper))
        .with_max_events(usize::MAX);
    decode(&wire, &limits).map_err(|e| match e {
        WireError::Event { index, source } => {
            Reject::BadRequest(format!("message {index}: {source}"))
        }
        other => Reject::BadRequest(other.to_string()),
    })
}

/// Names the message a refusal is about.
fn at_message(index: usize, reject: Reject) -> Reject {
    match reject {
        Reject::BadRequest(m) => Reject::BadRequest(format!("message {index}: {m}")),
        Reject::TooLarge(m) => Reject::TooLarge(format!("message {index}: {m}")),
        other => other,
    }
}

/// A message split in one pass: its envelope fields, unparsed, and the
/// `"key":value` pairs of all its other fields written to `rest`
/// (comma-separated, in the message's order).
#[derive(Default)]
struct Split<'a> {
    kind: Option<&'a RawValue>,
    event: Option<&'a RawValue>,
    message_id: Option<&'a RawValue>,
    timestamp: Option<&'a RawValue>,
    original_timestamp: Option<&'a RawValue>,
    sent_at: Option<&'a RawValue>,
    context: Option<&'a RawValue>,
    integrations: Option<&'a RawValue>,
    write_key: Option<&'a RawValue>,
    // Kept in `rest` too; here to be checked.
    user_id: Option<&'a RawValue>,
    anonymous_id: Option<&'a RawValue>,
    group_id: Option<&'a RawValue>,
    previous_id: Option<&'a RawValue>,
}

/// Splits `message` (an object) into a [`Split`], writing its other fields
/// to `rest` (cleared first).
fn split<'a>(message: &'a RawValue, rest: &mut Vec<u8>) -> Result<Split<'a>, Reject> {
    rest.clear();
    let mut deserializer = serde_json::Deserializer::from_str(message.get());
    serde::de::DeserializeSeed::deserialize(Splitter { rest }, &mut deserializer)
        .map_err(|e| Reject::BadRequest(format!("not a valid message: {e}")))
}

/// The seed and visitor of [`split`].
struct Splitter<'r> {
    rest: &'r mut Vec<u8>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Splitter<'_> {
    type Value = Split<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Splitter<'_> {
    type Value = Split<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a message (an object)")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut split = Split::default();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            let slot = match &*key {
                "type" => &mut split.kind,
                "event" => &mut split.event,
                "messageId" => &mut split.message_id,
                "timestamp" => &mut split.timestamp,
                "context" => &mut split.context,
                "integrations" => &mut split.integrations,
                "writeKey" => &mut split.write_key,
                other => {
                    let kept = match other {
                        "userId" => Some(&mut split.user_id),
                        "anonymousId" => Some(&mut split.anonymous_id),
                        "groupId" => Some(&mut split.group_id),
                        "previousId" => Some(&mut split.previous_id),
                        "originalTimestamp" => Some(&mut split.original_timestamp),
                        "sentAt" => Some(&mut split.sent_at),
                        _ => None,
                    };
                    if let Some(slot) = kept {
                        *slot = Some(value);
                    }
                    if !self.rest.is_empty() {
                        self.rest.push(b',');
                    }
                    match &key {
                        // A borrowed key had no escapes: its text is JSON as it is.
                        Cow::Borrowed(text) => {
                            self.rest.push(b'"');
                            self.rest.extend_from_slice(text.as_bytes());
                            self.rest.push(b'"');
                        }
                        Cow::Owned(text) => write_string(self.rest, text),
                    }
                    self.rest.push(b':');
                    self.rest.extend_from_slice(value.get().as_bytes());
                    continue;
                }
            };
            *slot = Some(value);
        }
        Ok(split)
    }
}

/// A key of a message: borrowed from the body unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(text.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The `writeKey` of the object `message` (`None` if absent or not an
/// object).
fn write_key_of(message: &RawValue) -> Result<Option<&RawValue>, Reject> {
    if !message.get().starts_with('{') {
        return Ok(None);
    }
    Ok(split(message, &mut Vec::new())?.write_key)
}

/// Whether `raw` is there and not `null`.
fn present(raw: Option<&RawValue>) -> bool {
    raw.is_some_and(|raw| raw.get() != "null")
}

/// Writes the wire form of one message's event to `out`; `rest` is a
/// buffer to reuse.
fn write_event(
    message: &RawValue,
    path_call: Option<Call>,
    shared: &Shared<'_>,
    received: Timestamp,
    rest: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<(), Reject> {
    use std::io::Write as _;
    let text = message.get();
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(Reject::TooLarge(format!(
            "it is {} bytes, over the {MAX_MESSAGE_BYTES} a Segment message may have",
            text.len()
        )));
    }
    if !text.starts_with('{') {
        return Err(Reject::BadRequest(format!(
            "a message must be an object, found {}",
            json_kind(text)
        )));
    }
    let fields = split(message, rest)?;
    let call = match (path_call, fields.kind) {
        (Some(call), _) => call,
        (None, Some(raw)) => {
            let name = string(raw, "type")?;
            Call::from_type(&name).ok_or_else(|| {
                Reject::BadRequest(format!(
                    "field `type`: {name:?} is not one of Segment's calls (track, page, screen, identify, group, alias)"
                ))
            })?
        }
        (None, None) => {
            return Err(Reject::BadRequest(
                "missing field `type` (track, page, screen, identify, group or alias)".to_owned(),
            ));
        }
    };
    check_required(&fields, call)?;

    let name = match (call, fields.event) {
        (Call::Track, Some(raw)) => EventName::new(string(raw, "event")?.into_owned())
            .map_err(|e| Reject::BadRequest(format!("field `event`: {e}")))?,
        (other, _) => {
            EventName::new(other.event_name()).map_err(|e| Reject::BadRequest(e.to_string()))?
        }
    };
    let message_id = match fields.message_id {
        Some(raw) if raw.get() != "null" => {
            let text = string(raw, "messageId")?;
            Some((raw, Uuid::parse_str(&text).ok(), text))
        }
        _ => None,
    };
    let id = match &message_id {
        None => *EventId::at(received).as_uuid(),
        Some((_, Some(uuid), _)) => *uuid,
        Some((_, None, text)) => Uuid::new_v5(&MESSAGE_ID_NAMESPACE, text.as_bytes()),
    };
    let original = match (fields.original_timestamp, fields.timestamp) {
        (Some(raw), _) if raw.get() != "null" => Some(timestamp(raw, "originalTimestamp")?),
        (_, Some(raw)) if raw.get() != "null" => Some(timestamp(raw, "timestamp")?),
        _ => None,
    };
    let sent_at = match fields.sent_at {
        Some(raw) if raw.get() != "null" => Some(timestamp(raw, "sentAt")?),
        _ => shared.sent_at.map(|(_, at)| at),
    };
    let at = corrected(original, sent_at, received);
    let context = merged(shared.context.as_ref(), fields.context, "context")?;
    let integrations = match (&shared.integrations, fields.integrations) {
        (None, raw) => raw.map(|r| Cow::Borrowed(r.get())),
        (Some(_), raw) => Some(Cow::Owned(
            merged(shared.integrations.as_ref(), raw, "integrations")?.unwrap_or_default(),
        )),
    };

    let mut uuid = Uuid::encode_buffer();
    out.extend_from_slice(b"{\"id\":\"");
    out.extend_from_slice(id.hyphenated().encode_lower(&mut uuid).as_bytes());
    out.extend_from_slice(b"\",\"name\":");
    write_string(out, name.as_str());
    // Writing to a Vec cannot fail.
    let _ = write!(out, ",\"timestamp\":\"{at}\",\"context\":");
    out.extend_from_slice(context.as_deref().unwrap_or("{}").as_bytes());
    out.extend_from_slice(b",\"data\":{\"type\":\"");
    out.extend_from_slice(call.type_name().as_bytes());
    out.push(b'"');
    if let Some((raw, None, _)) = &message_id {
        out.extend_from_slice(b",\"messageId\":");
        out.extend_from_slice(raw.get().as_bytes());
    }
    if let Some(integrations) = integrations {
        out.extend_from_slice(b",\"integrations\":");
        out.extend_from_slice(integrations.as_bytes());
    }
    // Not a track's name: a field like any other.
    if call != Call::Track
        && let Some(raw) = fields.event
    {
        out.extend_from_slice(b",\"event\":");
        out.extend_from_slice(raw.get().as_bytes());
    }
    if !rest.is_empty() {
        out.push(b',');
        out.extend_from_slice(rest);
    }
    // `timestamp` is the event's; the client's reading is kept as
    // `originalTimestamp` unless the message has one of its own.
    if !present(fields.original_timestamp)
        && let Some(raw) = fields.timestamp
    {
        out.extend_from_slice(b",\"originalTimestamp\":");
        out.extend_from_slice(raw.get().as_bytes());
    }
    if !present(fields.sent_at)
        && let Some((raw, _)) = shared.sent_at
    {
        out.extend_from_slice(b",\"sentAt\":");
        out.extend_from_slice(raw.get().as_bytes());
    }
    out.extend_from_slice(b"}}");
    Ok(())
}

/// Checks the fields Segment requires of every message and of `call`'s.
fn check_required(fields: &Split<'_>, call: Call) -> Result<(), Reject> {
    for (name, raw) in [
        ("userId", fields.user_id),
        ("anonymousId", fields.anonymous_id),
    ] {
        if let Some(raw) = raw
            && !(raw.get() == "null"
                || raw.get().starts_with('"')
                || raw
                    .get()
                    .starts_with(|c: char| c == '-' || c.is_ascii_digit()))
        {
            return Err(Reject::BadRequest(format!(
                "field `{name}` must be a string or a number, found {}",
                json_kind(raw.get())
            )));
        }
    }
    if !present(fields.user_id) && !present(fields.anonymous_id) {
        return Err(Reject::BadRequest(
            "a message needs a `userId` or an `anonymousId`".to_owned(),
        ));
    }
    let required: &[(&str, Option<&RawValue>)] = match call {
        Call::Track => &[("event", fields.event)],
        Call::Group => &[("groupId", fields.group_id)],
        Call::Alias => &[
            ("previousId", fields.previous_id),
            ("userId", fields.user_id),
        ],
        Call::Page | Call::Screen | Call::Identify => &[],
    };
    for (name, raw) in required {
        if !present(*raw) {
            return Err(Reject::BadRequest(format!(
                "missing field `{name}`, which a {} message must have",
                call.type_name()
            )));
        }
    }
    Ok(())
}

/// The JSON text of the object `own` (a message's field `name`) merged
/// over `base` (the batch's), the message's keys winning; `None` when
/// neither is there.
fn merged(
    base: Option<&Map>,
    own: Option<&RawValue>,
    name: &str,
) -> Result<Option<String>, Reject> {
    let own = own.filter(|raw| raw.get() != "null");
    match (base, own) {
        (None, None) => Ok(None),
        (None, Some(raw)) => {
            if !raw.get().starts_with('{') {
                return Err(Reject::BadRequest(format!(
                    "field `{name}` must be an object, found {}",
                    json_kind(raw.get())
                )));
            }
            Ok(Some(raw.get().to_owned()))
        }
        (Some(base), own) => {
            let mut all = base.clone();
            if let Some(map) = optional_object(own, name)? {
                all.extend(map);
            }
            Ok(Some(serde_json::Value::Object(all).to_string()))
        }
    }
}

/// The object `raw` (a field named `name`), or `None` when absent or null.
fn optional_object(raw: Option<&RawValue>, name: &str) -> Result<Option<Map>, Reject> {
    match raw {
        None => Ok(None),
        Some(raw) if raw.get() == "null" => Ok(None),
        Some(raw) => serde_json::from_str::<Map>(raw.get())
            .map(Some)
            .map_err(|_| {
                Reject::BadRequest(format!(
                    "field `{name}` must be an object, found {}",
                    json_kind(raw.get())
                ))
            }),
    }
}

/// The string `raw` (a field named `name`).
fn string<'a>(raw: &'a RawValue, name: &str) -> Result<Cow<'a, str>, Reject> {
    serde_json::from_str::<Cow<'a, str>>(raw.get()).map_err(|_| {
        Reject::BadRequest(format!(
            "field `{name}` must be a string, found {}",
            json_kind(raw.get())
        ))
    })
}

/// The timestamp `raw` (a field named `name`): an RFC 3339 string.
fn timestamp(raw: &RawValue, name: &str) -> Result<Timestamp, Reject> {
    let text: String = serde_json::from_str(raw.get()).map_err(|_| {
        Reject::BadRequest(format!(
            "field `{name}` must be an RFC 3339 timestamp string, found {}",
            json_kind(raw.get())
        ))
    })?;
    text.parse()
        .map_err(|e| Reject::BadRequest(format!("field `{name}`: {e}")))
}

/// When the event happened, by the collector's clock: the client's
/// `original` reading moved by the client's clock error, which is how far
/// `sent_at` (the client's clock when it sent) is from `received` (the
/// collector's when it arrived). See docs/segment.md.
fn corrected(
    original: Option<Timestamp>,
    sent_at: Option<Timestamp>,
    received: Timestamp,
) -> Timestamp {
    match (original, sent_at) {
        (Some(original), Some(sent_at)) => {
            let skew = received.as_datetime() - sent_at.as_datetime();
            original
                .as_datetime()
                .checked_add(skew)
                .map_or(original, Timestamp::from_datetime)
        }
        (Some(original), None) => original,
        (None, _) => received,
    }
}

/// What kind of JSON value `text` is, for messages.
fn json_kind(text: &str) -> &'static str {
    match text.as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Appends `text` as a JSON string.
fn write_string(out: &mut Vec<u8>, text: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn decode_at(route: SegmentRoute, body: &Value, received: &str) -> Result<Vec<Event>, Reject> {
        decode_segment(
            route,
            body.to_string().as_bytes(),
            &Limits::default(),
            None,
            at(received),
        )
    }

    fn bad(route: SegmentRoute, body: &Value) -> String {
        match decode_at(route, body, "2026-12-03T12:00:00Z") {
            Err(Reject::BadRequest(m)) => m,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn a_track_keeps_every_field_and_moves_the_envelope() {
        let body = json!({
            "type": "page",
            "event": "Order Completed",
            "userId": "u1",
            "properties": {"revenue": 9.5, "items": [1, 2]},
            "context": {"library": {"name": "analytics-python", "version": "2.3.4"}},
            "integrations": {"All": true},
            "messageId": "0b4c5e2e-1f0a-4c1e-9d6f-2b8a3c4d5e6f",
            "timestamp": "2026-12-03T12:00:00.000+00:00",
            "writeKey": "secret",
            "_metadata": {"x": 1}
        });
        let events = decode_at(SegmentRoute::Track, &body, "2026-12-03T12:00:01Z").unwrap();
        let [event] = &events[..] else { panic!() };
        assert_eq!(event.name(), "Order Completed");
        assert_eq!(
            event.id().to_string(),
            "0b4c5e2e-1f0a-4c1e-9d6f-2b8a3c4d5e6f"
        );
        assert_eq!(
            event.timestamp(),
            at("2026-12-03T12:00:00Z"),
            "no sentAt: as sent"
        );
        assert_eq!(
            Value::Object(event.context().clone()),
            json!({"library": {"name": "analytics-python", "version": "2.3.4"}})
        );
        assert_eq!(
            event.data(),
            &json!({
                "type": "track",
                "userId": "u1",
                "properties": {"revenue": 9.5, "items": [1, 2]},
                "integrations": {"All": true},
                "originalTimestamp": "2026-12-03T12:00:00.000+00:00",
                "_metadata": {"x": 1}
            }),
            "the path's call wins over `type`; the key and the id are not data"
        );
    }

    #[test]
    fn calls_other_than_track_are_named_after_their_type() {
        for (route, name, extra) in [
            (SegmentRoute::Page, "segment.page", json!({"name": "Home"})),
            (SegmentRoute::Screen, "segment.screen", json!({})),
            (
                SegmentRoute::Identify,
                "segment.identify",
                json!({"traits": {"a": 1}}),
            ),
            (
                SegmentRoute::Group,
                "segment.group",
                json!({"groupId": "g"}),
            ),
            (
                SegmentRoute::Alias,
                "segment.alias",
                json!({"previousId": "p"}),
            ),
        ] {
            let mut body = json!({"userId": "u"});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let events = decode_at(route, &body, "2026-12-03T12:00:00Z").unwrap();
            assert_eq!(events[0].name(), name);
            let mut data = body.clone();
            data["type"] = route.path().trim_start_matches("/v1/").into();
            assert_eq!(events[0].data(), &data);
        }
    }

    #[test]
    fn a_batch_shares_its_context_integrations_and_sent_at() {
        let body = json!({
            "batch": [
                {"type": "track", "event": "a", "anonymousId": "x",
                 "context": {"ip": "own", "page": {"path": "/"}},
                 "integrations": {"Mixpanel": false},
                 "timestamp": "2026-12-03T11:59:00Z"},
                {"type": "identify", "userId": 42, "traits": {"plan": "pro"},
                 "timestamp": "2026-12-03T11:59:30Z", "sentAt": "2026-12-03T11:59:40Z"}
            ],
            "context": {"ip": "shared", "app": "web"},
            "integrations": {"All": false},
            "sentAt": "2026-12-03T12:00:00Z",
            "writeKey": "k"
        });
        // The client's clock is 10 minutes slow: received at 12:10 what it
        // sent at 12:00.
        let events = decode_at(SegmentRoute::Batch, &body, "2026-12-03T12:10:00Z").unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(
            Value::Object(events[0].context().clone()),
            json!({"ip": "own", "page": {"path": "/"}, "app": "web"})
        );
        assert_eq!(
            events[0].data()["integrations"],
            json!({"All": false, "Mixpanel": false})
        );
        assert_eq!(events[0].timestamp(), at("2026-12-03T12:09:00Z"));
        assert_eq!(events[0].data()["sentAt"], "2026-12-03T12:00:00Z");
        assert_eq!(
            events[0].data()["originalTimestamp"],
            "2026-12-03T11:59:00Z"
        );
        assert_eq!(events[1].name(), "segment.identify");
        assert_eq!(
            Value::Object(events[1].context().clone()),
            json!({"ip": "shared", "app": "web"})
        );
        assert_eq!(events[1].data()["userId"], 42);
        assert_eq!(
            events[1].timestamp(),
            at("2026-12-03T12:09:50Z"),
            "the message's own sentAt wins over the batch's"
        );
        assert_eq!(events[1].data()["sentAt"], "2026-12-03T11:59:40Z");
        assert_eq!(events[1].data()["integrations"], json!({"All": false}));
    }

    #[test]
    fn timestamps_fall_back_from_original_to_timestamp_to_the_receive_time() {
        let received = "2026-12-03T12:00:00Z";
        let one = |message: Value| {
            decode_at(SegmentRoute::Screen, &message, received).unwrap()[0].timestamp()
        };
        assert_eq!(
            one(
                json!({"userId": "u", "originalTimestamp": "2026-01-01T00:00:00Z", "timestamp": "2026-06-01T00:00:00Z"})
            ),
            at("2026-01-01T00:00:00Z"),
            "originalTimestamp first"
        );
        assert_eq!(
            one(
                json!({"userId": "u", "timestamp": "2020-05-01T10:00:00+02:00", "sentAt": "2026-12-03T11:00:00Z"})
            ),
            at("2020-05-01T09:00:00Z"),
            "a historical import keeps its date, moved by the hour the client's clock was off"
        );
        assert_eq!(one(json!({"userId": "u"})), at(received));
        assert_eq!(
            one(json!({"userId": "u", "sentAt": "2026-12-03T11:00:00Z"})),
            at(received),
            "sentAt alone says nothing of when"
        );
        let message = json!({"userId": "u", "timestamp": "2026-06-01T00:00:00Z", "originalTimestamp": "2026-01-01T00:00:00Z"});
        let event = &decode_at(SegmentRoute::Screen, &message, received).unwrap()[0];
        assert_eq!(
            event.data().get("originalTimestamp"),
            Some(&json!("2026-01-01T00:00:00Z")),
            "the client's own originalTimestamp is kept, its timestamp is the event's"
        );
        assert!(event.data().get("timestamp").is_none());
    }

    #[test]
    fn a_message_id_that_is_not_a_uuid_gives_the_same_id_every_time() {
        let message = json!({"userId": "u", "messageId": "ajs-next-1701601200000-abc"});
        let first = &decode_at(SegmentRoute::Page, &message, "2026-12-03T12:00:00Z").unwrap()[0];
        let again = &decode_at(SegmentRoute::Page, &message, "2026-12-03T13:00:00Z").unwrap()[0];
        assert_eq!(first.id(), again.id());
        assert_eq!(first.id().as_uuid().get_version_num(), 5);
        assert_eq!(first.data()["messageId"], "ajs-next-1701601200000-abc");
        let other = json!({"userId": "u", "messageId": "ajs-next-1701601200000-abd"});
        assert_ne!(
            decode_at(SegmentRoute::Page, &other, "2026-12-03T12:00:00Z").unwrap()[0].id(),
            first.id()
        );
        let none = &decode_at(
            SegmentRoute::Page,
            &json!({"userId": "u"}),
            "2026-12-03T12:00:00Z",
        )
        .unwrap()[0];
        assert_eq!(none.id().as_uuid().get_version_num(), 7);
        assert!(none.data().get("messageId").is_none());
    }

    #[test]
    fn what_segment_requires_is_required() {
        use SegmentRoute::{Alias, Batch, Group, Track};
        assert_eq!(
            bad(Track, &json!({"event": "e"})),
            "message 0: a message needs a `userId` or an `anonymousId`"
        );
        assert_eq!(
            bad(
                Track,
                &json!({"event": "e", "userId": null, "anonymousId": null})
            ),
            "message 0: a message needs a `userId` or an `anonymousId`"
        );
        assert!(bad(Track, &json!({"userId": "u"})).contains("missing field `event`"));
        assert!(
            bad(Track, &json!({"userId": "u", "event": null})).contains("missing field `event`")
        );
        assert!(bad(Group, &json!({"userId": "u"})).contains("missing field `groupId`"));
        assert!(bad(Alias, &json!({"userId": "u"})).contains("missing field `previousId`"));
        assert!(
            bad(Alias, &json!({"anonymousId": "a", "previousId": "p"}))
                .contains("missing field `userId`")
        );
        assert!(
            bad(Track, &json!({"userId": {"a": 1}, "event": "e"}))
                .contains("`userId` must be a string or a number, found an object")
        );
        assert!(
            bad(
                Track,
                &json!({"anonymousId": true, "userId": "u", "event": "e"})
            )
            .contains("`anonymousId` must be a string or a number, found a boolean")
        );
        assert_eq!(
            bad(
                Batch,
                &json!({"batch": [{"type": "track", "event": "e", "userId": "u"}, {"event": "e", "userId": "u"}]})
            ),
            "message 1: missing field `type` (track, page, screen, identify, group or alias)"
        );
        assert!(
            bad(Batch, &json!({"batch": [{"type": "trak", "userId": "u"}]}))
                .contains("\"trak\" is not one of Segment's calls")
        );
        assert!(
            bad(Batch, &json!({"batch": [{"type": 1, "userId": "u"}]}))
                .contains("field `type` must be a string, found a number")
        );
        assert!(
            bad(Track, &json!({"userId": "u", "event": ""}))
                .starts_with("message 0: field `event`: ")
        );
        assert!(
            bad(Track, &json!({"userId": "u", "event": 3}))
                .contains("field `event` must be a string, found a number")
        );
        assert!(
            bad(Track, &json!({"userId": "u", "event": "e", "messageId": 3}))
                .contains("field `messageId` must be a string")
        );
    }

    #[test]
    fn malformed_bodies_and_fields_are_refused_with_where() {
        use SegmentRoute::{Batch, Identify, Track};
        assert!(bad(Batch, &json!({"messages": []})).contains("missing field `batch`"));
        assert!(bad(Batch, &json!([1])).starts_with("body is not a batch"));
        assert_eq!(
            bad(
                Batch,
                &json!({"batch": [{"type": "track", "event": "e", "userId": "u"}, 7]})
            ),
            "message 1: a message must be an object, found a number"
        );
        assert!(
            bad(Track, &json!([{"userId": "u"}])).contains("must be an object, found an array")
        );
        assert!(
            bad(Identify, &json!({"userId": "u", "context": []}))
                .contains("field `context` must be an object, found an array")
        );
        assert!(
            bad(Batch, &json!({"batch": [], "context": "x"}))
                .contains("field `context` must be an object, found a string")
        );
        assert!(bad(Batch, &json!({"batch": [{"type": "identify", "userId": "u", "integrations": 1}], "integrations": {}})).contains("field `integrations` must be an object"));
        assert!(
            bad(Identify, &json!({"userId": "u", "timestamp": "yesterday"}))
                .starts_with("message 0: field `timestamp`: invalid timestamp")
        );
        assert!(
            bad(Identify, &json!({"userId": "u", "originalTimestamp": 17})).contains(
                "field `originalTimestamp` must be an RFC 3339 timestamp string, found a number"
            )
        );
        assert!(bad(Batch, &json!({"batch": [], "sentAt": "x"})).contains("field `sentAt`"));
        for body in [&b"{"[..], b"{\"userId\": \"u\"} x", b"\xff"] {
            assert!(matches!(
                decode_segment(Identify, body, &Limits::default(), None, Timestamp::now()),
                Err(Reject::BadRequest(_))
            ));
        }
        // The body nests at most 64 levels deep, counting itself, as on `/events`.
        let deep = format!(
            "{{\"userId\": \"u\", \"traits\": {}1{}}}",
            "[".repeat(63),
            "]".repeat(63)
        );
        assert!(
            decode_segment(
                Identify,
                deep.as_bytes(),
                &Limits::default(),
                None,
                Timestamp::now()
            )
            .is_ok()
        );
        let deeper = format!(
            "{{\"userId\": \"u\", \"traits\": {}1{}}}",
            "[".repeat(64),
            "]".repeat(64)
        );
        let refused = decode_segment(
            Identify,
            deeper.as_bytes(),
            &Limits::default(),
            None,
            Timestamp::now(),
        );
        assert!(
            matches!(refused, Err(Reject::BadRequest(ref m)) if m.contains("nest")),
            "{refused:?}"
        );
        let batch_deep = format!(
            "{{\"batch\": [{{\"type\": \"identify\", \"userId\": \"u\", \"traits\": {}1{}}}]}}",
            "[".repeat(61),
            "]".repeat(61)
        );
        assert!(
            decode_segment(
                Batch,
                batch_deep.as_bytes(),
                &Limits::default(),
                None,
                Timestamp::now()
            )
            .is_ok()
        );
        let batch_deeper = batch_deep.replacen("[1", "[[1", 1).replacen("]}", "]]}", 1);
        assert!(
            decode_segment(
                Batch,
                batch_deeper.as_bytes(),
                &Limits::default(),
                None,
                Timestamp::now()
            )
            .is_err()
        );
        let surrogate = br#"{"userId": "u", "traits": {"s": "\ud800"}}"#;
        assert!(matches!(
            decode_segment(Identify, surrogate, &Limits::default(), None, Timestamp::now()),
            Err(Reject::BadRequest(m)) if m.starts_with("message 0: ")
        ));
    }

    #[test]
    fn segments_size_limits_are_413s() {
        let big = "x".repeat(MAX_MESSAGE_BYTES);
        let one = json!({"userId": "u", "traits": {"t": big}});
        assert!(matches!(
            decode_at(SegmentRoute::Identify, &one, "2026-12-03T12:00:00Z"),
            Err(Reject::TooLarge(m)) if m.starts_with("message 0: it is ")
        ));
        let fits = json!({"userId": "u", "traits": {"t": "x".repeat(MAX_MESSAGE_BYTES - 40)}});
        assert!(fits.to_string().len() <= MAX_MESSAGE_BYTES);
        assert!(decode_at(SegmentRoute::Identify, &fits, "2026-12-03T12:00:00Z").is_ok());
        let messages: Vec<Value> = (0..17).map(|_| fits.clone()).collect();
        let batch = json!({"batch": messages});
        assert!(batch.to_string().len() > MAX_BATCH_BYTES);
        assert!(matches!(
            decode_at(SegmentRoute::Batch, &batch, "2026-12-03T12:00:00Z"),
            Err(Reject::TooLarge(m)) if m.contains("over the 512000")
        ));
        let many: Vec<Value> = (0..3)
            .map(|_| json!({"type": "identify", "userId": "u"}))
            .collect();
        let few = Limits::default().with_max_events(2);
        assert!(matches!(
            decode_segment(SegmentRoute::Batch, json!({"batch": many}).to_string().as_bytes(), &few, None, Timestamp::now()),
            Err(Reject::TooLarge(m)) if m.contains("3 messages, over the 2")
        ));
    }

    #[test]
    fn a_write_key_in_the_body_is_checked_when_asked() {
        let keys = ["k1".to_owned(), "k2".to_owned()];
        let check = |route: SegmentRoute, body: Value| {
            decode_segment(
                route,
                body.to_string().as_bytes(),
                &Limits::default(),
                Some(&keys),
                Timestamp::now(),
            )
        };
        let message = json!({"type": "identify", "userId": "u"});
        assert!(
            check(
                SegmentRoute::Batch,
                json!({"batch": [message], "writeKey": "k2"})
            )
            .is_ok()
        );
        assert!(
            check(
                SegmentRoute::Identify,
                json!({"userId": "u", "writeKey": "k1"})
            )
            .is_ok()
        );
        for body in [
            json!({"batch": [message], "writeKey": "k3"}),
            json!({"batch": [message]}),
            json!({"batch": [message], "writeKey": 1}),
            json!({"batch": [{"type": "identify", "userId": "u", "writeKey": "k1"}]}),
        ] {
            assert_eq!(
                check(SegmentRoute::Batch, body.clone()).unwrap_err(),
                Reject::Unauthorized,
                "{body}"
            );
        }
        assert_eq!(
            check(SegmentRoute::Identify, json!({"userId": "u"})).unwrap_err(),
            Reject::Unauthorized
        );
        assert!(
            decode_segment(
                SegmentRoute::Identify,
                br#"{"userId": "u", "writeKey": "nope"}"#,
                &Limits::default(),
                None,
                Timestamp::now()
            )
            .is_ok(),
            "not asked: the head presented a key, or none is configured"
        );
    }

    #[test]
    fn paths_long_and_short() {
        for route in SegmentRoute::ALL {
            assert_eq!(SegmentRoute::from_path(route.path()), Some(route));
        }
        for (short, route) in [
            ("/v1/t", SegmentRoute::Track),
            ("/v1/p", SegmentRoute::Page),
            ("/v1/s", SegmentRoute::Screen),
            ("/v1/i", SegmentRoute::Identify),
            ("/v1/g", SegmentRoute::Group),
            ("/v1/a", SegmentRoute::Alias),
            ("/v1/b", SegmentRoute::Batch),
        ] {
            assert_eq!(SegmentRoute::from_path(short), Some(route));
        }
        assert_eq!(SegmentRoute::from_path("/v1/x"), None);
        assert_eq!(SegmentRoute::from_path("/v1/batch/"), None);
    }

    #[test]
    fn null_envelope_fields_are_absent_ones() {
        let received = "2026-12-03T12:00:00Z";
        let batch = json!({
            "batch": [{"type": "identify", "userId": "u", "messageId": null,
                       "originalTimestamp": null, "timestamp": "2026-12-03T11:00:00Z"},
                      {"type": "identify", "userId": "u", "originalTimestamp": null,
                       "timestamp": null}],
            "sentAt": null, "context": null, "integrations": null
        });
        let events = decode_at(SegmentRoute::Batch, &batch, received).unwrap();
        assert_eq!(
            events[0].id().as_uuid().get_version_num(),
            7,
            "no messageId: a new id"
        );
        assert_eq!(
            events[0].timestamp(),
            at("2026-12-03T11:00:00Z"),
            "a null originalTimestamp: the timestamp, not corrected without a sentAt"
        );
        assert_eq!(
            events[0].data()["originalTimestamp"],
            "2026-12-03T11:00:00Z"
        );
        assert_eq!(
            events[1].timestamp(),
            at(received),
            "no time at all: the receive time"
        );
        assert!(events[1].context().is_empty());
        let batch = json!({
            "batch": [{"type": "identify", "userId": "u", "sentAt": null,
                       "timestamp": "2026-12-03T11:00:00Z"}],
            "sentAt": "2026-12-03T11:59:00Z"
        });
        let events = decode_at(SegmentRoute::Batch, &batch, received).unwrap();
        assert_eq!(
            events[0].timestamp(),
            at("2026-12-03T11:01:00Z"),
            "a null sentAt of the message: the batch's"
        );
    }

    #[test]
    fn the_limits_themselves_are_allowed() {
        // A message of exactly MAX_MESSAGE_BYTES bytes.
        let mut message = json!({"userId": "u", "traits": {"t": ""}});
        let pad = MAX_MESSAGE_BYTES - message.to_string().len();
        message["traits"]["t"] = "x".repeat(pad).into();
        assert_eq!(message.to_string().len(), MAX_MESSAGE_BYTES);
        assert!(decode_at(SegmentRoute::Identify, &message, "2026-12-03T12:00:00Z").is_ok());
        // A body of exactly MAX_BATCH_BYTES bytes, whitespace padded.
        let mut body = json!({"batch": [{"type": "identify", "userId": "u"}]}).to_string();
        body.push_str(&" ".repeat(MAX_BATCH_BYTES - body.len()));
        assert!(
            decode_segment(
                SegmentRoute::Batch,
                body.as_bytes(),
                &Limits::default(),
                None,
                Timestamp::now()
            )
            .is_ok()
        );
        body.push(' ');
        assert!(matches!(
            decode_segment(
                SegmentRoute::Batch,
                body.as_bytes(),
                &Limits::default(),
                None,
                Timestamp::now()
            ),
            Err(Reject::TooLarge(_))
        ));
        // As many messages as a request may have.
        let two = json!({"batch": [{"type": "identify", "userId": "u"}, {"type": "identify", "userId": "v"}]});
        let limits = Limits::default().with_max_events(2);
        assert_eq!(
            decode_segment(
                SegmentRoute::Batch,
                two.to_string().as_bytes(),
                &limits,
                None,
                Timestamp::now()
            )
            .unwrap()
            .len(),
            2
        );
    }

    #[test]
    fn clock_skew_correction_survives_absurd_clocks() {
        let original = Some(at("9999-12-31T23:59:59Z"));
        let sent = Some(at("0001-01-01T00:00:00Z"));
        let received = at("2026-12-03T12:00:00Z");
        assert_eq!(
            corrected(original, sent, received),
            at("9999-12-31T23:59:59Z")
        );
    }
}
