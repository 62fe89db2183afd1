//! The standard emit workload, shared by the `emit` and `emit_cost` benches.

use std::hint::black_box;
use std::sync::Arc;

use serde::Serialize;
use tidings::catalog::Catalog;
use tidings::{Backend, Event, RegexFilter, RoutingBackend, SendError, Tracker};

#[derive(Debug, Serialize)]
pub(crate) struct Click<'a> {
    pub(crate) url: &'a str,
    pub(crate) button_text: &'a str,
    pub(crate) depth: u32,
}

pub(crate) const CLICK: Click<'static> = Click {
    url: "http://www.edx.org/some/path/1",
    button_text: "Enroll now",
    depth: 3,
};

/// Serializes every event, as a sink's encoder would.
#[derive(Debug)]
struct Serializing;

impl Backend for Serializing {
    fn send(&self, event: Event) -> Result<(), SendError> {
        black_box(event.to_json_bytes());
        Ok(())
    }
}

const CATALOG: &str = r#"
[events."edx.course.enrollment.activated".properties]
url = { type = "string", required = true, pattern = '^https?://' }
button_text = { type = "string", required = true }
depth = { type = "integer", required = true }

[events."navigation.*".properties]
url = { type = "string", required = true }
button_text = { type = "string", required = true }
depth = { type = "integer", required = true }
"#;

/// The standard tracker; `validated` adds a strict catalog to the root
/// chain, which checks each emit at the call.
pub(crate) fn standard_tracker(validated: bool) -> Tracker {
    let nested = RoutingBackend::builder()
        .processor(RegexFilter::blocklist([r"^edx\.internal\."]).unwrap())
        .backend("json", Serializing)
        .build()
        .unwrap();
    let mut builder = Tracker::builder()
        .processor(RegexFilter::allowlist([r"^edx\.", r"^navigation\."]).unwrap());
    if validated {
        let catalog = Catalog::from_toml_str(CATALOG, "bench").unwrap();
        builder = builder.catalog(Arc::new(catalog), true);
    }
    builder.backend("nested", nested).build().unwrap()
}

/// One iteration: an event in the outer context, then one in a nested
/// `session` context.
pub(crate) fn emit_pair(tracker: &Tracker, session: &serde_json::Value) {
    tracker
        .emit("edx.course.enrollment.activated", black_box(&CLICK))
        .unwrap();
    let _session = tidings::enter_context("session", session.clone());
    tracker
        .emit("navigation.request", black_box(&CLICK))
        .unwrap();
}
