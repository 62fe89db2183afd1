//! Option tables the framework itself reads: `[collector]` and the delivery
//! keys every sink takes.

use crate::buffer::BufferOptions;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use tidings_routing::{BatchConfig, BatchKey, ProcessorsOn, RetryPolicy, WhenFull};
use tidings_tower::TrustedProxies;

use crate::{ConfigError, ConfigErrorKind, ConfigPath};

/// The `[collector]` table.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct CollectorOptions {
    /// The address to listen on: `HOST:PORT`, the host a name
    /// (`localhost:8080`) or an IP address. Defaults to `127.0.0.1:8080`.
    #[serde(deserialize_with = "deserialize_listen")]
    pub listen: SocketAddr,
    /// The largest request body, after decompression. Defaults to 1 MiB.
    pub max_body_bytes: usize,
    /// The most events in one request. Defaults to 1000.
    pub max_batch_events: usize,
    /// The most request-body bytes the collector holds at once, across all
    /// connections (a gzip body counts its compressed and decompressed
    /// size). A request that would go over gets 503 with `Retry-After`
    /// before its body is read. Defaults to 64 MiB.
    pub max_inflight_body_bytes: usize,
    /// The most connections open at once; one more is answered 503 and
    /// closed. Defaults to 1024.
    pub max_connections: usize,
    /// Write keys a client must present; empty means open. Never printed.
    pub write_keys: Vec<String>,
    /// Origins allowed by CORS, matched exactly.
    pub allowed_origins: Vec<String>,
    /// Properties `/flume` keeps (dotted paths); unset keeps all.
    pub flume_allowed_properties: Option<Vec<String>>,
    /// Events the collector accepts ahead of its pipeline before answering
    /// 503. Defaults to 10 000.
    pub queue_capacity: usize,
    /// How long SIGTERM waits for the pipeline to drain. Defaults to 10 000 ms.
    pub shutdown_timeout_ms: u64,
    /// `[collector.catalog]`: validate every ingested event against an event
    /// catalog before admission (400 on a violation). Unset: no validation.
    pub catalog: Option<CollectorCatalog>,
    /// When a request is answered 202. Defaults to [`AckMode::Fast`].
    pub ack: AckMode,
    /// The write-ahead log's directory, for [`AckMode::Durable`]. Defaults
    /// to `tidings-wal`. Relative to the config file's directory (the
    /// working directory for the embedded default).
    pub wal_path: String,
    /// The most bytes the write-ahead log may hold before the collector
    /// answers 503. Defaults to 1 GiB.
    pub wal_max_bytes: u64,
    /// `[collector.ui]`: the live view at `/ui`. Off by default.
    pub ui: CollectorUi,
    /// The client's address that `/event/log` adds to an event's data as
    /// `__ip_address__` (eventlib's key). Defaults to
    /// [`ClientIp::Anonymized`].
    pub client_ip: ClientIp,
    /// The proxies whose `X-Forwarded-For` header is believed when they
    /// are the peer of a connection: networks (`10.0.0.0/8`) and
    /// addresses. Empty by default: the header is ignored.
    #[serde(deserialize_with = "deserialize_proxies")]
    pub trusted_proxies: TrustedProxies,
    /// A directory whose files the standalone server serves at `GET /` (its
    /// `index.html`) and `GET /PATH`, after the collector's own routes.
    /// Unset by default: nothing is served. Relative to the config file's
    /// directory; it must exist.
    pub static_dir: Option<String>,
}

/// `[collector] client_ip`: what `/event/log` records of the client's
/// address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientIp {
    /// The address with its last octet (IPv4) or last 80 bits (IPv6)
    /// zeroed, as `tidings_tower::anonymize` does.
    #[default]
    #[serde(alias = "anonymised")]
    Anonymized,
    /// The whole address.
    Full,
    /// Nothing: no `__ip_address__` key.
    Off,
}

impl ClientIp {
    /// The mode's name in the config.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anonymized => "anonymized",
            Self::Full => "full",
            Self::Off => "off",
        }
    }
}

fn deserialize_proxies<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<TrustedProxies, D::Error> {
    let entries = Vec::<String>::deserialize(deserializer)?;
    TrustedProxies::new(&entries).map_err(|e| de::Error::custom(format!("entry {}: {e}", e.index)))
}

