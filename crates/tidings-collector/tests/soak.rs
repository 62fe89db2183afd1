//! A short soak of the `tidings` binary (the long one is `cargo xtask
//! soak`): requests against a collector whose one sink is black-holed (an
//! HTTP sink behind a `CuttableProxy` that refuses every connection) next
//! to a healthy file sink. At a quiet point after every round it checks,
//! from `/metrics`, accepted = delivered + dropped (by reason) + pending for
//! each sink, and that the collector's RSS stays within what its queues may
//! hold. It runs in fast and in durable ack mode. No timing is asserted.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tidings_test::CuttableProxy;

/// Events each queue (the collector's, each sink's) may hold.
const CAPACITY: u64 = 500;
/// Most events in a batch.
const MAX_EVENTS: u64 = 50;
/// Padding of each event's data: events of about 4.2 KiB, so that what is
/// sent (`ROUNDS × REQUESTS × 10` events, about 100 MiB) is well over the
/// memory budget (about 85 MiB with the debug binary's 27 MiB at start):
/// keeping what the black-holed sink cannot deliver would break it.
const PADDING: usize = 4096;
/// Rounds of requests, each followed by a quiet-point check.
const ROUNDS: usize = 60;
/// Requests of 10 events per round, on one keep-alive connection.
const REQUESTS: usize = 40;
/// Memory allowed per event a queue or batch may hold (the event is about
/// 4.2 KiB on the wire).
const EVENT_BUDGET_KIB: u64 = 6;
/// Allowed on top of the RSS before load: allocator caches, buffers.
const SLACK_KIB: u64 = 48 * 1024;

struct Tidings(Child);

impl Drop for Tidings {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Tidings {
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

/// One HTTP/1.1 exchange on a keep-alive connection; the status and body.
fn exchange(stream: &mut BufReader<TcpStream>, request: &[u8]) -> (u16, String) {
    stream.get_mut().write_all(request).unwrap();
    let mut line = String::new();
    stream.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut length = 0;
    loop {
        line.clear();
        stream.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).unwrap();
    (status, String::from_utf8(body).unwrap())
}

fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(addr).unwrap())
}

/// `/metrics` as `name{labels}` → value, without the request counters
/// (which the scrapes themselves move).
fn metrics(addr: SocketAddr) -> BTreeMap<String, u64> {
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let (status, text) = exchange(&mut connect(addr), request.as_bytes());
    assert_eq!(status, 200);
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("tidings_collector_requests_total"))
        .filter(|l| !l.starts_with("tidings_backend_retried_total"))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Reads `/metrics` until two reads agree: no event is between two counters.
fn quiet_metrics(addr: SocketAddr) -> BTreeMap<String, u64> {
    let started = Instant::now();
    let mut last = metrics(addr);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = metrics(addr);
        if now == last {
            return now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the counters never stood still"
        );
        last = now;
    }
}

fn get(m: &BTreeMap<String, u64>, key: &str) -> u64 {
    m.get(key).copied().unwrap_or(0)
}

const REASONS: [&str; 7] = [
    "queue_full",
    "too_large",
    "retries_exhausted",
    "non_retryable",
    "expired",
    "shutdown",
    "invalid",
];

fn dropped(m: &BTreeMap<String, u64>, backend: &str) -> u64 {
    REASONS
        .iter()
        .map(|r| {
            get(
                m,
                &format!("tidings_backend_dropped_total{{backend=\"{backend}\",reason=\"{r}\"}}"),
            )
        })
        .sum()
}

fn pending(m: &BTreeMap<String, u64>, backend: &str) -> u64 {
    get(
        m,
        &format!("tidings_backend_queue_depth{{backend=\"{backend}\"}}"),
    ) + get(
        m,
        &format!("tidings_backend_buffered_events{{backend=\"{backend}\"}}"),
    )
}

/// accepted, and delivered + dropped + pending, for the sink at `stage`.
fn accounting(m: &BTreeMap<String, u64>, stage: &str) -> (u64, u64) {
    let accepted = get(m, "tidings_collector_events_accepted_total");
    // The collector's queue counts the events of requests it refused as
    // received and dropped; only its drops after a 202 count here. (In
    // durable mode a request refused before its append never reaches it.)
    let refused = get(m, "tidings_backend_received_total{backend=\"intake\"}") - accepted;
    let intake_dropped = dropped(m, "intake") - refused;
    let filtered = get(m, "tidings_router_filtered_total{router=\"root\"}");
    let delivered = get(
        m,
        &format!("tidings_backend_delivered_total{{backend=\"{stage}\"}}"),
    );
    (
        accepted,
        delivered
            + dropped(m, stage)
            + intake_dropped
            + filtered
            + pending(m, "intake")
            + pending(m, stage),
    )
}

