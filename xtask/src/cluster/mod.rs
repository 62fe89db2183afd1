//! `cargo xtask cluster`: the scaled-out topology of `docs/scaling.md` on
//! one machine, against the release `tidings` binary and the real services:
//!
//! ```text
//! load ─► collector-1 (durable) ─┐                        ┌─► relay-1 ─┐
//!                                ├─► JetStream stream ────┤            ├─► PostgreSQL
//! load ─► collector-2 (durable) ─┘   (consumer `relay`)   └─► relay-2 ─┘
//! ```
//!
//! A stream (`cl<run>.>`, duplicate window 2 minutes) and a table (with
//! chaos's trigger counting the rows `ON CONFLICT` removed) unique to the
//! run; two collectors in durable mode, each with its own write-ahead log
//! and a `nats` sink; two relays (`[sources.in] type = "nats"`, one shared
//! consumer, `ack_wait_ms = 5000`) with a `postgres` sink.
//!
//! 1. **run**: both collectors loaded for `--seconds` at `--rate` events/s
//!    (in all); meanwhile `kill -9` of relay-1 at a quarter of the run
//!    (restarted 3 s later) and of collector-1 at half (restarted 1 s later
//!    on the same log); `--no-kill-relay` and `--no-kill-collector` skip
//!    them. Then the harness waits until the collectors hold nothing, the
//!    consumer has nothing pending or unacknowledged, the relays nothing
//!    unsettled, and PostgreSQL stopped growing.
//! 2. **backlog** (unless `--backlog-seconds 0`): both relays stopped
//!    (SIGTERM), the collectors loaded again, then relay-1 alone started on
//!    the backlog and timed until the rows stop growing: one relay's
//!    throughput in rows/s.
//!
//! Every 202 is then looked for in PostgreSQL; any one missing fails the
//! command (`report.rs` does the accounting). The stream and the table
//! are removed at the end.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::brokers::JetStream;
use crate::chaos::{backend, paced, pending, postgres_backend};
use crate::harness::{
    Collector, Load, LoadReport, Metrics, NATS_ADDR, PgTable, ack_keys, free_addr, release_binary,
    require_nats, require_postgres, run_id,
};
use report::{Phase, report};

mod report;

/// The consumer the relays share.
const CONSUMER: &str = "relay";
/// The relays' `ack_wait_ms`.
const ACK_WAIT_MS: u64 = 5000;
/// The event name of the load (subject `cl<run>.cluster.load`).
const EVENT: &str = "cluster.load";
/// How long the pipeline may take to settle once a load stopped.
const SETTLE_LIMIT: Duration = Duration::from_secs(180);
/// The relays' metric labels.
const SOURCE: &str = "source=\"in\"";

const USAGE: &str = "usage: cargo xtask cluster [--rate EVENTS_PER_SECOND] [--seconds N] [--backlog-seconds N] [--no-kill-relay] [--no-kill-collector]";

/// The command line of `cargo xtask cluster`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClusterArgs {
    /// Events per second over both collectors.
    pub(crate) rate: f64,
    /// Length of the run under load.
    pub(crate) seconds: f64,
    /// Length of the load that builds the backlog (0: no backlog phase).
    pub(crate) backlog_seconds: f64,
    pub(crate) kill_relay: bool,
    pub(crate) kill_collector: bool,
}

/// Parses the arguments after `cluster`.
pub(crate) fn parse(args: &[String]) -> Result<ClusterArgs, String> {
    let mut parsed = ClusterArgs {
        rate: 6000.0,
        seconds: 20.0,
        backlog_seconds: 10.0,
        kill_relay: true,
        kill_collector: true,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |positive: bool| -> Result<f64, String> {
            args.next()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| *v > 0.0 || (!positive && *v == 0.0))
                .ok_or_else(|| format!("{arg} takes a number; {USAGE}"))
        };
        match arg.as_str() {
            "--rate" => parsed.rate = value(true)?,
            "--seconds" => parsed.seconds = value(true)?,
            "--backlog-seconds" => parsed.backlog_seconds = value(false)?,
            "--no-kill-relay" => parsed.kill_relay = false,
            "--no-kill-collector" => parsed.kill_collector = false,
            other => return Err(format!("unknown cluster argument {other:?}; {USAGE}")),
        }
    }
    Ok(parsed)
}

