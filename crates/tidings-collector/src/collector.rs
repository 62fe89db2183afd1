//! `Collector`: the ingest routes over a pipeline, and the HTTP server.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tidings_catalog::Catalog;
use tidings_config::{ClientIp, CollectorOptions, Stage};
use tidings_event::Limits;
use tidings_processors::PropertyAllowlist;
use tidings_routing::{AsyncRouter, Backend, DrainError, DropReason, RoutingBackend};

use crate::budget;
use crate::durable::Durable;
use crate::metrics::Counters;
use crate::reject::Reject;
use crate::segment::SegmentRoute;
use crate::service::Mount;
use crate::sources::Sources;
use crate::static_files::StaticFiles;
use crate::ui::Ui;

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
    /// Where requests find their route.
    pub(crate) mount: Mount,
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
    /// `static_dir`: files the standalone server serves, when set.
    pub(crate) static_files: Option<StaticFiles>,
    /// `[sources.*]`: the brokers read into the intake.
    pub(crate) sources: Sources,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone without a `shutdown`: what the queues hold
        // is abandoned, so the log keeps it for the next start.
        if let Some(durable) = &self.durable {
            durable.abandon();
        }
        self.sources.abandon();
    }
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("options", &self.inner.options)
            .field("mount", &self.mount)
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
    /// `POST /event/log?__event__=NAME`: eventlib's endpoint; query and
    /// form parameters, or a JSON object body, become data, with the
    /// client's address as `__ip_address__` (`client_ip`).
    EventLog,
    /// `POST /flume`: form field `data` = one JSON event, in a url-encoded
    /// or `multipart/form-data` body.
    Flume,
    /// `POST /spade`: field `data` = base64 JSON (or the JSON itself), in
    /// a url-encoded, `text/plain` (a beacon's `data=...` string) or
    /// `multipart/form-data` body; also `GET` and `HEAD
    /// /spade?data=...`, a tracking pixel, answered with a transparent
    /// 1×1 GIF once accepted.
    Spade,
    /// `GET /healthz`.
    Healthz,
    /// `GET /metrics`: Prometheus text.
    Metrics,
    /// `GET /tidings.js`: the browser snippet ([`crate::BROWSER_SCRIPT`]),
    /// which sends events to `/events` next to it.
    Script,
    /// `POST /v1/track`, ..., `/v1/batch`: Segment's HTTP Tracking API,
    /// answered 200 `{"success": true}` (see docs/segment.md).
    Segment(SegmentRoute),
}

impl Route {
    /// Every route.
    pub const ALL: [Route; 15] = [
        Self::Events,
        Self::EventLog,
        Self::Flume,
        Self::Spade,
        Self::Healthz,
        Self::Metrics,
        Self::Script,
        Self::Segment(SegmentRoute::Track),
        Self::Segment(SegmentRoute::Page),
        Self::Segment(SegmentRoute::Screen),
        Self::Segment(SegmentRoute::Identify),
        Self::Segment(SegmentRoute::Group),
        Self::Segment(SegmentRoute::Alias),
        Self::Segment(SegmentRoute::Batch),
        Self::Segment(SegmentRoute::Import),
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
            Self::Segment(route) => route.path(),
        }
    }

    /// The route at `path`, if any (analytics.js's one-letter paths,
    /// `/v1/t` and the like, included).
    #[must_use]
    pub fn from_path(path: &str) -> Option<Self> {
        if path.starts_with("/v1/") {
            return SegmentRoute::from_path(path).map(Self::Segment);
        }
        Self::ALL.into_iter().find(|r| r.path() == path)
    }

    /// Whether the route takes events (`POST`; `/spade` also `GET` and
    /// `HEAD`).
    pub(crate) const fn ingests(self) -> bool {
        matches!(
            self,
            Self::Events | Self::EventLog | Self::Flume | Self::Spade | Self::Segment(_)
        )
    }

    /// Whether a request may present its write key in its body instead of
    /// its head (`/event/log`'s `write_key`, a Segment body's `writeKey`).
    pub(crate) const fn key_in_body(self) -> bool {
        matches!(self, Self::EventLog | Self::Segment(_))
    }
}

impl Collector {
    /// Answers one request, at the path its mount resolves (every route at
    /// its own path, unless [`Collector::under_prefix`] or
    /// [`Collector::route`] made this handle). Never fails: errors are JSON
    /// responses.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match tower_service::Service::call(&mut self.clone(), request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

impl Inner {
    /// The client's address `/event/log` records, as `client_ip` says: from
    /// the peer's [`SocketAddr`](std::net::SocketAddr) in the request's
    /// extensions (the standalone server puts it there; a host embedding
    /// the collector may), and from `X-Forwarded-For` only when that peer
    /// is one of `trusted_proxies`.
    pub(crate) fn client_ip<B>(&self, request: &Request<B>) -> Option<std::net::IpAddr> {
        let mode = self.options.client_ip;
        if mode == ClientIp::Off {
            return None;
        }
        let peer = request.extensions().get::<std::net::SocketAddr>()?.ip();
        let ip = self
            .options
            .trusted_proxies
            .client_addr(peer, request.headers());
        Some(if mode == ClientIp::Full {
            ip
        } else {
            tidings_tower::anonymize(ip)
        })
    }

    /// Keeps a refused request for the live view, when it is on.
    pub(crate) fn refused(&self, method: &str, path: &str, reject: &Reject) {
        if let Some(ui) = &self.ui {
            ui.refusals.push(
                method,
                path,
                reject.status().as_u16(),
                reject.reason(),
                &reject.summary(),
            );
        }
    }
}

impl Collector {
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
        // Sources first: no more reading, and nothing they fed is
        // acknowledged unless the drain delivers it.
        inner.sources.stop();
        let drained = match &inner.durable {
            Some(durable) => durable.shutdown(&inner.intake, timeout),
            None => inner.intake.shutdown(timeout),
        };
        inner.sources.finish(drained.is_ok());
        drained
    }
}
