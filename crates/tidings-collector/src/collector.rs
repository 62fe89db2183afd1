//! `Collector`: the ingest routes over a pipeline, and the HTTP server.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use tidings_catalog::Catalog;
use tidings_config::{CollectorOptions, Stage};
use tidings_event::{Limits, Timestamp};
use tidings_processors::PropertyAllowlist;
use tidings_routing::{AsyncRouter, Backend, DrainError, DropReason, RoutingBackend};

use crate::access::{add_cors, allowed_origin, authorized, preflight};
use crate::budget::{self};
use crate::durable::Durable;
use crate::metrics::Counters;
use crate::reject::{Reject, json_response};
use crate::ui::Ui;
use crate::{body, ingest, script};

/// The collector: the ingest routes (`/events`, `/event/log`, `/flume`,
/// `/spade`), `/healthz`, `/metrics` and the browser snippet `/tidings.js`,
/// feeding a routing tree.
///
/// Accepted events go into the collector's own bounded queue, all of a
/// request or none of it; a full queue answers 503 with `Retry-After`, so an
/// event answered 202 is never dropped silently (anything dropped further
/// down is counted in `/metrics`). Cloning is cheap.
#[derive(Clone)]
pub struct Collector {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) options: CollectorOptions,
    pub(crate) limits: Limits,
    pub(crate) flume_allowlist: Option<PropertyAllowlist>,
    /// `[collector.catalog]`: the catalog and whether it is strict.
    pub(crate) catalog: Option<(Arc<Catalog>, bool)>,
    pub(crate) intake: Arc<AsyncRouter>,
    /// `ack = "durable"`: the write-ahead log in front of `intake`.
    pub(crate) durable: Option<Arc<Durable>>,
    pub(crate) root: Arc<RoutingBackend>,
    pub(crate) stages: Vec<Stage>,
    pub(crate) budgets: budget::Limits,
    pub(crate) counters: Counters,
    pub(crate) flume_log: Mutex<Box<dyn Write + Send>>,
    /// `[collector.ui]`: the live view, when enabled.
    pub(crate) ui: Option<Ui>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone without a `shutdown`: what the queues hold
        // is abandoned, so the log keeps it for the next start.
        if let Some(durable) = &self.durable {
            durable.abandon();
        }
    }
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// One route of the collector, usable alone as a service
/// ([`Collector::route`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Route {
    /// `POST /events`: a JSON event or array of events.
    Events,
    /// `POST /event/log?__event__=NAME`: parameters become data.
    EventLog,
    /// `POST /flume`: form field `data` = one JSON event.
    Flume,
    /// `POST /spade`: form field `data` = base64 JSON.
    Spade,
    /// `GET /healthz`.
    Healthz,
    /// `GET /metrics`: Prometheus text.
    Metrics,
    /// `GET /tidings.js`: the browser snippet ([`crate::BROWSER_SCRIPT`]),
    /// which sends events to `/events` next to it.
    Script,
}

impl Route {
    /// Every route.
    pub const ALL: [Route; 7] = [
        Self::Events,
        Self::EventLog,
        Self::Flume,
        Self::Spade,
        Self::Healthz,
        Self::Metrics,
        Self::Script,
    ];

    /// The route's path under the collector's root, such as `/events`.
    #[must_use]
    pub const fn path(self) -> &'static str {
        match self {
            Self::Events => "/events",
            Self::EventLog => "/event/log",
            Self::Flume => "/flume",
            Self::Spade => "/spade",
            Self::Healthz => "/healthz",
            Self::Metrics => "/metrics",
            Self::Script => "/tidings.js",
        }
    }

    /// The route at `path`, if any.
    #[must_use]
    pub fn from_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.path() == path)
    }
}