/// One `tidings serve` process of the topology: its config, port and log
/// stay across restarts.
struct Node {
    name: String,
    config: PathBuf,
    addr: SocketAddr,
    log: PathBuf,
    process: Option<Collector>,
}

impl Node {
    /// Writes `[collector]` on a free port with `keys`, then `tables`.
    fn new(work: &Path, name: &str, keys: &str, tables: &str) -> Result<Self, String> {
        let addr = free_addr()?;
        let config = work.join(format!("{name}.toml"));
        let text = format!(
            "[collector]\nlisten = \"{addr}\"\nqueue_capacity = 10000\nshutdown_timeout_ms = 30000\n{keys}\n{tables}"
        );
        std::fs::write(&config, text)
            .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
        Ok(Self {
            name: name.to_owned(),
            log: work.join(format!("{name}.log")),
            config,
            addr,
            process: None,
        })
    }

    fn start(&mut self, binary: &Path) -> Result<(), String> {
        let process = Collector::start(binary, &self.config, self.addr, &self.log, "info")
            .map_err(|e| format!("{}: {e}", self.name))?;
        self.process = Some(process);
        Ok(())
    }

    fn running(&self) -> Result<&Collector, String> {
        self.process
            .as_ref()
            .ok_or_else(|| format!("{} is not running", self.name))
    }

    fn metrics(&self) -> Result<Metrics, String> {
        self.running()?
            .metrics()
            .map_err(|e| format!("{}: {e}", self.name))
    }

    fn kill9(&mut self) -> Result<(), String> {
        match self.process.take() {
            Some(process) => process.kill9(),
            None => Ok(()),
        }
    }

    /// SIGTERM and a clean exit within 60 s (nothing when not running).
    fn terminate(&mut self) -> Result<(), String> {
        match self.process.take() {
            Some(process) => process
                .terminate(Duration::from_secs(60))
                .map(drop)
                .map_err(|e| format!("{}: {e} (log {})", self.name, self.log.display())),
            None => Ok(()),
        }
    }
}
/// The topology and what it runs on.
struct Cluster {
    binary: PathBuf,
    stream: JetStream,
    table: PgTable,
    collectors: [Node; 2],
    relays: [Node; 2],
    args: ClusterArgs,
}

