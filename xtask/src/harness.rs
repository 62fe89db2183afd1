//! What `chaos` and `soak` share: the collector as a child process, a
//! paced load generator whose events carry ids chosen here (so every event
//! answered 202 can be looked for in the sink), a `/metrics` reader, and
//! PostgreSQL queries through `psql`.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// PostgreSQL as the runners use it (trust auth, database `test`).
pub(crate) const PG_ADDR: &str = "127.0.0.1:5432";
/// How to start PostgreSQL on the CI machines.
const PG_START: &str =
    "pg_ctlcluster --skip-systemctl-redirect \"$(ls /etc/postgresql)\" main start";

/// NATS with JetStream as the runners use it.
pub(crate) const NATS_ADDR: &str = "127.0.0.1:4222";
/// How to start NATS with JetStream on the CI machines.
const NATS_START: &str = "mkdir -p /var/lib/nats-server && start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log";
/// RabbitMQ as the runners use it (user `guest`, password `guest`).
pub(crate) const AMQP_ADDR: &str = "127.0.0.1:5672";
/// How to start RabbitMQ on the CI machines.
const AMQP_START: &str = "rabbitmq-server -detached";

/// The `[collector]` keys of durable mode with its log in `wal` (each on
/// its own line), or nothing for fast mode.
pub(crate) fn ack_keys(durable: bool, wal: &Path) -> String {
    if durable {
        format!("ack = \"durable\"\nwal_path = \"{}\"\n", wal.display())
    } else {
        String::new()
    }
}

/// A free port on loopback.
pub(crate) fn free_addr() -> Result<SocketAddr, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

/// Builds the release collector (`cargo build --release -p tidings-collector`)
/// and returns the binary's path; with `TIDINGS_BINARY` set, that binary
/// is used as it is.
pub(crate) fn release_binary(root: &Path) -> Result<PathBuf, String> {
    if let Some(binary) = std::env::var_os("TIDINGS_BINARY") {
        return Ok(PathBuf::from(binary));
    }
    crate::cargo(&["build", "--release", "-p", "tidings-collector"], &[])?;
    Ok(root.join("target/release/tidings"))
}

/// The `tidings` binary serving one config, its stderr kept in a log file.
pub(crate) struct Collector {
    child: Child,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// Its stderr (the tracing log).
    pub(crate) log: PathBuf,
}

