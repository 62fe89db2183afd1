//! The standalone HTTP server: the accept loop (connection budget, header
//! limits and timeouts), each connection's protocol errors, and the
//! graceful stop.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use http::{Request, Response};
use http_body_util::Either;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tidings_event::{FailureStreak, StreakLog};
use tokio::net::TcpListener;

use crate::collector::Collector;
use crate::protocol::JsonErrors;
use crate::static_files::StaticFiles;
use crate::ui::{ServeBody, UiRoute, View};

/// The most headers a request may carry.
const MAX_HEADERS: usize = 64;
/// The most a connection's read buffer grows to (hyper's default is about
/// 400 KiB): request heads must fit in it, and it bounds what each
/// connection holds besides its body.
const READ_BUFFER: usize = 64 * 1024;
/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

impl Collector {
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
                        Ok(accepted) => accepted,
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
                    let (stream, peer) = stream;
                    let Some(permit) = self.inner.budgets.connections.try_take(1) else {
                        self.inner.counters.rejected("too_many_connections");
                        if let Some(ui) = &self.inner.ui {
                            ui.refusals.push("", "", 503, "too_many_connections", "max_connections are open; the connection was answered 503 and closed unread");
                        }
                        tokio::spawn(refuse_connection(stream));
                        continue;
                    };
                    let collector = self.clone();
                    let service = service_fn(move |mut request: Request<hyper::body::Incoming>| {
                        // The peer, for `/event/log`'s client address.
                        request.extensions_mut().insert(peer);
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
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let ui_route = self
            .inner
            .ui
            .as_ref()
            .and_then(|ui| Some((ui, UiRoute::from_path(request.uri().path())?)));
        let Some((ui, route)) = ui_route else {
            if let Some(files) = &self.inner.static_files
                && StaticFiles::takes(request.method())
                && self.mount.route(request.uri().path()).is_none()
            {
                let response = files.answer(request).await;
                self.inner
                    .counters
                    .request("static", response.status().as_u16());
                return response;
            }
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
            inner.refused(request.method().as_str(), request.uri().path(), &reject);
            inner.counters.rejected(reject.reason());
            reject.into_response().map(Either::Left)
        });
        inner
            .counters
            .request(route.path(), response.status().as_u16());
        response
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
