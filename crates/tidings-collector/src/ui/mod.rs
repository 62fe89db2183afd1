//! The live view (`[collector.ui]`), served by [`crate::Collector::serve`]:
//! a page at `/ui` (HTML, JavaScript and CSS embedded in the binary, no
//! external assets), the event stream `/ui/events` (server-sent events,
//! also read by `tidings tail`) and `/ui/api/state` (JSON: rates per name,
//! refused requests, each stage's health).
//!
//! The page and its assets are public and hold no data; the stream and the
//! state need the admin key, as `Authorization: Bearer KEY` (or, on the
//! stream only, since `EventSource` cannot set headers, `?key=KEY`),
//! compared in constant time. Off, every `/ui` path is not found.

mod board;
mod tap;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{Either, Full};
use serde_json::{Map, Value, json};
use tidings_catalog::{Catalog, PiiFilter};
use tidings_config::{CollectorUi, Stage, StageKind, StageMetrics};
use tidings_event::{Event, Timestamp};
use tidings_routing::{DropReason, MetricsSnapshot};

pub(crate) use board::{Rates, Refusals};
pub(crate) use tap::{SseBody, Tap};

use crate::access::constant_time_eq;
use crate::metrics::Counters;
use crate::reject::Reject;
use tap::{MAX_FILTER_LEN, NameFilter, Refused};

/// The page (`/ui`).
const PAGE: &str = include_str!("index.html");
/// Its script (`/ui/ui.js`).
const SCRIPT: &str = include_str!("ui.js");
/// Its style sheet (`/ui/ui.css`).
const STYLE: &str = include_str!("ui.css");

/// Only the page's own scripts, styles and requests: event names and data
/// are shown as text, never as markup, and this keeps it so.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// The body of what [`crate::Collector::serve`] answers: whole, or a
/// stream (the live view's events, or a file of `static_dir`).
pub(crate) type ServeBody =
    Either<Full<Bytes>, Either<SseBody, tower_http::services::fs::ServeFileSystemResponseBody>>;

/// A path of the live view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UiRoute {
    /// `/ui` (and `/ui/`): the page.
    Page,
    /// `/ui/ui.js`.
    Script,
    /// `/ui/ui.css`.
    Style,
    /// `/ui/events`: the event stream.
    Events,
    /// `/ui/api/state`: rates, refusals, health.
    State,
}

impl UiRoute {
    pub(crate) fn from_path(path: &str) -> Option<Self> {
        Some(match path {
            "/ui" | "/ui/" => Self::Page,
            "/ui/ui.js" => Self::Script,
            "/ui/ui.css" => Self::Style,
            "/ui/events" => Self::Events,
            "/ui/api/state" => Self::State,
            _ => return None,
        })
    }

    /// The route's label in `/metrics`.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Self::Page => "/ui",
            Self::Script => "/ui/ui.js",
            Self::Style => "/ui/ui.css",
            Self::Events => "/ui/events",
            Self::State => "/ui/api/state",
        }
    }
}

/// The live view of one collector.
#[derive(Debug)]
pub(crate) struct Ui {
    admin_key: String,
    pub(crate) tap: Arc<Tap>,
    pub(crate) rates: Rates,
    pub(crate) refusals: Refusals,
}

/// What `/ui/api/state` shows of the collector, gathered by it.
pub(crate) struct View<'a> {
    pub(crate) intake: MetricsSnapshot,
    pub(crate) intake_capacity: usize,
    pub(crate) stages: &'a [Stage],
    pub(crate) counters: &'a Counters,
    pub(crate) connections: usize,
}

impl Ui {
    /// The view `options` describe; `catalog` (the collector's) marks the
    /// properties it never shows.
    pub(crate) fn new(options: &CollectorUi, catalog: Option<Arc<Catalog>>) -> Self {
        Self {
            admin_key: options.admin_key.clone(),
            tap: Arc::new(Tap::new(
                options.tail_buffer,
                options.max_streams,
                catalog.map(PiiFilter::new),
            )),
            rates: Rates::default(),
            refusals: Refusals::default(),
        }
    }

    /// Counts a request's events in the rates (at the point where
    /// `tidings_collector_events_received_total` counts them).
    pub(crate) fn received(&self, now: Timestamp, events: &[Event]) {
        self.rates
            .count(now, events.iter().map(|e| e.name().as_str()));
    }

    /// Whether the request presents the admin key: as a bearer token, or,
    /// when `in_query`, as the `key` query parameter.
    fn authorized(&self, headers: &HeaderMap, key_param: Option<&str>) -> bool {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        bearer
            .or(key_param)
            .is_some_and(|key| constant_time_eq(key.as_bytes(), self.admin_key.as_bytes()))
    }

