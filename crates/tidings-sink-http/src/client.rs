//! `HttpClient`: the one HTTP client every sink of this crate uses, with
//! its own I/O thread, connection reuse, https and timeouts; and
//! `Retry-After` parsing.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tidings_core::{RedactedUrl, SinkError};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;

use crate::BuildError;

/// Default for [`HttpClientBuilder::connect_timeout`]: 5 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default for [`HttpClientBuilder::request_timeout`]: 10 s.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`HttpClientBuilder::pool_idle_timeout`]: 90 s.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// The most bytes of an answer's body that are read; longer bodies are cut.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

type Hyper = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The HTTP client of the sinks: connection reuse (a pool per host), `http`
/// and `https` (rustls with the webpki roots), a connect timeout and a
/// timeout for the whole exchange.
///
/// Cloning is cheap and clones share the pool, so give one client to several
/// sinks to share connections. Requests run on an I/O thread the client
/// owns (named `tidings-http`, with a single-threaded tokio runtime), so the
/// client works the same from any runtime or none: the workers of
/// `SinkBackend` have no I/O driver of their own. The thread ends, closing
/// every pooled connection, when the last clone is dropped.
///
/// Only HTTP/1.1 is spoken; redirects are not followed.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    exec: Exec,
    connect_timeout: Duration,
    handle: Handle,
    /// Dropping it ends the I/O thread.
    _stop: oneshot::Sender<()>,
}

/// What a request task needs: cloned into every task, and held by the
/// rotator, without keeping the I/O thread alive.
#[derive(Clone)]
pub(crate) struct Exec {
    hyper: Hyper,
    request_timeout: Duration,
}

/// Builds an [`HttpClient`]. Created by [`HttpClient::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct HttpClientBuilder {
    connect_timeout: Duration,
    request_timeout: Duration,
    pool_idle_timeout: Duration,
}

impl Default for HttpClientBuilder {
    fn default() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
        }
    }
}

impl HttpClientBuilder {
    /// The longest a TCP connect (and DNS lookup) may take. Defaults to 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The longest a whole exchange may take: connecting, sending the
    /// request and receiving the answer's head. A request that takes longer
    /// fails with [`RequestError::Timeout`], which sinks report as
    /// retryable. Defaults to 10 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long an idle pooled connection is kept. Defaults to 90 s.
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }

    /// Starts the client's I/O thread.
    ///
    /// # Errors
    ///
    /// [`BuildError::Io`] when the thread or its runtime cannot be started,
    /// [`BuildError::Tls`] when rustls refuses its default configuration.
    pub fn build(self) -> Result<HttpClient, BuildError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(self.connect_timeout));
        let https = HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(BuildError::Tls)?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let hyper = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(self.pool_idle_timeout)
            .build(https);
        let (handle, stop) = start_io_thread().map_err(BuildError::Io)?;
        Ok(HttpClient {
            inner: Arc::new(Inner {
                exec: Exec {
                    hyper,
                    request_timeout: self.request_timeout,
                },
                connect_timeout: self.connect_timeout,
                handle,
                _stop: stop,
            }),
        })
    }
}

/// Starts the I/O thread. The runtime is built, run and dropped on that
/// thread, so it is never dropped inside another runtime (which panics).
fn start_io_thread() -> std::io::Result<(Handle, oneshot::Sender<()>)> {
    let (stop, stopped) = oneshot::channel::<()>();
    let (started, handle) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("tidings-http".to_owned())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = started.send(Err(error));
                    return;
                }
            };
            let _ = started.send(Ok(runtime.handle().clone()));
            // Runs every request and rotator task until the last client is dropped.
            runtime.block_on(async {
                let _ = stopped.await;
            });
        })?;
    let handle = handle
        .recv()
        .map_err(|_| std::io::Error::other("the I/O thread ended before its runtime started"))??;
    Ok((handle, stop))
}

impl HttpClient {
    /// A client with the default timeouts.
    ///
    /// # Errors
    ///
    /// As [`HttpClientBuilder::build`].
    pub fn new() -> Result<Self, BuildError> {
        Self::builder().build()
    }

    /// `client`, or a new client with the default timeouts: what every
    /// sink builder uses when it was given none.
    pub(crate) fn or_new(client: Option<Self>) -> Result<Self, BuildError> {
        client.map_or_else(Self::new, Ok)
    }

