//! `cargo xtask soak [--minutes N] [--rate EVENTS_PER_SECOND] [--durable]`: a steady
//! request rate against the release `tidings` binary for N minutes
//! (default 10) with one sink black-holed the whole time (PostgreSQL behind
//! a [`CuttableProxy`] that refuses every connection) next to a healthy
//! gzip file sink. The black-holed sink is declared fire-and-forget
//! (`when_full = "drop_newest"`), so the soak measures memory and the
//! accounting while one branch drops for ever; with the default
//! backpressure the door would refuse everything once its queue is full
//! (the chaos faults `blackhole` and `stall` cover that).
//!
//! Every [`SAMPLE_EVERY`] it samples the collector's RSS (`VmRSS`) and
//! `/metrics` at a quiet point (the load paused until the counters stand
//! still, typically a few tens of milliseconds) and checks, for each sink,
//! accepted = delivered + dropped (by reason) + pending. It fails when the
//! invariant is broken at any sample or the RSS leaves its budget:
//! the RSS before load plus every event the queues and batches may hold
//! (their capacities) at [`EVENT_BUDGET_BYTES`] each, plus [`SLACK_KIB`].
//! With `--durable` the collector runs with `ack = "durable"`, and the
//! write-ahead log's size on disk is reported too.

use std::path::Path;
use std::time::{Duration, Instant};

use tidings_test::CuttableProxy;

use crate::harness::{
    Accounting, Collector, Load, LoadSpec, PG_ADDR, free_addr, quiet_sample, release_binary, run_id,
};

/// How often the soak samples.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Memory allowed per event the queues and batches may hold. The events
/// sent are about 300 bytes in the request; held in memory (the `Event`, its
/// name, id, timestamps and data text, the queue slot) they take well
/// under this.
pub(crate) const EVENT_BUDGET_BYTES: u64 = 2048;
/// Allowed on top: allocator caches, connection buffers, the runtime.
pub(crate) const SLACK_KIB: u64 = 16 * 1024;
/// Capacity of the collector's queue and of each sink's queue.
const QUEUE_CAPACITY: u64 = 10_000;
/// Most events in a batch of each sink.
const MAX_EVENTS: u64 = 100;
/// Sinks in the soak's config.
const SINKS: [&str; 2] = ["backends.files", "backends.warehouse"];

/// What `cargo xtask soak` was asked for.
pub(crate) struct SoakArgs {
    minutes: f64,
    rate: f64,
    durable: bool,
}

/// Parses `--minutes N`, `--rate R` and `--durable`.
pub(crate) fn parse(args: &[String]) -> Result<SoakArgs, String> {
    let mut minutes = 10.0;
    let mut rate = 500.0;
    let mut durable = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = |v: Option<&String>| -> Result<f64, String> {
            v.and_then(|v| v.parse::<f64>().ok())
                .filter(|v| *v > 0.0)
                .ok_or_else(|| format!("{arg} takes a positive number"))
        };
        match arg.as_str() {
            "--minutes" => minutes = value(args.next())?,
            "--rate" => rate = value(args.next())?,
            "--durable" => durable = true,
            other => {
                return Err(format!(
                    "unknown soak argument {other:?}; usage: cargo xtask soak [--minutes N] [--rate EVENTS_PER_SECOND] [--durable]"
                ));
            }
        }
    }
    Ok(SoakArgs {
        minutes,
        rate,
        durable,
    })
}

/// One sample.
struct Sample {
    at: Duration,
    rss_kib: u64,
    accounts: Vec<Accounting>,
    quiet: bool,
    /// Bytes of the write-ahead log not yet retired (durable mode).
    wal_bytes: u64,
}

