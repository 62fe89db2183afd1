//! `cargo xtask chaos [FAULT...]`: faults against the release `tidings`
//! binary and the real services, each under load, then a table of what
//! was sent, accepted (202), delivered (distinct ids found in the sink's
//! own storage), duplicated and lost. Exits non-zero on any loss.
//!
//! Faults (all by default):
//!
//! - `kill9`: `kill -9` of the collector under load while its PostgreSQL
//!   sink is cut off (so the queues hold thousands of events), then a
//!   restart with the sink back; in durable mode (`[collector] ack =
//!   "durable"`) nothing answered 202 may be missing. Fast mode is shown as
//!   an informational row (it loses what was queued in memory: why durable
//!   mode exists).
//! - `blackhole`: the PostgreSQL sink's connections cut by a
//!   [`CuttableProxy`] for 60 s (`TIDINGS_CHAOS_BLACKHOLE_SECONDS`) at 500
//!   events/s, then restored: the sink's queue and the collector's fill
//!   (20 s of events), the door answers 503, nothing is lost, delivery
//!   resumes within 1 s (measured).
//! - `retry-after`: an HTTP JSON sink whose receiver (a server in this
//!   process) answers 503 with `Retry-After: 2` for 6 s.
//! - `disk-full`: the file sink on a 2 MiB tmpfs (or loop-mounted ext4
//!   image) filled up, then freed: the error is logged, no line is
//!   corrupt, and delivery recovers.
//! - `wal-disk-full`: the same for durable mode's write-ahead log: while
//!   its disk is full requests are refused with 503, nothing answered 202
//!   is lost, and 202s resume when space returns.
//! - `sigterm`: SIGTERM during a burst: every 202 is delivered by the drain.
//! - `stall`: an HTTP receiver holding every request for 15 s while 16
//!   connections post as fast as they can: the door answers 503, the sink
//!   drops nothing, everything answered 202 arrives.
//! - `sigterm-down`: SIGTERM under load while the HTTP receiver is down:
//!   the drain retries until its deadline (3 s), logs at ERROR exactly the
//!   count it could not deliver, and exits with code 3.
//! - `poison-postgres`, `poison-http`, `poison-spade`: one event in 97
//!   refused by the sink (a `CHECK` constraint; a 400 from the JSON or the
//!   Spade receiver): the batch is split until the culprit is alone, every
//!   other event is delivered, the culprits are in the default dead-letter
//!   file with reason `invalid`.
//! - `poison-nats`: one event in 97 over the `max_message_size` (2 KiB) of
//!   the JetStream stream the fault creates: JetStream refuses it, the sink
//!   calls that too large, and the same splitting isolates it; the
//!   culprits are dead-lettered with reason `too_large`, every other event
//!   is in the stream once.
//! - `poison-amqp`: one event in 97 named so long (255 bytes) that its
//!   RabbitMQ routing key (`events.{name}`, 262 bytes) is over AMQP's 255:
//!   refused as too large before anything of its batch is published, the
//!   same splitting and dead letters (`too_large`); every other event is in
//!   the queue the fault binds to the exchange.
//!
//!   The file sink has no poison fault: it refuses nothing an event can
//!   hold (any event is one JSON line).
//! - `uploads`: 400 connections stalling 1 byte short of a 1 MiB body: the
//!   body budget holds 64 of them, refuses the rest before reading, and the
//!   resident set stays within the budget plus the idle footprint (and a
//!   slack).
//!
//! Every fault runs on the default config but for its sink's address and
//! `retry` backoffs of at most 500 ms (so that delivery resumes quickly
//! after a sink returns): backpressure, dead letters and budgets are the
//! defaults'.
//!
//! Every event carries an id chosen here, so each one answered 202 is
//! looked for in the sink: PostgreSQL rows (a trigger counts the rows
//! `ON CONFLICT DO NOTHING` removed as duplicates), the HTTP receiver's
//! record, the file sink's lines, or the messages of the JetStream stream
//! or the RabbitMQ queue, read back (an id stored twice is a duplicate).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tidings_test::CuttableProxy;

use crate::brokers::{AmqpQueue, JetStream};
use crate::harness::{
    Collector, Load, LoadReport, LoadSpec, NATS_ADDR, PG_ADDR, PgTable, Poison, ack_keys, event_id,
    free_addr, locked, release_binary, require_nats, require_postgres, require_rabbitmq, run_id,
    tail,
};

/// Every fault, in the order they run.
const FAULTS: [&str; 14] = [
    "kill9",
    "blackhole",
    "stall",
    "retry-after",
    "disk-full",
    "wal-disk-full",
    "sigterm",
    "sigterm-down",
    "poison-postgres",
    "poison-http",
    "poison-spade",
    "poison-nats",
    "poison-amqp",
    "uploads",
];

/// The default length of the black-hole.
const BLACKHOLE_SECONDS: u64 = 60;

/// How long the `stall` fault's receiver holds every request.
const STALL_SECONDS: u64 = 15;

/// One event in this many is a poison one in the `poison-*` faults.
const POISON_EVERY: u64 = 97;

/// Bytes of padding in the data of each event sent (of each poison event
/// too, except in `poison-nats`).
const PADDING: usize = 64;

/// The log filter of the collector: the default's (a sink's first failed
/// attempt of a streak is a warning, which the disk-full faults look for).
const LOG_FILTER: &str = "info";

/// The retry keys of every sink here: the defaults (no attempt limit, 15
/// minutes of batch age) but backoffs of at most 500 ms, so that delivery
/// resumes within 1 s of a sink's return (measured). Every other key,
/// `when_full` (backpressure) and `dead_letter` included, is the default.
const FAST_RETRY: &str = "retry = { initial_backoff_ms = 50, max_backoff_ms = 500 }";

/// One line of the report.
#[derive(Debug, Default)]
struct Row {
    fault: String,
    sent: u64,
    accepted: u64,
    delivered: u64,
    duplicates: u64,
    lost: u64,
    /// Events the sinks gave up on and wrote to their dead-letter files.
    dead_lettered: u64,
    /// The collector's peak resident set, in KiB.
    peak_rss_kib: Option<u64>,
    /// Shown, but its losses do not fail the run.
    informational: bool,
    notes: Vec<String>,
    /// Checks other than loss that failed.
    failures: Vec<String>,
}

impl Row {
    fn failed(&self) -> bool {
        !self.informational && (self.lost > 0 || !self.failures.is_empty())
    }
}

/// What every fault needs.
struct Context {
    binary: PathBuf,
    work: PathBuf,
    run: u32,
}

impl Context {
    /// A config file for the collector on `addr` with `collector` extra
    /// `[collector]` keys and `backends` (TOML tables).
    fn config(
        &self,
        name: &str,
        addr: SocketAddr,
        collector: &str,
        backends: &str,
    ) -> Result<PathBuf, String> {
        let path = self.work.join(format!("{name}.toml"));
        // A fault's own drain deadline replaces the generous default.
        let drain = if collector.contains("shutdown_timeout_ms") {
            ""
        } else {
            "shutdown_timeout_ms = 30000\n"
        };
        let text = format!(
            "[collector]\nlisten = \"{addr}\"\nqueue_capacity = 10000\n{drain}{collector}\n{backends}"
        );
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }

