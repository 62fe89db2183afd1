//! `Collector`: the ingest routes over a pipeline, and the HTTP server.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{Either, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tidings_catalog::Catalog;
use tidings_config::{
    AckMode, CollectorOptions, Config, ConfigError, ConfigErrorKind, ConfigErrors, Pipeline, Stage,
};
use tidings_event::{FailureStreak, Limits, StreakLog, Timestamp};
use tidings_processors::PropertyAllowlist;
use tidings_routing::{AsyncRouter, Backend, DrainError, DropReason, RoutingBackend, WhenFull};
use tokio::net::TcpListener;

use crate::access::{add_cors, allowed_origin, authorized, preflight};
use crate::budget::{self, Budget};
use crate::durable::Durable;
use crate::metrics::{Counters, Scrape};
use crate::protocol::JsonErrors;
use crate::reject::{Reject, json_response};
use crate::ui::{ServeBody, Ui, UiRoute, View};
use crate::{body, ingest, script};

/// The most headers a request may carry.
const MAX_HEADERS: usize = 64;
/// The most a connection's read buffer grows to (hyper's default is about
/// 400 KiB): request heads must fit in it, and it bounds what each
/// connection holds besides its body.
const READ_BUFFER: usize = 64 * 1024;
/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

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
    inner: Arc<Inner>,
}

/// A collector's metrics for an application's `prometheus-client`
/// registry ([`Collector::metrics_collector`]).
pub struct MetricsCollector {
    inner: std::sync::Weak<Inner>,
}

impl fmt::Debug for MetricsCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsCollector")
            .field("collector_alive", &(self.inner.strong_count() > 0))
            .finish()
    }
}

