//! A write-ahead log of tidings events: appends answered only once they
//! are fsynced, many appends per fsync (group commit), segments deleted as
//! soon as every event in them is delivered or dropped by every sink, and a
//! replay of whatever an earlier run left behind.
//!
//! The tidings collector uses it for `ack = "durable"`; it works for any
//! producer that must not answer "accepted" before an event is on disk.
//!
//! ```
//! use serde_json::json;
//! use tidings_event::{Event, EventName};
//! use tidings_wal::{Wal, WalOptions};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("tidings-wal-doc-{}", std::process::id()));
//! let (wal, replay) = Wal::open(WalOptions::new(&dir))?;
//! assert_eq!(replay.count(), 0); // nothing left by an earlier run
//!
//! let mut events = vec![Event::new(EventName::new("page.view")?, json!({"path": "/"}))];
//! wal.append(&mut events).await?; // written and fsynced
//! assert!(events[0].lease().is_held());
//! wal.close();
//!
//! // The events were never settled (still alive here), so they are
//! // read back after a restart, as they would be after a crash.
//! let (_wal, replay) = Wal::open(WalOptions::new(&dir))?;
//! let replayed: Vec<Event> = replay.flatten().collect();
//! assert_eq!(replayed, events);
//! # drop(_wal); std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```
//!
//! # How an event is settled
//!
//! Each appended or replayed event holds a [`Lease`](tidings_event::Lease)
//! on its segment, and copies of the event share it. The segment is
//! deleted when the writer has moved on to another one (at
//! [`WalOptions::segment_bytes`] or [`WalOptions::segment_age`]) and the
//! last event holding its lease is dropped: delivered, filtered out or
//! dropped under a counted reason by every branch of the routing tree. A
//! process that dies first leaves the segment on disk, to be replayed;
//! events delivered before the crash are then delivered again, and sinks
//! remove the copies by event id.
//!
//! # Format
//!
//! A segment is `TIDWAL01` followed by records `TWR1`, payload length (u32
//! LE), CRC-32 of the payload (u32 LE), payload: the events of one append
//! as a JSON array in the wire format. [`scan`] reads a segment's bytes and
//! [`decode_record`] a record's events.

mod error;
mod options;
mod record;
mod replay;
mod segment;
mod stats;
mod wal;
mod writer;

pub use error::{AppendError, WalError};
pub use options::{
    DEFAULT_MAX_BYTES, DEFAULT_SEGMENT_AGE, DEFAULT_SEGMENT_BYTES, SyncMode, WalOptions,
};
pub use record::{Item, Scan, scan};
pub use replay::{Replay, decode_record};
pub use segment::segments_in;
pub use stats::WalStats;
pub use wal::Wal;