    fn start(&self, config: &Path, addr: SocketAddr, name: &str) -> Result<Collector, String> {
        Collector::start(
            &self.binary,
            config,
            addr,
            &self.work.join(format!("{name}.log")),
            LOG_FILTER,
        )
    }
}

/// A PostgreSQL sink table in TOML, batches of at most `max_events`.
fn postgres_backend(table: &str, port: u16, max_events: usize, extra: &str) -> String {
    format!(
        "[backends.warehouse]\ntype = \"postgres\"\nurl = \"host=127.0.0.1 port={port} user=postgres dbname=test\"\ntable = \"{table}\"\nconnect_timeout_ms = 1000\nstatement_timeout_ms = 5000\nmax_events = {max_events}\nflush_interval_ms = 100\n{FAST_RETRY}\n{extra}\n"
    )
}

/// Paced load: `rate` events/s in requests of 10 events over `connections`.
fn paced(name: &str, rate: f64, connections: usize) -> LoadSpec {
    LoadSpec {
        requests_per_second: Some(rate / 10.0),
        ..burst(name, 10, connections)
    }
}

/// Load as fast as `connections` go, in requests of `events` events.
fn burst(name: &str, events: usize, connections: usize) -> LoadSpec {
    LoadSpec {
        name: name.to_owned(),
        events_per_request: events,
        connections,
        requests_per_second: None,
        padding: PADDING,
        poison: None,
    }
}

/// Fills `row`'s counts from what the load saw and the ids found in the sink.
fn account(row: &mut Row, load: &LoadReport, run: u32, stored: &HashSet<String>) {
    row.sent = load.sent;
    row.accepted = load.accepted.len() as u64;
    row.delivered = stored.len() as u64;
    row.lost = load
        .accepted
        .iter()
        .filter(|seq| !stored.contains(&event_id(run, **seq)))
        .count() as u64;
    if load.busy > 0 {
        row.notes
            .push(format!("{} requests answered 503", load.busy));
    }
}