impl Collector {
    /// Starts `binary serve --config config` (with `RUST_LOG` = `log_filter`)
    /// and waits until it listens on `addr`.
    pub(crate) fn start(
        binary: &Path,
        config: &Path,
        addr: SocketAddr,
        log: &Path,
        log_filter: &str,
    ) -> Result<Self, String> {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        // Relative paths of the config (the default dead-letter files)
        // land next to it.
        let mut child = Command::new(binary)
            .args(["serve", "--config"])
            .arg(config)
            .current_dir(config.parent().unwrap_or(Path::new(".")))
            .env("RUST_LOG", log_filter)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let started = Instant::now();
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "the collector exited at start ({status}); its log: {}\n{}",
                    log.display(),
                    tail(log)
                ));
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                return Err(format!(
                    "the collector did not listen on {addr} within 30 s"
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Self {
            child,
            addr,
            log: log.to_owned(),
        })
    }

    /// The child's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (such as `-KILL`, `-TERM`) with kill(1).
    pub(crate) fn signal(&self, signal: &str) -> Result<(), String> {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill {signal} {} failed", self.pid()))
        }
    }

    /// `kill -9`, then reaps the process.
    pub(crate) fn kill9(mut self) -> Result<(), String> {
        self.signal("-KILL")?;
        self.child.wait().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// SIGTERM, then waits for the drain to finish (at most `limit`);
    /// the peak RSS (KiB) it reached before the signal.
    pub(crate) fn terminate(self, limit: Duration) -> Result<Option<u64>, String> {
        let peak = self.peak_rss_kib();
        self.signal("-TERM")?;
        self.wait_exit(limit)?;
        Ok(peak)
    }

    /// Waits for the process to exit (at most `limit`, then kills it);
    /// fails unless it exited successfully.
    pub(crate) fn wait_exit(self, limit: Duration) -> Result<(), String> {
        match self.wait_status(limit)? {
            Some(0) => Ok(()),
            code => Err(format!("the collector exited with code {code:?}")),
        }
    }

    /// Waits for the process to exit (at most `limit`, then kills it); its
    /// exit code (`None`: killed by a signal).
    pub(crate) fn wait_status(mut self, limit: Duration) -> Result<Option<i32>, String> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(status.code());
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                return Err(format!("the collector did not exit within {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its peak resident set so far, in KiB (`VmHWM`).
    pub(crate) fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Its current resident set, in KiB (`VmRSS` of `/proc/PID/status`).
    pub(crate) fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Its `/metrics`, parsed.
    pub(crate) fn metrics(&self) -> Result<Metrics, String> {
        let mut connection = Connection::open(self.addr).map_err(|e| e.to_string())?;
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        let (status, body) = connection
            .request(request.as_bytes())
            .map_err(|e| format!("GET /metrics: {e}"))?;
        if status != 200 {
            return Err(format!("GET /metrics answered {status}"));
        }
        Ok(Metrics::parse(&String::from_utf8_lossy(&body)))
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last lines of a log file, for error messages.
pub(crate) fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// One keep-alive HTTP/1.1 connection.
pub(crate) struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    /// Connects to `addr`.
    pub(crate) fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends a prepared request; returns the status and the body.
    pub(crate) fn request(&mut self, request: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        self.writer.write_all(request)?;
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = 0usize;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
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
        self.reader.read_exact(&mut body)?;
        Ok((status, body))
    }
}

/// The id of event `seq` of run `run`: a UUID the collector keeps as the
/// event's id, so the sink's storage can be searched for it.
pub(crate) fn event_id(run: u32, seq: u64) -> String {
    format!(
        "{run:08x}-{:04x}-7{:03x}-8{:03x}-{:012x}",
        (seq >> 48) & 0xffff,
        (seq >> 36) & 0xfff,
        (seq >> 24) & 0xfff,
        seq & 0xff_ffff_ffff
    )
}

/// A run id: changes with every run, so ids never collide across runs.
pub(crate) fn run_id() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (nanos as u32) ^ std::process::id().rotate_left(16)
}

/// How the load generator sends.
#[derive(Debug, Clone)]
pub(crate) struct LoadSpec {
    /// The event name.
    pub(crate) name: String,
    /// Events per request.
    pub(crate) events_per_request: usize,
    /// Concurrent connections.
    pub(crate) connections: usize,
    /// Requests per second over all connections; `None`: as fast as possible.
    pub(crate) requests_per_second: Option<f64>,
    /// Bytes of padding in each event's data, to set the event size.
    pub(crate) padding: usize,
    /// Poison events among the others, if any.
    pub(crate) poison: Option<Poison>,
}

/// The poison events of a load: events some sinks are set up to refuse,
/// named `NAME.poison`, or too large or too long-named for a sink.
#[derive(Debug, Clone)]
pub(crate) struct Poison {
    /// Every this many events (by sequence number), one is poison.
    pub(crate) every: u64,
    /// Bytes of padding in a poison event's data (instead of the load's
    /// `padding`).
    pub(crate) padding: usize,
    /// Bytes of `x` in a poison event's name before `.poison`, as a token
    /// of their own (`NAME.xx….poison`); 0: the name is `NAME.poison`.
    pub(crate) name_padding: usize,
}

impl Poison {
    /// The name of a poison event of a load of events named `name`.
    pub(crate) fn name(&self, name: &str) -> String {
        if self.name_padding == 0 {
            format!("{name}.poison")
        } else {
            format!("{name}.{}.poison", "x".repeat(self.name_padding))
        }
    }
}

/// Whether the event `seq` of a load with `spec` is a poison one.
pub(crate) fn is_poison(spec: &LoadSpec, seq: u64) -> bool {
    spec.poison
        .as_ref()
        .is_some_and(|poison| seq % poison.every == poison.every - 1)
}

/// What the load generator saw.
#[derive(Debug, Default)]
pub(crate) struct LoadReport {
    /// Events in requests that were sent (whatever the answer).
    pub(crate) sent: u64,
    /// Ids of the events answered 202.
    pub(crate) accepted: Vec<u64>,
    /// Requests answered 503.
    pub(crate) busy: u64,
    /// Requests with no answer (connection refused or cut) or another status.
    pub(crate) failed: u64,
    /// Requests answered 202.
    pub(crate) requests: u64,
}

/// A running load generator.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    in_flight: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    accepted: Arc<AtomicU64>,
    workers: Vec<JoinHandle<LoadReport>>,
}

impl Load {
    /// Starts `spec.connections` threads posting to `addr`; they reconnect
    /// when the collector goes away and keep going until [`Load::stop`].
    pub(crate) fn start(addr: SocketAddr, run: u32, spec: &LoadSpec) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let in_flight = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let accepted = Arc::new(AtomicU64::new(0));
        let next_seq = Arc::new(AtomicU64::new(0));
        let interval = spec
            .requests_per_second
            .map(|rate| Duration::from_secs_f64(spec.connections as f64 / rate.max(0.001)));
        let workers = (0..spec.connections)
            .map(|index| {
                let (stop, paused, in_flight) = (stop.clone(), paused.clone(), in_flight.clone());
                let (sent, accepted, next_seq) = (sent.clone(), accepted.clone(), next_seq.clone());
                let spec = spec.clone();
                std::thread::spawn(move || {
                    let mut report = LoadReport::default();
                    let mut connection = None;
                    let mut next = Instant::now()
                        + interval.map_or(Duration::ZERO, |every| {
                            every * index as u32 / spec.connections as u32
                        });
                    let padding = "x".repeat(spec.padding);
                    let (poison_name, poison_padding) = spec.poison.as_ref().map_or_else(
                        Default::default,
                        |poison| (poison.name(&spec.name), "x".repeat(poison.padding)),
                    );
                    while !stop.load(Ordering::SeqCst) {
                        if paused.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(1));
                            next = Instant::now();
                            continue;
                        }
                        if let Some(every) = interval {
                            let now = Instant::now();
                            if next > now {
                                std::thread::sleep(next - now);
                            }
                            next += every;
                        }
                        in_flight.fetch_add(1, Ordering::SeqCst);
                        if paused.load(Ordering::SeqCst) {
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                            continue;
                        }
                        let first =
                            next_seq.fetch_add(spec.events_per_request as u64, Ordering::SeqCst);
                        let seqs = first..first + spec.events_per_request as u64;
                        let body = seqs
                            .clone()
                            .map(|seq| {
                                let (name, padding) = if is_poison(&spec, seq) {
                                    (&poison_name, &poison_padding)
                                } else {
                                    (&spec.name, &padding)
                                };
                                format!(
                                    r#"{{"id":"{}","name":"{name}","data":{{"seq":{seq},"pad":"{padding}"}}}}"#,
                                    event_id(run, seq),
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(",");
                        let request = format!(
                            "POST /events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n[{body}]",
                            body.len() + 2
                        );
                        report.sent += spec.events_per_request as u64;
                        sent.fetch_add(spec.events_per_request as u64, Ordering::SeqCst);
                        let answer = match connection.as_mut() {
                            Some(c) => Connection::request(c, request.as_bytes()),
                            None => match Connection::open(addr) {
                                Ok(c) => Connection::request(connection.insert(c), request.as_bytes()),
                                Err(e) => Err(e),
                            },
                        };
                        match answer {
                            Ok((202, _)) => {
                                report.requests += 1;
                                report.accepted.extend(seqs);
                                accepted.fetch_add(spec.events_per_request as u64, Ordering::SeqCst);
                            }
                            Ok((503, _)) => report.busy += 1,
                            Ok(_) => report.failed += 1,
                            Err(_) => {
                                report.failed += 1;
                                connection = None;
                                in_flight.fetch_sub(1, Ordering::SeqCst);
                                // The collector is down or restarting.
                                std::thread::sleep(Duration::from_millis(20));
                                continue;
                            }
                        }
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                    }
                    report
                })
            })
            .collect();
        Self {
            stop,
            paused,
            in_flight,
            sent,
            accepted,
            workers,
        }
    }

    /// Events sent and accepted so far.
    pub(crate) fn progress(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::SeqCst),
            self.accepted.load(Ordering::SeqCst),
        )
    }

    /// Stops sending new requests and waits for those in flight to be answered.
    pub(crate) fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        let started = Instant::now();
        while self.in_flight.load(Ordering::SeqCst) > 0
            && started.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Sends again after [`Load::pause`].
    pub(crate) fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    /// Stops every connection and merges their reports.
    pub(crate) fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        let mut total = LoadReport::default();
        for worker in self.workers {
            let report = worker.join().unwrap_or_default();
            total.sent += report.sent;
            total.accepted.extend(report.accepted);
            total.busy += report.busy;
            total.failed += report.failed;
            total.requests += report.requests;
        }
        total
    }
}

