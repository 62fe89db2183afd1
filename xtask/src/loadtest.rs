//! `cargo xtask loadtest`: drives the release `tidings` binary (with a gzip
//! file sink) from this process over loopback and reports requests/s,
//! events/s, latency percentiles and the collector's peak RSS.
//!
//! Phases: single-event requests as fast as possible; batches of 100 events
//! as fast as possible, on `/events` and then as Segment batches of 100
//! messages on `/v1/batch` (the same events in Segment's shape, as its
//! libraries send them); single-event requests at half the first phase's
//! rate (paced, for latency). Every run ends by checking that each accepted
//! event is in the files.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Connections of the closed-loop phases.
const CONNECTIONS: usize = 16;

/// One keep-alive HTTP/1.1 connection.
struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends one prepared request and returns the response status.
    fn request(&mut self, request: &[u8]) -> std::io::Result<u16> {
        self.writer.write_all(request)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
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
        Ok(status)
    }
}

/// A prepared request and the events it carries.
struct Load {
    request: Vec<u8>,
    events: usize,
}

/// `events` native events to `/events` (one object, or an array).
fn events_request(addr: SocketAddr, events: usize) -> Load {
    let one = r#"{"name":"navigation.request","data":{"url":"http://www.edx.org/some/path/1","button_text":"Enroll now","depth":3},"context":{"user_id":10938,"session_id":"2987lkjdyoioey"}}"#;
    let body = if events == 1 {
        one.to_owned()
    } else {
        format!("[{}]", vec![one; events].join(","))
    };
    Load {
        request: post(addr, "/events", &body),
        events,
    }
}

/// A Segment batch of `messages` track calls to `/v1/batch`: the events of
/// [`events_request`] as `segment-analytics-python` sends them (a
/// `messageId`, a `timestamp`, the library in `context`, a `sentAt`).
fn segment_request(addr: SocketAddr, messages: usize) -> Load {
    let one = r#"{"type":"track","event":"navigation.request","userId":"10938","properties":{"url":"http://www.edx.org/some/path/1","button_text":"Enroll now","depth":3},"context":{"session_id":"2987lkjdyoioey","library":{"name":"analytics-python","version":"2.4.0"}},"integrations":{},"messageId":"0b4c5e2e-1f0a-4c1e-9d6f-2b8a3c4d5e6f","timestamp":"2026-12-03T12:00:00.000+00:00"}"#;
    let body = format!(
        r#"{{"batch":[{}],"sentAt":"2026-12-03T12:00:00.100+00:00"}}"#,
        vec![one; messages].join(",")
    );
    Load {
        request: post(addr, "/v1/batch", &body),
        events: messages,
    }
}

fn post(addr: SocketAddr, path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What one phase measured.
struct Phase {
    name: String,
    requests: usize,
    events: usize,
    /// The bytes of each request (head and body).
    request_bytes: usize,
    /// 503 answers (back-pressure: the sinks were behind).
    busy: usize,
    /// Any other failure.
    failed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Phase {
    fn percentile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies[((self.latencies.len() as f64 * q) as usize).min(self.latencies.len() - 1)]
    }

    fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }

    /// Accepted request bytes per second, in MB.
    fn megabytes_per_second(&self) -> f64 {
        (self.requests * self.request_bytes) as f64 / self.elapsed.as_secs_f64() / 1e6
    }
}

