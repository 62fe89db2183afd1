//! The tidings event model and its JSON wire format.
//!
//! This crate knows nothing about I/O, threads or runtimes: it defines
//! [`Event`] (with its [`EventId`], [`EventName`] and [`Timestamp`]) and the
//! wire format shared by every tidings component. Sink authors depend on this
//! crate and on `tidings-routing`, never on the `tidings` facade.
//!
//! ```
//! use serde_json::json;
//! use tidings_event::{decode, Event, EventName, Limits};
//!
//! let event = Event::new(EventName::new("navigation.request")?, json!({"url": "/a"}));
//! let bytes = event.to_json_bytes();
//!
//! // Foreign shapes are normalised: tachyon's `{event, properties}` becomes `name`, `data`.
//! let batch = decode(br#"[{"event": "page.view", "properties": {"path": "/"}, "url": "x"}]"#,
//!                    &Limits::default())?;
//! assert_eq!(batch[0].name(), "page.view");
//! assert_eq!(batch[0].context()["url"], "x");
//!
//! let back = decode(&bytes, &Limits::default())?;
//! assert_eq!(back, vec![event]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Wire format
//!
//! ```json
//! {"id": "01936f0e-…", "name": "navigation.request",
//!  "timestamp": "2026-11-24T19:09:08.123456Z",
//!  "context": {"user_id": 10938}, "data": {"url": "http://www.edx.org/some/path/1"},
//!  "received_at": "2026-11-24T19:09:08.200001Z"}
//! ```
//!
//! See [`decode`] for the normalisation rules applied to input.

mod data;
mod event;
mod faithful;
mod id;
mod lease;
mod name;
mod streak;
mod timestamp;
mod wire;
mod wire_error;

pub use data::DataError;
pub use event::{Event, write_json_array};
pub use id::{EventId, IdError};
pub use lease::Lease;
pub use name::{EventName, MAX_NAME_LEN, NameError};
pub use streak::{DEFAULT_REMINDER_INTERVAL, FailureStreak, StreakLog};
pub use timestamp::{Timestamp, TimestampError};
pub use wire::{
    DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH, DEFAULT_MAX_EVENTS, Limits, decode, decode_value,
    json_type_name,
};
pub use wire_error::{EventError, WireError};

/// A JSON object, as used for an event's context and usually its data.
pub type Map = serde_json::Map<String, serde_json::Value>;

/// Any JSON value.
pub use serde_json::Value;