/// Runs the faults named in `selected` (all when empty) and prints the table.
pub(crate) fn chaos(root: &Path, selected: &[String]) -> Result<(), String> {
    for name in selected {
        if !FAULTS.contains(&name.as_str()) {
            return Err(format!(
                "unknown fault {name:?}; the faults are: {}",
                FAULTS.join(", ")
            ));
        }
    }
    let faults: Vec<&str> = if selected.is_empty() {
        FAULTS.to_vec()
    } else {
        FAULTS
            .iter()
            .copied()
            .filter(|f| selected.iter().any(|s| s == f))
            .collect()
    };
    let needs = |these: &[&str]| faults.iter().any(|f| these.contains(f));
    if needs(&["kill9", "blackhole", "sigterm", "poison-postgres"]) {
        require_postgres()?;
    }
    if needs(&["poison-nats"]) {
        require_nats()?;
    }
    if needs(&["poison-amqp"]) {
        require_rabbitmq()?;
    }
    let binary = release_binary(root)?;
    let work = std::env::temp_dir().join(format!("tidings-chaos-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let context = Context {
        binary,
        work,
        run: run_id(),
    };
    let blackhole = std::env::var("TIDINGS_CHAOS_BLACKHOLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(BLACKHOLE_SECONDS);
    let started = Instant::now();
    let mut rows = Vec::new();
    for fault in faults {
        println!("\n== {fault}");
        let result = match fault {
            "kill9" => {
                let mut fast = kill9(&context, false);
                if let Ok(row) = &mut fast {
                    row.informational = true;
                    row.notes.push(
                        "informational: fast ack keeps accepted events in memory only".to_owned(),
                    );
                }
                rows.push(fast);
                kill9(&context, true)
            }
            "blackhole" => blackhole_fault(&context, Duration::from_secs(blackhole)),
            "retry-after" => retry_after(&context),
            "disk-full" => disk_full(&context),
            "wal-disk-full" => wal_disk_full(&context),
            "sigterm" => sigterm(&context),
            "stall" => stall(&context),
            "sigterm-down" => sigterm_down(&context),
            "poison-postgres" => poison_postgres(&context),
            "poison-http" => poison_http(&context),
            "poison-spade" => poison_spade(&context),
            "poison-nats" => poison_nats(&context),
            "poison-amqp" => poison_amqp(&context),
            "uploads" => uploads(&context),
            _ => unreachable!("checked above"),
        };
        rows.push(result);
    }
    println!(
        "\n| fault | events sent | accepted (202) | delivered (distinct ids in the sink) | dead-lettered | duplicates removed | lost | peak RSS | notes |\n|---|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    let mut failed = Vec::new();
    for row in &rows {
        match row {
            Ok(row) => {
                let mut notes = row.notes.clone();
                notes.extend(row.failures.iter().map(|f| format!("FAILED: {f}")));
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    row.fault,
                    row.sent,
                    row.accepted,
                    row.delivered,
                    row.dead_lettered,
                    row.duplicates,
                    row.lost,
                    row.peak_rss_kib.map_or_else(
                        || "?".to_owned(),
                        |kib| format!("{:.0} MiB", kib as f64 / 1024.0)
                    ),
                    notes.join("; ")
                );
                if row.failed() {
                    failed.push(row.fault.clone());
                }
            }
            Err(error) => {
                println!("| (error) | | | | | | | | {error} |");
                failed.push(error.clone());
            }
        }
    }
    println!("\nchaos run took {:.0} s", started.elapsed().as_secs_f64());
    if failed.is_empty() {
        let _ = std::fs::remove_dir_all(&context.work);
        Ok(())
    } else {
        Err(format!(
            "{} fault(s) failed: {}; logs and configs kept in {}",
            failed.len(),
            failed.join(" | "),
            context.work.display()
        ))
    }
}

/// How long after `since` the counter `metric{labels}` first grows past
/// `from` (polled every 5 ms); `None` if not within `limit`.
fn time_until_grows(
    collector: &Collector,
    metric: &str,
    labels: &[(&str, &str)],
    from: u64,
    since: Instant,
    limit: Duration,
) -> Result<Option<Duration>, String> {
    loop {
        if collector.metrics()?.get(metric, labels) > from {
            return Ok(Some(since.elapsed()));
        }
        if since.elapsed() > limit {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// (a) `kill -9` under load, restart, drain.
fn kill9(context: &Context, durable: bool) -> Result<Row, String> {
    let mode = if durable { "durable" } else { "fast" };
    let table = PgTable::create(&format!("tidings_chaos_kill9_{mode}_{:08x}", context.run))?;
    let addr = free_addr()?;
    let collector_keys = ack_keys(durable, &context.work.join(format!("wal-{mode}")));
    let proxy = CuttableProxy::start(PG_ADDR);
    let config = context.config(
        &format!("kill9-{mode}"),
        addr,
        &collector_keys,
        &postgres_backend(&table.name, proxy.port(), 100, ""),
    )?;
    let name = format!("kill9-{mode}");
    let collector = context.start(&config, addr, &name)?;
    let load = Load::start(addr, context.run, &paced("chaos.kill9", 2000.0, 4));
    std::thread::sleep(Duration::from_secs(2));
    // The sink cut off for the last second: what arrives waits in memory.
    proxy.cut();
    std::thread::sleep(Duration::from_secs(1));
    let metrics = collector.metrics()?;
    let pending_before =
        metrics.get("tidings_collector_queue_depth", &[]) + metrics.waiting("backends.warehouse");
    collector.kill9()?;
    println!("killed with -9 ({pending_before} events pending a moment before)");
    proxy.restore();
    std::thread::sleep(Duration::from_millis(500));
    let collector = context.start(&config, addr, &name)?;
    std::thread::sleep(Duration::from_secs(3));
    let report = load.stop();
    let peak_rss_kib = collector.terminate(Duration::from_secs(60))?;
    let mut row = Row {
        peak_rss_kib,
        fault: format!("kill -9 under load, restart ({mode} ack)"),
        ..Row::default()
    };
    account(&mut row, &report, context.run, &table.ids()?);
    row.duplicates = table.duplicates()?;
    row.notes.push(format!(
        "sink cut off 1 s before the kill: {pending_before} events pending in memory shortly before it"
    ));
    table.drop_all()?;
    Ok(row)
}

/// (b) the PostgreSQL sink black-holed, then restored.
fn blackhole_fault(context: &Context, outage: Duration) -> Result<Row, String> {
    let table = PgTable::create(&format!("tidings_chaos_blackhole_{:08x}", context.run))?;
    let proxy = CuttableProxy::start(PG_ADDR);
    let addr = free_addr()?;
    let config = context.config(
        "blackhole",
        addr,
        "",
        &postgres_backend(&table.name, proxy.port(), 100, ""),
    )?;
    let collector = context.start(&config, addr, "blackhole")?;
    let stage = "backends.warehouse";
    let load = Load::start(addr, context.run, &paced("chaos.blackhole", 500.0, 2));
    std::thread::sleep(Duration::from_secs(3));
    proxy.cut();
    println!("PostgreSQL cut for {} s", outage.as_secs());
    let cut_at = Instant::now();
    while cut_at.elapsed() < outage {
        std::thread::sleep(Duration::from_secs(10).min(outage.saturating_sub(cut_at.elapsed())));
        let m = collector.metrics()?;
        println!(
            "  {:>3.0} s: waiting {} events, {} delivery attempts retried",
            cut_at.elapsed().as_secs_f64(),
            m.waiting(stage),
            m.get("tidings_backend_retried_total", &[("backend", stage)])
        );
    }
    let before = collector.metrics()?;
    let delivered_before = before.get("tidings_backend_delivered_total", &[("backend", stage)]);
    let waiting = before.waiting(stage);
    proxy.restore();
    let restored = Instant::now();
    let resumed = time_until_grows(
        &collector,
        "tidings_backend_delivered_total",
        &[("backend", stage)],
        delivered_before,
        restored,
        Duration::from_secs(60),
    )?;
    std::thread::sleep(Duration::from_secs(3));
    let report = load.stop();
    let after = collector.metrics()?;
    let peak_rss_kib = collector.terminate(Duration::from_secs(60))?;
    let mut row = Row {
        peak_rss_kib,
        fault: format!(
            "PostgreSQL black-holed {} s at 500 events/s, restored",
            outage.as_secs()
        ),
        ..Row::default()
    };
    account(&mut row, &report, context.run, &table.ids()?);
    row.duplicates = table.duplicates()?;
    row.notes
        .push(format!("{waiting} events waiting at restore"));
    match resumed {
        Some(after) => {
            row.notes.push(format!(
                "delivery resumed {:.0} ms after restore",
                after.as_secs_f64() * 1e3
            ));
            if after > Duration::from_secs(1) {
                row.failures.push(format!(
                    "delivery resumed {:.2} s after restore (> 1 s)",
                    after.as_secs_f64()
                ));
            }
        }
        None => row
            .failures
            .push("delivery did not resume within 60 s of restore".to_owned()),
    }
    let dropped = after.sum(
        "tidings_backend_dropped_total",
        "backend=\"backends.warehouse\"",
    );
    if dropped > 0 {
        row.failures
            .push(format!("the sink dropped {dropped} events"));
    }
    row.notes.push(format!(
        "{} delivery attempts retried",
        after.get("tidings_backend_retried_total", &[("backend", stage)])
    ));
    table.drop_all()?;
    Ok(row)
}

/// The receiver of the HTTP faults: answers 503 with `Retry-After` while
/// `unavailable`, else 200, recording the ids of what it accepted.
struct Receiver {
    addr: SocketAddr,
    /// What its requests carry.
    format: Format,
    unavailable: AtomicBool,
    /// While set, every request is held unanswered.
    stalled: AtomicBool,
    /// Answer 400 to a batch holding an event named `*.poison`.
    refuse_poison: AtomicBool,
    ids: Mutex<Vec<String>>,
    /// When each request answered 503 arrived.
    refused: Mutex<Vec<Instant>>,
    /// When the first request answered 200 after an outage arrived.
    first_ok: Mutex<Option<Instant>>,
    requests: AtomicU64,
}

/// Seconds of `Retry-After` the receiver asks for.
const RETRY_AFTER_SECONDS: u64 = 2;

/// What a [`Receiver`]'s requests carry.
#[derive(Debug, Clone, Copy)]
enum Format {
    /// The HTTP JSON sink's: a JSON array of events.
    Json,
    /// The Spade sink's: a form whose `data` is base64 of a JSON array of
    /// `{"event": name, "properties": {...}}`, the event's data (`seq`,
    /// `pad`) among the properties. Ids are not sent: each is the
    /// `event_id` of run `run` and the event's `seq`.
    Spade { run: u32 },
}

impl Format {
    /// The id and name of each event in `body`; none when it cannot be decoded.
    fn events(self, body: &[u8]) -> Vec<(String, String)> {
        let text = |value: &serde_json::Value| value.as_str().map(str::to_owned);
        match self {
            Self::Json => serde_json::from_slice::<Vec<serde_json::Value>>(body)
                .unwrap_or_default()
                .iter()
                .filter_map(|event| Some((text(&event["id"])?, text(&event["name"])?)))
                .collect(),
            Self::Spade { run } => {
                let form: Vec<(String, String)> =
                    serde_urlencoded::from_bytes(body).unwrap_or_default();
                let json = form
                    .iter()
                    .find(|(key, _)| key == "data")
                    .and_then(|(_, data)| STANDARD.decode(data).ok())
                    .unwrap_or_default();
                serde_json::from_slice::<Vec<serde_json::Value>>(&json)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|element| {
                        let seq = element["properties"]["seq"].as_u64()?;
                        Some((event_id(run, seq), text(&element["event"])?))
                    })
                    .collect()
            }
        }
    }
}

/// The distinct ids among `ids` (each as often as it was stored), and
/// how many were stored again.
fn distinct(ids: &[String]) -> (HashSet<String>, u64) {
    let distinct: HashSet<String> = ids.iter().cloned().collect();
    let duplicates = (ids.len() - distinct.len()) as u64;
    (distinct, duplicates)
}

impl Receiver {
    /// The distinct ids it accepted, and how many it accepted again.
    fn received(&self) -> (HashSet<String>, u64) {
        distinct(&locked(&self.ids))
    }

    /// A receiver of the HTTP JSON sink.
    fn start() -> Result<Arc<Self>, String> {
        Self::listen(Format::Json)
    }

    /// A receiver of the Spade sink, for the events of run `run`.
    fn spade(run: u32) -> Result<Arc<Self>, String> {
        Self::listen(Format::Spade { run })
    }

    fn listen(format: Format) -> Result<Arc<Self>, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("cannot bind the receiver: {e}"))?;
        let receiver = Arc::new(Self {
            addr: listener.local_addr().map_err(|e| e.to_string())?,
            format,
            unavailable: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            refuse_poison: AtomicBool::new(false),
            ids: Mutex::new(Vec::new()),
            refused: Mutex::new(Vec::new()),
            first_ok: Mutex::new(None),
            requests: AtomicU64::new(0),
        });
        let shared = receiver.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || shared.serve(stream));
            }
        });
        Ok(receiver)
    }

    fn serve(&self, stream: TcpStream) {
        let Ok(mut writer) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut length = 0;
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            self.requests.fetch_add(1, Ordering::SeqCst);
            while self.stalled.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            let events = self.format.events(&body);
            let poisoned = self.refuse_poison.load(Ordering::SeqCst)
                && events.iter().any(|(_, name)| name.ends_with(".poison"));
            let answer = if poisoned {
                "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_owned()
            } else if self.unavailable.load(Ordering::SeqCst) {
                locked(&self.refused).push(Instant::now());
                format!(
                    "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {RETRY_AFTER_SECONDS}\r\nContent-Length: 0\r\n\r\n"
                )
            } else {
                locked(&self.ids).extend(events.into_iter().map(|(id, _)| id));
                let mut first = locked(&self.first_ok);
                if first.is_none() && !locked(&self.refused).is_empty() {
                    *first = Some(Instant::now());
                }
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_owned()
            };
            if writer.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// (c) an HTTP receiver answering 503 with `Retry-After`.
fn retry_after(context: &Context) -> Result<Row, String> {
    let receiver = Receiver::start()?;
    let addr = free_addr()?;
    let config = context.config("retry-after", addr, "", &http_backend(&receiver))?;
    let collector = context.start(&config, addr, "retry-after")?;
    let load = Load::start(addr, context.run, &paced("chaos.retry_after", 200.0, 2));
    std::thread::sleep(Duration::from_secs(1));
    receiver.unavailable.store(true, Ordering::SeqCst);
    println!("the receiver answers 503 with Retry-After: {RETRY_AFTER_SECONDS} for 6 s");
    std::thread::sleep(Duration::from_secs(6));
    receiver.unavailable.store(false, Ordering::SeqCst);
    let available = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let report = load.stop();
    let peak_rss_kib = collector.terminate(Duration::from_secs(60))?;
    let (distinct, duplicates) = receiver.received();
    let mut row = Row {
        peak_rss_kib,
        fault: format!("HTTP receiver 503 + Retry-After: {RETRY_AFTER_SECONDS} for 6 s"),
        ..Row::default()
    };
    account(&mut row, &report, context.run, &distinct);
    row.duplicates = duplicates;
    let refused = locked(&receiver.refused).clone();
    let min_gap = refused.windows(2).map(|w| w[1] - w[0]).min();
    row.notes
        .push(format!("{} attempts answered 503", refused.len()));
    match min_gap {
        Some(gap) => {
            row.notes.push(format!(
                "shortest gap between refused attempts {:.2} s",
                gap.as_secs_f64()
            ));
            // A few milliseconds of timer slack are allowed.
            if gap < Duration::from_millis(RETRY_AFTER_SECONDS * 1000 - 50) {
                row.failures.push(format!(
                    "Retry-After not honoured: attempts {:.2} s apart",
                    gap.as_secs_f64()
                ));
            }
        }
        None => row
            .failures
            .push("the sink did not retry after the 503".to_owned()),
    }
    if let Some(first) = *locked(&receiver.first_ok) {
        row.notes.push(format!(
            "first delivery {:.2} s after the receiver recovered",
            first.saturating_duration_since(available).as_secs_f64()
        ));
    }
    Ok(row)
}

/// A small file system mounted for the disk-full fault.
struct SmallDisk {
    dir: PathBuf,
    kind: &'static str,
}

impl SmallDisk {
    /// A 2 MiB tmpfs at `work/name`, else a 4 MiB loop-mounted ext4 image.
    fn mount(work: &Path, name: &str) -> Result<Self, NoSmallDisk> {
        let dir = work.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| NoSmallDisk(e.to_string()))?;
        let ok = |c: &mut Command| c.output().is_ok_and(|o| o.status.success());
        if ok(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(&dir))
        {
            return Ok(Self {
                dir,
                kind: "2 MiB tmpfs",
            });
        }
        let image = work.join(format!("{name}.img"));
        if ok(Command::new("truncate").args(["-s", "4M"]).arg(&image))
            && ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image))
            && ok(Command::new("mount")
                .args(["-o", "loop"])
                .arg(&image)
                .arg(&dir))
        {
            return Ok(Self {
                dir,
                kind: "4 MiB loop-mounted ext4 image",
            });
        }
        Err(NoSmallDisk(
            "cannot mount a small file system (tmpfs or a loop image): this fault needs root (or CAP_SYS_ADMIN)".to_owned(),
        ))
    }
}

