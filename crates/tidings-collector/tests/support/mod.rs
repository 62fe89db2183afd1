//! Shared helpers for the collector's tests: a collector over `memory`
//! sinks, requests, and a minimal HTTP/1.1 client over real sockets.

#![allow(dead_code)] // each test file uses part of the support module

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use tidings_collector::Collector;
use tidings_config::{Registry, load};
use tidings_test::{MemorySinkType, RecordingSink, memory_sink};

pub(crate) fn registry() -> Registry {
    let mut registry = Registry::default();
    registry.register_sink::<MemorySinkType>();
    registry
}

/// A collector whose only backend is the memory sink `id`, with `collector`
/// options (TOML lines of the `[collector]` table). Returns the collector,
/// its sink, and the captured `/flume` log.
pub(crate) fn collector(
    id: &str,
    collector_options: &str,
) -> (Collector, RecordingSink, Arc<Mutex<Vec<u8>>>) {
    let text = format!(
        "[collector]\n{collector_options}\n[backends.mem]\ntype = \"memory\"\nid = \"{id}\"\nflush_interval_ms = 10\n"
    );
    let config = load(&text, &registry()).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let collector = Collector::from_config(&config)
        .unwrap()
        .with_flume_log(SharedLog(log.clone()));
    (collector, memory_sink(id), log)
}

struct SharedLog(Arc<Mutex<Vec<u8>>>);

impl Write for SharedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A POST request with a content type.
pub(crate) fn post(uri: &str, content_type: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post(uri)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .unwrap()
}

/// Answers `request` and returns the status, headers and body as text.
pub(crate) async fn send(
    collector: &Collector,
    request: Request<Full<Bytes>>,
) -> (u16, http::HeaderMap, String) {
    let response = collector.handle(request).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

/// Waits until `sink` has at least `n` events (or fails after 10 s).
pub(crate) fn wait_for(sink: &RecordingSink, n: usize) {
    let started = std::time::Instant::now();
    while sink.events().len() < n {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "only {} of {n} events arrived",
            sink.events().len()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One HTTP/1.1 request over a fresh connection; returns status and body.
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}
