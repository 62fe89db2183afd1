//! `Event`: one named, timestamped occurrence with its context and data.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::EventError;
pub(crate) use crate::data::Data;
use crate::data::{DataError, json_len, write_value};
use crate::wire::event_from_object;
use crate::{EventId, EventName, Lease, Map, Timestamp};

/// One event: what happened (`name`, `data`), when (`timestamp`), and the
/// ambient `context` it happened in.
///
/// Fields are private so that an event is always valid: the name is a
/// validated [`EventName`], the context a JSON object. Serializing an event
/// produces the wire format (see the [crate docs](crate)); deserializing one
/// applies the same normalisation as [`decode`](crate::decode).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    id: EventId,
    name: EventName,
    timestamp: Timestamp,
    context: Arc<Map>,
    data: Data,
    #[serde(skip_serializing_if = "Option::is_none")]
    received_at: Option<Timestamp>,
    /// Not part of the event's value: see [`Lease`].
    #[serde(skip)]
    lease: Lease,
}

impl Event {
    /// A new event named `name` carrying `data`, with a fresh UUID v7 id, the
    /// current time and an empty context.
    #[must_use]
    pub fn new(name: EventName, data: Value) -> Self {
        Self::with_data(name, Data::from_value(data))
    }

    /// A new event like [`Event::new`], whose data is any serializable
    /// value; `null` (or `()`) becomes `{}`, as in edX.
    ///
    /// The data is serialized to JSON text once, here; sinks write that text
    /// verbatim and it is parsed only if a processor reads or changes it.
    ///
    /// # Errors
    ///
    /// [`DataError`] when `data` cannot be represented as JSON or nests
    /// deeper than [`DEFAULT_MAX_DEPTH`](crate::DEFAULT_MAX_DEPTH).
    pub fn from_serializable(name: EventName, data: &impl Serialize) -> Result<Self, DataError> {
        match Data::serialize(data) {
            Ok(data) => Ok(Self::with_data(name, data)),
            Err(fault) => Err(fault.with_name(name)),
        }
    }

    fn with_data(name: EventName, data: Data) -> Self {
        let timestamp = Timestamp::now();
        Self {
            id: EventId::at(timestamp),
            name,
            timestamp,
            context: Arc::default(),
            data,
            received_at: None,
            lease: Lease::default(),
        }
    }

    /// Replaces the context. Pass an `Arc<Map>` to share one context
    /// snapshot between many events without copying it.
    #[must_use]
    pub fn with_context(mut self, context: impl Into<Arc<Map>>) -> Self {
        self.context = context.into();
        self
    }

    /// Replaces the id (to keep a client's id, for example).
    #[must_use]
    pub fn with_id(mut self, id: EventId) -> Self {
        self.id = id;
        self
    }

    /// Replaces the timestamp.
    #[must_use]
    pub fn with_timestamp(mut self, timestamp: Timestamp) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// Sets when a collector received the event.
    #[must_use]
    pub fn with_received_at(mut self, received_at: Timestamp) -> Self {
        self.received_at = Some(received_at);
        self
    }

    /// The event's id.
    #[must_use]
    pub fn id(&self) -> EventId {
        self.id
    }

    /// The event's name.
    #[must_use]
    pub fn name(&self) -> &EventName {
        &self.name
    }

    /// When the event happened.
    #[must_use]
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// The merged context the event was emitted in.
    #[must_use]
    pub fn context(&self) -> &Map {
        &self.context
    }

    /// The context, for processors that change it (copied first if it is
    /// shared with other events).
    pub fn context_mut(&mut self) -> &mut Map {
        Arc::make_mut(&mut self.context)
    }

    /// The payload.
    #[must_use]
    pub fn data(&self) -> &Value {
        self.data.value()
    }

    /// The payload, for processors that change it.
    pub fn data_mut(&mut self) -> &mut Value {
        self.data.value_mut()
    }

    /// The payload as JSON text, while the event still holds it as text
    /// (typed emits and events decoded off the wire, until something asks
    /// for [`Event::data_mut`]); `None` once it is a parsed [`Value`] only.
    /// Readers that scan the text avoid building a `Value`.
    #[must_use]
    pub fn data_text(&self) -> Option<&str> {
        self.data.text()
    }