/// Runs the topology and prints the table.
pub(crate) fn cluster(root: &Path, args: &ClusterArgs) -> Result<(), String> {
    require_postgres()?;
    require_nats()?;
    let binary = release_binary(root)?;
    let run = run_id();
    let work = std::env::temp_dir().join(format!("tidings-cluster-{run:08x}"));
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let prefix = format!("cl{run:08x}");
    let stream = JetStream::create(
        &format!("TIDINGS_CLUSTER_{run:08x}"),
        &prefix,
        -1,
        Duration::from_secs(120),
    )?;
    let table = PgTable::create(&format!("tidings_cluster_{run:08x}"))?;
    let nats_keys = format!(
        "url = \"nats://{NATS_ADDR}\"\nsubject = \"{prefix}.{{name}}\"\nstream = \"{}\"",
        stream.name
    );
    let source = format!(
        "[sources.in]\ntype = \"nats\"\nurl = \"nats://{NATS_ADDR}\"\nstream = \"{}\"\nconsumer = \"{CONSUMER}\"\nack_wait_ms = {ACK_WAIT_MS}\n\n{}",
        stream.name,
        postgres_backend(&table.name, 5432, 500)
    );
    let collector = |n: usize| {
        let wal = work.join(format!("wal-{n}"));
        Node::new(
            &work,
            &format!("collector-{n}"),
            &ack_keys(true, &wal),
            &backend("stream", "nats", &nats_keys),
        )
    };
    let relay = |n: usize| Node::new(&work, &format!("relay-{n}"), "", &source);
    let mut cluster = Cluster {
        binary,
        collectors: [collector(1)?, collector(2)?],
        relays: [relay(1)?, relay(2)?],
        stream,
        table,
        args: args.clone(),
    };
    let result = cluster.phases(run);
    // Whatever happened: every process stopped, the stream and table gone.
    let stopped: Vec<String> = cluster
        .relays
        .iter_mut()
        .chain(cluster.collectors.iter_mut())
        .filter_map(|node| node.terminate().err())
        .collect();
    let stored = cluster.table.ids();
    let counts = cluster.stream.counts(CONSUMER);
    let dropped = cluster.table.drop_all();
    drop(cluster); // deletes the stream
    let kept = |e: String| format!("{e}; configs and logs kept in {}", work.display());
    let phases = result.map_err(kept)?;
    let stored = stored?;
    dropped?;
    let failed = report(&phases, &stored, counts.ok(), args);
    if !stopped.is_empty() {
        println!("\nFAILED to stop cleanly: {}", stopped.join("; "));
    }
    if failed || !stopped.is_empty() {
        return Err(format!(
            "the cluster run failed; configs and logs kept in {}",
            work.display()
        ));
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

impl Cluster {
    fn phases(&mut self, run: u32) -> Result<Vec<Phase>, String> {
        for node in self.relays.iter_mut().chain(self.collectors.iter_mut()) {
            node.start(&self.binary)?;
        }
        let mut phases = vec![self.run_phase([run, run.wrapping_add(1)])?];
        if self.args.backlog_seconds > 0.0 {
            phases.push(self.backlog_phase([run.wrapping_add(2), run.wrapping_add(3)])?);
        }
        Ok(phases)
    }

    /// Both collectors loaded at `rate` (in all) for `seconds` each run.
    fn start_loads(&self, runs: [u32; 2], rate: f64) -> Vec<Load> {
        let spec = paced(EVENT, rate / 2.0, 4);
        (0..2)
            .map(|n| Load::start(self.collectors[n].addr, runs[n], &spec))
            .collect()
    }

    /// Phase 1: load, kills and restarts, settle.
    fn run_phase(&mut self, runs: [u32; 2]) -> Result<Phase, String> {
        let seconds = self.args.seconds;
        println!(
            "== run: {seconds} s at {} events/s over both collectors",
            self.args.rate
        );
        let rows_before = self.table.count()?;
        let duplicates_before = self.table.duplicates()?;
        let started = Instant::now();
        let loads = self.start_loads(runs, self.args.rate);
        let mut notes = Vec::new();
        let at = |fraction: f64| started + Duration::from_secs_f64(seconds * fraction);
        let disturbed = (|| {
            if self.args.kill_relay {
                sleep_until(at(0.25));
                let unsettled = self.relays[0]
                    .metrics()?
                    .sum("tidings_source_unsettled", SOURCE);
                self.relays[0].kill9()?;
                let killed = started.elapsed().as_secs_f64();
                std::thread::sleep(Duration::from_secs(3));
                self.relays[0].start(&self.binary)?;
                notes.push(format!(
                    "relay-1 killed -9 at {killed:.1} s ({unsettled} messages unsettled a moment before), restarted 3 s later"
                ));
            }
            if self.args.kill_collector {
                sleep_until(at(0.5));
                let held = pending(&self.collectors[0].metrics()?, "backends.stream");
                self.collectors[0].kill9()?;
                let killed = started.elapsed().as_secs_f64();
                std::thread::sleep(Duration::from_secs(1));
                self.collectors[0].start(&self.binary)?;
                notes.push(format!(
                    "collector-1 killed -9 at {killed:.1} s ({held} events queued a moment before), restarted 1 s later on its log"
                ));
            }
            sleep_until(at(1.0));
            Ok::<_, String>(())
        })();
        let reports: Vec<LoadReport> = loads.into_iter().map(Load::stop).collect();
        disturbed?;
        let elapsed = started.elapsed().as_secs_f64();
        let rows_at_stop = self.table.count()?;
        let (drained_after, _) = self.settle()?;
        notes.push(format!(
            "settled {:.1} s after the load stopped",
            drained_after.as_secs_f64()
        ));
        let failed: u64 = reports.iter().map(|r| r.failed + r.busy).sum();
        if failed > 0 {
            notes.push(format!("{failed} requests refused or cut (not promises)"));
        }
        Ok(Phase {
            name: "run: 2 durable collectors → JetStream → 2 relays → PostgreSQL".to_owned(),
            runs,
            reports,
            duplicates: self.table.duplicates()? - duplicates_before,
            redelivered: self.redelivered()?,
            throughput: format!(
                "{:.0} (rows stored while the load ran)",
                (rows_at_stop - rows_before) as f64 / elapsed
            ),
            notes,
        })
    }

    /// Phase 2: relays stopped, a backlog published, one relay timed on it.
    fn backlog_phase(&mut self, runs: [u32; 2]) -> Result<Phase, String> {
        let seconds = self.args.backlog_seconds;
        println!("== backlog: relays stopped, {seconds} s of load, then relay-1 alone");
        for relay in &mut self.relays {
            relay.terminate()?;
        }
        let duplicates_before = self.table.duplicates()?;
        let loads = self.start_loads(runs, self.args.rate);
        std::thread::sleep(Duration::from_secs_f64(seconds));
        let reports: Vec<LoadReport> = loads.into_iter().map(Load::stop).collect();
        let deadline = Instant::now() + SETTLE_LIMIT;
        while self.collectors_hold()? > 0 {
            if Instant::now() > deadline {
                return Err("the collectors did not publish the backlog within 180 s".to_owned());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let backlog = self.stream.counts(CONSUMER)?.pending;
        let rows_before = self.table.count()?;
        self.relays[0].start(&self.binary)?;
        let started = Instant::now();
        let (_, last_growth) = self.settle()?;
        let rows = self.table.count()? - rows_before;
        let took = last_growth.duration_since(started).as_secs_f64();
        Ok(Phase {
            name: "backlog: drained by one relay".to_owned(),
            runs,
            reports,
            duplicates: self.table.duplicates()? - duplicates_before,
            redelivered: self.redelivered()?,
            throughput: format!(
                "{:.0} (one relay: {rows} rows of a {backlog}-message backlog in {took:.1} s)",
                rows as f64 / took.max(0.001)
            ),
            notes: Vec::new(),
        })
    }

    /// Events the running collectors still hold (queued or at their sink).
    fn collectors_hold(&self) -> Result<u64, String> {
        let mut held = 0;
        for node in &self.collectors {
            held += pending(&node.metrics()?, "backends.stream");
        }
        Ok(held)
    }

    /// The running relays' redeliveries (since each one's last start).
    fn redelivered(&self) -> Result<u64, String> {
        let mut total = 0;
        for relay in self.relays.iter().filter(|r| r.process.is_some()) {
            total += relay
                .metrics()?
                .sum("tidings_source_redelivered_total", SOURCE);
        }
        Ok(total)
    }

    /// Waits until nothing is held anywhere (collectors, consumer, relays)
    /// and PostgreSQL has not grown for a second: how long that took, and
    /// when the rows last grew.
    fn settle(&self) -> Result<(Duration, Instant), String> {
        let started = Instant::now();
        let mut rows = self.table.count()?;
        let mut last_growth = started;
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.table.count()?;
            if now != rows {
                rows = now;
                last_growth = Instant::now();
            }
            let counts = self.stream.counts(CONSUMER)?;
            let mut unsettled = 0;
            for relay in self.relays.iter().filter(|r| r.process.is_some()) {
                unsettled += relay.metrics()?.sum("tidings_source_unsettled", SOURCE);
            }
            let held = self.collectors_hold()?;
            if held == 0
                && counts.pending == 0
                && counts.ack_pending == 0
                && unsettled == 0
                && last_growth.elapsed() >= Duration::from_secs(1)
            {
                return Ok((started.elapsed(), last_growth));
            }
            if started.elapsed() > SETTLE_LIMIT {
                return Err(format!(
                    "HANG: not settled within {SETTLE_LIMIT:?}: collectors hold {held}, consumer pending {} / unacknowledged {}, relays unsettled {unsettled}, {rows} rows",
                    counts.pending, counts.ack_pending
                ));
            }
        }
    }
}

fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        std::thread::sleep(at - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_have_defaults_and_kills_can_be_skipped() {
        let args =
            |words: &[&str]| parse(&words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>());
        let defaults = args(&[]).unwrap();
        assert!(defaults.kill_relay && defaults.kill_collector && defaults.backlog_seconds > 0.0);
        let set = args(&[
            "--rate",
            "800",
            "--seconds",
            "5",
            "--backlog-seconds",
            "0",
            "--no-kill-relay",
        ])
        .unwrap();
        assert_eq!(
            (set.rate, set.seconds, set.backlog_seconds),
            (800.0, 5.0, 0.0)
        );
        assert!(!set.kill_relay && set.kill_collector);
        assert!(args(&["--seconds", "0"]).is_err());
        assert!(args(&["--nope"]).unwrap_err().contains("usage"));
    }
}