/// Runs `connections` loops for `duration`, each sending `load`'s request
/// back to back, or every `interval` when paced.
fn run_phase(
    name: &str,
    addr: SocketAddr,
    connections: usize,
    load: Load,
    duration: Duration,
    interval: Option<Duration>,
) -> Phase {
    let events = load.events;
    let request_bytes = load.request.len();
    let request = Arc::new(load.request);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|index| {
            let (request, stop) = (request.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut connection = Connection::open(addr).expect("connect to the collector");
                let mut latencies = Vec::with_capacity(1 << 16);
                let mut busy = 0;
                let mut failed = 0;
                // Spread paced connections over the interval.
                let offset = interval.map_or(Duration::ZERO, |every| {
                    every * index as u32 / connections as u32
                });
                let mut next = Instant::now() + offset;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(interval) = interval {
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                        next += interval;
                    }
                    let sent = Instant::now();
                    match connection.request(&request) {
                        // 202 on `/events`, 200 on Segment's routes.
                        Ok(200 | 202) => latencies.push(sent.elapsed()),
                        Ok(503) => busy += 1,
                        Ok(_) => failed += 1,
                        Err(_) => {
                            failed += 1;
                            match Connection::open(addr) {
                                Ok(fresh) => connection = fresh,
                                Err(_) => break,
                            }
                        }
                    }
                }
                (latencies, busy, failed)
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let (mut busy, mut failed) = (0, 0);
    for worker in workers {
        let (l, b, f) = worker.join().expect("load worker");
        latencies.extend(l);
        busy += b;
        failed += f;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Phase {
        name: name.to_owned(),
        requests: latencies.len(),
        events: latencies.len() * events,
        request_bytes,
        busy,
        failed,
        elapsed,
        latencies,
    }
}

fn free_addr() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn count_lines(dir: &Path) -> std::io::Result<usize> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.to_string_lossy().into_owned();
        if !name.ends_with(".jsonl.gz") {
            continue;
        }
        // `zcat` reads multi-member gzip, as the file sink writes it.
        let output = Command::new("zcat").arg(&path).output()?;
        total += output.stdout.iter().filter(|&&b| b == b'\n').count();
    }
    Ok(total)
}