    /// A builder to set timeouts.
    pub fn builder() -> HttpClientBuilder {
        HttpClientBuilder::default()
    }

    /// The connect timeout.
    #[must_use]
    pub fn connect_timeout(&self) -> Duration {
        self.inner.connect_timeout
    }

    /// The timeout of a whole exchange.
    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        self.inner.exec.request_timeout
    }

    /// Sends `request` once and reads the answer (its body up to
    /// [`MAX_ANSWER_BYTES`]).
    ///
    /// The request runs on the client's I/O thread; dropping the returned
    /// future cancels it.
    ///
    /// # Errors
    ///
    /// [`RequestError`] when no complete answer arrived in time. An answer
    /// with an error status is not an error here.
    pub async fn send(&self, request: Request<Bytes>) -> Result<HttpResponse, RequestError> {
        let target = RedactedUrl::new(&request.uri().to_string()).to_string();
        let exchange = self.spawn(request, target.clone()).await?;
        let body = exchange
            .body
            .map_err(|detail| RequestError::Body { target, detail })?;
        Ok(HttpResponse {
            status: exchange.status,
            headers: exchange.headers,
            body,
        })
    }

    /// Sends one batch's `request` once, as sinks do: any `2xx` answer is
    /// success, whatever its body; other statuses become
    /// [`SinkError::from_http_status`] with the answer's `Retry-After`;
    /// transport failures and timeouts are retryable.
    ///
    /// # Errors
    ///
    /// [`SinkError`] classified as above.
    pub async fn deliver(&self, request: Request<Bytes>) -> Result<(), SinkError> {
        let target = RedactedUrl::new(&request.uri().to_string()).to_string();
        let exchange = self
            .spawn(request, target)
            .await
            .map_err(RequestError::into_sink_error)?;
        if exchange.status.is_success() {
            return Ok(());
        }
        let retry_after = exchange
            .headers
            .get(RETRY_AFTER)
            .and_then(|value| parse_retry_after(value, SystemTime::now()));
        Err(SinkError::from_http_status(
            exchange.status.as_u16(),
            retry_after,
        ))
    }

    async fn spawn(
        &self,
        request: Request<Bytes>,
        target: String,
    ) -> Result<Exchange, RequestError> {
        let task = self
            .inner
            .handle
            .spawn(self.inner.exec.clone().run(request, target.clone()));
        match AbortOnDrop(task).await {
            Ok(result) => result,
            Err(error) => Err(RequestError::Aborted {
                target,
                detail: error.to_string(),
            }),
        }
    }

    /// Spawns `future` on the I/O thread; it is aborted when the returned
    /// guard is dropped.
    pub(crate) fn spawn_task<F>(&self, future: F) -> AbortOnDrop<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        AbortOnDrop(self.inner.handle.spawn(future))
    }

    pub(crate) fn exec(&self) -> Exec {
        self.inner.exec.clone()
    }
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("connect_timeout", &self.inner.connect_timeout)
            .field("request_timeout", &self.inner.exec.request_timeout)
            .finish_non_exhaustive()
    }
}

/// One exchange's outcome: the head, and the body or why it could not be read.
pub(crate) struct Exchange {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Result<Bytes, String>,
}

impl Exec {
    /// Runs one exchange on the current (I/O) runtime. The request timeout
    /// covers connecting, sending and the answer's head; the body is read
    /// within what is left of it.
    pub(crate) async fn run(
        self,
        request: Request<Bytes>,
        target: String,
    ) -> Result<Exchange, RequestError> {
        let timeout = self.request_timeout;
        let deadline = Instant::now() + timeout;
        let answer =
            tokio::time::timeout_at(deadline, self.hyper.request(request.map(Full::new))).await;
        let response = match answer {
            Err(_) => return Err(RequestError::Timeout { target, timeout }),
            Ok(Err(error)) if error.is_connect() => {
                return Err(RequestError::Connect {
                    target,
                    detail: chain(&error),
                });
            }
            Ok(Err(error)) => {
                return Err(RequestError::Transport {
                    target,
                    detail: chain(&error),
                });
            }
            Ok(Ok(response)) => response,
        };
        let (head, body) = response.into_parts();
        let body =
            match tokio::time::timeout_at(deadline, Limited::new(body, MAX_ANSWER_BYTES).collect())
                .await
            {
                Err(_) => Err(format!("the body did not arrive within {timeout:?}")),
                Ok(Err(error)) => Err(chain(&*error)),
                Ok(Ok(collected)) => Ok(collected.to_bytes()),
            };
        Ok(Exchange {
            status: head.status,
            headers: head.headers,
            body,
        })
    }
}

