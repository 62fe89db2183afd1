//! Processors: the steps that keep, change or drop each event before it is
//! delivered, and the stock ones (regex filters, property allowlists).
//!
//! A [`Processor`] gets the event by `&mut` and answers [`Verdict::Keep`] or
//! [`Verdict::Drop`]. Dropping is not an error. A processor that returns an
//! error is logged and counted by the router that runs it, and the event goes
//! on (edX `event-tracking` semantics), so a processor must report errors
//! *before* it changes the event. This crate does no I/O.
//!
//! ```
//! use serde_json::json;
//! use tidings_event::{Event, EventName};
//! use tidings_processors::{Processor, PropertyAllowlist, RegexFilter, Verdict};
//!
//! let allow = RegexFilter::allowlist([r"edx\.", r"navigation\."])?;
//! let scrub = PropertyAllowlist::new(["url", "page.title"])?;
//!
//! let mut event = Event::new(
//!     EventName::new("navigation.request")?,
//!     json!({"url": "/a", "email": "x@y.z", "page": {"title": "A", "author": "me"}}),
//! );
//! assert_eq!(allow.process(&mut event)?, Verdict::Keep);
//! assert_eq!(scrub.process(&mut event)?, Verdict::Keep);
//! assert_eq!(event.data(), &json!({"url": "/a", "page": {"title": "A"}}));
//!
//! let mut other = Event::new(EventName::new("xedx.course")?, json!({}));
//! assert_eq!(allow.process(&mut other)?, Verdict::Drop); // matched from the start only
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod allowlist;
mod name_filter;
mod regex_filter;

pub use allowlist::{AllowlistError, PropertyAllowlist};
pub use name_filter::NameFilter;
pub use regex_filter::{EngineError, FilterMode, PatternError, RegexFilter};
/// The processor contract, defined in `tidings-core` and re-exported here.
pub use tidings_core::{FnProcessor, Interest, Processor, ProcessorError, Verdict, processor_fn};