/// A parsed Prometheus text: `name{labels}` → value.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Metrics {
    samples: BTreeMap<String, f64>,
}

impl Metrics {
    /// Parses the text format (comments skipped).
    pub(crate) fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let (key, value) = l.rsplit_once(' ')?;
                Some((key.to_owned(), value.parse().ok()?))
            })
            .collect();
        Self { samples }
    }

    /// Events waiting in the delivery stage `backend`: queued, batched or
    /// being retried.
    pub(crate) fn waiting(&self, backend: &str) -> u64 {
        self.get("tidings_backend_queue_depth", &[("backend", backend)])
            + self.get("tidings_backend_buffered_events", &[("backend", backend)])
    }

    /// The value of `name` with exactly these labels (in the order the
    /// collector writes them), 0 when absent.
    pub(crate) fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let key = if labels.is_empty() {
            name.to_owned()
        } else {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{name}{{{}}}", labels.join(","))
        };
        self.samples.get(&key).copied().unwrap_or(0.0) as u64
    }

    /// The sum of every sample of `name` whose labels contain `filter`
    /// (such as `backend="intake"`).
    pub(crate) fn sum(&self, name: &str, filter: &str) -> u64 {
        self.samples
            .iter()
            .filter(|(k, _)| {
                k.split_once('{')
                    .is_some_and(|(n, labels)| n == name && labels.contains(filter))
            })
            .map(|(_, v)| *v as u64)
            .sum()
    }
}