/// No small file system could be mounted (why): the fault is skipped.
struct NoSmallDisk(String);

impl NoSmallDisk {
    /// The informational row of the skipped fault named `fault`.
    fn row(self, fault: &str) -> Row {
        Row {
            fault: fault.to_owned(),
            informational: true,
            notes: vec![self.0],
            ..Row::default()
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).output();
    }
}

/// Writes `path` until the file system is full; returns the bytes written.
fn fill(path: &Path) -> Result<u64, String> {
    let mut file = std::fs::File::create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let chunk = vec![0_u8; 4096];
    let mut written = 0;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => return Err(format!("filling {}: {e}", path.display())),
        }
    }
    let _ = file.sync_all();
    Ok(written)
}

/// (d) the file sink's disk full, then freed.
fn disk_full(context: &Context) -> Result<Row, String> {
    let disk = match SmallDisk::mount(&context.work, "disk") {
        Ok(disk) => disk,
        Err(skipped) => return Ok(skipped.row("file sink, disk full (skipped)")),
    };
    let events_dir = disk.dir.join("events");
    let addr = free_addr()?;
    let config = context.config(
        "disk-full",
        addr,
        "",
        &format!(
            "[backends.files]\ntype = \"file\"\npath = \"{}\"\nroll_events = 500\nroll_seconds = 2\nmax_events = 100\nflush_interval_ms = 100\n{FAST_RETRY}\n",
            events_dir.display()
        ),
    )?;
    let collector = context.start(&config, addr, "disk-full")?;
    let stage = "backends.files";
    let ballast = disk.dir.join("ballast");
    let filled = fill(&ballast)?;
    println!(
        "{}: filled with {} KiB of ballast",
        disk.kind,
        filled / 1024
    );
    let load = Load::start(addr, context.run, &paced("chaos.disk_full", 200.0, 2));
    std::thread::sleep(Duration::from_secs(4));
    let full = collector.metrics()?;
    let waiting = full.waiting(stage);
    let log = std::fs::read_to_string(&collector.log).unwrap_or_default();
    let error_line = log
        .lines()
        .find(|l| l.contains("No space left on device") && l.contains("WARN"))
        .map(str::to_owned);
    std::fs::remove_file(&ballast).map_err(|e| format!("cannot remove the ballast: {e}"))?;
    let freed = Instant::now();
    let delivered_before = full.get("tidings_backend_delivered_total", &[("backend", stage)]);
    let recovered = time_until_grows(
        &collector,
        "tidings_backend_delivered_total",
        &[("backend", stage)],
        delivered_before,
        freed,
        Duration::from_secs(30),
    )?;
    std::thread::sleep(Duration::from_secs(2));
    let report = load.stop();
    let peak_rss_kib = collector.terminate(Duration::from_secs(60))?;

    let mut lines = 0_u64;
    let mut corrupt = 0_u64;
    let mut leftovers = Vec::new();
    let mut ids = HashSet::new();
    for entry in
        std::fs::read_dir(&events_dir).map_err(|e| format!("{}: {e}", events_dir.display()))?
    {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        if !name.ends_with(".jsonl") {
            leftovers.push(name);
        }
        let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !text.is_empty() && !text.ends_with(b"\n") {
            corrupt += 1; // a torn last line
        }
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            lines += 1;
            match serde_json::from_slice::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("id")?.as_str().map(str::to_owned))
            {
                Some(id) => {
                    ids.insert(id);
                }
                None => corrupt += 1,
            }
        }
    }
    let mut row = Row {
        peak_rss_kib,
        fault: format!("file sink on a full disk ({}), freed after 4 s", disk.kind),
        ..Row::default()
    };
    account(&mut row, &report, context.run, &ids);
    row.duplicates = lines - ids.len() as u64;
    row.notes
        .push(format!("{waiting} events waiting while full"));
    match error_line {
        Some(line) => {
            let line = strip_ansi(&line);
            let at = line.find("error=").unwrap_or(0);
            row.notes
                .push(format!("logged (a warning, once): `{}`", &line[at..]));
        }
        None => row.failures.push(format!(
            "no \"No space left on device\" warning in the log {}",
            collector_log_hint(&context.work.join("disk-full.log"))
        )),
    }
    match recovered {
        Some(after) => row.notes.push(format!(
            "writing resumed {:.0} ms after space returned",
            after.as_secs_f64() * 1e3
        )),
        None => row
            .failures
            .push("writing did not resume within 30 s of freeing space".to_owned()),
    }
    if corrupt > 0 {
        row.failures
            .push(format!("{corrupt} corrupt lines or torn files"));
    }
    if !leftovers.is_empty() {
        row.failures
            .push(format!("unfinished files after the drain: {leftovers:?}"));
    }
    Ok(row)
}

