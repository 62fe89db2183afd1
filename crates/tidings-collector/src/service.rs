//! The collector as a tower service, to mount in a host's own hyper or
//! axum server: every route at its own path, under a prefix, or one route
//! alone. One `Service` impl: a [`Collector`] handle carries its mount.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;

use crate::collector::{Collector, Route};
use crate::stack::{self, BoxError, BoxFuture};

/// The future of the collector's service.
pub type ResponseFuture = BoxFuture<Result<Response<Full<Bytes>>, Infallible>>;

/// Where a [`Collector`] handle finds the route of a request.
#[derive(Debug, Clone, Default)]
pub(crate) enum Mount {
    /// Every route at its own path (`/events`, ...).
    #[default]
    Root,
    /// Every route under a path prefix; 404 elsewhere.
    Prefix(Arc<str>),
    /// One route, whatever the path.
    Route(Route),
}

impl Mount {
    pub(crate) fn route(&self, path: &str) -> Option<Route> {
        match self {
            Self::Root => Route::from_path(path),
            Self::Prefix(prefix) => path.strip_prefix(&**prefix).and_then(Route::from_path),
            Self::Route(route) => Some(*route),
        }
    }
}

/// Every route at its own path (`/events`, `/flume`, ...), or as
/// [`Collector::under_prefix`] and [`Collector::route`] mounted it. With
/// axum, mount it under a prefix with `Router::nest_service("/api",
/// collector)`, which strips the prefix; with plain hyper, use
/// [`Collector::under_prefix`].
///
/// Each request goes through the collector's stack of layers (metrics,
/// CORS, refusals, routes, write keys, admission, body, decoding); see
/// `docs/architecture.md`.
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

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if let Some(route) = self.mount.route(request.uri().path()) {
            request.extensions_mut().insert(route);
        }
        let mut stack = stack::stack(&self.inner);
        stack.call(request)
    }
}

impl Collector {
    /// All routes under `prefix` (`"/api"` serves `/api/events`, ...), as a
    /// tower service with the same limits, errors and back-pressure as the
    /// standalone server. 404 outside the prefix.
    #[must_use]
    pub fn under_prefix(&self, prefix: &str) -> Collector {
        self.mounted(Mount::Prefix(prefix.trim_end_matches('/').into()))
    }

    /// One route alone, as a tower service answering at any path.
    #[must_use]
    pub fn route(&self, route: Route) -> Collector {
        self.mounted(Mount::Route(route))
    }

    fn mounted(&self, mount: Mount) -> Collector {
        Collector {
            inner: self.inner.clone(),
            mount,
        }
    }
}