/// The accounting of one sink, end to end, from one `/metrics` sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Accounting {
    /// The sink's stage (such as `backends.warehouse`).
    pub(crate) stage: String,
    /// Events answered 202 (`tidings_collector_events_accepted_total`).
    pub(crate) accepted: u64,
    /// Delivered by the sink.
    pub(crate) delivered: u64,
    /// Dropped anywhere on the way, by reason (`intake:shutdown`,
    /// `root:filtered`, `sink:queue_full`, …).
    pub(crate) dropped: BTreeMap<String, u64>,
    /// Still in the collector's queue or the sink's queue and batches.
    pub(crate) pending: u64,
}

/// The reasons of `tidings_backend_dropped_total` and
/// `tidings_backend_dead_lettered_total`.
const REASONS: [&str; 7] = [
    "queue_full",
    "too_large",
    "retries_exhausted",
    "non_retryable",
    "expired",
    "shutdown",
    "invalid",
];

impl Accounting {
    /// The invariant for the sink at `stage`, directly under the root router:
    /// every accepted event is delivered by it, dropped (by the collector's
    /// queue after acceptance, filtered by the root, or by the sink), or
    /// pending in the collector's queue or the sink.
    ///
    /// The collector's queue counts the events of requests it refused (503)
    /// as received and dropped (`queue_full`, or `shutdown` once closed), so
    /// those (what it received less what was accepted) are taken off its
    /// drops. (In durable mode a request refused before its append never
    /// reaches the queue; the same formula holds.)
    pub(crate) fn of(metrics: &Metrics, stage: &str) -> Self {
        let accepted = metrics.get("tidings_collector_events_accepted_total", &[]);
        let refused = metrics
            .get("tidings_backend_received_total", &[("backend", "intake")])
            .saturating_sub(accepted);
        let mut dropped = BTreeMap::new();
        let intake_dropped: u64 = REASONS
            .iter()
            .map(|r| {
                metrics.get(
                    "tidings_backend_dropped_total",
                    &[("backend", "intake"), ("reason", r)],
                )
            })
            .sum();
        dropped.insert(
            "intake (after 202)".to_owned(),
            intake_dropped.saturating_sub(refused),
        );
        dropped.insert(
            "root: filtered".to_owned(),
            metrics.get("tidings_router_filtered_total", &[("router", "root")]),
        );
        for reason in REASONS {
            dropped.insert(
                format!("sink: {reason}"),
                metrics.get(
                    "tidings_backend_dropped_total",
                    &[("backend", stage), ("reason", reason)],
                ),
            );
            // Given up on, but kept: in the sink's dead-letter file.
            dropped.insert(
                format!("sink: dead-lettered {reason}"),
                metrics.get(
                    "tidings_backend_dead_lettered_total",
                    &[("backend", stage), ("reason", reason)],
                ),
            );
        }
        Self {
            stage: stage.to_owned(),
            accepted,
            delivered: metrics.get("tidings_backend_delivered_total", &[("backend", stage)]),
            dropped,
            pending: metrics.waiting("intake") + metrics.waiting(stage),
        }
    }