/// (e) durable mode's write-ahead log on a full disk, then freed.
fn wal_disk_full(context: &Context) -> Result<Row, String> {
    let disk = match SmallDisk::mount(&context.work, "wal-disk") {
        Ok(disk) => disk,
        Err(skipped) => return Ok(skipped.row("write-ahead log, disk full (skipped)")),
    };
    let table = PgTable::create(&format!("tidings_chaos_wal_disk_{:08x}", context.run))?;
    let addr = free_addr()?;
    let config = context.config(
        "wal-disk-full",
        addr,
        &ack_keys(true, &disk.dir.join("wal")),
        &postgres_backend(&table.name, 5432, 100, ""),
    )?;
    let collector = context.start(&config, addr, "wal-disk-full")?;
    let load = Load::start(addr, context.run, &paced("chaos.wal_disk_full", 200.0, 2));
    std::thread::sleep(Duration::from_secs(2));
    let ballast = disk.dir.join("ballast");
    let filled = fill(&ballast)?;
    println!(
        "{}: filled with {} KiB of ballast under load",
        disk.kind,
        filled / 1024
    );
    std::thread::sleep(Duration::from_secs(3));
    let full = collector.metrics()?;
    let refused = full.get("tidings_wal_refused_appends_total", &[("reason", "failed")]);
    std::fs::remove_file(&ballast).map_err(|e| format!("cannot remove the ballast: {e}"))?;
    let freed = Instant::now();
    let appended_before = full.get("tidings_wal_appended_events_total", &[]);
    let recovered = time_until_grows(
        &collector,
        "tidings_wal_appended_events_total",
        &[],
        appended_before,
        freed,
        Duration::from_secs(30),
    )?;
    std::thread::sleep(Duration::from_secs(2));
    let report = load.stop();
    let peak_rss_kib = collector.terminate(Duration::from_secs(60))?;
    let log_path = context.work.join("wal-disk-full.log");
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let mut row = Row {
        peak_rss_kib,
        fault: format!(
            "write-ahead log on a full disk ({}), freed after 3 s",
            disk.kind
        ),
        ..Row::default()
    };
    account(&mut row, &report, context.run, &table.ids()?);
    row.duplicates = table.duplicates()?;
    row.notes.push(format!(
        "{refused} appends refused while full (write failed)"
    ));
    if refused == 0 || report.busy == 0 {
        row.failures
            .push("no append was refused while the disk was full".to_owned());
    }
    match log
        .lines()
        .find(|l| l.contains("write-ahead log write failed"))
    {
        Some(line) => {
            let line = strip_ansi(line);
            let at = line.find("path=").unwrap_or(0);
            row.notes.push(format!("logged: `{}`", &line[at..]));
        }
        None => row.failures.push(format!(
            "no \"write-ahead log write failed\" warning in the log {}",
            collector_log_hint(&log_path)
        )),
    }
    match recovered {
        Some(after) => row.notes.push(format!(
            "202s resumed {:.0} ms after space returned",
            after.as_secs_f64() * 1e3
        )),
        None => row
            .failures
            .push("appends did not resume within 30 s of freeing space".to_owned()),
    }
    table.drop_all()?;
    Ok(row)
}

/// The collector's `backend shut down` lines (what each stage delivered and dropped).
fn shutdown_summaries(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(strip_ansi)
        .filter(|l| l.contains("backend shut down"))
        .map(|l| {
            let at = l.find("backend=").unwrap_or(0);
            format!("log: `{}`", &l[at..])
        })
        .collect()
}