fn wait_for_port(addr: SocketAddr, child: &mut Child) -> Result<(), String> {
    let started = Instant::now();
    while TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the collector exited early: {status}"));
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err("the collector did not start listening".to_owned());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Runs the load test; `seconds` per phase; `durable`: with `ack =
/// "durable"` (every 202 waits for the write-ahead log's fsync); once per
/// `when_full` policy of the file sink (`""`: the config's default,
/// backpressure), each against a fresh collector, then compares their
/// single-event rates.
pub(crate) fn loadtest(
    root: &Path,
    seconds: u64,
    durable: bool,
    policies: &[String],
) -> Result<(), String> {
    let binary = crate::harness::release_binary(root)?;
    println!("ack mode: {}", if durable { "durable" } else { "fast" });
    let mut rates = Vec::new();
    for policy in policies {
        let name = if policy.is_empty() {
            "default (backpressure)"
        } else {
            policy
        };
        println!(
            "
== when_full: {name}"
        );
        let single = run_once(&binary, seconds, durable, policy)?;
        rates.push((name.to_owned(), single));
    }
    if let [(first, base), rest @ ..] = &rates[..]
        && !rest.is_empty()
    {
        println!(
            "
| when_full of the sink | single-event requests/s | vs {first} |
|---|---:|---:|"
        );
        for (name, rate) in &rates {
            println!(
                "| {name} | {rate:.0} | {:+.1}% |",
                (rate / base - 1.0) * 100.0
            );
        }
    }
    Ok(())
}

/// One collector under the three phases; its single-event rate.
fn run_once(binary: &Path, seconds: u64, durable: bool, when_full: &str) -> Result<f64, String> {
    let work = std::env::temp_dir().join(format!("tidings-loadtest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let addr = free_addr().map_err(|e| e.to_string())?;
    let config = work.join("loadtest.toml");
    let data = work.join("data");
    let ack = crate::harness::ack_keys(durable, &work.join("wal"));
    let when_full = if when_full.is_empty() {
        String::new()
    } else {
        format!("when_full = \"{when_full}\"\n")
    };
    std::fs::write(
        &config,
        format!(
            "[collector]\nlisten = \"{addr}\"\nqueue_capacity = 10000\n{ack}\n[backends.files]\ntype = \"file\"\npath = \"{}\"\nroll_events = 100000\nroll_seconds = 60\ngzip = true\nmax_events = 1000\nqueue_capacity = 10000\n{when_full}dead_letter = \"none\"\n",
            data.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let mut child = Command::new(binary)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the collector: {e}"))?;
    wait_for_port(addr, &mut child)?;
    let phase_time = Duration::from_secs(seconds);
    // Warm up connections, allocator and file.
    run_phase(
        "warm-up",
        addr,
        4,
        events_request(addr, 1),
        Duration::from_millis(500),
        None,
    );
    let single = run_phase(
        "single events, max rate",
        addr,
        CONNECTIONS,
        events_request(addr, 1),
        phase_time,
        None,
    );
    let batched = run_phase(
        "batches of 100, max rate",
        addr,
        CONNECTIONS / 2,
        events_request(addr, 100),
        phase_time,
        None,
    );
    let segment = run_phase(
        "Segment /v1/batch of 100, max rate",
        addr,
        CONNECTIONS / 2,
        segment_request(addr, 100),
        phase_time,
        None,
    );
    let half_rate = single.requests_per_second() / 2.0;
    let paced_connections = CONNECTIONS;
    let interval = Duration::from_secs_f64(paced_connections as f64 / half_rate.max(1.0));
    let paced = run_phase(
        &format!("single events at {half_rate:.0}/s (half max)"),
        addr,
        paced_connections,
        events_request(addr, 1),
        phase_time,
        Some(interval),
    );
    let rss = peak_rss_kib(child.id());
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let exit = child.wait().map_err(|e| e.to_string())?;

    let accepted: usize = [&single, &batched, &segment, &paced]
        .iter()
        .map(|p| p.events)
        .sum::<usize>();
    let written = count_lines(&data).map_err(|e| e.to_string())?;
    println!(
        "\n| phase | accepted requests/s | accepted events/s | p50 | p99 | 503 (busy) | failed |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for phase in [&single, &batched, &segment, &paced] {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} ms | {:.2} ms | {} | {} |",
            phase.name,
            phase.requests_per_second(),
            phase.events_per_second(),
            phase.percentile(0.50).as_secs_f64() * 1e3,
            phase.percentile(0.99).as_secs_f64() * 1e3,
            phase.busy,
            phase.failed
        );
    }
    println!(
        "\ncollector peak RSS: {} MiB; exit: {exit}; events accepted (after warm-up): {accepted}; lines in files (warm-up included): {written}",
        rss.map_or_else(
            || "unknown".to_owned(),
            |kib| format!("{:.1}", kib as f64 / 1024.0)
        ),
    );
    println!(
        "Segment batches: {:.0} events/s, {:.0}% of /events batches' {:.0} events/s; \
         {:.1} MB/s of requests, {:.0}% of their {:.1} MB/s (a Segment message is larger)",
        segment.events_per_second(),
        segment.events_per_second() / batched.events_per_second().max(1.0) * 100.0,
        batched.events_per_second(),
        segment.megabytes_per_second(),
        segment.megabytes_per_second() / batched.megabytes_per_second().max(0.001) * 100.0,
        batched.megabytes_per_second()
    );
    let failed: usize = [&single, &batched, &segment, &paced]
        .iter()
        .map(|p| p.failed)
        .sum();
    if failed > 0 {
        return Err(format!("{failed} requests failed (other than 503)"));
    }
    // Dropped by the file sink's `when_full`, if it drops: not in the files.
    let dropped = if written < accepted && !when_full.is_empty() {
        accepted - written
    } else {
        0
    };
    if dropped > 0 {
        println!("{dropped} accepted events dropped by the sink's {when_full}");
    } else if written < accepted {
        return Err(format!(
            "{} accepted events are missing from the files",
            accepted - written
        ));
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(single.requests_per_second())
}
