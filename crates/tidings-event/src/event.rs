//! `Event`: one named, timestamped occurrence with its context and data.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::wire::{EventError, event_from_object};
use crate::{EventId, EventName, Map, Timestamp};

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
    context: Map,
    data: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    received_at: Option<Timestamp>,
}

impl Event {
    /// A new event named `name` carrying `data`, with a fresh UUID v7 id, the
    /// current time and an empty context.
    #[must_use]
    pub fn new(name: EventName, data: Value) -> Self {
        Self {
            id: EventId::new(),
            name,
            timestamp: Timestamp::now(),
            context: Map::new(),
            data,
            received_at: None,
        }
    }

    /// Replaces the context.
    #[must_use]
    pub fn with_context(mut self, context: Map) -> Self {
        self.context = context;
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

    /// The context, for processors that change it.
    pub fn context_mut(&mut self) -> &mut Map {
        &mut self.context
    }

    /// The payload.
    #[must_use]
    pub fn data(&self) -> &Value {
        &self.data
    }

    /// The payload, for processors that change it.
    pub fn data_mut(&mut self) -> &mut Value {
        &mut self.data
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

    /// Renames the event.
    pub fn set_name(&mut self, name: EventName) {
        self.name = name;
    }

    /// The event in its wire format, as compact JSON bytes.
    #[must_use]
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.write_json(&mut out);
        out
    }

    /// Appends the event in its wire format to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Serializing to a Vec cannot fail: every key is a string and the
        // `Serialize` impls used here never return errors.
        if let Err(err) = serde_json::to_writer(&mut *out, self) {
            unreachable!("serializing an event to memory failed: {err}");
        }
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
        data: Value,
        received_at: Option<Timestamp>,
    ) -> Self {
        Self {
            id,
            name,
            timestamp,
            context,
            data,
            received_at,
        }
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = Map::deserialize(deserializer)?;
        event_from_object(object).map_err(serde::de::Error::custom)
    }
}
