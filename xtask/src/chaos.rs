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
//!   [`CuttableProxy`] for 60 s (`TIDINGS_CHAOS_BLACKHOLE_SECONDS`), then
//!   restored: nothing lost, delivery resumes within 1 s (measured).
//! - `retry-after`: an HTTP JSON sink whose receiver (a server in this
//!   process) answers 503 with `Retry-After: 2` for 6 s.
//! - `disk-full`: the file sink on a 2 MiB tmpfs (or loop-mounted ext4
//!   image) filled up, then freed: the error is logged, no line is
//!   corrupt, and delivery recovers.
//! - `wal-disk-full`: the same for durable mode's write-ahead log: while
//!   its disk is full requests are refused with 503, nothing answered 202
//!   is lost, and 202s resume when space returns.
//! - `sigterm`: SIGTERM during a burst: every 202 is delivered by the drain.
//!
//! Every event carries an id chosen here, so each one answered 202 is
//! looked for in the sink: PostgreSQL rows (a trigger counts the rows
//! `ON CONFLICT DO NOTHING` removed as duplicates), the HTTP receiver's
//! record, or the file sink's lines.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidings_test::CuttableProxy;

use crate::harness::{
    Collector, Load, LoadReport, LoadSpec, PG_ADDR, PgTable, ack_keys, event_id, free_addr, locked,
    release_binary, require_postgres, run_id, tail,
};

/// Every fault, in the order they run.
const FAULTS: [&str; 6] = [
    "kill9",
    "blackhole",
    "retry-after",
    "disk-full",
    "wal-disk-full",
    "sigterm",
];

/// The default length of the black-hole.
const BLACKHOLE_SECONDS: u64 = 60;

/// The log filter of the collector: the default's (a sink's first failed
/// attempt of a streak is a warning, which the disk-full faults look for).
const LOG_FILTER: &str = "info";

/// The queue keys of every sink here: a full sink queue makes the
/// collector's queue wait (up to a minute), so that a burst is refused at
/// the door with 503 instead of dropped after its 202 (`drop_newest`, the
/// default, drops it and counts it as `queue_full`).
const LOSSLESS: &str = "when_full = \"block\"\nblock_timeout_ms = 60000";

/// One line of the report.
#[derive(Debug, Default)]
struct Row {
    fault: String,
    sent: u64,
    accepted: u64,
    delivered: u64,
    duplicates: u64,
    lost: u64,
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
        let text = format!(
            "[collector]\nlisten = \"{addr}\"\nqueue_capacity = 10000\nshutdown_timeout_ms = 30000\n{collector}\n{backends}"
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
        "[backends.warehouse]\ntype = \"postgres\"\nurl = \"host=127.0.0.1 port={port} user=postgres dbname=test\"\ntable = \"{table}\"\nconnect_timeout_ms = 1000\nstatement_timeout_ms = 5000\nmax_events = {max_events}\nflush_interval_ms = 100\n{LOSSLESS}\nretry = {{ max_attempts = 100000, initial_backoff_ms = 50, max_backoff_ms = 500, max_batch_age_seconds = 600 }}\n{extra}\n"
    )
}

