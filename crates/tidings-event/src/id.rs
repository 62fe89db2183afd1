//! `EventId`: the UUID v7 that identifies an event and lets sinks deduplicate it.

use std::fmt;
use std::str::FromStr;

use std::sync::Mutex;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;
use uuid::timestamp::context::ContextV7;

use crate::Timestamp;

/// Keeps v7 ids created in the same millisecond increasing, process-wide.
static V7_CONTEXT: Mutex<ContextV7> = Mutex::new(ContextV7::new());

/// The identifier of an event: a UUID, v7 when tidings assigns it.
///
/// Ids are assigned when an event is created and kept when an event arrives
/// with one; sinks use them to remove duplicates of at-least-once delivery.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(Uuid);

/// An event id that is not a UUID.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid event id {input:?}: {source}")]
pub struct IdError {
    input: String,
    #[source]
    source: uuid::Error,
}

impl EventId {
    /// A new, time-ordered UUID v7.
    #[must_use]
    pub fn new() -> Self {
        Self::at(Timestamp::now())
    }

    /// A new UUID v7 for an event that happened at `timestamp`, so that an
    /// event's id and timestamp come from one clock reading. Ids made in the
    /// same millisecond still increase (a counter fills the random bits).
    #[must_use]
    pub fn at(timestamp: Timestamp) -> Self {
        // v7 cannot represent instants before 1970; such ids use the epoch.
        let micros = u64::try_from(timestamp.unix_micros()).unwrap_or(0);
        let (seconds, nanos) = (micros / 1_000_000, (micros % 1_000_000) as u32 * 1_000);
        Self(Uuid::new_v7(uuid::Timestamp::from_unix(
            &V7_CONTEXT,
            seconds,
            nanos,
        )))
    }

    /// Wraps an existing UUID (of any version).
    #[must_use]
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// Appends the hyphenated lowercase form (36 ASCII bytes) to `out`.
    pub(crate) fn write_ascii(&self, out: &mut Vec<u8>) {
        let mut buf = Uuid::encode_buffer();
        out.extend_from_slice(self.0.hyphenated().encode_lower(&mut buf).as_bytes());
    }

    /// The UUID.
    #[must_use]
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl FromStr for EventId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(s).map(Self).map_err(|source| IdError {
            input: s.chars().take(64).collect(),
            source,
        })
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.0.hyphenated())
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = Uuid::encode_buffer();
        serializer.serialize_str(self.0.hyphenated().encode_lower(&mut buf))
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_v7_and_increase() {
        let a = EventId::new();
        let b = EventId::new();
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert!(b > a, "v7 ids sort by creation time: {a} then {b}");
    }

    #[test]
    fn parse_and_display_round_trip() {
        let id = EventId::new();
        assert_eq!(id.to_string().parse::<EventId>().unwrap(), id);
    }

    #[test]
    fn rejects_garbage_with_the_input_in_the_message() {
        let err = "not-a-uuid".parse::<EventId>().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid event id \"not-a-uuid\""),
            "{err}"
        );
    }
}