/// `[collector.ui]`: the live view (`/ui`, `tidings tail`): incoming
/// events, rates per name, refused requests, each sink's health. Off by
/// default; when on, every request of the view presents `admin_key`.
#[derive(Clone, Deserialize)]
#[serde(try_from = "RawUi")]
#[non_exhaustive]
pub struct CollectorUi {
    /// Serve the live view. Defaults to false: `/ui` is not found.
    pub enabled: bool,
    /// The key the view's requests present (`Authorization: Bearer KEY`,
    /// or `?key=KEY` on the event stream); compared in constant time,
    /// never printed. Required, and not empty, when `enabled`.
    pub admin_key: String,
    /// The most event streams open at once (pages and `tidings tail`);
    /// one more is answered 503. Defaults to 4.
    pub max_streams: usize,
    /// Events kept for streams that fall behind (1..=65536); a stream
    /// further behind skips events and is told how many. Defaults to 512.
    pub tail_buffer: usize,
}

impl Default for CollectorUi {
    fn default() -> Self {
        Self {
            enabled: false,
            admin_key: String::new(),
            max_streams: 4,
            tail_buffer: 512,
        }
    }
}

impl fmt::Debug for CollectorUi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CollectorUi")
            .field("enabled", &self.enabled)
            .field(
                "admin_key",
                &if self.admin_key.is_empty() {
                    "(none)"
                } else {
                    "(redacted)"
                },
            )
            .field("max_streams", &self.max_streams)
            .field("tail_buffer", &self.tail_buffer)
            .finish()
    }
}

/// `[collector.ui]` as written, checked by `CollectorUi::try_from`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUi {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    admin_key: String,
    max_streams: Option<usize>,
    tail_buffer: Option<usize>,
}

impl TryFrom<RawUi> for CollectorUi {
    type Error = String;

    fn try_from(raw: RawUi) -> Result<Self, String> {
        let defaults = Self::default();
        let ui = Self {
            enabled: raw.enabled,
            admin_key: raw.admin_key,
            max_streams: raw.max_streams.unwrap_or(defaults.max_streams),
            tail_buffer: raw.tail_buffer.unwrap_or(defaults.tail_buffer),
        };
        if ui.enabled && ui.admin_key.trim().is_empty() {
            return Err(
                "`enabled = true` needs a non-empty `admin_key`: the live view shows \
                        every incoming event, so it is never open; set `admin_key` to a long \
                        random secret, or turn the view off"
                    .to_owned(),
            );
        }
        if ui.admin_key.trim() != ui.admin_key {
            return Err("`admin_key` must not begin or end with whitespace".to_owned());
        }
        if ui.max_streams == 0 {
            return Err("`max_streams` must be at least 1".to_owned());
        }
        if !(1..=65_536).contains(&ui.tail_buffer) {
            return Err(format!(
                "`tail_buffer` must be between 1 and 65536 events, found {}",
                ui.tail_buffer
            ));
        }
        Ok(ui)
    }
}

/// `[collector] ack`: when the collector answers 202.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AckMode {
    /// Once the request's events are in the collector's in-memory queue:
    /// the fastest, but a crash (`kill -9`, power loss) loses what the
    /// queues held.
    #[default]
    Fast,
    /// Once the request's events are written to the write-ahead log and
    /// fsynced: nothing answered 202 is lost to a crash; what was not
    /// delivered is replayed at the next start.
    Durable,
}

impl AckMode {
    /// The mode's name in the config.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Durable => "durable",
        }
    }
}

/// `[collector.catalog]`: the catalog the collector validates ingested
/// events against before answering.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CollectorCatalog {
    /// The catalog file.
    pub path: String,
    /// Refuse events whose name the catalog does not declare (eventlib's
    /// `EventNotFound`). Defaults to false: undeclared events pass unchecked.
    #[serde(default)]
    pub strict: bool,
}

/// Reads a listen address, `HOST:PORT`, where the host is an IP address or
/// a name (`localhost`); a name is looked up, and its first IPv4 address
/// is preferred (what `curl localhost` tries first).
///
/// # Errors
///
/// A message saying what is wrong, with an example.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let example = "like 127.0.0.1:8080, localhost:8080 or [::1]:8080";
    if text
        .rsplit_once(':')
        .is_none_or(|(_, port)| port.parse::<u16>().is_err())
    {
        return Err(format!("{text:?} is not HOST:PORT ({example})"));
    }
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {text:?}: {e} (write it {example})"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

