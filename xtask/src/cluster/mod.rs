//! `cargo xtask cluster`: the scaled-out topology of `docs/scaling.md` on
//! one machine, against the release `tidings` binary and the real services:
//!
//! ```text
//! load ─► collector-1 (durable) ─┐                        ┌─► relay-1 ─┐
//!                                ├─► broker ──────────────┤            ├─► PostgreSQL
//! load ─► collector-2 (durable) ─┘                        └─► relay-2 ─┘
//! ```
//!
//! The broker (`broker.rs`) is, by `--broker` and `--nats`: the local
//! NATS server (a stream `cl<run>.>` in memory, duplicate window 2
//! minutes, one durable consumer the relays share, `ack_wait_ms = 5000`);
//! three `nats-server` processes the command starts (`nats_cluster.rs`; the
//! same stream with 3 replicas on file); or the local RabbitMQ (a durable
//! topic exchange and queue, the relays its competing consumers). A table
//! unique to the run (chaos's trigger counts the rows `ON CONFLICT`
//! removed, a `stored_at` column the time of each row's insertion); two
//! collectors in durable mode, each with its own write-ahead log and a
//! `nats` or `amqp` sink; two relays (`[sources.in]`) with a `postgres`
//! sink.
//!
//! 1. **run**: both collectors loaded for `--seconds` at `--rate` events/s
//!    (in all); meanwhile `kill -9` of relay-1 at a quarter of the run
//!    (restarted 3 s later), of collector-1 at half (restarted 1 s later on
//!    the same log) and, with `--nats cluster`, of the node leading the
//!    stream at three quarters (restarted 3 s later on its store);
//!    `--no-kill-relay`, `--no-kill-collector` and `--no-kill-broker` skip
//!    them. Then the harness waits until the collectors hold nothing, the
//!    broker has nothing pending or unacknowledged, the relays nothing
//!    unsettled, and PostgreSQL stopped growing.
//! 2. **backlog** (unless `--backlog-seconds 0` without `--backlog-events`):
//!    both relays stopped (SIGTERM), the collectors loaded again (for
//!    `--backlog-seconds` at `--rate`, or as fast as they take it until
//!    `--backlog-events` were answered 202), then relay-1 alone started on
//!    the backlog and timed until the rows stop growing, its `VmRSS`
//!    sampled every 100 ms: one relay's throughput and peak memory.
//! 3. **capacity** (with `--latency-seconds` but no `--latency-rate`):
//!    both relays running, the collectors loaded for `--latency-seconds`
//!    as fast as they take it: the rows PostgreSQL gains per second, what
//!    the whole setup sustains.
//! 4. **latency** (unless `--latency-seconds 0`): both relays, the
//!    collectors loaded at `--latency-rate` (default: half of the
//!    capacity phase's rows/s) for `--latency-seconds`; p50 and p99 of
//!    202 → row (`latency.rs` says how).
//!
//! Every 202 is then looked for in PostgreSQL; any one missing fails the
//! command (`report.rs` does the accounting). The broker's stream or queue
//! and the table are removed at the end, the processes always stopped.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::chaos::{backend, paced, pending, postgres_backend};
use crate::harness::{
    Load, LoadReport, LoadSpec, PgTable, ack_keys, release_binary, require_postgres, run_id,
};
pub(crate) use args::{BrokerMode, ClusterArgs, parse};
use broker::Broker;
use load::TimedLoad;
use node::{Node, RssSampler, mib};
use report::{Phase, report};

mod args;
mod broker;
mod latency;
mod load;
mod nats_cluster;
mod node;
mod report;

/// The consumer the relays share (NATS).
const CONSUMER: &str = "relay";
/// The event name of the load (subject `cl<run>.cluster.load`).
const EVENT: &str = "cluster.load";
/// How long the pipeline may take to settle once a load stopped.
const SETTLE_LIMIT: Duration = Duration::from_secs(180);
/// The relays' metric labels.
const SOURCE: &str = "source=\"in\"";

/// The topology and what it runs on.
struct Cluster {
    binary: std::path::PathBuf,
    broker: Broker,
    table: PgTable,
    collectors: [Node; 2],
    relays: [Node; 2],
    args: ClusterArgs,
}