/// `line` without terminal colour codes.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn collector_log_hint(log: &Path) -> String {
    format!("({}):\n{}", log.display(), tail(log))
}

/// (e) SIGTERM during a burst.
fn sigterm(context: &Context) -> Result<Row, String> {
    let table = PgTable::create(&format!("tidings_chaos_sigterm_{:08x}", context.run))?;
    let addr = free_addr()?;
    let config = context.config(
        "sigterm",
        addr,
        "",
        &postgres_backend(&table.name, 5432, 1000, ""),
    )?;
    let collector = context.start(&config, addr, "sigterm")?;
    let load = Load::start(addr, context.run, &burst("chaos.sigterm", 100, 8));
    std::thread::sleep(Duration::from_secs(2));
    let m = collector.metrics()?;
    let pending = m.get("tidings_collector_queue_depth", &[]) + m.waiting("backends.warehouse");
    let peak_rss_kib = collector.peak_rss_kib();
    collector.signal("-TERM")?;
    let signalled = Instant::now();
    // The burst goes on against the stopping collector.
    let drained = collector.wait_exit(Duration::from_secs(60));
    let drain_time = signalled.elapsed();
    let report = load.stop();
    drained?;
    let mut row = Row {
        peak_rss_kib,
        fault: "SIGTERM during a burst (8 connections × 100 events)".to_owned(),
        ..Row::default()
    };
    account(&mut row, &report, context.run, &table.ids()?);
    row.duplicates = table.duplicates()?;
    row.notes.push(format!(
        "{pending} events pending shortly before SIGTERM; exited {:.2} s after it",
        drain_time.as_secs_f64()
    ));
    row.notes
        .extend(shutdown_summaries(&context.work.join("sigterm.log")));
    table.drop_all()?;
    Ok(row)
}

/// The sink `backends.NAME` of type `kind` in TOML: its address (`keys`),
/// batches of at most 100 events flushed every 100 ms, and `FAST_RETRY`.
fn backend(name: &str, kind: &str, keys: &str) -> String {
    format!(
        "[backends.{name}]\ntype = \"{kind}\"\n{keys}\nmax_events = 100\nflush_interval_ms = 100\n{FAST_RETRY}\n"
    )
}

/// The HTTP JSON sink to `receiver`, with the defaults but `FAST_RETRY`.
fn http_backend(receiver: &Receiver) -> String {
    backend(
        "receiver",
        "http",
        &format!("url = \"http://{}/ingest\"", receiver.addr),
    )
}

