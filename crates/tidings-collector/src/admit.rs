//! The bottom of the ingest stack: a decoded batch checked against the
//! catalog, stamped with its receive time and admitted into the intake
//! (through the write-ahead log in durable mode), all of it or none.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};

use http::StatusCode;
use tidings_catalog::Catalog;
use tidings_event::Event;
use tower_service::Service;

use crate::collector::Inner;
use crate::ingest::{Accepted, Batch};
use crate::reject::{Reject, json_response};
use crate::stack::{BoxFuture, Reply};

/// Admits a [`Batch`]: 202 `{"accepted": n}` (200 `{"success": true}` at
/// a Segment route) once every event of it is in the intake (durable
/// first, in durable mode).
#[derive(Clone)]
pub(crate) struct Admit {
    inner: Arc<Inner>,
}

impl Admit {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        Self { inner }
    }
}

impl Service<Batch> for Admit {
    type Response = Reply;
    type Error = Reject;
    type Future = BoxFuture<Result<Reply, Reject>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Reject>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, batch: Batch) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { admit(&inner, batch).await })
    }
}

async fn admit(inner: &Inner, batch: Batch) -> Result<Reply, Reject> {
    let Batch {
        mut events,
        flume_line,
        received_at: now,
        answer,
    } = batch;
    if let Some((catalog, strict)) = &inner.catalog {
        validate(catalog, *strict, &events)?;
    }
    let count = events.len();
    inner
        .counters
        .events_received
        .fetch_add(count as u64, Ordering::Relaxed);
    for event in &mut events {
        event.set_received_at(now);
    }
    // The live view: rates count what is received, the tap shows what is
    // accepted (copies made now, before the events are admitted).
    let tapped = inner.ui.as_ref().and_then(|ui| {
        ui.received(now, &events);
        ui.tap.prepare(&events)
    });
    match &inner.durable {
        Some(durable) => durable.admit(&inner.intake, events).await?,
        // Full, or closed while shutting down: either way, retry later.
        None => inner
            .intake
            .send_all(events)
            .map_err(|_| Reject::QueueFull)?,
    }
    inner
        .counters
        .events_accepted
        .fetch_add(count as u64, Ordering::Relaxed);
    if let (Some(ui), Some(tapped)) = (&inner.ui, tapped) {
        ui.tap.publish(tapped);
    }
    if let Some(line) = flume_line {
        let mut log = inner
            .flume_log
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let _ = writeln!(log, "{line}").and_then(|()| log.flush());
    }
    Ok(match answer {
        Accepted::Count => json_response(
            StatusCode::ACCEPTED,
            &serde_json::json!({"accepted": count}),
        ),
        Accepted::Success => json_response(StatusCode::OK, &serde_json::json!({"success": true})),
    })
}

/// Checks every event of a request against the catalog: the first
/// violation refuses the whole request (400 naming the event and property).
fn validate(catalog: &Catalog, strict: bool, events: &[Event]) -> Result<(), Reject> {
    for (index, event) in events.iter().enumerate() {
        catalog
            .check(event, strict)
            .map_err(|violation| Reject::Invalid { index, violation })?;
    }
    Ok(())
}