impl Collector {
    /// Answers one request. Never fails: errors are JSON responses.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let route = Route::from_path(request.uri().path());
        self.handle_as(route, request).await
    }

    /// Answers `request` as `route` (`None`: not found), whatever its path.
    pub(crate) async fn handle_as<B>(
        &self,
        route: Option<Route>,
        request: Request<B>,
    ) -> Response<Full<Bytes>>
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let origin =
            allowed_origin(&self.inner.options.allowed_origins, request.headers()).cloned();
        // For the live view's list of refused requests: never the query,
        // which may hold a write key.
        let seen = self
            .inner
            .ui
            .as_ref()
            .map(|_| (request.method().clone(), request.uri().path().to_owned()));
        let mut response = match self.dispatch(route, origin.clone(), request).await {
            Ok(response) => response,
            Err(reject) => {
                if let Some((method, path)) = &seen {
                    self.refused(method.as_str(), path, &reject);
                }
                self.inner.counters.rejected(reject.reason());
                if let Reject::Invalid { violation, .. } = &reject {
                    self.inner.counters.invalid(violation.kind().code());
                }
                reject.into_response()
            }
        };
        if let Some(origin) = origin {
            add_cors(response.headers_mut(), origin);
        }
        let label = route.map_or("other", Route::path);
        self.inner
            .counters
            .request(label, response.status().as_u16());
        response
    }

    async fn dispatch<B>(
        &self,
        route: Option<Route>,
        origin: Option<HeaderValue>,
        request: Request<B>,
    ) -> Result<Response<Full<Bytes>>, Reject>
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Some(route) = route else {
            return Err(Reject::NotFound);
        };
        let method = request.method().clone();
        match route {
            Route::Healthz | Route::Metrics if method != Method::GET && method != Method::HEAD => {
                Err(Reject::MethodNotAllowed("GET"))
            }
            Route::Healthz => Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({"status": "ok"}),
            )),
            Route::Metrics => {
                let mut response = Response::new(Full::new(Bytes::from(self.metrics_text())));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                Ok(response)
            }
            Route::Script if method != Method::GET && method != Method::HEAD => {
                Err(Reject::MethodNotAllowed("GET, HEAD"))
            }
            Route::Script => Ok(script::response()),
            _ if method == Method::POST => self.ingest(route, request).await,
            _ if method == Method::OPTIONS => Ok(preflight(origin)),
            _ => Err(Reject::MethodNotAllowed("POST, OPTIONS")),
        }
    }

    async fn ingest<B>(
        &self,
        route: Route,
        request: Request<B>,
    ) -> Result<Response<Full<Bytes>>, Reject>
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let inner = &self.inner;
        let (parts, request_body) = request.into_parts();
        let query = parts.uri.query();
        if !authorized(&inner.options.write_keys, &parts.headers, query) {
            return Err(Reject::Unauthorized);
        }
        // Full: refused before the body is read (the client's retry sends
        // it again), so a stalled pipeline costs no memory for bodies.
        if !inner.intake.has_room(1) {
            return Err(Reject::QueueFull);
        }
        let max = inner.options.max_body_bytes;
        let head = body::BodyHead::of(&parts.headers, max)?;
        let _body_permit = inner
            .budgets
            .bodies
            .try_take(head.budget(max))
            .ok_or(Reject::Busy)?;
        let bytes = body::read(&parts.headers, &head, request_body, max).await?;
        let mut flume_line = None;
        let mut events = match route {
            Route::Events => {
                match body::media_type(&parts.headers).as_deref() {
                    Some("application/json" | "text/plain") => {}
                    other => {
                        return Err(Reject::UnsupportedMediaType(format!(
                            "content type {} is not supported here, use application/json or text/plain",
                            other.map_or_else(|| "(none)".to_owned(), |t| format!("{t:?}"))
                        )));
                    }
                }
                ingest::events(&bytes, &inner.limits)?
            }
            Route::EventLog => {
                body::require_form(&parts.headers, &bytes)?;
                ingest::event_log(query, &bytes)?
            }
            Route::Flume => {
                body::require_form(&parts.headers, &bytes)?;
                let (event, line) =
                    ingest::flume(&bytes, &inner.limits, inner.flume_allowlist.as_ref())?;
                flume_line = Some(line);
                vec![event]
            }
            Route::Spade => {
                body::require_form(&parts.headers, &bytes)?;
                ingest::spade(&bytes, &inner.limits)?
            }
            Route::Healthz | Route::Metrics | Route::Script => {
                return Err(Reject::MethodNotAllowed("GET"));
            }
        };
        if let Some((catalog, strict)) = &inner.catalog {
            validate(catalog, *strict, &events)?;
        }
        let count = events.len();
        inner
            .counters
            .events_received
            .fetch_add(count as u64, Ordering::Relaxed);
        let now = Timestamp::now();
        for event in &mut events {
            event.set_received_at(now);
        }
        // The live view: rates count what is received, the tap shows what
        // is accepted (copies made now, before the events are admitted).
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
        Ok(json_response(
            StatusCode::ACCEPTED,
            &serde_json::json!({"accepted": count}),
        ))
    }

    /// Keeps a refused request for the live view, when it is on.
    pub(crate) fn refused(&self, method: &str, path: &str, reject: &Reject) {
        if let Some(ui) = &self.inner.ui {
            ui.refusals.push(
                method,
                path,
                reject.status().as_u16(),
                reject.reason(),
                &reject.summary(),
            );
        }
    }

    /// The root of the routing tree the collector feeds, to share it with a
    /// tracker (`tidings::Tracker::from_shared_root`): one config, one set of
    /// sinks, for the service's own events and the ones it ingests.
    #[must_use]
    pub fn root(&self) -> Arc<RoutingBackend> {
        self.inner.root.clone()
    }

    /// [`Collector::shutdown`] for async code: runs it on tokio's blocking
    /// pool, so a host service can drain the collector in its own shutdown.
    ///
    /// # Errors
    ///
    /// [`DrainError`] when some events could not be delivered in time.
    pub async fn drain(&self, timeout: Duration) -> Result<(), DrainError> {
        let collector = self.clone();
        tokio::task::spawn_blocking(move || collector.shutdown(timeout))
            .await
            .unwrap_or_else(|join| Err(DrainError::Failed(join.to_string().into())))
    }

    /// What each stage lost to shutdown: `(path, events)` for every stage
    /// (the intake first, then the config's stages) that dropped events as
    /// `shutdown` or still holds some (queued, batched or
    /// in flight). Call it after [`Collector::shutdown`] for the exact
    /// account of what a drain cut short; an event lost in two branches
    /// counts in both.
    #[must_use]
    pub fn losses(&self) -> Vec<(String, u64)> {
        let inner = &self.inner;
        let delivery = inner
            .stages
            .iter()
            .filter_map(|stage| match stage.metrics() {
                tidings_config::StageMetrics::Delivery(m) => Some((stage.path.clone(), m)),
                _ => None,
            });
        std::iter::once(("intake".to_owned(), inner.intake.metrics()))
            .chain(delivery)
            .map(|(path, m)| (path, m.dropped(DropReason::Shutdown) + m.pending()))
            .filter(|(_, lost)| *lost > 0)
            .collect()
    }

    /// Stops accepting events and drains the pipeline to the sinks, waiting
    /// at most `timeout`. Blocks the calling thread.
    ///
    /// # Errors
    ///
    /// [`DrainError`] when some events could not be delivered in time (they
    /// are counted as dropped).
    pub fn shutdown(&self, timeout: Duration) -> Result<(), DrainError> {
        let inner = &self.inner;
        match &inner.durable {
            Some(durable) => durable.shutdown(&inner.intake, timeout),
            None => inner.intake.shutdown(timeout),
        }
    }
}

/// Checks every event of a request against the catalog: the first
/// violation refuses the whole request (400 naming the event and property).
fn validate(
    catalog: &Catalog,
    strict: bool,
    events: &[tidings_event::Event],
) -> Result<(), Reject> {
    for (index, event) in events.iter().enumerate() {
        catalog
            .check(event, strict)
            .map_err(|violation| Reject::Invalid { index, violation })?;
    }
    Ok(())
}
