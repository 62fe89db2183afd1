//! The collector as a tower stack: each concern of a request is one layer,
//! composed with `ServiceBuilder` in [`Collector::call`](crate::Collector).
//!
//! Outside in:
//!
//! | Layer | Does | Module of its logic |
//! |---|---|---|
//! | [`Measure`] | counts every answer by route and status | `metrics` |
//! | [`Cors`] | CORS headers for allowed origins; answers preflights | `access` |
//! | [`Answer`] | turns a refusal into its JSON answer, counted by reason | `reject` |
//! | [`Routes`] | the `GET` routes; `POST` to an ingest route (and a pixel, `GET`/`HEAD /spade`: 414 over its query bound, the GIF once accepted) goes on down | here |
//! | [`WriteKeys`] (a [`Guard`]) | 401 without a configured write key (`/event/log` may carry it in its body: [`KeyInBody`]) | `access` |
//! | [`Admission`] (a [`Guard`]) | 503 when the intake has no room, before the body is read | here |
//! | [`ReadBody`] | body budget, size limit, timeout, gzip | `body` |
//! | [`Decode`] | the route's format into events; `/event/log`'s client address | `ingest` |
//! | [`Admit`](crate::admit::Admit) | catalog, receive time, queue or log, 202 | `admit` |
//!
//! Below [`Answer`] a refusal is a [`Reject`] error, so a layer refuses by
//! returning it and every layer above sees the refusal as an answer. Every
//! service is always ready: `poll_ready` only passes readiness on.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use tower::ServiceBuilder;
use tower_layer::layer_fn;
use tower_service::Service;

use crate::access::{Access, access, add_cors, allowed_origin, preflight};
use crate::admit::Admit;
use crate::collector::{Inner, Route};
use crate::ingest::{Batch, Door};
use crate::reject::{Reject, json_response};
use crate::{body, script};

/// What every service of the stack answers.
pub(crate) type Reply = Response<Full<Bytes>>;

/// The boxed future of a layer.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// An error of a request body.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The whole stack over `inner`, for a request whose [`Route`] (if any) is
/// in its extensions.
pub(crate) fn stack<B>(
    inner: &Arc<Inner>,
) -> impl Service<
    Request<B>,
    Response = Reply,
    Error = Infallible,
    Future = BoxFuture<Result<Reply, Infallible>>,
>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let ingest = ServiceBuilder::new()
        .layer(layer_fn(|service| Guarded {
            guard: WriteKeys(inner.clone()),
            service,
        }))
        .layer(layer_fn(|service| Guarded {
            guard: Admission(inner.clone()),
            service,
        }))
        .layer(layer_fn(|service| ReadBody {
            inner: inner.clone(),
            service,
        }))
        .layer(layer_fn(|service| Decode {
            inner: inner.clone(),
            service,
        }))
        .service(Admit::new(inner.clone()));
    ServiceBuilder::new()
        .layer(layer_fn(|service| Measure {
            inner: inner.clone(),
            service,
        }))
        .layer(layer_fn(|service| Cors {
            inner: inner.clone(),
            service,
        }))
        .layer(layer_fn(|service| Answer {
            inner: inner.clone(),
            service,
        }))
        .service(Routes {
            inner: inner.clone(),
            ingest,
        })
}

/// The route a request was resolved to, from its extensions.
fn route_of<B>(request: &Request<B>) -> Option<Route> {
    request.extensions().get::<Route>().copied()
}

/// The clone of `service` to call from a future, leaving a fresh clone in
/// its place: the one that was polled ready is the one called.
fn take<S: Clone>(service: &mut S) -> S {
    let fresh = service.clone();
    std::mem::replace(service, fresh)
}

/// Counts every answer in `tidings_collector_requests_total`, by route and
/// status.
#[derive(Clone)]
pub(crate) struct Measure<S> {
    inner: Arc<Inner>,
    service: S,
}

impl<S, B> Service<Request<B>> for Measure<S>
where
    S: Service<Request<B>, Response = Reply, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = Infallible;
    type Future = BoxFuture<Result<Reply, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let label = route_of(&request).map_or("other", Route::path);
        let inner = self.inner.clone();
        let answer = self.service.call(request);
        Box::pin(async move {
            let response = answer.await?;
            inner.counters.request(label, response.status().as_u16());
            Ok(response)
        })
    }
}

/// CORS for the origins in `allowed_origins`: their answers carry
/// `Access-Control-Allow-Origin` (refusals too, so that a page can read
/// why), and a preflight (`OPTIONS`) of an ingest route is answered here.
#[derive(Clone)]
pub(crate) struct Cors<S> {
    inner: Arc<Inner>,
    service: S,
}

