//! `Data`: an event's payload, kept as the JSON text it was serialized to
//! until something needs to look inside it.

use std::sync::OnceLock;

use serde::Serialize;
use serde_json::Value;

use crate::wire::{DEFAULT_MAX_DEPTH, check_depth};
use crate::{EventName, Map};

/// Data given to [`Event::from_serializable`](crate::Event::from_serializable)
/// that cannot be an event's payload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The value cannot be represented as JSON (a map with non-string keys,
    /// a `Serialize` impl that fails, ...).
    #[error("data of event {name:?} is not representable as JSON: {source}")]
    Json {
        /// The event's name.
        name: EventName,
        /// What serde_json reported.
        #[source]
        source: serde_json::Error,
    },
    /// The value nests deeper than the wire format allows.
    #[error("data of event {name:?} nests deeper than {limit} levels")]
    TooDeep {
        /// The event's name.
        name: EventName,
        /// The limit.
        limit: usize,
    },
}

/// Why data could not be serialized; [`DataError`] without the event name.
#[derive(Debug)]
pub(crate) enum DataFault {
    Json(serde_json::Error),
    TooDeep,
}

impl DataFault {
    pub(crate) fn with_name(self, name: EventName) -> DataError {
        match self {
            Self::Json(source) => DataError::Json { name, source },
            Self::TooDeep => DataError::TooDeep {
                name,
                limit: DEFAULT_MAX_DEPTH,
            },
        }
    }
}

/// The payload. Either `raw` holds the JSON text (typed emits: serialized
/// once, written verbatim by sinks, parsed only if a processor reads it), or
/// `value` holds the parsed value; when both are set they agree.
#[derive(Debug, Clone)]
pub(crate) struct Data {
    raw: Option<String>,
    value: OnceLock<Value>,
}

impl Data {
    /// Data as JSON text that is known to be valid and within the depth limit.
    pub(crate) fn from_valid_json(raw: &str) -> Self {
        Self {
            raw: Some(raw.to_owned()),
            value: OnceLock::new(),
        }
    }

    pub(crate) fn from_value(value: Value) -> Self {
        Self {
            raw: None,
            value: OnceLock::from(value),
        }
    }

    /// Serializes `data`; `null` becomes `{}`.
    pub(crate) fn serialize(data: &impl Serialize) -> Result<Self, DataFault> {
        let raw = serde_json::to_string(data).map_err(DataFault::Json)?;
        if raw == "null" {
            return Ok(Self::from_value(Value::Object(Map::new())));
        }
        // The limit keeps lazy parsing infallible (serde_json's own limit is 128).
        check_depth(raw.as_bytes(), DEFAULT_MAX_DEPTH).map_err(|_| DataFault::TooDeep)?;
        Ok(Self {
            raw: Some(raw),
            value: OnceLock::new(),
        })
    }

    pub(crate) fn value(&self) -> &Value {
        self.value.get_or_init(|| match &self.raw {
            // Text serde_json produced within the depth limit always parses.
            Some(raw) => serde_json::from_str(raw).unwrap_or(Value::Null),
            None => Value::Null,
        })
    }

    pub(crate) fn value_mut(&mut self) -> &mut Value {
        self.value();
        self.raw = None;
        match self.value.get_mut() {
            Some(value) => value,
            None => unreachable!("initialised just above"),
        }
    }

    /// The JSON text, unless only the parsed value is current.
    pub(crate) fn text(&self) -> Option<&str> {
        self.raw.as_deref()
    }

    /// Runs `seed` over the parsed value if there is one, else over the text.
    pub(crate) fn deserialize<'a, S>(&'a self, seed: S) -> Result<S::Value, serde_json::Error>
    where
        S: serde::de::DeserializeSeed<'a>,
    {
        match (self.value.get(), &self.raw) {
            (None, Some(raw)) => {
                // Reading `str` (not bytes) skips re-validating UTF-8 in each string.
                let mut de = serde_json::Deserializer::from_str(raw);
                let value = seed.deserialize(&mut de)?;
                de.end()?;
                Ok(value)
            }
            (value, _) => seed.deserialize(value.unwrap_or(&Value::Null)),
        }
    }

    pub(crate) fn json_len(&self) -> usize {
        match &self.raw {
            Some(raw) => raw.len(),
            None => json_len(self.value()),
        }
    }

    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        match &self.raw {
            Some(raw) => out.extend_from_slice(raw.as_bytes()),
            None => write_value(out, self.value()),
        }
    }
}

impl PartialEq for Data {
    fn eq(&self, other: &Self) -> bool {
        match (&self.raw, &other.raw) {
            (Some(a), Some(b)) if a == b => true,
            _ => self.value() == other.value(),
        }
    }
}

impl Serialize for Data {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(serializer)
    }
}

/// Appends `value` as compact JSON. Serializing a `Value` into memory cannot
/// fail: its keys are strings and its numbers finite.
pub(crate) fn write_value<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    if let Err(err) = serde_json::to_writer(&mut *out, value) {
        unreachable!("serializing JSON to memory failed: {err}");
    }
}

/// The length of `value` as compact JSON, without building it.
pub(crate) fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // As for `write_value`: serializing these values cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}
