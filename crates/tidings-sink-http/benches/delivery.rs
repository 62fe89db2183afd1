//! Events delivered per second to an ingest server on loopback, in batches
//! of 100, through `SinkBackend` (queue, batching, retry) and each HTTP sink.
//!
//! The server (hyper, on its own thread) reads each body and answers 200.
//! The emitting thread sends with `WhenFull::Block`, so nothing is dropped:
//! the figure is what the sink sustains. Target: at least 200 000 events/s.
//! Run with `cargo bench -p tidings-sink-http --bench delivery`.

#![allow(missing_docs, clippy::print_stdout)] // a benchmark binary reporting on stdout

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tidings_event::{Event, EventName};
use tidings_routing::{Backend, BatchConfig, DropReason, Sink, SinkBackend, WhenFull};
use tidings_sink_http::{HttpClient, HttpJsonSink, SpadeSink};

const EVENTS: usize = 300_000;

/// Starts the ingest server; returns its address and a count of body bytes.
fn ingest_server() -> (SocketAddr, Arc<AtomicU64>) {
    let bytes = Arc::new(AtomicU64::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    let counter = bytes.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr"))
                .expect("send addr");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let counter = counter.clone();
                        async move {
                            let body = request
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            counter.fetch_add(body.len() as u64, Ordering::Relaxed);
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    (rx.recv().expect("server address"), bytes)
}

fn event(n: usize) -> Event {
    Event::new(
        EventName::new("navigation.request").expect("valid name"),
        json!({"url": "http://www.edx.org/some/path/1", "button_text": "Enroll now", "depth": n % 7}),
    )
    .with_context(json!({"user_id": 10938, "session_id": "2987lkjdyoioey"}).as_object().cloned().unwrap_or_default())
}

fn run(label: &str, sink: impl Sink, bytes: &AtomicU64) {
    let backend = SinkBackend::builder(label.to_owned(), sink)
        .queue_capacity(10_000)
        .when_full(WhenFull::Block(Duration::from_secs(30)))
        .batch(BatchConfig::default().with_max_events(100))
        .build()
        .expect("worker starts");
    let events: Vec<Event> = (0..EVENTS).map(event).collect();
    let before = bytes.load(Ordering::Relaxed);
    let started = Instant::now();
    for event in events {
        backend.send(event).expect("queued");
    }
    backend.flush(Duration::from_secs(120)).expect("flushed");
    let elapsed = started.elapsed();
    let metrics = backend.metrics();
    assert_eq!(metrics.delivered as usize, EVENTS, "{metrics:?}");
    assert_eq!(metrics.dropped(DropReason::QueueFull), 0);
    println!(
        "{label}: {EVENTS} events in {:.2} s = {:.0} events/s ({} batches, {:.1} MB of bodies)",
        elapsed.as_secs_f64(),
        EVENTS as f64 / elapsed.as_secs_f64(),
        metrics.batches,
        (bytes.load(Ordering::Relaxed) - before) as f64 / 1e6
    );
    backend.shutdown(Duration::from_secs(5)).expect("shut down");
}

fn main() {
    let (addr, bytes) = ingest_server();
    let client = HttpClient::new().expect("client");
    let spade = SpadeSink::builder()
        .url(format!("http://{addr}/track"))
        .client(client.clone())
        .build()
        .expect("spade");
    run("spade, batches of 100", spade, &bytes);
    let json = HttpJsonSink::builder()
        .url(format!("http://{addr}/ingest"))
        .client(client)
        .build()
        .expect("json");
    run("http json, batches of 100", json, &bytes);
}