impl<S, B> Service<Request<B>> for Cors<S>
where
    S: Service<Request<B>, Response = Reply, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = Infallible;
    type Future = BoxFuture<Result<Reply, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let origin =
            allowed_origin(&self.inner.options.allowed_origins, request.headers()).cloned();
        if request.method() == Method::OPTIONS && route_of(&request).is_some_and(Route::ingests) {
            return Box::pin(std::future::ready(Ok(preflight(origin))));
        }
        let answer = self.service.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            if let Some(origin) = origin {
                add_cors(response.headers_mut(), origin);
            }
            Ok(response)
        })
    }
}

/// Turns a [`Reject`] into its JSON answer (with Segment's fields beside
/// tidings' at a Segment route), counting it by reason (and a catalog
/// violation by its kind) and showing it in the live view.
#[derive(Clone)]
pub(crate) struct Answer<S> {
    inner: Arc<Inner>,
    service: S,
}

impl<S, B> Service<Request<B>> for Answer<S>
where
    S: Service<Request<B>, Response = Reply, Error = Reject>,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = Infallible;
    type Future = BoxFuture<Result<Reply, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // A refusal to be ready is answered when called, as a refusal.
        self.service.poll_ready(cx).map(|_| Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // For the live view's list of refused requests: never the query,
        // which may hold a write key.
        let seen = self
            .inner
            .ui
            .as_ref()
            .map(|_| (request.method().clone(), request.uri().path().to_owned()));
        let segment = matches!(route_of(&request), Some(Route::Segment(_)));
        let inner = self.inner.clone();
        let answer = self.service.call(request);
        Box::pin(async move {
            Ok(answer.await.unwrap_or_else(|reject| {
                if let Some((method, path)) = &seen {
                    inner.refused(method.as_str(), path, &reject);
                }
                inner.counters.rejected(reject.reason());
                if let Reject::Invalid { violation, .. } = &reject {
                    inner.counters.invalid(violation.kind().code());
                }
                if segment {
                    reject.into_segment_response()
                } else {
                    reject.into_response()
                }
            }))
        })
    }
}

/// The routes: `/healthz`, `/metrics` and `/tidings.js` answered here, a
/// `POST` to an ingest route (and a pixel, `GET` or `HEAD /spade`) passed
/// to the `ingest` stack, anything else refused (404, 405).
#[derive(Clone)]
pub(crate) struct Routes<S> {
    inner: Arc<Inner>,
    ingest: S,
}

impl<S, B> Service<Request<B>> for Routes<S>
where
    S: Service<Request<B>, Response = Reply, Error = Reject>,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = Reject;
    type Future = BoxFuture<Result<Reply, Reject>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Reject>> {
        self.ingest.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Some(route) = route_of(&request) else {
            return Box::pin(std::future::ready(Err(Reject::NotFound)));
        };
        let method = request.method();
        let reading = method == Method::GET || method == Method::HEAD;
        let answer = match route {
            _ if route.ingests() => {
                if method == Method::POST {
                    return Box::pin(self.ingest.call(request));
                }
                if route == Route::Spade && reading {
                    return self.pixel(request);
                }
                Err(Reject::MethodNotAllowed(if route == Route::Spade {
                    "GET, HEAD, POST, OPTIONS"
                } else {
                    "POST, OPTIONS"
                }))
            }
            Route::Healthz | Route::Metrics if !reading => Err(Reject::MethodNotAllowed("GET")),
            Route::Script if !reading => Err(Reject::MethodNotAllowed("GET, HEAD")),
            Route::Healthz => Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({"status": "ok"}),
            )),
            Route::Metrics => Ok(self.metrics()),
            _ => Ok(script::response()),
        };
        Box::pin(std::future::ready(answer))
    }
}

/// The most bytes the query string of a pixel (`GET /spade?data=...`) may
/// have, or `max_body_bytes` when that is less: the query is the pixel's
/// body. (The server's read buffer already bounds a request's head at 64
/// KiB, answering 431 beyond it.)
pub(crate) const MAX_PIXEL_QUERY: usize = 16 * 1024;

/// A transparent 1×1 GIF: what a tracking pixel answers.
pub(crate) const PIXEL_GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, // "GIF89a"
    0x01, 0x00, 0x01, 0x00, // 1×1
    0x80, 0x00, 0x00, // a global colour table of 2 colours
    0x00, 0x00, 0x00, 0xff, 0xff, 0xff, // black, white
    0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, // colour 0 transparent
    0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, // the image
    0x02, 0x02, 0x44, 0x01, 0x00, // its pixel, LZW-coded
    0x3b, // end
];