/// An error and its sources, joined by `: ` (hyper's top-level messages
/// alone, such as "client error (Connect)", say little).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// A complete answer: status, headers and body (cut at [`MAX_ANSWER_BYTES`]
/// would be an error instead).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl HttpResponse {
    /// The status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The `Retry-After` header, parsed (see [`parse_retry_after`]).
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.headers
            .get(RETRY_AFTER)
            .and_then(|value| parse_retry_after(value, SystemTime::now()))
    }
}

/// A request got no complete answer. Messages name the target only as
/// `scheme://host:port`, never with credentials, query or path.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No answer within the request timeout (the server is slow, or accepts
    /// connections and never answers).
    #[error("no answer from {target} within {timeout:?}")]
    Timeout {
        /// The redacted target.
        target: String,
        /// The request timeout.
        timeout: Duration,
    },
    /// The connection could not be made (refused, DNS, TLS, connect timeout).
    #[error("could not connect to {target}: {detail}")]
    Connect {
        /// The redacted target.
        target: String,
        /// What went wrong, with its causes.
        detail: String,
    },
    /// The connection failed while sending or awaiting the answer (reset,
    /// closed early).
    #[error("request to {target} failed: {detail}")]
    Transport {
        /// The redacted target.
        target: String,
        /// What went wrong, with its causes.
        detail: String,
    },
    /// The answer's head arrived but its body could not be read in time or
    /// in full (or was longer than [`MAX_ANSWER_BYTES`]).
    #[error("could not read the answer of {target}: {detail}")]
    Body {
        /// The redacted target.
        target: String,
        /// What went wrong.
        detail: String,
    },
    /// The request task died on the I/O thread (a panic in the HTTP stack).
    #[error("the request to {target} was aborted: {detail}")]
    Aborted {
        /// The redacted target.
        target: String,
        /// What happened.
        detail: String,
    },
}

impl RequestError {
    /// Whether trying again may succeed: everything but [`RequestError::Aborted`].
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Aborted { .. })
    }

    /// The [`SinkError`] for a batch that failed with this error: retryable
    /// or fatal as [`RequestError::is_retryable`] says.
    #[must_use]
    pub fn into_sink_error(self) -> SinkError {
        if self.is_retryable() {
            SinkError::retryable(self)
        } else {
            SinkError::fatal(self)
        }
    }
}

/// Parses a `Retry-After` value: a number of seconds (`120`) or an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`), which becomes the time left from
/// `now` (zero when it has passed). Anything else is `None`.
#[must_use]
pub fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A spawned task that is aborted when this handle is dropped, so that
/// cancelling a sink's call cancels its request.
#[derive(Debug)]
pub(crate) struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    pub(crate) fn abort(&self) {
        self.0.abort();
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.get_mut().0).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_400); // Wed, 21 Oct 2015 07:26:40 GMT
        let parse = |text: &'static str| parse_retry_after(&HeaderValue::from_static(text), now);
        assert_eq!(parse("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            parse("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::from_secs(80))
        );
        assert_eq!(
            parse("Wed, 21 Oct 2015 07:00:00 GMT"),
            Some(Duration::ZERO),
            "a past date"
        );
        assert_eq!(parse("-1"), None);
        assert_eq!(parse("1.5"), None);
        assert_eq!(parse("soon"), None);
    }

    #[test]
    fn request_errors_are_retryable_except_aborts() {
        let target = "http://127.0.0.1:1".to_owned();
        let timeout = RequestError::Timeout {
            target: target.clone(),
            timeout: Duration::from_secs(1),
        };
        assert!(timeout.clone().into_sink_error().is_retryable());
        assert_eq!(
            timeout.to_string(),
            "no answer from http://127.0.0.1:1 within 1s"
        );
        let aborted = RequestError::Aborted {
            target,
            detail: "panic".to_owned(),
        };
        assert_eq!(
            aborted.into_sink_error().kind(),
            tidings_core::SinkErrorKind::Fatal
        );
    }
}