/// The ids and reasons of the events in the default dead-letter files of
/// the sink at `stage` (under the collector's working directory).
fn dead_letters(context: &Context, stage: &str) -> Result<Vec<(String, String)>, String> {
    let dir = context.work.join("tidings-dead-letter").join(stage);
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(found);
    };
    for entry in entries.flatten() {
        let text = std::fs::read_to_string(entry.path())
            .map_err(|e| format!("{}: {e}", entry.path().display()))?;
        for line in text.lines() {
            let event: serde_json::Value = serde_json::from_str(line).map_err(|e| {
                format!("{}: a dead letter is not JSON: {e}", entry.path().display())
            })?;
            found.push((
                event["id"].as_str().unwrap_or_default().to_owned(),
                event["context"]["dead_letter"]["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ));
        }
    }
    Ok(found)
}

/// Checks a row's sink dropped nothing (`tidings_backend_dropped_total`).
fn check_no_drops(row: &mut Row, metrics: &crate::harness::Metrics, stage: &str) {
    let dropped = metrics.sum(
        "tidings_backend_dropped_total",
        &format!("backend=\"{stage}\""),
    );
    if dropped > 0 {
        row.failures
            .push(format!("{stage} dropped {dropped} events"));
    }
}

/// A receiver that holds every request for `STALL_SECONDS` under a load as
/// fast as 16 connections go: the door answers 503, nothing is dropped.
fn stall(context: &Context) -> Result<Row, String> {
    let receiver = Receiver::start()?;
    let addr = free_addr()?;
    let config = context.config("stall", addr, "", &http_backend(&receiver))?;
    let collector = context.start(&config, addr, "stall")?;
    let load = Load::start(addr, context.run, &burst("chaos.stall", 10, 16));
    std::thread::sleep(Duration::from_secs(2));
    receiver.stalled.store(true, Ordering::SeqCst);
    println!("the receiver holds every request for {STALL_SECONDS} s");
    std::thread::sleep(Duration::from_secs(STALL_SECONDS));
    let during = collector.metrics()?;
    receiver.stalled.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(2));
    let report = load.stop();
    std::thread::sleep(Duration::from_secs(2));
    let after = collector.metrics()?;
    let peak_rss_kib = collector.terminate(Duration::from_secs(120))?;
    let (distinct, duplicates) = receiver.received();
    let mut row = Row {
        peak_rss_kib,
        fault: format!("HTTP sink stalled {STALL_SECONDS} s at maximum load (16 connections)"),
        ..Row::default()
    };
    account(&mut row, &report, context.run, &distinct);
    row.duplicates = duplicates;
    row.notes.push(format!(
        "{} events queued at the collector and {} at the sink while stalled",
        during.get("tidings_collector_queue_depth", &[]),
        during.get(
            "tidings_backend_queue_depth",
            &[("backend", "backends.receiver")]
        )
    ));
    check_no_drops(&mut row, &after, "backends.receiver");
    if report.busy == 0 {
        row.failures
            .push("the door never answered 503 while the sink was stalled".to_owned());
    }
    Ok(row)
}

/// SIGTERM under load while the sink is down: the drain retries until its
/// deadline, then logs exactly what it could not deliver and exits 3.
fn sigterm_down(context: &Context) -> Result<Row, String> {
    let receiver = Receiver::start()?;
    receiver.unavailable.store(true, Ordering::SeqCst);
    let addr = free_addr()?;
    let config = context.config(
        "sigterm-down",
        addr,
        "shutdown_timeout_ms = 3000",
        &http_backend(&receiver),
    )?;
    let collector = context.start(&config, addr, "sigterm-down")?;
    let load = Load::start(addr, context.run, &paced("chaos.sigterm_down", 2000.0, 4));
    std::thread::sleep(Duration::from_secs(3));
    let peak_rss_kib = collector.peak_rss_kib();
    collector.signal("-TERM")?;
    let signalled = Instant::now();
    let code = collector.wait_status(Duration::from_secs(60))?;
    let drain_time = signalled.elapsed();
    let report = load.stop();
    let log = std::fs::read_to_string(context.work.join("sigterm-down.log")).unwrap_or_default();
    let reported: u64 = log
        .lines()
        .find_map(|line| {
            let line = strip_ansi(line);
            let rest = line.split("shut down with ").nth(1)?;
            rest.split(' ').next()?.parse().ok()
        })
        .unwrap_or(0);
    let (distinct, duplicates) = receiver.received();
    let mut row = Row {
        peak_rss_kib,
        fault: "SIGTERM under load with the sink down (shutdown_timeout_ms = 3000)".to_owned(),
        ..Row::default()
    };
    account(&mut row, &report, context.run, &distinct);
    row.duplicates = duplicates;
    // Lost, but accounted for: what the ERROR line reports.
    let unaccounted = row.lost.abs_diff(reported);
    row.notes.push(format!(
        "exit code {code:?} {:.2} s after SIGTERM; the ERROR line reports {reported} events not delivered",
        drain_time.as_secs_f64()
    ));
    if code != Some(3) {
        row.failures.push(format!("exit code {code:?}, not 3"));
    }
    if unaccounted > 0 || reported == 0 {
        row.failures.push(format!(
            "{} events lost but the shutdown reported {reported}",
            row.lost
        ));
    } else {
        // Every undelivered event is reported: none is lost silently.
        row.informational = true;
        row.notes
            .push("lost = reported exactly: accounted for, as the promise allows".to_owned());
    }
    if drain_time < Duration::from_millis(2900) {
        row.failures.push(format!(
            "the drain gave up after {:.2} s, before its deadline",
            drain_time.as_secs_f64()
        ));
    }
    Ok(row)
}

/// Accounts a poison fault: every innocent event delivered, every poison
/// event in the dead-letter file with reason `reason`.
fn account_poison(
    row: &mut Row,
    context: &Context,
    spec: &LoadSpec,
    report: &LoadReport,
    stored: &HashSet<String>,
    stage: &str,
    reason: &str,
) -> Result<(), String> {
    let poison: HashSet<String> = report
        .accepted
        .iter()
        .filter(|seq| crate::harness::is_poison(spec, **seq))
        .map(|seq| event_id(context.run, *seq))
        .collect();
    let dead = dead_letters(context, stage)?;
    let dead_ids: HashSet<String> = dead.iter().map(|(id, _)| id.clone()).collect();
    row.sent = report.sent;
    row.accepted = report.accepted.len() as u64;
    row.delivered = stored.len() as u64;
    row.dead_lettered = dead.len() as u64;
    row.lost = report
        .accepted
        .iter()
        .map(|seq| event_id(context.run, *seq))
        .filter(|id| !stored.contains(id) && !dead_ids.contains(id))
        .count() as u64;
    if dead_ids != poison {
        row.failures.push(format!(
            "{} poison events accepted, {} dead-lettered",
            poison.len(),
            dead_ids.len()
        ));
    }
    if let Some((id, found)) = dead.iter().find(|(_, found)| found != reason) {
        row.failures.push(format!(
            "dead letter {id} has reason {found:?}, not {reason}"
        ));
    }
    if stored.iter().any(|id| poison.contains(id)) {
        row.failures
            .push("a poison event reached the sink".to_owned());
    }
    row.notes.push(format!(
        "one event in {POISON_EVERY} refused by the sink; {} batches held one",
        poison.len()
    ));
    Ok(())
}

/// 500 events/s of which one in `POISON_EVERY` is poison, with `padding`
/// bytes of padding and `name_padding` more bytes in its name (see
/// [`Poison`]).
fn poison_load(name: &str, padding: usize, name_padding: usize) -> LoadSpec {
    LoadSpec {
        poison: Some(Poison {
            every: POISON_EVERY,
            padding,
            name_padding,
        }),
        ..paced(name, 500.0, 2)
    }
}

/// One `poison-*` fault: a sink set up to refuse the poison events of its
/// load.
struct PoisonCase {
    /// The fault's name (of its config and log files).
    fault: &'static str,
    /// The row's description.
    description: String,
    /// The sink's stage, `backends.NAME`.
    stage: &'static str,
    /// The sink's table in TOML.
    backend: String,
    /// The load: 6 s of it.
    spec: LoadSpec,
    /// The dead-letter reason of every poison event.
    reason: &'static str,
}

/// Runs `case`; `stored` reads the distinct ids the sink stored and the
/// duplicates it stored, once the collector has drained and exited.
fn poison_fault(
    context: &Context,
    case: PoisonCase,
    stored: impl FnOnce() -> Result<(HashSet<String>, u64), String>,
) -> Result<Row, String> {
    let addr = free_addr()?;
    let config = context.config(case.fault, addr, "", &case.backend)?;
    let collector = context.start(&config, addr, case.fault)?;
    let load = Load::start(addr, context.run, &case.spec);
    std::thread::sleep(Duration::from_secs(6));
    let report = load.stop();
    std::thread::sleep(Duration::from_secs(1));
    let metrics = collector.metrics()?;
    let peak_rss_kib = collector.terminate(Duration::from_secs(60))?;
    let (ids, duplicates) = stored()?;
    let mut row = Row {
        peak_rss_kib,
        fault: case.description,
        duplicates,
        ..Row::default()
    };
    account_poison(
        &mut row,
        context,
        &case.spec,
        &report,
        &ids,
        case.stage,
        case.reason,
    )?;
    check_no_drops(&mut row, &metrics, case.stage);
    Ok(row)
}

/// PostgreSQL refusing one event in `POISON_EVERY` (a `CHECK` on the name,
/// SQLSTATE 23514): the batch is split until the culprit is alone.
fn poison_postgres(context: &Context) -> Result<Row, String> {
    let table = PgTable::create(&format!("tidings_chaos_poison_{:08x}", context.run))?;
    crate::harness::psql(&format!(
        "ALTER TABLE {} ADD CONSTRAINT no_poison CHECK (name NOT LIKE '%.poison')",
        table.name
    ))?;
    let case = PoisonCase {
        fault: "poison-postgres",
        description: format!("PostgreSQL refuses 1 event in {POISON_EVERY} (CHECK constraint)"),
        stage: "backends.warehouse",
        backend: postgres_backend(&table.name, 5432, 100, ""),
        spec: poison_load("chaos.poison_pg", PADDING, 0),
        reason: "invalid",
    };
    let row = poison_fault(context, case, || Ok((table.ids()?, table.duplicates()?)));
    table.drop_all()?;
    row
}

/// An HTTP receiver answering 400 to any batch holding a poison event.
fn poison_http(context: &Context) -> Result<Row, String> {
    let receiver = Receiver::start()?;
    receiver.refuse_poison.store(true, Ordering::SeqCst);
    let case = PoisonCase {
        fault: "poison-http",
        description: format!(
            "HTTP receiver answers 400 to a batch holding 1 event in {POISON_EVERY}"
        ),
        stage: "backends.receiver",
        backend: http_backend(&receiver),
        spec: poison_load("chaos.poison_http", PADDING, 0),
        reason: "invalid",
    };
    poison_fault(context, case, || Ok(receiver.received()))
}

/// A Spade receiver answering 400 to any batch holding a poison event.
fn poison_spade(context: &Context) -> Result<Row, String> {
    let receiver = Receiver::spade(context.run)?;
    receiver.refuse_poison.store(true, Ordering::SeqCst);
    let case = PoisonCase {
        fault: "poison-spade",
        description: format!(
            "Spade receiver answers 400 to a batch holding 1 event in {POISON_EVERY}"
        ),
        stage: "backends.spade",
        backend: backend(
            "spade",
            "spade",
            &format!("url = \"http://{}/spade\"", receiver.addr),
        ),
        spec: poison_load("chaos.poison_spade", PADDING, 0),
        reason: "invalid",
    };
    poison_fault(context, case, || Ok(receiver.received()))
}

/// A JetStream stream refusing one event in `POISON_EVERY`: its
/// `max_message_size` is below the poison events' size.
fn poison_nats(context: &Context) -> Result<Row, String> {
    const MAX_MESSAGE_SIZE: i32 = 2048;
    const POISON_PADDING: usize = 4096;
    // The sink's retry horizon (the default `max_batch_age`), so that the
    // sink has no duplicate window to warn about.
    const DUPLICATE_WINDOW: Duration = Duration::from_secs(15 * 60);
    let name = format!("tidings_chaos_poison_{:08x}", context.run);
    let stream = JetStream::create(&name, &name, MAX_MESSAGE_SIZE, DUPLICATE_WINDOW)?;
    let case = PoisonCase {
        fault: "poison-nats",
        description: format!(
            "JetStream refuses 1 event in {POISON_EVERY} (over max_message_size {MAX_MESSAGE_SIZE} B)"
        ),
        stage: "backends.jetstream",
        backend: backend(
            "jetstream",
            "nats",
            &format!(
                "url = \"nats://{NATS_ADDR}\"\nsubject = \"{name}.{{name}}\"\nstream = \"{}\"",
                stream.name
            ),
        ),
        spec: poison_load("chaos.poison_nats", POISON_PADDING, 0),
        reason: "too_large",
    };
    poison_fault(context, case, || Ok(distinct(&stream.ids()?)))
}

/// RabbitMQ refusing one event in `POISON_EVERY`: its name makes a routing
/// key (`events.{name}`, the default) longer than AMQP allows.
fn poison_amqp(context: &Context) -> Result<Row, String> {
    // The longest event name (`MAX_NAME_LEN`): `events.` makes 262 bytes.
    const NAME_LEN: usize = 255;
    let queue = AmqpQueue::declare(&format!("tidings_chaos_poison_{:08x}", context.run))?;
    let name = "chaos.poison_amqp";
    let name_padding = NAME_LEN - name.len() - ".".len() - ".poison".len();
    let case = PoisonCase {
        fault: "poison-amqp",
        description: format!(
            "RabbitMQ refuses 1 event in {POISON_EVERY} (routing key over 255 bytes)"
        ),
        stage: "backends.rabbitmq",
        backend: backend(
            "rabbitmq",
            "amqp",
            &format!(
                "url = \"{}\"\nexchange = \"{}\"",
                AmqpQueue::url(),
                queue.name
            ),
        ),
        spec: poison_load(name, PADDING, name_padding),
        reason: "too_large",
    };
    poison_fault(context, case, || Ok(distinct(&queue.ids()?)))
}

/// 400 connections each sending all of a 1 MiB body but its last byte,
/// then stalling: what the body budget admits is held, the rest is
/// refused before its body is read, and the resident set stays within the
/// budget (64 MiB) and the idle footprint, plus a slack.
fn uploads(context: &Context) -> Result<Row, String> {
    const UPLOADS: usize = 400;
    const DECLARED: usize = 1024 * 1024;
    const SLACK_KIB: u64 = 32 * 1024;
    let receiver = Receiver::start()?;
    let addr = free_addr()?;
    let config = context.config("uploads", addr, "", &http_backend(&receiver))?;
    let collector = context.start(&config, addr, "uploads")?;
    let idle = collector.rss_kib().unwrap_or(0);
    let head = format!(
        "POST /events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {DECLARED}\r\n\r\n"
    );
    let part = vec![b' '; DECLARED - 1];
    let (mut held, mut refused) = (Vec::new(), 0);
    for _ in 0..UPLOADS {
        let mut stream =
            TcpStream::connect(addr).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
        let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
        let sent = stream.write_all(head.as_bytes()).is_ok() && stream.write_all(&part).is_ok();
        let mut answer = [0u8; 12];
        match stream.read(&mut answer) {
            Ok(n) if n > 0 => refused += 1,
            _ if !sent => refused += 1,
            _ => held.push(stream),
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let peak = collector.peak_rss_kib().unwrap_or(0);
    let holding = held.len();
    drop(held);
    // Served as before once they are gone.
    let load = Load::start(addr, context.run, &paced("chaos.uploads", 200.0, 1));
    std::thread::sleep(Duration::from_secs(2));
    let report = load.stop();
    std::thread::sleep(Duration::from_millis(500));
    collector.terminate(Duration::from_secs(60))?;
    let (distinct, duplicates) = receiver.received();
    let mut row = Row {
        peak_rss_kib: Some(peak),
        fault: format!("{UPLOADS} uploads stalled 1 byte short of 1 MiB"),
        ..Row::default()
    };
    account(&mut row, &report, context.run, &distinct);
    row.duplicates = duplicates;
    row.notes.push(format!(
        "{holding} uploads held, {refused} refused with 503 before their body was read; RSS {} MiB idle, {} MiB at the peak",
        idle / 1024,
        peak / 1024
    ));
    let budget_kib = 64 * 1024;
    if peak > idle + budget_kib + SLACK_KIB {
        row.failures.push(format!(
            "peak RSS {peak} KiB over {idle} KiB idle + {budget_kib} KiB of bodies + {SLACK_KIB} KiB"
        ));
    }
    if report.accepted.is_empty() {
        row.failures
            .push("nothing accepted once the uploads were gone".to_owned());
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spade_receiver_maps_each_event_to_its_id_by_its_seq() {
        // As the Spade sink sends them: context keys, then the data's.
        let elements = serde_json::json!([
            {"event": "chaos.a", "properties": {"received_at": "x", "seq": 7, "pad": "xx"}},
            {"event": "chaos.a.poison", "properties": {"seq": 8, "pad": "xx"}},
            {"event": "chaos.no_seq", "properties": {"pad": "xx"}},
        ]);
        let data = STANDARD.encode(elements.to_string());
        let body = serde_urlencoded::to_string([("data", data)]).unwrap();
        assert_eq!(
            Format::Spade { run: 3 }.events(body.as_bytes()),
            [
                (event_id(3, 7), "chaos.a".to_owned()),
                (event_id(3, 8), "chaos.a.poison".to_owned())
            ]
        );
        assert!(Format::Spade { run: 3 }.events(b"data=%%%").is_empty());
    }

    #[test]
    fn poison_names_can_be_made_as_long_as_an_event_name_may_be() {
        let spec = poison_load("chaos.poison_amqp", PADDING, 230);
        let poison = spec.poison.as_ref().unwrap();
        assert_eq!(poison.name(&spec.name).len(), 255);
        assert!(poison.name(&spec.name).ends_with(".poison"));
        let plain = poison_load("chaos.p", PADDING, 0);
        assert_eq!(plain.poison.unwrap().name("chaos.p"), "chaos.p.poison");
    }
}