fn deserialize_listen<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_listen(&text).map_err(de::Error::custom)
}

impl CollectorOptions {
    /// Resolves `wal_path`, the catalog's path and `static_dir` against
    /// `base`.
    pub(crate) fn resolve_paths(&mut self, base: Option<&std::path::Path>) {
        let resolve = |path: &mut String| {
            *path = crate::tree::resolve(base, std::path::Path::new(path.as_str()))
                .display()
                .to_string();
        };
        resolve(&mut self.wal_path);
        if let Some(catalog) = &mut self.catalog {
            resolve(&mut catalog.path);
        }
        if let Some(dir) = &mut self.static_dir {
            resolve(dir);
        }
    }
}

impl Default for CollectorOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1024 * 1024,
            max_batch_events: 1000,
            max_inflight_body_bytes: 64 * 1024 * 1024,
            max_connections: 1024,
            write_keys: Vec::new(),
            allowed_origins: Vec::new(),
            flume_allowed_properties: None,
            queue_capacity: 10_000,
            shutdown_timeout_ms: 10_000,
            catalog: None,
            ack: AckMode::Fast,
            wal_path: "tidings-wal".to_owned(),
            wal_max_bytes: 1024 * 1024 * 1024,
            ui: CollectorUi::default(),
            client_ip: ClientIp::Anonymized,
            trusted_proxies: TrustedProxies::default(),
            static_dir: None,
        }
    }
}

impl fmt::Debug for CollectorOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CollectorOptions")
            .field("listen", &self.listen)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_batch_events", &self.max_batch_events)
            .field("max_inflight_body_bytes", &self.max_inflight_body_bytes)
            .field("max_connections", &self.max_connections)
            .field(
                "write_keys",
                &format_args!("[{} redacted]", self.write_keys.len()),
            )
            .field("allowed_origins", &self.allowed_origins)
            .field("flume_allowed_properties", &self.flume_allowed_properties)
            .field("queue_capacity", &self.queue_capacity)
            .field("shutdown_timeout_ms", &self.shutdown_timeout_ms)
            .field("catalog", &self.catalog)
            .field("ack", &self.ack)
            .field("wal_path", &self.wal_path)
            .field("wal_max_bytes", &self.wal_max_bytes)
            .field("ui", &self.ui)
            .field("client_ip", &self.client_ip)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("static_dir", &self.static_dir)
            .finish()
    }
}

/// Who sends to a stage, which decides its `when_full` default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Feed {
    /// Another stage's worker: the collector's intake, an `async_router`,
    /// a sink handing its dead letters on. Unset `when_full` means
    /// `backpressure`: nothing is dropped for lack of room, the pressure
    /// goes up to a queue that can refuse a whole request (the collector
    /// answers 503).
    Worker,
    /// Application threads calling `emit` (a tracker built from a config):
    /// unset `when_full` means `drop_newest`, so an emit never waits;
    /// stages below an `async_router` are fed by its worker again.
    Callers,
}

impl Feed {
    /// The `when_full` of a stage fed this way that does not set one.
    pub(crate) fn default_when_full(self) -> WhenFull {
        match self {
            Self::Worker => WhenFull::Backpressure,
            Self::Callers => WhenFull::DropNewest,
        }
    }
}

/// The keys of a sink's table that configure its delivery, not the sink.
pub(crate) const DELIVERY_KEYS: [&str; 10] = [
    "queue_capacity",
    "when_full",
    "block_timeout_ms",
    "max_events",
    "max_bytes",
    "flush_interval_ms",
    "retry",
    "batch_key",
    "requeue_failed",
    "log_dispatch",
];