/// Runs the soak for `minutes` at `rate` events per second.
pub(crate) fn soak(root: &Path, args: &SoakArgs) -> Result<(), String> {
    let SoakArgs {
        minutes,
        rate,
        durable,
    } = *args;
    let binary = release_binary(root)?;
    let work = std::env::temp_dir().join(format!("tidings-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    // Cut from the start: the sink never reaches PostgreSQL (which need not run).
    let proxy = CuttableProxy::start(PG_ADDR);
    proxy.cut();
    let addr = free_addr()?;
    let config = work.join("soak.toml");
    let ack = crate::harness::ack_keys(durable, &work.join("wal"));
    std::fs::write(
        &config,
        format!(
            "[collector]\nlisten = \"{addr}\"\nqueue_capacity = {QUEUE_CAPACITY}\nshutdown_timeout_ms = 5000\n{ack}\n\
             [backends.files]\ntype = \"file\"\npath = \"{}\"\ngzip = true\nroll_events = 100000\nroll_seconds = 60\n\
             queue_capacity = {QUEUE_CAPACITY}\nmax_events = {MAX_EVENTS}\n\n\
             [backends.warehouse]\ntype = \"postgres\"\nurl = \"host=127.0.0.1 port={} user=postgres dbname=test\"\n\
             table = \"tidings_soak\"\nconnect_timeout_ms = 1000\nqueue_capacity = {QUEUE_CAPACITY}\nmax_events = {MAX_EVENTS}\n\
             when_full = \"drop_newest\"\n",
            work.join("data").display(),
            proxy.port()
        ),
    )
    .map_err(|e| e.to_string())?;
    let collector = Collector::start(&binary, &config, addr, &work.join("soak.log"), "info")?;
    std::thread::sleep(Duration::from_millis(500));
    let baseline = collector
        .rss_kib()
        .ok_or("cannot read the collector's VmRSS")?;
    let held = QUEUE_CAPACITY * (1 + SINKS.len() as u64) + MAX_EVENTS * SINKS.len() as u64;
    let budget = baseline + held * EVENT_BUDGET_BYTES / 1024 + SLACK_KIB;
    println!(
        "soak: {minutes} min at {rate} events/s (requests of 10 events, {} ack) against {}; PostgreSQL sink black-holed, file sink healthy",
        if durable { "durable" } else { "fast" },
        binary.display()
    );
    println!(
        "memory budget: {baseline} KiB at start + {held} events the queues and batches may hold × {EVENT_BUDGET_BYTES} B + {SLACK_KIB} KiB = {budget} KiB"
    );
    let spec = LoadSpec {
        poison: None,
        name: "soak.tick".to_owned(),
        events_per_request: 10,
        connections: 4,
        requests_per_second: Some(rate / 10.0),
        padding: 200,
    };
    let load = Load::start(addr, run_id(), &spec);
    let started = Instant::now();
    let length = Duration::from_secs_f64(minutes * 60.0);
    let mut samples = Vec::new();
    let mut violations = Vec::new();
    while started.elapsed() < length {
        std::thread::sleep(SAMPLE_EVERY.min(length.saturating_sub(started.elapsed())));
        let (metrics, quiet) = quiet_sample(&collector, &load)?;
        let rss_kib = collector
            .rss_kib()
            .ok_or("the collector is gone (cannot read its VmRSS)")?;
        let accounts: Vec<Accounting> = SINKS.iter().map(|s| Accounting::of(&metrics, s)).collect();
        let sample = Sample {
            at: started.elapsed(),
            rss_kib,
            accounts,
            quiet,
            wal_bytes: metrics.get("tidings_wal_bytes", &[]),
        };
        for account in &sample.accounts {
            if !account.holds() {
                violations.push(format!(
                    "at {:.0} s: {}",
                    sample.at.as_secs_f64(),
                    account.describe()
                ));
            }
        }
        if rss_kib > budget {
            violations.push(format!(
                "at {:.0} s: RSS {rss_kib} KiB over the budget of {budget} KiB",
                sample.at.as_secs_f64()
            ));
        }
        println!(
            "{:>5.0} s  RSS {:>7} KiB  {}{}{}",
            sample.at.as_secs_f64(),
            rss_kib,
            if durable {
                format!("log {:>6} KiB  ", sample.wal_bytes / 1024)
            } else {
                String::new()
            },
            sample.accounts[1].describe(),
            if quiet {
                ""
            } else {
                "  (no quiet point within 5 s)"
            }
        );
        samples.push(sample);
    }
    let (sent, accepted) = load.progress();
    let report = load.stop();
    let elapsed = started.elapsed();
    let last = samples
        .last()
        .map(|s| s.accounts.clone())
        .unwrap_or_default();
    let _ = collector.terminate(Duration::from_secs(30));

    let rss: Vec<u64> = samples.iter().map(|s| s.rss_kib).collect();
    let (min, max) = (
        rss.iter().copied().min().unwrap_or(0),
        rss.iter().copied().max().unwrap_or(0),
    );
    // Growth over the second half: a leak shows as a steady climb.
    let half = &rss[rss.len() / 2..];
    let late_growth =
        half.last().copied().unwrap_or(0) as i64 - half.first().copied().unwrap_or(0) as i64;
    let unquiet = samples.iter().filter(|s| !s.quiet).count();
    println!("\n| figure | value |\n|---|---|");
    println!("| duration | {:.1} min |", elapsed.as_secs_f64() / 60.0);
    println!(
        "| events sent / accepted (202) | {sent} / {accepted} ({:.0} accepted events/s; {} requests answered 503, {} failed) |",
        accepted as f64 / elapsed.as_secs_f64(),
        report.busy,
        report.failed
    );
    println!(
        "| samples (every {} s, at quiet points) | {} ({unquiet} without a quiet point) |",
        SAMPLE_EVERY.as_secs(),
        samples.len()
    );
    println!("| RSS at start (before load) | {baseline} KiB |");
    println!("| RSS min / max under load | {min} KiB / {max} KiB |");
    println!("| RSS change over the second half | {late_growth:+} KiB |");
    if let Some(peak) = samples.iter().max_by_key(|s| s.rss_kib) {
        // At a quiet point the collector's queue is empty: what is pending
        // is in the sinks' queues and batches.
        let held: u64 = peak.accounts.iter().map(|a| a.pending).sum();
        if let Some(per_event) = (peak.rss_kib.saturating_sub(baseline) * 1024).checked_div(held) {
            println!(
                "| RSS growth per event held at the peak | {per_event} B ({held} events pending at that sample) |"
            );
        }
    }
    println!("| memory budget | {budget} KiB |");
    if durable {
        let wal: Vec<u64> = samples.iter().map(|s| s.wal_bytes).collect();
        println!(
            "| write-ahead log on disk, max / last sample | {} KiB / {} KiB |",
            wal.iter().max().copied().unwrap_or(0) / 1024,
            wal.last().copied().unwrap_or(0) / 1024
        );
    }
    println!(
        "| invariant violations | {} |",
        violations.iter().filter(|v| !v.contains("RSS")).count()
    );
    for account in &last {
        println!(
            "| last sample, {} | {} |",
            account.stage,
            account.describe()
        );
    }
    if violations.is_empty() {
        let _ = std::fs::remove_dir_all(&work);
        Ok(())
    } else {
        Err(format!(
            "{} violations:\n{}\n(log and config kept in {})",
            violations.len(),
            violations.join("\n"),
            work.display()
        ))
    }
}