/// The black-holed sink declared fire-and-forget: it drops what it cannot
/// hold, counted.
const LOSSY: &str = "when_full = \"drop_newest\"\n";

#[test]
fn a_black_holed_sink_keeps_the_accounting_exact_and_memory_bounded() {
    soak("fast", "", LOSSY);
}

#[test]
fn a_black_holed_sink_keeps_the_accounting_exact_and_memory_bounded_in_durable_mode() {
    let wal = std::env::temp_dir().join(format!("tidings-soak-test-wal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&wal);
    soak(
        "durable",
        &format!(
            "ack = \"durable\"\nwal_path = {:?}\n",
            wal.display().to_string()
        ),
        LOSSY,
    );
    let _ = std::fs::remove_dir_all(&wal);
}

#[test]
fn by_default_a_black_holed_sink_pushes_back_to_the_door_and_drops_nothing() {
    soak("backpressure", "", "");
}

/// The soak with `collector_keys` in `[collector]` and `blackhole_keys` in
/// the black-holed sink's table; `mode` names its files.
fn soak(mode: &str, collector_keys: &str, blackhole_keys: &str) {
    let proxy = CuttableProxy::start("127.0.0.1:9");
    proxy.cut();
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("tidings-soak-test-{mode}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("soak.toml");
    std::fs::write(
        &config,
        format!(
            "[collector]\nlisten = \"{addr}\"\nqueue_capacity = {CAPACITY}\n{collector_keys}\n\
             [backends.files]\ntype = \"file\"\npath = \"{}\"\nroll_events = 100000\n\
             queue_capacity = {CAPACITY}\nmax_events = {MAX_EVENTS}\nflush_interval_ms = 50\n\n\
             [backends.blackhole]\ntype = \"http\"\nurl = \"http://127.0.0.1:{}/ingest\"\n\
             queue_capacity = {CAPACITY}\nmax_events = {MAX_EVENTS}\n{blackhole_keys}",
            dir.join("data").display(),
            proxy.port()
        ),
    )
    .unwrap();
    let tidings = Tidings(
        Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "no listener");
        std::thread::sleep(Duration::from_millis(10));
    }
    let baseline = tidings.rss_kib();
    let held = CAPACITY * 3 + MAX_EVENTS * 2;
    let budget = baseline + held * EVENT_BUDGET_KIB + SLACK_KIB;

    let padding = "x".repeat(PADDING);
    let mut connection = connect(addr);
    let mut accepted = 0;
    let mut refused = 0;
    let mut max_rss = 0;
    for round in 0..ROUNDS {
        for request in 0..REQUESTS {
            let body = (0..10)
                .map(|i| {
                    format!(
                        r#"{{"name":"soak.tick","data":{{"round":{round},"request":{request},"i":{i},"pad":"{padding}"}}}}"#
                    )
                })
                .collect::<Vec<_>>()
                .join(",");
            let request = format!(
                "POST /events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n[{body}]",
                body.len() + 2
            );
            let (status, _) = exchange(&mut connection, request.as_bytes());
            assert!(status == 202 || status == 503, "status {status}");
            if status == 202 {
                accepted += 10;
            } else {
                refused += 10;
            }
        }
        let m = quiet_metrics(addr);
        assert_eq!(get(&m, "tidings_collector_events_accepted_total"), accepted);
        for stage in ["backends.files", "backends.blackhole"] {
            let (accepted, accounted) = accounting(&m, stage);
            assert_eq!(
                accepted, accounted,
                "{mode}, round {round}, {stage}: accepted ≠ delivered + dropped + pending in {m:#?}"
            );
        }
        max_rss = max_rss.max(tidings.rss_kib());
    }
    let m = quiet_metrics(addr);
    assert_eq!(
        get(
            &m,
            "tidings_backend_delivered_total{backend=\"backends.blackhole\"}"
        ),
        0,
        "the black-holed sink delivered nothing"
    );
    if blackhole_keys.is_empty() {
        // Backpressure: the door refused what the pipeline could not hold.
        assert_eq!(dropped(&m, "backends.blackhole"), 0, "{m:#?}");
        assert!(
            accepted <= held,
            "{accepted} accepted, more than the queues hold"
        );
        assert!(refused > 0, "the door never answered 503");
    } else {
        assert!(
            dropped(&m, "backends.blackhole") + held >= accepted,
            "what the black-holed sink could not hold was dropped and counted"
        );
    }
    assert!(
        max_rss <= budget,
        "{mode}: RSS {max_rss} KiB over the budget of {budget} KiB ({baseline} KiB before load + {held} events × {EVENT_BUDGET_KIB} KiB + {SLACK_KIB} KiB) after {accepted} events"
    );
    drop(tidings);
    let _ = std::fs::remove_dir_all(&dir);
}
