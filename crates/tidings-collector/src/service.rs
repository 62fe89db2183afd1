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

/// Every route under a path prefix: `/api` serves `/api/events`,
/// `/api/flume`, ... and answers 404 elsewhere. Created by
/// [`Collector::under_prefix`].
#[derive(Debug, Clone)]
pub struct PrefixService {
    collector: Collector,
    prefix: Arc<str>,
}

impl<B> tower_service::Service<Request<B>> for PrefixService
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
        let route = request
            .uri()
            .path()
            .strip_prefix(&*self.prefix)
            .and_then(Route::from_path);
        respond(self.collector.clone(), route, request)
    }
}

/// One route, whatever the path it is mounted at (with axum:
/// `Router::route_service("/api/flume", collector.route(Route::Flume))`).
/// Created by [`Collector::route`].
#[derive(Debug, Clone)]
pub struct RouteService {
    collector: Collector,
    route: Route,
}

impl<B> tower_service::Service<Request<B>> for RouteService
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
        respond(self.collector.clone(), Some(self.route), request)
    }
}

impl Collector {
    /// All routes under `prefix` (`"/api"` serves `/api/events`, ...), as a
    /// tower service with the same limits, errors and back-pressure as the
    /// standalone server.
    #[must_use]
    pub fn under_prefix(&self, prefix: &str) -> PrefixService {
        PrefixService {
            collector: self.clone(),
            prefix: prefix.trim_end_matches('/').into(),
        }
    }

    /// One route alone, as a tower service answering at any path.
    #[must_use]
    pub fn route(&self, route: Route) -> RouteService {
        RouteService {
            collector: self.clone(),
            route,
        }
    }
}
