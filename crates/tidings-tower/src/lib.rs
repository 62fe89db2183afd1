//! A tower [`Layer`](tower_layer::Layer) that puts request context on every
//! tidings event emitted while a request is handled, as edX's Django
//! middleware does: request id, method, path, user agent and the client's
//! address, anonymised by default.
//!
//! It works with hyper, axum and anything else built on tower. The context
//! follows the request's future across `.await` points and threads, and
//! into tasks it spawns with `.with_current_context()`.
//!
//! ```
//! use std::convert::Infallible;
//! use tidings::{Tracker, WithContextExt};
//! use tidings_test::RecordingBackend;
//! use tidings_tower::RequestContextLayer;
//! use tower_layer::Layer;
//! use tower_service::Service;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let recorder = RecordingBackend::new();
//! let tracker = Tracker::builder().backend("memory", recorder.clone()).build()?;
//! let handler = tower::service_fn(move |_request: http::Request<()>| {
//!     let tracker = tracker.clone();
//!     async move {
//!         let _ = tracker.emit("page.view", serde_json::json!({}));
//!         Ok::<_, Infallible>(http::Response::new(()))
//!     }
//! });
//! let mut service = RequestContextLayer::new().layer(handler);
//! let request = http::Request::get("/shop?q=1").header("x-request-id", "abc-123").body(())?;
//! let response = service.call(request).await?;
//! assert_eq!(response.headers()["x-request-id"], "abc-123");
//! let context = recorder.events()[0].context().clone();
//! assert_eq!(context["request_id"], "abc-123");
//! assert_eq!(context["path"], "/shop");
//! # Ok(()) }
//! ```
//!
//! The context is entered under the name `request` with the keys
//! `request_id` (kept from `x-request-id` when it is a short printable
//! value, else a new UUID v7, and echoed in the response), `method`, `path`
//! (without the query), `user_agent` and `client_ip`. The client address is
//! taken from the request's extensions (see
//! [`RequestContextLayer::client_addr_from`]); by default the last octet of
//! an IPv4 address and the last 80 bits of an IPv6 address are zeroed.
//! Behind proxies, [`RequestContextLayer::trusted_proxies`] reads
//! `X-Forwarded-For`, only from the proxies listed ([`TrustedProxies`], which
//! the tidings collector uses for its `/event/log` route too).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use serde_json::Value;
use tidings_context::{WithContext, WithContextExt};
use tidings_event::{EventId, Map};

mod proxies;

pub use proxies::{FORWARDED_FOR_HEADER, InvalidProxy, TrustedProxies};

/// The header carrying the request id, read and echoed.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest request id kept from a client.
const MAX_REQUEST_ID_LEN: usize = 128;

type AddrFn = dyn Fn(&http::Extensions, &http::HeaderMap) -> Option<IpAddr> + Send + Sync;

/// Builds [`RequestContext`] services.
#[derive(Clone)]
pub struct RequestContextLayer {
    anonymize: bool,
    client_addr: Arc<AddrFn>,
}

impl std::fmt::Debug for RequestContextLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestContextLayer")
            .field("anonymize", &self.anonymize)
            .finish_non_exhaustive()
    }
}

impl Default for RequestContextLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestContextLayer {
    /// A layer that anonymises client addresses and reads them from a
    /// [`SocketAddr`] in the request's extensions (put there by the server).
    #[must_use]
    pub fn new() -> Self {
        Self {
            anonymize: true,
            client_addr: Arc::new(|extensions, _headers| {
                extensions.get::<SocketAddr>().map(SocketAddr::ip)
            }),
        }
    }

    /// Whether to zero the last octet (IPv4) or last 80 bits (IPv6) of the
    /// client's address. Defaults to true.
    #[must_use]
    pub fn anonymize_ip(mut self, anonymize: bool) -> Self {
        self.anonymize = anonymize;
        self
    }

    /// Where the client's address comes from. With axum:
    /// `.client_addr_from(|ext, _| ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))`;
    /// behind proxies, [`RequestContextLayer::trusted_proxies`] (or
    /// [`TrustedProxies::client_addr`] in this function).
    #[must_use]
    pub fn client_addr_from(
        mut self,
        find: impl Fn(&http::Extensions, &http::HeaderMap) -> Option<IpAddr> + Send + Sync + 'static,
    ) -> Self {
        self.client_addr = Arc::new(find);
        self
    }

    /// Reads the client's address from the [`SocketAddr`] in the request's
    /// extensions, and from `X-Forwarded-For` when that peer is one of
    /// `proxies` ([`TrustedProxies::client_addr`]). A client that is not a
    /// trusted proxy cannot choose the address recorded by sending the
    /// header.
    #[must_use]
    pub fn trusted_proxies(self, proxies: TrustedProxies) -> Self {
        self.client_addr_from(move |extensions, headers| {
            let peer = extensions.get::<SocketAddr>()?.ip();
            Some(proxies.client_addr(peer, headers))
        })
    }
}

impl<S> tower_layer::Layer<S> for RequestContextLayer {
    type Service = RequestContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestContext {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`RequestContextLayer`].
#[derive(Clone, Debug)]
pub struct RequestContext<S> {
    inner: S,
    layer: RequestContextLayer,
}

/// Zeroes the last octet of an IPv4 address, the last 80 bits of an IPv6 one.
#[must_use]
pub fn anonymize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            for segment in &mut segments[3..] {
                *segment = 0;
            }
            IpAddr::V6(Ipv6Addr::from(segments))
        }
    }
}

fn request_id(headers: &http::HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_REQUEST_ID_LEN
                && id.bytes().all(|b| b.is_ascii_graphic())
        })
        .map_or_else(|| EventId::new().to_string(), str::to_owned)
}

impl RequestContextLayer {
    fn context_of<B>(&self, request: &Request<B>) -> (String, Map) {
        let id = request_id(request.headers());
        let mut context = Map::new();
        context.insert("request_id".into(), Value::String(id.clone()));
        context.insert("method".into(), Value::String(request.method().to_string()));
        context.insert(
            "path".into(),
            Value::String(request.uri().path().to_owned()),
        );
        if let Some(agent) = request
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            context.insert("user_agent".into(), Value::String(agent.to_owned()));
        }
        if let Some(ip) = (self.client_addr)(request.extensions(), request.headers()) {
            let ip = if self.anonymize { anonymize(ip) } else { ip };
            context.insert("client_ip".into(), Value::String(ip.to_string()));
        }
        (id, context)
    }
}

impl<S, B, R> tower_service::Service<Request<B>> for RequestContext<S>
where
    S: tower_service::Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (id, context) = self.layer.context_of(&request);
        ResponseFuture {
            inner: self.inner.call(request).in_context("request", context),
            request_id: HeaderValue::from_str(&id).ok(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequestContext`]: runs the inner service's
    /// future inside the request's context and echoes the request id.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: WithContext<F>,
        request_id: Option<HeaderValue>,
    }
}

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = Result<Response<R>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(result) => result?,
        };
        if let Some(id) = this.request_id.take() {
            response
                .headers_mut()
                .entry(REQUEST_ID_HEADER)
                .or_insert(id);
        }
        Poll::Ready(Ok(response))
    }
}
