//! The tidings collector: an HTTP server that accepts events from browsers
//! and services and feeds them into the routing tree a TOML config describes.
//!
//! Routes: `POST /events` (a JSON event or array; `application/json` or
//! `text/plain` for beacons; gzip accepted), `POST /event/log?__event__=NAME`
//! (eventlib's endpoint: query and form parameters, or a JSON object body,
//! become data, with the client's address as `__ip_address__`, anonymised
//! by default; see [below](#coming-from-eventlib)), `POST /flume` (form field `data`
//! = one JSON event, url-encoded or `multipart/form-data`), `POST /spade`
//! (field `data` = base64 JSON, or the JSON itself; url-encoded, `text/plain`
//! as `navigator.sendBeacon` sends a `data=...` string, or
//! `multipart/form-data` as it sends a `FormData`), `GET` and `HEAD
//! /spade?data=...` (a tracking pixel: 200 with a transparent 1×1 GIF,
//! `Cache-Control: no-store`; a query over 16 KiB, or over
//! `max_body_bytes`, is a 414), `GET
//! /healthz`, `GET /metrics` (Prometheus), and `GET /tidings.js`, the
//! browser snippet ([`BROWSER_SCRIPT`]). A request is accepted whole (202
//! `{"accepted": n}`, or the GIF for a pixel) or refused whole with a JSON
//! error: 400, 401, 413, 414, 415, 404, 405, or 503 with `Retry-After` when the queue is full.
//!
//! # In the browser
//!
//! ```html
//! <script src="https://collector.example/tidings.js" data-write-key="KEY"></script>
//! <script>tidings.track("page.view", {path: "/"});</script>
//! ```
//!
//! `tidings.track(name, properties)` queues an event, with the page's `url`
//! and `referrer` in its context. The queue goes to the `events` route next
//! to the script (`/events` here) as a `text/plain` JSON array, so no CORS
//! preflight is needed: at 20 events or 5 s after the first, by `fetch` with
//! `keepalive`; by `navigator.sendBeacon` when the page is hidden or left
//! (`visibilitychange`, `pagehide`). Bodies stay under 64 KiB, the browsers'
//! limit for both. Each event's `context.transport` tells which was used
//! (`"fetch"` or `"beacon"`). The write key, if any, travels as the
//! `write_key` query parameter; `tidings.init({writeKey, endpoint,
//! context})` sets it, another endpoint, or context for every event, and
//! `tidings.flush()` sends the queue now. List the pages' origins in
//! `allowed_origins` so the snippet can read the collector's answers.
//!
//! ```
//! use tidings_collector::Collector;
//! use tidings_config::{load, Registry};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = load("[backends.out]\ntype = \"console\"\n", &Registry::default())?;
//! let collector = Collector::from_config(&config)?;
//! let request = http::Request::post("/events")
//!     .header("content-type", "application/json")
//!     .body(http_body_util::Full::new(bytes::Bytes::from(r#"{"name": "page.view"}"#)))?;
//! let response = collector.handle(request).await;
//! assert_eq!(response.status(), 202);
//! collector.shutdown(std::time::Duration::from_secs(1))?;
//! # Ok(()) }
//! ```
//!
//! # Coming from eventlib
//!
//! `POST /event/log?__event__=app.EventName&param=value` works as eventlib's
//! view: parameters are data (strings from the query and forms; JSON values
//! from an `application/json` object body, whose keys win over the
//! query's). `data.__ip_address__` is the client's address as
//! `[collector] client_ip` says (`"anonymized"` by default, `"full"`,
//! `"off"`): the connection's peer, or, when the peer is one of
//! `trusted_proxies`, the address `X-Forwarded-For` gives, read from the
//! right past trusted proxies only. eventlib's `__datetime__` is the event's
//! `received_at`. A client's own `__ip_address__` and `__datetime__` are
//! dropped, and `write_key` (also accepted in the body here when the head
//! presents no key) is never data. Embedded as a tower service, the
//! collector reads the peer from a [`std::net::SocketAddr`] in the request's
//! extensions; without one, no address is recorded.
//!
//! # Serving the page
//!
//! With `[collector] static_dir = "public"`, [`Collector::serve`] answers
//! `GET`/`HEAD` of every other path from that directory (`/` is its
//! `index.html`), so a first-party page and its events share one origin.
//! The collector's routes come first; nothing outside the directory, no
//! hidden file and no link leading out is served (404). Off by default.
//!
//! # Embedding
//!
//! A [`Collector`] is a tower `Service`: mount every route in your own
//! hyper or axum server (`Router::nest_service("/api", collector)`), under a
//! prefix with [`Collector::under_prefix`], or one route alone with
//! [`Collector::route`] (`route_service("/api/flume", collector.route(Route::Flume))`).
//! Limits, errors and back-pressure are the standalone server's. Share its
//! routing tree with your own tracker (`tidings::Tracker::from_shared_root(collector.root())`)
//! and call [`Collector::drain`] when your service stops.
//!
//! # The live view
//!
//! With `[collector.ui] enabled = true` and an `admin_key`,
//! [`Collector::serve`] also serves a page at `/ui`: the events coming in
//! (server-sent events at `/ui/events`, which `tidings tail` reads too),
//! events per name over the last minutes, the refused requests and each
//! sink's health (`/ui/api/state`). Off, `/ui` is not found; embedded as a
//! tower service, the collector does not serve it. See `docs/ui.md`.
//!
//! The `tidings` binary in this crate runs it: `tidings serve [--config FILE]
//! [--listen ADDR]`, `tidings check --config FILE` and `tidings tail --url
//! URL [--name PATTERN] [--key KEY]`.
//!
//! # Features
//!
//! `cli` (default) builds the binary and brings what only it uses (clap,
//! mimalloc, log formatting). `console`, `http`, `postgres`, `amqp` and
//! `nats` (default) are the sink types a config may name; the `file` sink
//! (the default destination of dead letters) and the catalog are always
//! there. An application embedding the collector sets
//! `default-features = false` and names the sink types it uses: without
//! them it builds 112 crates instead of 308 (tower-http's `ServeDir`, for
//! `static_dir`, is among the 112).

mod access;
mod admit;
mod body;
mod budget;
mod build;
mod collector;
mod durable;
mod ingest;
mod metrics;
mod protocol;
mod reject;
mod script;
mod segment;
mod server;
mod service;
mod sources;
mod stack;
mod static_files;
mod ui;

pub use collector::{Collector, Route};
pub use metrics::MetricsCollector;
pub use segment::{MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, SegmentRoute};
pub use service::ResponseFuture;

/// The browser snippet served at `GET /tidings.js` ([`Route::Script`]), for
/// hosts that serve it themselves.
pub const BROWSER_SCRIPT: &str = script::SCRIPT;

/// The config `tidings serve` runs without `--config`.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");