    /// Runs `seed` over the payload without building a [`Value`] when the
    /// payload is still JSON text (a typed emit, or data decoded off the
    /// wire): for processors that only read it, such as validators.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use tidings_event::{Event, EventName};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct Url<'a> {
    ///     url: &'a str,
    /// }
    /// let event = Event::from_serializable(EventName::new("page.view")?, &Url { url: "/a" })?;
    /// let url = event.deserialize_data(std::marker::PhantomData::<Url>)?;
    /// assert_eq!(url.url, "/a");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Whatever `seed` reports for this payload.
    pub fn deserialize_data<'a, S>(&'a self, seed: S) -> Result<S::Value, serde_json::Error>
    where
        S: serde::de::DeserializeSeed<'a>,
    {
        self.data.deserialize(seed)
    }

    /// When a collector received the event, if one did.
    #[must_use]
    pub fn received_at(&self) -> Option<Timestamp> {
        self.received_at
    }

    /// Sets when a collector received the event.
    pub fn set_received_at(&mut self, at: Timestamp) {
        self.received_at = Some(at);
    }

    /// The event's [`Lease`] (none unless one was set).
    #[must_use]
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Attaches `lease`, replacing any other. Every copy made of the event
    /// from now on holds it too.
    pub fn set_lease(&mut self, lease: Lease) {
        self.lease = lease;
    }

    /// Removes the event's lease and returns it.
    pub fn take_lease(&mut self) -> Lease {
        std::mem::take(&mut self.lease)
    }

    /// Renames the event.
    pub fn set_name(&mut self, name: EventName) {
        self.name = name;
    }

    /// The event in its wire format, as compact JSON bytes.
    #[must_use]
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.write_json(&mut out);
        out
    }

    /// The length in bytes of the event in its wire format (what
    /// [`Event::to_json_bytes`] returns), computed without building it.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        const FIXED: usize =
            r#"{"id":"","name":,"timestamp":"","context":,"data":}"#.len() + 36 + 27;
        const RECEIVED_AT: usize = r#","received_at":"""#.len() + 27;
        FIXED
            + json_len(self.name.as_str())
            + json_len(&*self.context)
            + self.data.json_len()
            + if self.received_at.is_some() {
                RECEIVED_AT
            } else {
                0
            }
    }

    /// Appends the event in its wire format to `out`.
    ///
    /// This is the fast path sinks should use: data from a typed emit is
    /// copied as the JSON text it was serialized to. The output is the same
    /// as serializing the event with `serde_json`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"id\":\"");
        self.id.write_ascii(out);
        out.extend_from_slice(b"\",\"name\":");
        write_str(out, &self.name);
        out.extend_from_slice(b",\"timestamp\":\"");
        self.timestamp.write_ascii(out);
        out.push(b'"');
        out.extend_from_slice(b",\"context\":");
        self.write_context_json(out);
        out.extend_from_slice(b",\"data\":");
        self.write_data_json(out);
        if let Some(received_at) = &self.received_at {
            out.extend_from_slice(b",\"received_at\":\"");
            received_at.write_ascii(out);
            out.push(b'"');
        }
        out.push(b'}');
    }

    /// Appends the event's context as a JSON object: the `context` member
    /// of [`Event::write_json`], byte for byte.
    pub fn write_context_json(&self, out: &mut Vec<u8>) {
        write_value(out, &*self.context);
    }

    /// Appends the event's data as JSON: the `data` member of
    /// [`Event::write_json`], byte for byte. Data from a typed emit is
    /// copied as the text it was serialized to, without parsing it; a sink
    /// storing context and data apart (a database's columns) uses these two
    /// rather than cutting the whole event's JSON apart.
    pub fn write_data_json(&self, out: &mut Vec<u8>) {
        self.data.write_json(out);
    }

    /// Builds an event from one decoded JSON object, applying the wire
    /// format's normalisation (see [`decode`](crate::decode)).
    ///
    /// # Errors
    ///
    /// [`EventError`] when the object lacks a name or a field has the wrong
    /// type or value.
    pub fn from_json_object(object: Map) -> Result<Self, EventError> {
        event_from_object(object)
    }

    pub(crate) fn from_parts(
        id: EventId,
        name: EventName,
        timestamp: Timestamp,
        context: Map,
        data: Data,
        received_at: Option<Timestamp>,
    ) -> Self {
        Self {
            id,
            name,
            timestamp,
            context: Arc::new(context),
            data,
            received_at,
            lease: Lease::default(),
        }
    }
}

