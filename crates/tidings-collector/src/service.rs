//! The collector as tower services, to mount in a host's own hyper or axum
//! server: all routes (under any prefix), or one route alone.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;

use crate::Collector;
use crate::collector::Route;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The future of the collector's services.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

fn respond<B>(collector: Collector, route: Option<Route>, request: Request<B>) -> ResponseFuture
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    Box::pin(async move { Ok(collector.handle_as(route, request).await) })
}

/// Every route at its own path (`/events`, `/flume`, ...). With axum, mount
/// it under a prefix with `Router::nest_service("/api", collector)`, which
/// strips the prefix; with plain hyper, see [`Collector::under_prefix`].
impl<B> tower_service::Service<Request<B>> for Collector
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let route = Route::from_path(request.uri().path());
        respond(self.clone(), route, request)
    }
}

/// Where an [`IngestService`] finds the route of a request.
#[derive(Debug, Clone)]
enum Mount {
    /// Every route under a path prefix; 404 elsewhere.
    Prefix(Arc<str>),
    /// One route, whatever the path.
    Route(Route),
}

/// The collector mounted in a host server: every route under a prefix
/// ([`Collector::under_prefix`]) or one route at any path ([`Collector::route`],
/// with axum: `Router::route_service("/api/flume", collector.route(Route::Flume))`).
#[derive(Debug, Clone)]
pub struct IngestService {
    collector: Collector,
    mount: Mount,
}

impl<B> tower_service::Service<Request<B>> for IngestService
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let route = match &self.mount {
            Mount::Prefix(prefix) => request
                .uri()
                .path()
                .strip_prefix(&**prefix)
                .and_then(Route::from_path),
            Mount::Route(route) => Some(*route),
        };
        respond(self.collector.clone(), route, request)
    }
}

impl Collector {
    /// All routes under `prefix` (`"/api"` serves `/api/events`, ...), as a
    /// tower service with the same limits, errors and back-pressure as the
    /// standalone server.
    #[must_use]
    pub fn under_prefix(&self, prefix: &str) -> IngestService {
        IngestService {
            collector: self.clone(),
            mount: Mount::Prefix(prefix.trim_end_matches('/').into()),
        }
    }

    /// One route alone, as a tower service answering at any path.
    #[must_use]
    pub fn route(&self, route: Route) -> IngestService {
        IngestService {
            collector: self.clone(),
            mount: Mount::Route(route),
        }
    }
}