    /// Dropped for every reason.
    pub(crate) fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }

    /// Whether accepted = delivered + dropped + pending.
    pub(crate) fn holds(&self) -> bool {
        self.accepted == self.delivered + self.dropped_total() + self.pending
    }

    /// A one-line account, such as `accepted 10 = delivered 7 + dropped 2 (sink: queue_full 2) + pending 1`.
    pub(crate) fn describe(&self) -> String {
        let reasons: Vec<String> = self
            .dropped
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        format!(
            "{}: accepted {} {} delivered {} + dropped {} ({}) + pending {}",
            self.stage,
            self.accepted,
            if self.holds() { "=" } else { "≠" },
            self.delivered,
            self.dropped_total(),
            if reasons.is_empty() {
                "none".to_owned()
            } else {
                reasons.join(", ")
            },
            self.pending
        )
    }
}

/// Pauses `load`, then reads `/metrics` until two reads 20 ms apart agree
/// (a quiet point: no event between two counters), and resumes. Returns
/// the quiet sample, or the last one read if none was quiet within 5 s.
pub(crate) fn quiet_sample(collector: &Collector, load: &Load) -> Result<(Metrics, bool), String> {
    load.pause();
    let result = (|| {
        let mut last = collector.metrics()?;
        let started = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let now = collector.metrics()?;
            if same_accounting(&last, &now) {
                return Ok((now, true));
            }
            if started.elapsed() > Duration::from_secs(5) {
                return Ok((now, false));
            }
            last = now;
        }
    })();
    load.resume();
    result
}

