//! The event catalog: validation in strict mode, a PII-free mirror built
//! from the catalog, typed events and handlers.
//!
//! Run with `cargo run -p tidings-examples --example catalog`. The catalog
//! is `examples/catalog/catalog.toml`; its generated documentation is under
//! `examples/catalog/docs` (`tidings catalog docs`).

#![allow(clippy::print_stdout)] // printing what happened is the point of the example

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tidings::catalog::{
    BoxError, Catalog, CatalogProcessor, HandleEvent, Handlers, PiiFilter, TypedEvent, Violation,
};
use tidings::{AsyncRouter, Event, RoutingBackend, Tracker};
use tidings_test::RecordingBackend;

/// `video.played`: a member of the catalog's `video.*` family.
#[derive(Debug, Serialize, Deserialize)]
struct VideoPlayed {
    video_id: String,
    position_s: f64,
}

impl TypedEvent for VideoPlayed {
    const NAME: &'static str = "video.played";

    fn validate(&self) -> Result<(), Violation> {
        if self.position_s < 0.0 {
            return Err(Violation::custom(
                Self::NAME,
                "position_s",
                "must not be negative",
            ));
        }
        Ok(())
    }
}

/// The handler declared on the type: runs before function handlers.
impl HandleEvent for VideoPlayed {
    fn handle(&self, event: &Event) -> Result<(), BoxError> {
        println!(
            "  [handler] {} played at {}s ({})",
            self.video_id,
            self.position_s,
            event.id()
        );
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/catalog/catalog.toml");
    let catalog = Arc::new(Catalog::from_file(path)?);

    let handlers = Handlers::builder()
        .on_type::<VideoPlayed>()
        .on("video.*", |event: &Event| {
            println!("  [handler] analytics saw {}", event.name());
            Ok(())
        })?
        .on("page.click", |_: &Event| {
            Err("the click counter is down".into())
        })?
        .build();
    let handler_counts = handlers.counters();

    let everything = RecordingBackend::new();
    let mirror = RecordingBackend::new();
    let validate = CatalogProcessor::new(catalog.clone()).strict(true);
    let tracker = Tracker::builder()
        .processor(validate)
        .backend("archive", everything.clone())
        .backend(
            "mirror",
            RoutingBackend::builder()
                .processor(PiiFilter::new(catalog.clone()))
                .backend("out", mirror.clone())
                .build()?,
        )
        .backend(
            "handlers",
            AsyncRouter::builder("handlers", handlers)
                .queue_capacity(1000)
                .build()?,
        )
        .build()?;

    tracker.emit_typed(&VideoPlayed {
        video_id: "intro".into(),
        position_s: 12.5,
    })?;
    let refused = tracker.emit_typed(&VideoPlayed {
        video_id: "intro".into(),
        position_s: -1.0,
    });
    println!("emit_typed refused: {}", refused.unwrap_err());
    tracker.emit(
        "page.click",
        json!({"page": "/home", "button": "signup", "email": "learner@example.com"}),
    )?;
    tracker.emit("page.click", json!({"page": "/home"}))?; // invalid: no button
    tracker.emit("page.clik", json!({}))?; // unknown: refused in strict mode
    tracker.flush(Duration::from_secs(5))?;

    println!("archived (valid events only):");
    for event in everything.events() {
        println!("  {} {}", event.name(), event.data());
    }
    println!("mirrored (PII removed by the catalog):");
    for event in mirror.events() {
        println!("  {} {}", event.name(), event.data());
    }
    println!("handlers: {:?}", handler_counts.snapshot());
    tracker.shutdown(Duration::from_secs(5))?;
    Ok(())
}