impl prometheus_client::collector::Collector for MetricsCollector {
    fn encode(
        &self,
        encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> Result<(), fmt::Error> {
        match self.inner.upgrade() {
            Some(inner) => Collector::scrape(&inner).encode(encoder),
            None => Ok(()),
        }
    }
}

struct Inner {
    options: CollectorOptions,
    limits: Limits,
    flume_allowlist: Option<PropertyAllowlist>,
    /// `[collector.catalog]`: the catalog and whether it is strict.
    catalog: Option<(Arc<Catalog>, bool)>,
    intake: Arc<AsyncRouter>,
    /// `ack = "durable"`: the write-ahead log in front of `intake`.
    durable: Option<Arc<Durable>>,
    root: Arc<RoutingBackend>,
    stages: Vec<Stage>,
    budgets: budget::Limits,
    counters: Counters,
    flume_log: Mutex<Box<dyn Write + Send>>,
    /// `[collector.ui]`: the live view, when enabled.
    ui: Option<Ui>,
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

/// `[collector] flume_allowed_properties`, checked.
fn flume_allowlist(options: &CollectorOptions) -> Result<Option<PropertyAllowlist>, ConfigError> {
    let Some(paths) = &options.flume_allowed_properties else {
        return Ok(None);
    };
    PropertyAllowlist::new(paths.iter().cloned())
        .map(Some)
        .map_err(|e| {
            ConfigError::new(
                format!("collector.flume_allowed_properties[{}]", e.index),
                ConfigErrorKind::Invalid,
                e.to_string(),
            )
        })
}

/// `[collector.catalog]`, loaded, with whether it is strict.
fn load_catalog(options: &CollectorOptions) -> Result<Option<(Arc<Catalog>, bool)>, ConfigError> {
    let Some(c) = &options.catalog else {
        return Ok(None);
    };
    Catalog::from_file(&c.path)
        .map(|catalog| Some((Arc::new(catalog), c.strict)))
        .map_err(|e| {
            ConfigError::new(
                "collector.catalog.path",
                ConfigErrorKind::Invalid,
                e.to_string(),
            )
        })
}

impl Collector {
    /// Checks, without changing anything on the machine, what
    /// [`Collector::from_config`] would refuse: every sink's own checks
    /// ([`Config::preflight`]), the collector's options that are read at
    /// start (the catalog file, `flume_allowed_properties`) and, in durable
    /// mode, the write-ahead log's directory. `tidings check` and
    /// `tidings serve` both run it first, so `check` fails when `serve`
    /// would.
    ///
    /// # Errors
    ///
    /// [`ConfigErrors`] with every problem found, located in the file.
    pub fn preflight(config: &Config) -> Result<(), ConfigErrors> {
        let mut errors = match config.preflight() {
            Ok(()) => Vec::new(),
            Err(found) => found.0,
        };
        let options = config.collector();
        errors.extend(flume_allowlist(options).err());
        errors.extend(load_catalog(options).err());
        if options.ack == AckMode::Durable
            && let Err(message) =
                tidings_config::probe_directory(std::path::Path::new(&options.wal_path))
        {
            errors.push(ConfigError::new(
                "collector.wal_path",
                ConfigErrorKind::Build,
                message,
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(config.locate(ConfigErrors(errors)))
        }
    }

    /// Builds the pipeline of `config` and a collector over it.
    ///
    /// # Errors
    ///
    /// [`ConfigErrors`] when a sink cannot start or a collector option is invalid.
    pub fn from_config(config: &Config) -> Result<Self, ConfigErrors> {
        Self::new(config.collector().clone(), config.build()?)
    }

    /// A collector over an already built pipeline.
    ///
    /// # Errors
    ///
    /// [`ConfigErrors`] when `flume_allowed_properties` holds an invalid path
    /// or the collector's worker cannot start.
    pub fn new(options: CollectorOptions, pipeline: Pipeline) -> Result<Self, ConfigErrors> {
        let flume_allowlist = flume_allowlist(&options)?;
        let catalog = load_catalog(&options)?;
        let ui = if options.ui.enabled {
            // The config refuses this already; options built in code too.
            if options.ui.admin_key.trim().is_empty() {
                return Err(ConfigError::new(
                    "collector.ui.admin_key",
                    ConfigErrorKind::Missing,
                    "the live view (`enabled = true`) needs a non-empty `admin_key`",
                )
                .into());
            }
            Some(Ui::new(
                &options.ui,
                catalog.as_ref().map(|(catalog, _)| catalog.clone()),
            ))
        } else {
            None
        };
        let (root, stages) = pipeline.into_parts();
        let root = Arc::new(root);
        let intake = Arc::new(
            AsyncRouter::builder("intake", root.clone())
                .queue_capacity(options.queue_capacity)
                .when_full(WhenFull::DropNewest)
                .build()
                .map_err(|e| {
                    ConfigError::new("collector", ConfigErrorKind::Build, e.to_string())
                })?,
        );
        let durable = match options.ack {
            AckMode::Durable => Some(Durable::start(&options, intake.clone())?),
            _ => {
                crate::durable::warn_if_log_left(&options);
                None
            }
        };
        let limits = Limits::default()
            .with_max_bytes(options.max_body_bytes)
            .with_max_events(options.max_batch_events);
        let budgets = budget::Limits {
            bodies: Budget::new(options.max_inflight_body_bytes),
            connections: Budget::new(options.max_connections),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                options,
                limits,
                flume_allowlist,
                catalog,
                intake,
                durable,
                root,
                stages,
                budgets,
                counters: Counters::default(),
                flume_log: Mutex::new(Box::new(std::io::stdout())),
                ui,
            }),
        })
    }

    /// Writes `/flume` log lines to `writer` instead of stdout.
    ///
    /// # Panics
    ///
    /// If called after the collector was cloned.
    #[must_use]
    pub fn with_flume_log(mut self, writer: impl Write + Send + 'static) -> Self {
        let inner = Arc::get_mut(&mut self.inner)
            .expect("with_flume_log is called before the collector is shared");
        *inner
            .flume_log
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = Box::new(writer);
        self
    }

    /// The collector's options.
    #[must_use]
    pub fn options(&self) -> &CollectorOptions {
        &self.inner.options
    }

    /// The text served at `/metrics` (OpenMetrics, which Prometheus reads):
    /// [`Collector::metrics_collector`] encoded on its own.
    #[must_use]
    pub fn metrics_text(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(self.metrics_collector()));
        let mut text = String::new();
        // Writing into a `String` never fails.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }

    /// The collector's metrics as a `prometheus-client` collector: register
    /// it in your application's registry
    /// (`registry.register_collector(Box::new(collector.metrics_collector()))`)
    /// and your own exporter shows every family of `/metrics`, read at each
    /// scrape. It does not keep the collector alive: once the collector is
    /// gone it shows nothing.
    #[must_use]
    pub fn metrics_collector(&self) -> MetricsCollector {
        MetricsCollector {
            inner: Arc::downgrade(&self.inner),
        }
    }