/// Paced load: `rate` events/s in requests of 10 events over `connections`.
fn paced(name: &str, rate: f64, connections: usize) -> LoadSpec {
    LoadSpec {
        name: name.to_owned(),
        events_per_request: 10,
        connections,
        requests_per_second: Some(rate / 10.0),
        padding: 64,
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
    if faults
        .iter()
        .any(|f| ["kill9", "blackhole", "sigterm"].contains(f))
    {
        require_postgres()?;
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
            _ => unreachable!("checked above"),
        };
        rows.push(result);
    }
    println!(
        "\n| fault | events sent | accepted (202) | delivered (distinct ids in the sink) | duplicates removed | lost | notes |\n|---|---:|---:|---:|---:|---:|---|"
    );
    let mut failed = Vec::new();
    for row in &rows {
        match row {
            Ok(row) => {
                let mut notes = row.notes.clone();
                notes.extend(row.failures.iter().map(|f| format!("FAILED: {f}")));
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    row.fault,
                    row.sent,
                    row.accepted,
                    row.delivered,
                    row.duplicates,
                    row.lost,
                    notes.join("; ")
                );
                if row.failed() {
                    failed.push(row.fault.clone());
                }
            }
            Err(error) => {
                println!("| (error) | | | | | | {error} |");
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
    collector.terminate(Duration::from_secs(60))?;
    let mut row = Row {
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
        &postgres_backend(&table.name, proxy.port(), 100, "queue_capacity = 50000"),
    )?;
    let collector = context.start(&config, addr, "blackhole")?;
    let stage = "backends.warehouse";
    let load = Load::start(addr, context.run, &paced("chaos.blackhole", 200.0, 2));
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
    collector.terminate(Duration::from_secs(60))?;
    let mut row = Row {
        fault: format!("PostgreSQL black-holed {} s, restored", outage.as_secs()),
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

/// The receiver of the `retry-after` fault: answers 503 with `Retry-After`
/// while `unavailable`, else 200, recording the ids of what it accepted.
struct Receiver {
    addr: SocketAddr,
    unavailable: AtomicBool,
    ids: Mutex<Vec<String>>,
    /// When each request answered 503 arrived.
    refused: Mutex<Vec<Instant>>,
    /// When the first request answered 200 after an outage arrived.
    first_ok: Mutex<Option<Instant>>,
    requests: AtomicU64,
}

/// Seconds of `Retry-After` the receiver asks for.
const RETRY_AFTER_SECONDS: u64 = 2;

impl Receiver {
    fn start() -> Result<Arc<Self>, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("cannot bind the receiver: {e}"))?;
        let receiver = Arc::new(Self {
            addr: listener.local_addr().map_err(|e| e.to_string())?,
            unavailable: AtomicBool::new(false),
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
            let answer = if self.unavailable.load(Ordering::SeqCst) {
                locked(&self.refused).push(Instant::now());
                format!(
                    "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {RETRY_AFTER_SECONDS}\r\nContent-Length: 0\r\n\r\n"
                )
            } else {
                let events: Vec<serde_json::Value> =
                    serde_json::from_slice(&body).unwrap_or_default();
                let mut ids = locked(&self.ids);
                ids.extend(
                    events
                        .iter()
                        .filter_map(|e| e.get("id")?.as_str().map(str::to_owned)),
                );
                drop(ids);
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
    let config = context.config(
        "retry-after",
        addr,
        "",
        &format!(
            "[backends.receiver]\ntype = \"http\"\nurl = \"http://{}/ingest\"\nmax_events = 100\nflush_interval_ms = 100\n{LOSSLESS}\nretry = {{ max_attempts = 100000, initial_backoff_ms = 50, max_backoff_ms = 500 }}\n",
            receiver.addr
        ),
    )?;
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
    collector.terminate(Duration::from_secs(60))?;
    let ids = locked(&receiver.ids).clone();
    let distinct: HashSet<String> = ids.iter().cloned().collect();
    let mut row = Row {
        fault: format!("HTTP receiver 503 + Retry-After: {RETRY_AFTER_SECONDS} for 6 s"),
        ..Row::default()
    };
    account(&mut row, &report, context.run, &distinct);
    row.duplicates = (ids.len() - distinct.len()) as u64;
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
            "[backends.files]\ntype = \"file\"\npath = \"{}\"\nroll_events = 500\nroll_seconds = 2\nmax_events = 100\nflush_interval_ms = 100\n{LOSSLESS}\nretry = {{ max_attempts = 100000, initial_backoff_ms = 50, max_backoff_ms = 500 }}\n",
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
    collector.terminate(Duration::from_secs(60))?;

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
    collector.terminate(Duration::from_secs(60))?;
    let log_path = context.work.join("wal-disk-full.log");
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let mut row = Row {
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
        &postgres_backend(&table.name, 5432, 1000, "queue_capacity = 100000"),
    )?;
    let collector = context.start(&config, addr, "sigterm")?;
    let burst = LoadSpec {
        name: "chaos.sigterm".to_owned(),
        events_per_request: 100,
        connections: 8,
        requests_per_second: None,
        padding: 64,
    };
    let load = Load::start(addr, context.run, &burst);
    std::thread::sleep(Duration::from_secs(2));
    let m = collector.metrics()?;
    let pending = m.get("tidings_collector_queue_depth", &[]) + m.waiting("backends.warehouse");
    collector.signal("-TERM")?;
    let signalled = Instant::now();
    // The burst goes on against the stopping collector.
    let drained = collector.wait_exit(Duration::from_secs(60));
    let drain_time = signalled.elapsed();
    let report = load.stop();
    drained?;
    let mut row = Row {
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