/// The queue keys of sinks and async routers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueueOptions {
    queue_capacity: Option<usize>,
    when_full: Option<WhenFullName>,
    block_timeout_ms: Option<u64>,
    /// An `async_router`'s only (a sink's table has no `buffer`).
    pub(crate) buffer: Option<BufferOptions>,
    /// An `async_router`'s only: where its processors run.
    processors_on: Option<ProcessorsOnName>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ProcessorsOnName {
    Caller,
    Worker,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WhenFullName {
    DropNewest,
    DropOldest,
    Block,
    Backpressure,
}

/// Default for `block_timeout_ms`.
const DEFAULT_BLOCK_TIMEOUT_MS: u64 = 1000;

impl QueueOptions {
    pub(crate) fn capacity(&self) -> usize {
        self.queue_capacity
            .unwrap_or(tidings_routing::DEFAULT_QUEUE_CAPACITY)
    }

    /// Where an `async_router` runs its processors: `caller` unless set.
    pub(crate) fn processors_on(&self) -> ProcessorsOn {
        match self.processors_on {
            None | Some(ProcessorsOnName::Caller) => ProcessorsOn::Caller,
            Some(ProcessorsOnName::Worker) => ProcessorsOn::Worker,
        }
    }

    pub(crate) fn when_full(&self, feed: Feed) -> WhenFull {
        match self.when_full {
            None => feed.default_when_full(),
            Some(WhenFullName::DropNewest) => WhenFull::DropNewest,
            Some(WhenFullName::DropOldest) => WhenFull::DropOldest,
            Some(WhenFullName::Backpressure) => WhenFull::Backpressure,
            Some(WhenFullName::Block) => WhenFull::Block(Duration::from_millis(
                self.block_timeout_ms.unwrap_or(DEFAULT_BLOCK_TIMEOUT_MS),
            )),
        }
    }

    pub(crate) fn describe(&self, feed: Feed) -> String {
        let mut described = format!(
            "queue_capacity={} when_full={}",
            self.capacity(),
            self.when_full(feed)
        );
        if let Some(buffer) = self.buffer.as_ref().and_then(BufferOptions::describe) {
            described.push(' ');
            described.push_str(&buffer);
        }
        described
    }
}

/// The delivery keys of a sink's table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeliveryOptions {
    queue_capacity: Option<usize>,
    when_full: Option<WhenFullName>,
    block_timeout_ms: Option<u64>,
    max_events: Option<usize>,
    max_bytes: Option<usize>,
    flush_interval_ms: Option<u64>,
    retry: Option<RetryOption>,
    /// Paths whose values events of one batch share ([`BatchKey`]).
    batch_key: Option<Vec<String>>,
    /// A batch out of retries goes back to the queue while it has room.
    requeue_failed: Option<bool>,
    /// Adds [`tidings_routing::log_dispatch`] as a dispatch listener.
    log_dispatch: Option<bool>,
}