/// What an accepted pixel answers: 200 with [`PIXEL_GIF`], never cached
/// (a cached pixel would not be requested, nor counted, again).
pub(crate) fn pixel_response() -> Reply {
    let mut response = Response::new(Full::new(Bytes::from_static(PIXEL_GIF)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/gif"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl<S> Routes<S> {
    /// `GET` or `HEAD /spade?data=...`: the ingest stack decodes the query,
    /// and an accepted pixel answers the GIF (a refusal is the same JSON
    /// answer as a `POST`'s).
    fn pixel<B>(&mut self, request: Request<B>) -> BoxFuture<Result<Reply, Reject>>
    where
        S: Service<Request<B>, Response = Reply, Error = Reject>,
        S::Future: Send + 'static,
    {
        let max = MAX_PIXEL_QUERY.min(self.inner.options.max_body_bytes);
        let length = request.uri().query().map_or(0, str::len);
        if length > max {
            return Box::pin(std::future::ready(Err(Reject::UriTooLong(format!(
                "the query string is {length} bytes, over the {max} a pixel may send; POST larger batches to /spade"
            )))));
        }
        let answer = self.ingest.call(request);
        Box::pin(async move { answer.await.map(|_accepted| pixel_response()) })
    }
}

impl<S> Routes<S> {
    fn metrics(&self) -> Reply {
        let mut response = Response::new(Full::new(Bytes::from(crate::metrics::text(&self.inner))));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        );
        response
    }
}

/// A check of a request's head, made before its body is read.
pub(crate) trait Guard: Clone {
    /// `Ok` lets the request on (a guard may leave a note in its
    /// extensions for the layers below); a [`Reject`] answers it.
    fn check<B>(&self, request: &mut Request<B>) -> Result<(), Reject>;
}

/// A service behind a [`Guard`].
#[derive(Clone)]
pub(crate) struct Guarded<G, S> {
    guard: G,
    service: S,
}

impl<G, S, B> Service<Request<B>> for Guarded<G, S>
where
    G: Guard,
    S: Service<Request<B>, Response = Reply, Error = Reject>,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = Reject;
    type Future = BoxFuture<Result<Reply, Reject>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Reject>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        match self.guard.check(&mut request) {
            Ok(()) => Box::pin(self.service.call(request)),
            Err(reject) => Box::pin(std::future::ready(Err(reject))),
        }
    }
}

/// Lets on only the requests that present one of the collector's write
/// keys (all of them when it has none). A request to `/event/log` or to a
/// Segment route whose head presents no key goes on with a [`KeyInBody`]
/// note: its body's `write_key` parameter (`writeKey` field) is checked
/// once decoded.
#[derive(Clone)]
pub(crate) struct WriteKeys(Arc<Inner>);

/// The note [`WriteKeys`] leaves on a request to `/event/log` or a Segment
/// route whose key, if any, is in its body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyInBody;

impl Guard for WriteKeys {
    fn check<B>(&self, request: &mut Request<B>) -> Result<(), Reject> {
        let keys = &self.0.options.write_keys;
        match access(keys, request.headers(), request.uri().query()) {
            Access::Granted => Ok(()),
            Access::NotPresented if route_of(request).is_some_and(Route::key_in_body) => {
                request.extensions_mut().insert(KeyInBody);
                Ok(())
            }
            Access::NotPresented | Access::Denied => Err(Reject::Unauthorized),
        }
    }
}

/// Refuses a request while the collector's intake has no room, before its
/// body is read: the client's retry sends it again, so a stalled pipeline
/// costs no memory for bodies.
#[derive(Clone)]
pub(crate) struct Admission(Arc<Inner>);

impl Guard for Admission {
    fn check<B>(&self, _request: &mut Request<B>) -> Result<(), Reject> {
        if self.0.intake.has_room(1) {
            Ok(())
        } else {
            Err(Reject::QueueFull)
        }
    }
}

/// Reads the body whole, within the body budget (503 before reading when it
/// is spent), `max_body_bytes` (413), the body timeout (408) and gzip.
#[derive(Clone)]
pub(crate) struct ReadBody<S> {
    inner: Arc<Inner>,
    service: S,
}

