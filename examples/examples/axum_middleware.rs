//! An axum service instrumented two ways: the request-context layer puts
//! request id, method, path, user agent and the anonymised client address
//! on every event emitted while handling a request, and the tracing bridge
//! turns marked `tracing` events into tidings events.
//!
//! Run with `cargo run -p tidings-examples --example axum_middleware`. It
//! serves on an ephemeral port, calls itself once, prints the events and exits.

#![allow(clippy::print_stdout)] // printing the events is the point

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::post;
use serde_json::json;
use tidings::{Tracker, WithContextExt};
use tidings_test::RecordingBackend;
use tidings_tower::RequestContextLayer;
use tidings_tracing::TidingsLayer;
use tracing_subscriber::layer::SubscriberExt;

async fn checkout(tracker: Tracker) -> &'static str {
    // An event through the tracker ...
    let _ = tracker.emit("checkout.started", json!({"items": 3}));
    // ... one through tracing, with the span's fields as context ...
    let span = tracing::info_span!("payment", provider = "acme-pay");
    span.in_scope(|| {
        tracing::info!(
            tidings = "payment.authorized",
            amount_cents = 4200,
            "authorized"
        )
    });
    // ... and one from a task the handler spawns, which keeps the request context.
    let _ = tokio::spawn(
        async move {
            let _ = tracker.emit("receipt.mailed", json!({}));
        }
        .with_current_context(),
    )
    .await;
    "ok"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let recorder = RecordingBackend::new();
    let tracker = Tracker::builder()
        .backend("memory", recorder.clone())
        .build()?;
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(TidingsLayer::new(tracker.clone())),
    )?;

    let app = Router::new()
        .route("/checkout", post(move || checkout(tracker.clone())))
        .layer(
            RequestContextLayer::new().client_addr_from(|extensions, _headers| {
                extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|info| info.0.ip())
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    let answer = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut stream = TcpStream::connect(addr)?;
        write!(stream, "POST /checkout HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: example/1.0\r\nX-Request-Id: demo-1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    })
    .await??;
    println!("{}", answer.lines().next().unwrap_or(""));
    tokio::time::sleep(Duration::from_millis(20)).await;
    for event in recorder.events() {
        println!(
            "{} data={} context={}",
            event.name(),
            event.data(),
            serde_json::Value::Object(event.context().clone())
        );
    }
    Ok(())
}