impl DeliveryOptions {
    /// The mistakes no type can see: a `batch_key` path that cannot be
    /// used, a `max_events` over `queue_capacity`.
    pub(crate) fn check(&self, at: &ConfigPath) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if let Some(paths) = &self.batch_key
            && let Err(e) = BatchKey::new(paths.iter().cloned())
        {
            errors.push(ConfigError::new(
                at.key("batch_key").index(e.index),
                ConfigErrorKind::Invalid,
                e.to_string(),
            ));
        }
        if let Err(e) = self.unchecked_batch().for_queue(self.queue().capacity()) {
            errors.push(ConfigError::new(
                at.key("max_events"),
                ConfigErrorKind::Invalid,
                e.to_string(),
            ));
        }
        errors
    }

    /// The `batch_key`, if set (and valid: see [`DeliveryOptions::check`]).
    pub(crate) fn batch_key(&self) -> Option<BatchKey> {
        BatchKey::new(self.batch_key.as_ref()?.iter().cloned()).ok()
    }

    pub(crate) fn requeue_failed(&self) -> bool {
        self.requeue_failed.unwrap_or(false)
    }

    pub(crate) fn log_dispatch(&self) -> bool {
        self.log_dispatch.unwrap_or(false)
    }

    pub(crate) fn queue(&self) -> QueueOptions {
        QueueOptions {
            queue_capacity: self.queue_capacity,
            when_full: self.when_full,
            block_timeout_ms: self.block_timeout_ms,
            buffer: None,
            processors_on: None,
        }
    }

    /// The batch config for this sink's queue: a default `max_events` is
    /// lowered to a smaller `queue_capacity`.
    pub(crate) fn batch(&self) -> BatchConfig {
        let batch = self.unchecked_batch();
        batch.for_queue(self.queue().capacity()).unwrap_or(batch)
    }

    fn unchecked_batch(&self) -> BatchConfig {
        let mut batch = BatchConfig::default();
        if let Some(n) = self.max_events {
            batch = batch.with_max_events(n);
        }
        if let Some(n) = self.max_bytes {
            batch = batch.with_max_bytes(n);
        }
        if let Some(ms) = self.flush_interval_ms {
            batch = batch.with_flush_interval(Duration::from_millis(ms));
        }
        batch
    }

    pub(crate) fn retry(&self) -> RetryPolicy {
        match &self.retry {
            None => RetryPolicy::default(),
            Some(RetryOption::None) => RetryPolicy::none(),
            Some(RetryOption::Table(t)) => {
                let mut policy = RetryPolicy::default();
                if let Some(n) = t.max_attempts {
                    policy = policy.with_max_attempts(n);
                }
                if let Some(ms) = t.initial_backoff_ms {
                    policy = policy.with_initial_backoff(Duration::from_millis(ms));
                }
                if let Some(ms) = t.max_backoff_ms {
                    policy = policy.with_max_backoff(Duration::from_millis(ms));
                }
                if let Some(s) = t.max_batch_age_seconds {
                    policy = policy.with_max_batch_age(Duration::from_secs(s));
                }
                policy
            }
        }
    }

    /// Why this sink may drop an event it was given, if it may: its
    /// `when_full` refuses events while full, or it is fire-and-forget.
    pub(crate) fn may_drop(&self, feed: Feed) -> Option<String> {
        let when_full = self.queue().when_full(feed);
        if when_full.may_drop() {
            let name = match when_full {
                WhenFull::DropOldest => "drop_oldest",
                WhenFull::Block(_) => "block",
                _ => "drop_newest",
            };
            return Some(format!(
                "when_full = {name:?} drops events while its queue is full"
            ));
        }
        matches!(self.retry, Some(RetryOption::None)).then(|| {
            if self.requeue_failed() {
                "retry = \"none\": a failed batch is dropped when its queue has no room for it"
                    .to_owned()
            } else {
                "retry = \"none\": fire-and-forget, a failed batch is dropped".to_owned()
            }
        })
    }

    pub(crate) fn describe(&self, feed: Feed) -> String {
        let batch = self.batch();
        let retry = self.retry();
        let retry = match retry.max_attempts() {
            1 => "none".to_owned(),
            u32::MAX => format!(
                "until {}s old, {}..{}ms",
                retry.max_batch_age().as_secs(),
                retry.initial_backoff().as_millis(),
                retry.max_backoff().as_millis()
            ),
            n => format!(
                "{n}x {}..{}ms",
                retry.initial_backoff().as_millis(),
                retry.max_backoff().as_millis()
            ),
        };
        let mut described = format!(
            "{} max_events={} max_bytes={} flush_interval_ms={} retry={retry}",
            self.queue().describe(feed),
            batch.max_events(),
            batch.max_bytes(),
            batch.flush_interval().as_millis()
        );
        if let Some(key) = &self.batch_key {
            described.push_str(&format!(" batch_key={key:?}"));
        }
        if self.requeue_failed() {
            described.push_str(" requeue_failed=true");
        }
        if self.log_dispatch() {
            described.push_str(" log_dispatch=true");
        }
        described
    }
}

/// `retry = "none"` or `retry = { max_attempts, ... }`.
#[derive(Debug)]
enum RetryOption {
    None,
    Table(RetryTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryTable {
    max_attempts: Option<u32>,
    initial_backoff_ms: Option<u64>,
    max_backoff_ms: Option<u64>,
    max_batch_age_seconds: Option<u64>,
}

impl<'de> Deserialize<'de> for RetryOption {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RetryVisitor;
        impl<'de> Visitor<'de> for RetryVisitor {
            type Value = RetryOption;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"none\" or a table { max_attempts, initial_backoff_ms, max_backoff_ms, max_batch_age_seconds }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RetryOption, E> {
                if v == "none" {
                    Ok(RetryOption::None)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RetryOption, A::Error> {
                RetryTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RetryOption::Table)
            }
        }
        deserializer.deserialize_any(RetryVisitor)
    }
}