/// Whether two samples agree on every counter of the accounting (the
/// request counters differ by the `/metrics` requests themselves).
fn same_accounting(a: &Metrics, b: &Metrics) -> bool {
    let relevant = |m: &Metrics| -> Vec<(String, f64)> {
        m.samples
            .iter()
            .filter(|(k, _)| {
                !k.starts_with("tidings_collector_requests_total")
                    && !k.starts_with("tidings_backend_retried_total")
            })
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    relevant(a) == relevant(b)
}

/// Fails with the service's name and how to start it when nothing listens at `addr`.
pub(crate) fn require_service(name: &str, addr: &str, how_to_start: &str) -> Result<(), String> {
    let socket: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    TcpStream::connect_timeout(&socket, Duration::from_secs(2))
        .map(drop)
        .map_err(|e| {
            format!("{name} is not reachable at {addr} ({e}); start it with: {how_to_start}")
        })
}

/// Runs one SQL text with `psql` against the `test` database; returns its
/// unaligned output.
pub(crate) fn psql(sql: &str) -> Result<String, String> {
    let output = Command::new("psql")
        .env("PGOPTIONS", "-c client_min_messages=warning")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "5432",
            "-U",
            "postgres",
            "-d",
            "test",
            "-v",
            "ON_ERROR_STOP=1",
            "-qAt",
            "-c",
            sql,
        ])
        .output()
        .map_err(|e| {
            format!("cannot run psql ({e}); install the PostgreSQL client: apt-get install -y postgresql-client")
        })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "psql failed on {sql:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Checks that PostgreSQL is up and `psql` works.
pub(crate) fn require_postgres() -> Result<(), String> {
    require_service("PostgreSQL", PG_ADDR, PG_START)?;
    psql("SELECT 1").map(drop)
}

/// Checks that NATS answers (the poison fault checks JetStream itself).
pub(crate) fn require_nats() -> Result<(), String> {
    require_service("NATS (with JetStream)", NATS_ADDR, NATS_START)
}

/// Checks that RabbitMQ answers.
pub(crate) fn require_rabbitmq() -> Result<(), String> {
    require_service("RabbitMQ", AMQP_ADDR, AMQP_START)
}

/// A PostgreSQL table for the sink, in the sink's schema, with a second
/// table recording every row the sink's `INSERT … ON CONFLICT DO NOTHING`
/// proposed (a `BEFORE INSERT` trigger fires for conflicting rows too), so
/// the duplicates the sink removed can be counted from the database.
pub(crate) struct PgTable {
    /// The table's name.
    pub(crate) name: String,
}

impl PgTable {
    /// Creates (or re-creates) `name`, `name_attempts` and the trigger.
    pub(crate) fn create(name: &str) -> Result<Self, String> {
        psql(&format!(
            "DROP TABLE IF EXISTS {name}; DROP TABLE IF EXISTS {name}_attempts; \
             CREATE TABLE {name} (id uuid PRIMARY KEY, name text NOT NULL, \
             \"timestamp\" timestamptz NOT NULL, received_at timestamptz, \
             context jsonb NOT NULL, data jsonb NOT NULL); \
             CREATE TABLE {name}_attempts (id uuid NOT NULL); \
             CREATE OR REPLACE FUNCTION {name}_count() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN INSERT INTO {name}_attempts VALUES (NEW.id); RETURN NEW; END $$; \
             CREATE TRIGGER {name}_count BEFORE INSERT ON {name} \
             FOR EACH ROW EXECUTE FUNCTION {name}_count();"
        ))?;
        Ok(Self {
            name: name.to_owned(),
        })
    }

    /// The ids stored.
    pub(crate) fn ids(&self) -> Result<HashSet<String>, String> {
        Ok(psql(&format!("SELECT id FROM {}", self.name))?
            .lines()
            .map(str::to_owned)
            .collect())
    }

    /// Rows stored.
    pub(crate) fn count(&self) -> Result<u64, String> {
        psql(&format!("SELECT count(*) FROM {}", self.name))?
            .trim()
            .parse()
            .map_err(|e| format!("count of {}: {e}", self.name))
    }