/// Runs the topology and prints the table.
pub(crate) fn cluster(root: &Path, args: &ClusterArgs) -> Result<(), String> {
    require_postgres()?;
    let binary = release_binary(root)?;
    let run = run_id();
    let work = std::env::temp_dir().join(format!("tidings-cluster-{run:08x}"));
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let kept = |e: String| format!("{e}; configs and logs kept in {}", work.display());
    // Dropped on any error below: the nodes of `--nats cluster` killed.
    let broker = Broker::create(args.broker, run, &work).map_err(kept)?;
    let table = PgTable::create(&format!("tidings_cluster_{run:08x}"))?;
    latency::add_column(&table.name)?;
    let (sink_type, sink_keys) = broker.sink();
    // Each relay writes every event to PostgreSQL and to gzip files of
    // its own, as the first-party design's writers do.
    let source = |n: usize| {
        let files = work.join(format!("files-{n}"));
        let files = if args.files {
            backend(
                "files",
                "file",
                &format!("path = \"{}\"\ngzip = true", files.display()),
            )
        } else {
            String::new()
        };
        format!(
            "{}\n{}\n{files}",
            broker.source(),
            postgres_backend(&table.name, 5432, 500),
        )
    };
    let collector = |n: usize| {
        let wal = work.join(format!("wal-{n}"));
        Node::new(
            &work,
            &format!("collector-{n}"),
            &ack_keys(true, &wal),
            &backend("stream", sink_type, &sink_keys),
        )
    };
    let relay = |n: usize| Node::new(&work, &format!("relay-{n}"), "", &source(n));
    let mut cluster = Cluster {
        binary,
        collectors: [collector(1)?, collector(2)?],
        relays: [relay(1)?, relay(2)?],
        broker,
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
    let messages = cluster.broker.stream_messages();
    let described = cluster.broker.describe();
    let dropped = cluster.table.drop_all();
    drop(cluster); // deletes the stream or queue, kills the NATS nodes
    let phases = result.map_err(kept)?;
    let stored = stored?;
    dropped?;
    let mut failed = report(&described, &phases, &stored, messages, args);
    let files = args.files.then(|| file_ids(&work));
    match files {
        None => {}
        Some(Ok(in_files)) => {
            let missing = stored.iter().filter(|id| !in_files.contains(*id)).count();
            println!(
                "The relays' gzip files hold {} distinct ids; of the ids in PostgreSQL, {missing} missing from them.",
                in_files.len()
            );
            failed |= missing > 0;
        }
        Some(Err(error)) => {
            println!("FAILED to read the relays' gzip files: {error}");
            failed = true;
        }
    }
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

/// The distinct event ids in the relays' gzip files under `work`.
fn file_ids(work: &Path) -> Result<HashSet<String>, String> {
    let mut ids = HashSet::new();
    for n in 1..=2 {
        let dir = work.join(format!("files-{n}"));
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry
                .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
                .path();
            if !path.to_string_lossy().ends_with(".jsonl.gz") {
                continue;
            }
            let mut text = String::new();
            std::fs::File::open(&path)
                .and_then(|file| flate2::read::MultiGzDecoder::new(file).read_to_string(&mut text))
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            for line in text.lines() {
                let event: serde_json::Value = serde_json::from_str(line)
                    .map_err(|e| format!("{}: not an event line: {e}", path.display()))?;
                if let Some(id) = event["id"].as_str() {
                    ids.insert(id.to_owned());
                }
            }
        }
    }
    Ok(ids)
}

impl Cluster {
    fn phases(&mut self, run: u32) -> Result<Vec<Phase>, String> {
        for node in self.relays.iter_mut().chain(self.collectors.iter_mut()) {
            node.start(&self.binary)?;
        }
        let runs = |n: u32| [run.wrapping_add(2 * n), run.wrapping_add(2 * n + 1)];
        let mut phases = vec![self.run_phase(runs(0))?];
        if self.args.backlog_seconds > 0.0 || self.args.backlog_events > 0 {
            phases.push(self.backlog_phase(runs(1))?);
        }
        if self.args.latency_seconds > 0.0 {
            let rate = match self.args.latency_rate {
                Some(rate) => (rate, "--latency-rate".to_owned()),
                None => {
                    let (phase, sustained) = self.capacity_phase(runs(2))?;
                    phases.push(phase);
                    let basis =
                        format!("half of the {sustained:.0} rows/s the capacity phase stored");
                    ((sustained / 2.0).round(), basis)
                }
            };
            phases.push(self.latency_phase(runs(3), rate)?);
        }
        Ok(phases)
    }

    /// Both collectors loaded with `spec` (rates per collector).
    fn start_loads(&self, runs: [u32; 2], spec: &LoadSpec) -> Vec<Load> {
        (0..2)
            .map(|n| Load::start(self.collectors[n].addr, runs[n], spec))
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
        let loads = self.start_loads(runs, &paced(EVENT, self.args.rate / 2.0, 4));
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
            if self.args.kill_broker && self.broker.nodes().is_some() {
                sleep_until(at(0.75));
                notes.push(self.kill_nats_node(started)?);
            }
            sleep_until(at(1.0));
            Ok::<_, String>(())
        })();
        let reports: Vec<LoadReport> = loads.into_iter().map(Load::stop).collect();
        disturbed?;
        let elapsed = started.elapsed().as_secs_f64();
        let rows_at_stop = self.table.count()?;
        let (drained_after, _) = self.settle(Duration::from_millis(100), SETTLE_LIMIT)?;
        notes.push(format!(
            "settled {:.1} s after the load stopped",
            drained_after.as_secs_f64()
        ));
        if self.broker.nodes().is_some() {
            let leader = self.broker.leader();
            let nodes = self.broker.nodes().ok_or("no NATS nodes")?;
            let name = leader.map_or("unknown", |n| nodes.name(n));
            notes.push(format!("the stream's leader then: {name}"));
        }
        notes.extend(refused(&reports));
        Ok(Phase {
            name: "run: 2 durable collectors → broker → 2 relays → PostgreSQL".to_owned(),
            runs,
            reports,
            duplicates: self.table.duplicates()? - duplicates_before,
            redelivered: self.redelivered()?,
            throughput: format!(
                "{:.0} (rows stored while the load ran)",
                (rows_at_stop - rows_before) as f64 / elapsed
            ),
            rss: None,
            latency: None,
            notes,
        })
    }

    /// `kill -9` of the NATS node leading the stream (node 1 if the
    /// leader is unknown), restarted 3 s later; the note for the table.
    fn kill_nats_node(&mut self, started: Instant) -> Result<String, String> {
        let leader = self.broker.leader();
        let nodes = self.broker.nodes().ok_or("no NATS nodes to kill")?;
        let index = leader.unwrap_or(0);
        let name = nodes.name(index).to_owned();
        nodes.kill9(index)?;
        let killed = started.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_secs(3));
        nodes.restart(index)?;
        Ok(format!(
            "NATS node {name} ({}) killed -9 at {killed:.1} s, restarted 3 s later on its store",
            if leader.is_some() {
                "the stream's leader"
            } else {
                "leader unknown"
            },
        ))
    }

    /// Phase 2: relays stopped, a backlog published, one relay timed on it.
    fn backlog_phase(&mut self, runs: [u32; 2]) -> Result<Phase, String> {
        let events = self.args.backlog_events;
        for relay in &mut self.relays {
            relay.terminate()?;
        }
        let duplicates_before = self.table.duplicates()?;
        let started = Instant::now();
        let (reports, mut notes) = if events > 0 {
            println!(
                "== backlog: relays stopped, {events} events as fast as the collectors take them, then the draining relays"
            );
            // Requests of 100 events, 10 ms apart after a 503.
            let loads: Vec<TimedLoad> = (0..2)
                .map(|n| TimedLoad::start(self.collectors[n].addr, runs[n], EVENT, None, 100))
                .collect();
            while loads.iter().map(TimedLoad::accepted).sum::<u64>() < events {
                if started.elapsed() > Duration::from_secs(1800) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let reports: Vec<LoadReport> =
                loads.into_iter().map(|load| load.stop().report).collect();
            let accepted: usize = reports.iter().map(|r| r.accepted.len()).sum();
            let rate = accepted as f64 / started.elapsed().as_secs_f64();
            let mut notes = vec![format!(
                "the collectors took {rate:.0} events/s (as fast as they go)"
            )];
            notes.extend(refused(&reports));
            (reports, notes)
        } else {
            let seconds = self.args.backlog_seconds;
            println!("== backlog: relays stopped, {seconds} s of load, then the draining relays");
            let loads = self.start_loads(runs, &paced(EVENT, self.args.rate / 2.0, 4));
            std::thread::sleep(Duration::from_secs_f64(seconds));
            (loads.into_iter().map(Load::stop).collect(), Vec::new())
        };
        let deadline = Instant::now() + Duration::from_secs(600);
        while self.collectors_hold()? > 0 {
            if Instant::now() > deadline {
                return Err("the collectors did not publish the backlog within 600 s".to_owned());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let backlog = self.broker.held(true)?.pending;
        let rows_before = self.table.count()?;
        let draining = self.args.backlog_relays;
        for relay in &mut self.relays[..draining] {
            relay.start(&self.binary)?;
        }
        let relay = self.relays[0].running()?;
        let sampler = RssSampler::start(relay.pid());
        let started = Instant::now();
        // Counting a large table costs the relay CPU: poll less often.
        let poll = if backlog > 200_000 { 500 } else { 100 };
        // At least 5 000 rows/s, or the 180 s of the other phases.
        let limit = SETTLE_LIMIT.max(Duration::from_secs(backlog / 5000));
        let settled = self.settle(Duration::from_millis(poll), limit);
        let rss = sampler.stop();
        let hwm = self.relays[0].running()?.peak_rss_kib();
        let (_, last_growth) = settled?;
        let rows = self.table.count()? - rows_before;
        let took = last_growth.duration_since(started).as_secs_f64();
        let rate = rows as f64 / took.max(0.001);
        notes.push(format!(
            "relay-1 VmRSS {} at its start, peak {} at {:.1} s ({} samples), VmHWM {}",
            mib(rss.first_kib),
            mib(rss.peak_kib),
            rss.peak_at,
            rss.samples,
            hwm.map_or("unknown".to_owned(), mib)
        ));
        let by = if draining == 1 {
            "one relay"
        } else {
            "two relays"
        };
        Ok(Phase {
            name: format!("backlog: drained by {by}"),
            runs,
            reports,
            duplicates: self.table.duplicates()? - duplicates_before,
            redelivered: self.redelivered()?,
            throughput: format!(
                "{rate:.0} ({by}: {rows} rows of a {backlog}-message backlog in {took:.1} s)"
            ),
            rss: Some(mib(rss.peak_kib)),
            latency: None,
            notes,
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

    /// Waits (polling every `poll`, at most `limit`) until nothing is held anywhere
    /// (collectors, broker, relays) and PostgreSQL has not grown for a
    /// second: how long that took, and when the rows last grew.
    fn settle(&self, poll: Duration, limit: Duration) -> Result<(Duration, Instant), String> {
        let started = Instant::now();
        let mut rows = self.table.count()?;
        let mut last_growth = started;
        loop {
            std::thread::sleep(poll);
            let now = self.table.count()?;
            if now != rows {
                rows = now;
                last_growth = Instant::now();
            }
            let held = self.broker.held(false)?;
            let mut unsettled = 0;
            for relay in self.relays.iter().filter(|r| r.process.is_some()) {
                unsettled += relay.metrics()?.sum("tidings_source_unsettled", SOURCE);
            }
            let queued = self.collectors_hold()?;
            if queued == 0
                && held.pending == 0
                && held.unacknowledged == 0
                && unsettled == 0
                && last_growth.elapsed() >= Duration::from_secs(1)
                // RabbitMQ's unacknowledged messages, asked last (slow).
                && self.broker.held(true)?.unacknowledged == 0
            {
                return Ok((started.elapsed(), last_growth));
            }
            if started.elapsed() > limit {
                return Err(format!(
                    "HANG: not settled within {limit:?}: collectors hold {queued}, broker pending {} / unacknowledged {}, relays unsettled {unsettled}, {rows} rows",
                    held.pending, held.unacknowledged
                ));
            }
        }
    }
}

/// A note of the requests refused (503) or cut, if any.
pub(super) fn refused(reports: &[LoadReport]) -> Option<String> {
    let busy: u64 = reports.iter().map(|r| r.busy).sum();
    let failed: u64 = reports.iter().map(|r| r.failed).sum();
    (busy + failed > 0)
        .then(|| format!("{busy} requests answered 503 and {failed} cut or refused (not promises)"))
}

fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        std::thread::sleep(at - now);
    }
}
