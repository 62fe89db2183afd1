//! Embedding tidings in an axum service: the flume route at `/api/flume`
//! and the events route at `/events` mounted in the service's own router,
//! and the service's own events emitted through a tracker built from the
//! same config, into the same sinks.
//!
//! Run with `cargo run -p tidings-examples --example axum_embed`. It serves
//! on an ephemeral port, calls itself a few times, then drains and exits.

#![allow(clippy::print_stdout)] // printing what happened is the point

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde_json::json;
use tidings::Tracker;
use tidings_collector::{Collector, Route};
use tidings_config::{Registry, load};

/// One config for both the ingest routes and the service's own events.
const CONFIG: &str = r#"
[collector]
flume_allowed_properties = ["page", "button"]

[backends.console]
type = "console"
format = "json"
flush_interval_ms = 50
"#;

fn post(addr: SocketAddr, path: &str, content_type: &str, body: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer.lines().next().unwrap_or("").to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = load(CONFIG, &Registry::default())?;
    let collector = Collector::from_config(&config)?;
    let tracker = Tracker::from_shared_root(collector.root());

    let app = Router::new()
        .route(
            "/hello",
            get({
                let tracker = tracker.clone();
                move || async move {
                    let _ = tracker.emit("app.hello.served", json!({"greeting": "hi"}));
                    "hi"
                }
            }),
        )
        .route_service("/api/flume", collector.route(Route::Flume))
        .route_service("/events", collector.route(Route::Events));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async { drop(stopped.await) })
            .await
    });

    let answers = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<String>> {
        let flume = serde_urlencoded::to_string([(
            "data",
            r#"{"event": "page.click", "properties": {"page": "/home", "button": "signup", "email": "kept@out.example"}}"#,
        )])
        .unwrap_or_default();
        Ok(vec![
            post(addr, "/api/flume", "application/x-www-form-urlencoded", &flume)?,
            post(addr, "/events", "application/json", r#"{"name": "browser.page.view", "data": {"path": "/"}}"#)?,
            post(addr, "/events", "application/json", "{not json")?,
        ])
    })
    .await??;
    for answer in answers {
        println!("host answered: {answer}");
    }
    tracker.emit("app.stopping", json!({}))?;

    // The host stops: stop serving, then drain the embedded pipeline.
    let _ = stop.send(());
    server.await??;
    collector.drain(Duration::from_secs(5)).await?;
    Ok(())
}
