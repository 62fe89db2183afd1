//! Why a body or a value is not events: [`WireError`] for a body (a batch is
//! refused whole), [`EventError`] for one value.

use crate::NameError;
#[cfg(doc)]
use crate::{EventName, Limits};

/// Why a body could not be decoded into events.
///
/// A batch is all-or-nothing: any error rejects the whole body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The body is larger than [`Limits::max_bytes`].
    #[error("body is {len} bytes, the limit is {limit}")]
    TooLarge {
        /// The body's length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The body is not UTF-8.
    #[error("body is not valid UTF-8 (first bad byte at offset {valid_up_to})")]
    InvalidUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// Arrays and objects nest deeper than [`Limits::max_depth`].
    #[error("JSON nests deeper than {limit} levels (at byte {offset})")]
    TooDeep {
        /// The limit.
        limit: usize,
        /// Byte offset of the bracket that went over it.
        offset: usize,
    },
    /// The body is not JSON.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The body is JSON, but neither an object nor an array.
    #[error("expected an event object or an array of events, found {found}")]
    NotAnEventOrBatch {
        /// The JSON type found.
        found: &'static str,
    },
    /// The batch holds more than [`Limits::max_events`] events.
    #[error("batch holds {count} events, the limit is {limit}")]
    TooManyEvents {
        /// Events in the batch.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// One event of the body is malformed.
    #[error("event {index}: {source}")]
    Event {
        /// Position of the event in the batch (0 for a single event).
        index: usize,
        /// What is wrong with it.
        #[source]
        source: EventError,
    },
}

/// Why one JSON value is not an event.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The value is not an object.
    #[error("expected an object, found {found}")]
    NotAnObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// Neither `name` nor `event` is present.
    #[error("missing field `name` (or `event`)")]
    MissingName,
    /// A field has the wrong JSON type.
    #[error("field `{field}` must be {expected}, found {found}")]
    FieldType {
        /// The field.
        field: &'static str,
        /// The expected type.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// The name is not a valid [`EventName`].
    #[error("field `{field}`: {source}")]
    Name {
        /// `name` or `event`.
        field: &'static str,
        /// Why the name is invalid.
        #[source]
        source: NameError,
    },
    /// The id is not a UUID.
    #[error("field `id`: {0}")]
    Id(#[source] crate::IdError),
    /// A value no sink can store as it was sent: a string holding a lone
    /// UTF-16 surrogate (`"\ud800"`), or a number outside what an IEEE 754
    /// double holds (`1e400`; `1e-400`, which would read as 0). Refused
    /// rather than stored changed.
    #[error("`{path}`: {what}; no sink could store it as sent")]
    Unstorable {
        /// Where the value is in the event, as sent (`data.user.ids[3]`).
        path: String,
        /// What is wrong with it.
        what: String,
    },
    /// A timestamp field is not RFC 3339.
    #[error("field `{field}`: {source}")]
    Timestamp {
        /// `timestamp` or `received_at`.
        field: &'static str,
        /// Why it is invalid.
        #[source]
        source: crate::TimestampError,
    },
}