    fn scrape(inner: &Inner) -> Scrape<'_> {
        Scrape {
            counters: &inner.counters,
            intake: inner.intake.metrics(),
            capacity: inner.options.queue_capacity,
            limits: &inner.budgets,
            root: inner.root.stats(),
            stages: &inner.stages,
            wal: inner.durable.as_ref().map(|d| d.stats()),
        }
    }

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

    /// Serves HTTP/1.1 on `listener` until `shutdown` completes, then stops
    /// accepting and lets open requests finish (for at most the configured
    /// shutdown timeout). Call [`Collector::shutdown`] afterwards to drain
    /// the pipeline.
    ///
    /// # Errors
    ///
    /// Never fails today; accept errors (out of file descriptors, say) are
    /// logged and retried.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let accept_failures = FailureStreak::default();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let stream = match accepted {
                        Ok((stream, _peer)) => stream,
                        Err(error) => {
                            match accept_failures.failed() {
                                StreakLog::First => tracing::warn!(target: "tidings::collector", %error, "accept failed (out of file descriptors?); retrying, with a summary every 30 s while it lasts"),
                                StreakLog::Reminder { failures, .. } => tracing::warn!(target: "tidings::collector", %error, failures, "accept still fails: {failures} failures so far"),
                                _ => {}
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    if let Some(failures) = accept_failures.succeeded() {
                        tracing::info!(target: "tidings::collector", failures, "accepting connections again after {failures} failures");
                    }
                    let Some(permit) = self.inner.budgets.connections.try_take(1) else {
                        self.inner.counters.rejected("too_many_connections");
                        if let Some(ui) = &self.inner.ui {
                            ui.refusals.push("", "", 503, "too_many_connections", "max_connections are open; the connection was answered 503 and closed unread");
                        }
                        tokio::spawn(refuse_connection(stream));
                        continue;
                    };
                    let collector = self.clone();
                    let service = service_fn(move |request| {
                        let collector = collector.clone();
                        async move { Ok::<_, Infallible>(collector.respond(request).await) }
                    });
                    let connection = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .max_headers(MAX_HEADERS)
                        .max_buf_size(READ_BUFFER)
                        .serve_connection(TokioIo::new(JsonErrors::new(stream)), service);
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        let _ = connection.await;
                        drop(permit);
                    });
                }
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        // Live-view streams never end by themselves: end them, so the
        // connections they hold let the graceful shutdown finish.
        if let Some(ui) = &self.inner.ui {
            ui.tap.close();
        }
        let timeout = Duration::from_millis(self.inner.options.shutdown_timeout_ms);
        let _ = tokio::time::timeout(timeout, graceful.shutdown()).await;
        Ok(())
    }

    /// Answers a request of the server: the live view's paths when it is
    /// on (its event stream is why this body may stream), else
    /// [`Collector::handle`].
    async fn respond<B>(&self, request: Request<B>) -> Response<ServeBody>
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let ui_route = self
            .inner
            .ui
            .as_ref()
            .and_then(|ui| Some((ui, UiRoute::from_path(request.uri().path())?)));
        let Some((ui, route)) = ui_route else {
            return self.handle(request).await.map(Either::Left);
        };
        let inner = &self.inner;
        let view = || View {
            intake: inner.intake.metrics(),
            intake_capacity: inner.options.queue_capacity,
            stages: &inner.stages,
            counters: &inner.counters,
            connections: inner.budgets.connections.in_use(),
        };
        let answer = ui.answer(
            route,
            request.method(),
            request.headers(),
            request.uri().query(),
            view,
        );
        let response = answer.unwrap_or_else(|reject| {
            self.refused(request.method().as_str(), request.uri().path(), &reject);
            inner.counters.rejected(reject.reason());
            reject.into_response().map(Either::Left)
        });
        inner
            .counters
            .request(route.path(), response.status().as_u16());
        response
    }

    /// Keeps a refused request for the live view, when it is on.
    fn refused(&self, method: &str, path: &str, reject: &Reject) {
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

/// Answers a connection over `max_connections` with a JSON 503 and closes
/// it, without reading its request.
async fn refuse_connection(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = r#"{"error":"the collector has as many connections open as it may, retry later","status":503}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let written = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    });
    let _ = written.await;
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