    /// Rows proposed minus rows stored: the duplicates `ON CONFLICT` removed.
    pub(crate) fn duplicates(&self) -> Result<u64, String> {
        let attempts: u64 = psql(&format!("SELECT count(*) FROM {}_attempts", self.name))?
            .trim()
            .parse()
            .map_err(|e| format!("count of {}_attempts: {e}", self.name))?;
        Ok(attempts.saturating_sub(self.count()?))
    }

    /// Drops the tables and the trigger function.
    pub(crate) fn drop_all(&self) -> Result<(), String> {
        psql(&format!(
            "DROP TABLE IF EXISTS {0}; DROP TABLE IF EXISTS {0}_attempts; DROP FUNCTION IF EXISTS {0}_count();",
            self.name
        ))
        .map(drop)
    }
}

/// A shared list, poison-proof.
pub(crate) fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_service_is_named_with_how_to_start_it() {
        let closed = free_addr().unwrap().to_string(); // nothing listens there now
        let error = require_service("PostgreSQL", &closed, PG_START).unwrap_err();
        assert!(
            error.starts_with(&format!("PostgreSQL is not reachable at {closed}"))
                && error.contains("pg_ctlcluster"),
            "{error}"
        );
    }

    #[test]
    fn event_ids_are_distinct_version_7_uuids() {
        let a = event_id(0xdead_beef, 1);
        let b = event_id(0xdead_beef, 1 << 40);
        assert_ne!(a, b);
        for id in [&a, &b] {
            let groups: Vec<&str> = id.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12]
            );
            assert!(
                groups[2].starts_with('7') && groups[3].starts_with('8'),
                "{id}"
            );
        }
    }

    #[test]
    fn the_accounting_takes_refused_requests_off_the_collectors_drops() {
        // 100 events decoded, 90 accepted (one request of 10 refused with
        // 503, counted by the intake as received and dropped); 5 dropped
        // by the intake after their 202 (shutdown); of the 85 handed on,
        // the sink delivered 60, dropped 20 and holds 5.
        let text = r#"
# HELP tidings_collector_events_received_total Events decoded from requests.
tidings_collector_events_received_total 100
tidings_collector_events_accepted_total 90
tidings_backend_received_total{backend="intake"} 100
tidings_backend_dropped_total{backend="intake",reason="queue_full"} 10
tidings_backend_dropped_total{backend="intake",reason="shutdown"} 5
tidings_router_filtered_total{router="root"} 0
tidings_backend_delivered_total{backend="backends.s"} 60
tidings_backend_dropped_total{backend="backends.s",reason="queue_full"} 15
tidings_backend_dropped_total{backend="backends.s",reason="retries_exhausted"} 5
tidings_backend_queue_depth{backend="backends.s"} 3
tidings_backend_buffered_events{backend="backends.s"} 2
"#;
        let account = Accounting::of(&Metrics::parse(text), "backends.s");
        assert_eq!(account.accepted, 90);
        assert_eq!(account.delivered, 60);
        assert_eq!(account.dropped_total(), 25);
        assert_eq!(account.pending, 5);
        assert!(account.holds(), "{}", account.describe());

        let lost_one = text.replace(
            "delivered_total{backend=\"backends.s\"} 60",
            "delivered_total{backend=\"backends.s\"} 59",
        );
        let account = Accounting::of(&Metrics::parse(&lost_one), "backends.s");
        assert!(!account.holds());
        assert!(account.describe().contains('≠'), "{}", account.describe());

        // Durable mode: the refused request never reached the intake.
        let durable = text
            .replace(
                "received_total{backend=\"intake\"} 100",
                "received_total{backend=\"intake\"} 90",
            )
            .replace(
                "{backend=\"intake\",reason=\"queue_full\"} 10",
                "{backend=\"intake\",reason=\"queue_full\"} 0",
            );
        let account = Accounting::of(&Metrics::parse(&durable), "backends.s");
        assert!(account.holds(), "{}", account.describe());
    }
}