    /// Answers a request of the live view.
    pub(crate) fn answer<'a>(
        &self,
        route: UiRoute,
        method: &Method,
        headers: &HeaderMap,
        query: Option<&str>,
        view: impl FnOnce() -> View<'a>,
    ) -> Result<http::Response<ServeBody>, Reject> {
        let head = *method == Method::HEAD;
        match route {
            UiRoute::Page | UiRoute::Script | UiRoute::Style if *method != Method::GET && !head => {
                Err(Reject::MethodNotAllowed("GET, HEAD"))
            }
            UiRoute::Events | UiRoute::State if *method != Method::GET => {
                Err(Reject::MethodNotAllowed("GET"))
            }
            UiRoute::Page => Ok(asset(PAGE, "text/html; charset=utf-8")),
            UiRoute::Script => Ok(asset(SCRIPT, "application/javascript; charset=utf-8")),
            UiRoute::Style => Ok(asset(STYLE, "text/css; charset=utf-8")),
            UiRoute::State => {
                if !self.authorized(headers, None) {
                    return Err(Reject::AdminKeyRequired);
                }
                let mut response = json_answer(&self.state(&view()));
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                Ok(response)
            }
            UiRoute::Events => {
                let params: Vec<(String, String)> =
                    serde_urlencoded::from_str(query.unwrap_or_default())
                        .map_err(|e| Reject::BadRequest(format!("bad query: {e}")))?;
                let param = |name: &str| {
                    params
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.as_str())
                };
                if !self.authorized(headers, param("key")) {
                    return Err(Reject::AdminKeyRequired);
                }
                let filter = param("name").unwrap_or_default();
                if filter.len() > MAX_FILTER_LEN {
                    return Err(Reject::BadRequest(format!(
                        "the name filter is over {MAX_FILTER_LEN} bytes"
                    )));
                }
                let body = self.tap.open(NameFilter::new(filter)).map_err(|refused| {
                    Reject::StreamsUnavailable(match refused {
                        Refused::TooMany => format!(
                            "{} live-view streams are open, as many as max_streams allows; \
                                 close one or retry later",
                            self.tap.max_streams()
                        ),
                        Refused::Closing => "the collector is shutting down".to_owned(),
                    })
                })?;
                let mut response = Response::new(Either::Right(Either::Left(body)));
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream"),
                );
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
                headers.insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                Ok(response)
            }
        }
    }

    /// The JSON of `/ui/api/state`.
    fn state(&self, view: &View<'_>) -> Value {
        let now = Timestamp::now();
        let mut stages = vec![stage_json(
            "intake",
            "intake",
            &view.intake,
            Some(view.intake_capacity),
        )];
        for stage in view.stages {
            let kind = match &stage.kind {
                StageKind::Sink(_) => "sink",
                StageKind::AsyncRouter(_) => "async_router",
                _ => continue,
            };
            if let StageMetrics::Delivery(metrics) = stage.metrics() {
                stages.push(stage_json(&stage.path, kind, &metrics, None));
            }
        }
        let counters = view.counters;
        let rejected: Map<String, Value> = counters
            .rejected_counts()
            .into_iter()
            .map(|(reason, n)| (reason.to_owned(), n.into()))
            .collect();
        json!({
            "now": now,
            "totals": {
                "events_received": counters.events_received.load(std::sync::atomic::Ordering::Relaxed),
                "events_accepted": counters.events_accepted.load(std::sync::atomic::Ordering::Relaxed),
                "connections": view.connections,
                "streams": self.tap.streams(),
                "max_streams": self.tap.max_streams(),
            },
            "rates": self.rates.to_json(now),
            "refusals": {"recent": self.refusals.to_json(), "by_reason": rejected},
            "stages": stages,
        })
    }
}

/// One delivery stage's health.
fn stage_json(path: &str, kind: &str, m: &MetricsSnapshot, capacity: Option<usize>) -> Value {
    let by_reason = |counts: &[(DropReason, u64)]| -> Map<String, Value> {
        counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(reason, n)| (reason.as_str().to_owned(), (*n).into()))
            .collect()
    };
    json!({
        "path": path,
        "kind": kind,
        "queued": m.queued,
        "capacity": capacity,
        "buffered": m.buffered,
        "waiting": m.waiting,
        "received": m.received,
        "delivered": m.delivered,
        "retried": m.retried,
        "batches": m.batches,
        "dropped": by_reason(&m.dropped),
        "dropped_total": m.dropped_total(),
        "dead_lettered": by_reason(&m.dead_lettered),
        "dead_lettered_total": m.dead_lettered_total(),
        "last_error": m.last_error.as_ref().map(|e| json!({"at": e.at, "message": e.message})),
        "paused_until": m.paused_until,
    })
}

/// An embedded file, with the headers that keep the page to itself.
fn asset(text: &'static str, content_type: &'static str) -> Response<ServeBody> {
    let mut response = crate::script::embedded(text, content_type, "no-cache").map(Either::Left);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn json_answer(body: &Value) -> Response<ServeBody> {
    crate::reject::json_response(StatusCode::OK, body).map(Either::Left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assets_are_self_contained() {
        for (name, text) in [("index.html", PAGE), ("ui.js", SCRIPT), ("ui.css", STYLE)] {
            // The SVG namespace is a name, not an address the page loads.
            let text = text.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !text.contains("http://"),
                "{name} loads nothing from elsewhere"
            );
            assert!(
                !text.contains("https://"),
                "{name} loads nothing from elsewhere"
            );
        }
        assert!(PAGE.contains(r#"<script src="/ui/ui.js""#));
        assert!(
            !PAGE.contains("<script>"),
            "no inline script: the CSP forbids it"
        );
        assert!(!SCRIPT.contains("innerHTML"), "event text is never markup");
        assert!(SCRIPT.contains("sessionStorage"));
        assert!(SCRIPT.contains("new EventSource("));
    }

    #[test]
    fn routes_round_trip() {
        for route in [
            UiRoute::Page,
            UiRoute::Script,
            UiRoute::Style,
            UiRoute::Events,
            UiRoute::State,
        ] {
            assert_eq!(UiRoute::from_path(route.path()), Some(route));
        }
        assert_eq!(UiRoute::from_path("/ui/"), Some(UiRoute::Page));
        assert_eq!(UiRoute::from_path("/ui/other"), None);
        assert_eq!(UiRoute::from_path("/uix"), None);
    }
}