/// Appends `events` to `out` as a JSON array in the wire format (what a
/// batch of [`Event::write_json`] looks like to a receiver or a log).
pub fn write_json_array(events: &[Event], out: &mut Vec<u8>) {
    out.push(b'[');
    for (index, event) in events.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        event.write_json(out);
    }
    out.push(b']');
}

/// Appends `s` as a JSON string, copying it directly when nothing in it
/// needs escaping (the usual case for event names).
fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        write_value(out, s);
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = Map::deserialize(deserializer)?;
        event_from_object(object).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;
    use serde_json::json;

    use super::*;

    #[derive(Serialize)]
    struct Click<'a> {
        url: &'a str,
        depth: u32,
    }

    fn name(s: &'static str) -> EventName {
        EventName::new(s).unwrap()
    }

    #[test]
    fn write_json_matches_serde_for_value_and_serialized_data() {
        let click = Click {
            url: "http://a/\"quoted\"\n",
            depth: 3,
        };
        let typed = Event::from_serializable(name("a.click"), &click)
            .unwrap()
            .with_context(
                json!({"user_id": 1, "s": "é\u{1}"})
                    .as_object()
                    .unwrap()
                    .clone(),
            )
            .with_received_at(Timestamp::now());
        let valued = typed.clone();
        let mut valued = valued;
        let _ = valued.data_mut(); // forces the parsed representation
        // Parsed data is written exactly as serde writes it ...
        assert_eq!(valued.to_json_bytes(), serde_json::to_vec(&valued).unwrap());
        // ... and serialized data keeps its own key order (struct fields), but
        // is the same JSON.
        let parse = |bytes: Vec<u8>| serde_json::from_slice::<serde_json::Value>(&bytes).unwrap();
        assert_eq!(
            parse(typed.to_json_bytes()),
            parse(serde_json::to_vec(&typed).unwrap())
        );
        assert!(
            String::from_utf8(typed.to_json_bytes())
                .unwrap()
                .contains(r#""data":{"url":"#)
        );
        assert_eq!(typed, valued);
        assert_eq!(
            typed.data(),
            &json!({"url": "http://a/\"quoted\"\n", "depth": 3})
        );
    }

    #[test]
    fn serialized_data_is_parsed_when_read_and_rewritten_when_changed() {
        let mut event = Event::from_serializable(name("a"), &Click { url: "/", depth: 1 }).unwrap();
        assert_eq!(event.data()["depth"], 1);
        event.data_mut()["depth"] = json!(2);
        let back: serde_json::Value = serde_json::from_slice(&event.to_json_bytes()).unwrap();
        assert_eq!(back["data"], json!({"url": "/", "depth": 2}));
    }

    #[test]
    fn null_data_becomes_an_empty_object() {
        let event = Event::from_serializable(name("a"), &()).unwrap();
        assert_eq!(event.data(), &json!({}));
    }

    #[test]
    fn unrepresentable_or_too_deep_data_is_an_error() {
        let bad = std::collections::HashMap::from([((1, 2), 3)]);
        let err = Event::from_serializable(name("a"), &bad).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("data of event \"a\" is not representable as JSON"),
            "{err}"
        );

        let mut deep = json!(1);
        for _ in 0..64 {
            deep = json!([deep]);
        }
        assert!(Event::from_serializable(name("a"), &deep).is_ok());
        let err = Event::from_serializable(name("a"), &json!([deep])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "data of event \"a\" nests deeper than 64 levels"
        );
    }
}
