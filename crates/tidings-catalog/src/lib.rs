//! The event catalog: declared events that validate, mark personal data,
//! run handlers and generate their own documentation.
//!
//! A catalog (TOML, or built in code) declares each event or family of
//! events (`edx.video.*`): description, owner, version, typed properties
//! (`string`, `integer`, `number`, `boolean`, `object`, `array`,
//! `timestamp`), which are required, allowed values or a pattern, which hold
//! personal data (`pii`), and examples. From it:
//!
//! - [`CatalogProcessor`] validates each event (strict mode: undeclared
//!   names are refused, eventlib's `EventNotFound`), dropping invalid events
//!   or passing them with a note, and counting each reason;
//! - [`PiiFilter`] removes the properties marked `pii` (for mirrors);
//! - [`TypedEvent`] declares a Rust type as an event; [`Handlers`] run
//!   functions for events off the emitting thread;
//! - [`docs`] writes a Markdown page and a JSON Schema per event.
//!
//! ```
//! use std::sync::Arc;
//! use serde_json::json;
//! use tidings_catalog::{Catalog, CatalogProcessor};
//! use tidings_event::{Event, EventName};
//! use tidings_processors::{Processor, Verdict};
//!
//! let catalog = Catalog::from_toml_str(r#"
//!     [events."navigation.request"]
//!     description = "A page was requested."
//!     owner = "web"
//!     properties.url = { type = "string", required = true, pattern = '^https?://' }
//!     properties.email = { type = "string", pii = true }
//! "#, "catalog.toml")?;
//!
//! let violation = catalog
//!     .check_data("navigation.request", &json!({"url": 7}), true)
//!     .unwrap_err();
//! assert_eq!(
//!     violation.to_string(),
//!     r#"event "navigation.request": property "url": expected string, found integer"#
//! );
//!
//! let strict = CatalogProcessor::new(Arc::new(catalog)).strict(true);
//! let mut unknown = Event::new(EventName::new("navigation.typo")?, json!({}));
//! assert_eq!(strict.process(&mut unknown)?, Verdict::Drop);
//! assert_eq!(strict.stats().invalid["unknown_event"], 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod catalog;
pub mod docs;
mod handlers;
mod lint;
mod processor;
mod spec;
mod typed;
mod validate;
mod violation;

pub use catalog::{Catalog, CatalogError, Problem};
pub use handlers::{HandlerCounters, HandlerNameError, HandlerStats, Handlers, HandlersBuilder};
pub use lint::{Level, Lint, lint};
pub use processor::{CatalogProcessor, CatalogStats, OnInvalid, PiiFilter, VIOLATION_KEY};
pub use spec::{EventSpec, MAX_REQUIRED, NamePattern, Pattern, Property, PropertyType, Shape};
pub use tidings_core::BoxError;
pub use typed::{HandleEvent, TypedEvent};
pub use violation::{Violation, ViolationKind};
