//! tachyon's `createMultiReportEvent`: one call reports to several
//! reporters — here the console, a Spade ingest and a flume mirror that only
//! ever sees allowed properties.
//!
//! Run with `cargo run -p tidings-examples --example multi_reporter`. It
//! starts a small ingest server on loopback so that the HTTP reporters have
//! somewhere to post; with a real Spade endpoint, pass its URL instead.

#![allow(clippy::print_stdout)] // printing what the server received is the point

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use serde_json::json;
use tidings::sinks::console::{ConsoleSink, Format, Stream};
use tidings::sinks::http::{FlumeSink, SpadeSink};
use tidings::{BatchConfig, SinkBackend, Tracker};

/// Answers every request with 200 and prints its first line and size.
fn ingest_server() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = vec![0; 64 * 1024];
            let n = stream.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            println!(
                "ingest server got: {} ({n} bytes)",
                head.lines().next().unwrap_or("")
            );
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    Ok(url)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = ingest_server()?;
    let console =
        SinkBackend::builder("console", ConsoleSink::new(Format::Json, Stream::Stdout)).build()?;
    let spade = SinkBackend::builder(
        "spade",
        SpadeSink::builder()
            .url(format!("{server}/track"))
            .build()?,
    )
    .batch(BatchConfig::default().with_max_events(10))
    .build()?;
    let flume = SinkBackend::builder(
        "flume",
        FlumeSink::builder()
            .url(format!("{server}/flume"))
            .allowed_properties(["page", "button"])
            .build()?,
    )
    .build()?;
    let tracker = Tracker::builder()
        .backend("console", console)
        .backend("flume", flume)
        .backend("spade", spade)
        .build()?;

    tracker.emit(
        "page.click",
        json!({"page": "/home", "button": "signup", "email": "never-mirrored@example.com"}),
    )?;
    tracker.flush(Duration::from_secs(5))?;
    tracker.shutdown(Duration::from_secs(5))?;
    println!("root counters: {:?}", tracker.stats());
    Ok(())
}
