//! A `tracing_subscriber::Layer` that turns marked `tracing` events into
//! tidings events: the event's fields become its data, the fields of the
//! spans around it its context.
//!
//! An event is marked by a field naming the tidings event, `tidings` by
//! default; every other `tracing` event is left alone:
//!
//! ```
//! use tidings::Tracker;
//! use tidings_test::RecordingBackend;
//! use tidings_tracing::TidingsLayer;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let recorder = RecordingBackend::new();
//! let tracker = Tracker::builder().backend("memory", recorder.clone()).build()?;
//! // Compose with whatever the program already uses (fmt, filters, ...).
//! let subscriber = tracing_subscriber::registry().with(TidingsLayer::new(tracker));
//!
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("request", request_id = "r-1");
//!     let _entered = span.enter();
//!     tracing::info!(tidings = "checkout.completed", order_id = 42, total = 9.5, "order placed");
//!     tracing::info!("an ordinary log line, not an event");
//! });
//!
//! let events = recorder.events();
//! assert_eq!(events.len(), 1);
//! assert_eq!(events[0].name(), "checkout.completed");
//! assert_eq!(events[0].data()["order_id"], 42);
//! assert_eq!(events[0].data()["message"], "order placed");
//! assert_eq!(events[0].context()["request_id"], "r-1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The context of an event is the tidings context current on the thread
//! (see `tidings::enter_context`), then the fields of its spans from the
//! outermost to the innermost, a closer span overriding a key. Events from
//! tidings itself (targets starting with `tidings`) are never turned into
//! tidings events, so the library's own logs cannot loop back into the
//! pipeline, and neither can anything logged while an event is being emitted.

use std::cell::Cell;
use std::fmt;

use serde_json::Value;
use tidings_core::{Dispatch, Event, EventName, Map};
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The default marker field: `tracing::info!(tidings = "name", ...)`.
pub const DEFAULT_MARKER: &str = "tidings";

thread_local! {
    /// Set while this layer emits, so that anything logged during the emit
    /// (by a backend, say) is not turned into an event in turn.
    static EMITTING: Cell<bool> = const { Cell::new(false) };
}

/// Where events go: a dispatch (a tracker), or the default at each event.
#[derive(Debug, Clone)]
enum Target {
    Dispatch(Dispatch),
    Default,
}

/// The layer. See the [crate docs](crate).
#[derive(Debug, Clone)]
pub struct TidingsLayer {
    target: Target,
    marker: &'static str,
}

impl TidingsLayer {
    /// A layer emitting into `tracker` (a `tidings::Tracker`, or any
    /// [`Dispatch`]).
    #[must_use]
    pub fn new(tracker: impl Into<Dispatch>) -> Self {
        Self {
            target: Target::Dispatch(tracker.into()),
            marker: DEFAULT_MARKER,
        }
    }

    /// A layer emitting through the default tracker at the time of each
    /// event (`tidings::init` / `tidings::set_default`); with none, events
    /// are dropped at no cost.
    #[must_use]
    pub fn global() -> Self {
        Self {
            target: Target::Default,
            marker: DEFAULT_MARKER,
        }
    }

    /// Uses `field` instead of `tidings` as the marker naming the event.
    #[must_use]
    pub fn with_marker(mut self, field: &'static str) -> Self {
        self.marker = field;
        self
    }

    fn send(&self, event: Event) {
        match &self.target {
            // A tracker's routing tree never refuses an event; another
            // backend's refusal is its own to count.
            Target::Dispatch(dispatch) => {
                let _ = dispatch.send(event);
            }
            Target::Default => {
                let _ = tidings_core::with_default(|dispatch| dispatch.send(event));
            }
        }
    }
}

/// The recorded fields of a span, kept in its extensions.
#[derive(Debug, Default)]
struct SpanFields(Map);

/// Collects fields as JSON values.
struct JsonVisitor<'a> {
    fields: &'a mut Map,
    marker: &'static str,
    name: Option<String>,
}

impl JsonVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == self.marker {
            if let Value::String(name) = value {
                self.name = Some(name);
            }
            return;
        }
        self.fields.insert(field.name().to_owned(), value);
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(
            field,
            serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number),
        );
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.put(
            field,
            i64::try_from(value).map_or_else(|_| value.to_string().into(), Value::from),
        );
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.put(
            field,
            u64::try_from(value).map_or_else(|_| value.to_string().into(), Value::from),
        );
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

fn is_own(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.target().starts_with("tidings")
}

impl<S> Layer<S> for TidingsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Map::new();
        attrs.record(&mut JsonVisitor {
            fields: &mut fields,
            marker: self.marker,
            name: None,
        });
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            values.record(&mut JsonVisitor {
                fields,
                marker: self.marker,
                name: None,
            });
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        if is_own(event.metadata())
            || event.metadata().fields().field(self.marker).is_none()
            || EMITTING.get()
        {
            return;
        }
        let mut data = Map::new();
        let mut visitor = JsonVisitor {
            fields: &mut data,
            marker: self.marker,
            name: None,
        };
        event.record(&mut visitor);
        let Some(name) = visitor
            .name
            .take()
            .and_then(|name| EventName::new(name).ok())
        else {
            return;
        };
        let mut context = tidings_core::current_context().into_map();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    context.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        let event = Event::new(name, Value::Object(data)).with_context(context);
        struct Emitting;
        impl Drop for Emitting {
            fn drop(&mut self) {
                EMITTING.set(false);
            }
        }
        EMITTING.set(true);
        let _emitting = Emitting;
        self.send(event);
    }
}