impl<S, B> Service<Request<B>> for ReadBody<S>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    S: Service<Request<Bytes>, Response = Reply, Error = Reject> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = Reject;
    type Future = BoxFuture<Result<Reply, Reject>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Reject>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let max = self.inner.options.max_body_bytes;
        let (parts, request_body) = request.into_parts();
        let permit = body::BodyHead::of(&parts.headers, max).and_then(|head| {
            let permit = self.inner.budgets.bodies.try_take(head.budget(max));
            Ok((head, permit.ok_or(Reject::Busy)?))
        });
        let (head, permit) = match permit {
            Ok(taken) => taken,
            Err(reject) => return Box::pin(std::future::ready(Err(reject))),
        };
        let mut service = take(&mut self.service);
        Box::pin(async move {
            let bytes = body::read(&parts.headers, &head, request_body, max).await?;
            // The budget holds the body until its events are admitted.
            let answer = service.call(Request::from_parts(parts, bytes)).await;
            drop(permit);
            answer
        })
    }
}

/// Decodes a body in its route's format ([`Batch::decode`]).
#[derive(Clone)]
pub(crate) struct Decode<S> {
    inner: Arc<Inner>,
    service: S,
}

impl<S> Service<Request<Bytes>> for Decode<S>
where
    S: Service<Batch, Response = Reply, Error = Reject>,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = Reject;
    type Future = BoxFuture<Result<Reply, Reject>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Reject>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let Some(route) = route_of(&request) else {
            return Box::pin(std::future::ready(Err(Reject::NotFound)));
        };
        let inner = &self.inner;
        let door = Door {
            client_ip: if route == Route::EventLog {
                inner.client_ip(&request)
            } else {
                None
            },
            key_in_body: request
                .extensions()
                .get::<KeyInBody>()
                .map(|_| inner.options.write_keys.as_slice()),
        };
        match Batch::decode(
            route,
            &request,
            &inner.limits,
            inner.flume_allowlist.as_ref(),
            &door,
        ) {
            Ok(batch) => Box::pin(self.service.call(batch)),
            Err(reject) => Box::pin(std::future::ready(Err(reject))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context as TaskContext, Waker};

    use http_body_util::Full;
    use tidings_config::{Registry, load};

    use super::*;
    use crate::Collector;

    /// A service that is never ready, to see each layer pass that on.
    #[derive(Clone)]
    struct NeverReady;

    impl<R> Service<R> for NeverReady {
        type Response = Reply;
        type Error = Reject;
        type Future = BoxFuture<Result<Reply, Reject>>;

        fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Reject>> {
            Poll::Pending
        }

        fn call(&mut self, _request: R) -> Self::Future {
            Box::pin(std::future::ready(Err(Reject::NotFound)))
        }
    }

    /// The same, for the layers above `Answer`, whose error is `Infallible`.
    #[derive(Clone)]
    struct NeverReadyInfallible;

    impl<R> Service<R> for NeverReadyInfallible {
        type Response = Reply;
        type Error = Infallible;
        type Future = BoxFuture<Result<Reply, Infallible>>;

        fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Pending
        }

        fn call(&mut self, _request: R) -> Self::Future {
            Box::pin(std::future::ready(Ok(Reply::default())))
        }
    }

    fn pending<S: Service<R>, R>(mut service: S) -> bool {
        let mut cx = TaskContext::from_waker(Waker::noop());
        service.poll_ready(&mut cx).is_pending()
    }

    #[test]
    fn every_layer_passes_its_services_readiness_on() {
        let config = load(
            "[backends.out]\ntype = \"file\"\npath = \"/nonexistent-never-written\"\n",
            &Registry::default(),
        )
        .unwrap();
        let collector = Collector::from_config(&config).unwrap();
        let inner = &collector.inner;
        let never = NeverReadyInfallible;
        assert!(pending::<_, Request<Full<Bytes>>>(Measure {
            inner: inner.clone(),
            service: never.clone()
        }));
        assert!(pending::<_, Request<Full<Bytes>>>(Cors {
            inner: inner.clone(),
            service: never
        }));
        assert!(pending::<_, Request<Full<Bytes>>>(Answer {
            inner: inner.clone(),
            service: NeverReady
        }));
        assert!(pending::<_, Request<Full<Bytes>>>(Routes {
            inner: inner.clone(),
            ingest: NeverReady
        }));
        assert!(pending::<_, Request<Full<Bytes>>>(Guarded {
            guard: WriteKeys(inner.clone()),
            service: NeverReady
        }));
        assert!(pending::<_, Request<Full<Bytes>>>(ReadBody {
            inner: inner.clone(),
            service: NeverReady
        }));
        assert!(pending::<_, Request<Bytes>>(Decode {
            inner: inner.clone(),
            service: NeverReady
        }));
        // The stack itself is always ready.
        assert!(!pending::<_, Request<Full<Bytes>>>(stack::<Full<Bytes>>(
            inner
        )));
        drop(collector);
    }
}
