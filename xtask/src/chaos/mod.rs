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
//!   [`CuttableProxy`](tidings_test::CuttableProxy) for 60 s
//!   (`TIDINGS_CHAOS_BLACKHOLE_SECONDS`) at 500 events/s, then restored:
//!   the sink's queue and the collector's fill (20 s of events), the door
//!   answers 503, nothing is lost, delivery resumes within 1 s (measured).
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

//!
//! Each fault is a [`Fault`] in [`FAULTS`] (most are a [`Single`]: a name
//! and how to set up one trial), by family: `process.rs` (`kill9`,
//! `sigterm`, `sigterm-down`), `network.rs` (`blackhole`, `stall`,
//! `retry-after`), `disk.rs` (`disk-full`, `wal-disk-full`), `poison.rs`
//! (`poison-*`) and `uploads.rs`; `receiver.rs` is the HTTP receiver the
//! HTTP faults deliver to. What they share (start the collector, run the
//! load, settle, drain, read back the sink, account) is the skeleton of
//! `trial.rs`, [`Trial::run`], which each fault drives with the hooks of
//! its [`Trial`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use trial::Trial;
/// The sinks' TOML, the paced load and the pending count `cluster` shares.
pub(crate) use trial::{backend, paced, pending, postgres_backend};

use crate::harness::{
    Collector, release_binary, require_nats, require_postgres, require_rabbitmq, run_id,
};

mod disk;
mod network;
mod poison;
mod process;
mod receiver;
mod trial;
mod uploads;

/// Every fault, in the order they run.
const FAULTS: [&dyn Fault; 14] = [
    &process::Kill9,
    &network::BLACKHOLE,
    &network::STALL,
    &network::RETRY_AFTER,
    &disk::DISK_FULL,
    &disk::WAL_DISK_FULL,
    &process::SIGTERM,
    &process::SIGTERM_DOWN,
    &poison::POSTGRES,
    &poison::HTTP,
    &poison::SPADE,
    &poison::NATS,
    &poison::AMQP,
    &uploads::UPLOADS,
];

/// A fault: its name on the command line, what it needs, and how it runs.
trait Fault: Sync {
    /// Its name on the command line.
    fn name(&self) -> &'static str;

    /// The services it needs running (default: none).
    fn needs(&self) -> &'static [Service] {
        &[]
    }

    /// Runs it once: its row.
    fn run(&self, context: &Context) -> Result<Row, String>;

    /// Its rows (default: the one of [`Fault::run`]).
    fn rows(&self, context: &Context) -> Vec<Result<Row, String>> {
        vec![self.run(context)]
    }
}

/// A fault that is one [`Trial`]: its name, the services it needs, and how
/// its trial is set up (its sink created or listening).
struct Single<T> {
    name: &'static str,
    needs: &'static [Service],
    set_up: fn(&Context) -> Result<T, String>,
}

impl<T: Trial> Fault for Single<T> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn needs(&self) -> &'static [Service] {
        self.needs
    }

    fn run(&self, context: &Context) -> Result<Row, String> {
        (self.set_up)(context)?.run(context)
    }
}

/// A service a fault needs running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Postgres,
    Nats,
    RabbitMq,
}

impl Service {
    /// Fails, saying how to start it, unless it answers.
    fn require(self) -> Result<(), String> {
        match self {
            Self::Postgres => require_postgres(),
            Self::Nats => require_nats(),
            Self::RabbitMq => require_rabbitmq(),
        }
    }
}

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

    /// Its line of the table.
    fn line(&self) -> String {
        let mut notes = self.notes.clone();
        notes.extend(self.failures.iter().map(|f| format!("FAILED: {f}")));
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            self.fault,
            self.sent,
            self.accepted,
            self.delivered,
            self.dead_lettered,
            self.duplicates,
            self.lost,
            self.peak_rss_kib.map_or_else(
                || "?".to_owned(),
                |kib| format!("{:.0} MiB", kib as f64 / 1024.0)
            ),
            notes.join("; ")
        )
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

/// The faults named in `selected` (all when empty), in the order they run.
fn select(selected: &[String]) -> Result<Vec<&'static dyn Fault>, String> {
    if let Some(unknown) = selected
        .iter()
        .find(|name| !FAULTS.iter().any(|f| f.name() == name.as_str()))
    {
        let names: Vec<&str> = FAULTS.iter().map(|f| f.name()).collect();
        return Err(format!(
            "unknown fault {unknown:?}; the faults are: {}",
            names.join(", ")
        ));
    }
    Ok(FAULTS
        .into_iter()
        .filter(|f| selected.is_empty() || selected.iter().any(|s| s == f.name()))
        .collect())
}

/// Runs the faults named in `selected` (all when empty) and prints the table.
pub(crate) fn chaos(root: &Path, selected: &[String]) -> Result<(), String> {
    let faults = select(selected)?;
    for service in [Service::Postgres, Service::Nats, Service::RabbitMq] {
        if faults.iter().any(|f| f.needs().contains(&service)) {
            service.require()?;
        }
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
    let started = Instant::now();
    let mut rows = Vec::new();
    for fault in faults {
        println!("\n== {}", fault.name());
        rows.extend(fault.rows(&context));
    }
    println!(
        "\n| fault | events sent | accepted (202) | delivered (distinct ids in the sink) | dead-lettered | duplicates removed | lost | peak RSS | notes |\n|---|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    let mut failed = Vec::new();
    for row in &rows {
        match row {
            Ok(row) => {
                println!("{}", row.line());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_has_one_name_and_is_in_the_module_docs() {
        // The list of faults, up to the paragraph after it.
        let docs: String = include_str!("mod.rs")
            .lines()
            .take_while(|line| !line.contains("Every fault runs on"))
            .collect();
        let mut names: Vec<&str> = FAULTS.iter().map(|f| f.name()).collect();
        for name in &names {
            assert!(
                docs.contains(&format!("`{name}`")),
                "{name} is not in the docs"
            );
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FAULTS.len(), "a name is used twice");
    }

    #[test]
    fn faults_are_selected_by_name_in_their_order() {
        let names = |selected: &[&str]| -> Result<Vec<&str>, String> {
            let selected: Vec<String> = selected.iter().map(|s| (*s).to_owned()).collect();
            Ok(select(&selected)?.iter().map(|f| f.name()).collect())
        };
        assert_eq!(names(&[]).unwrap().len(), FAULTS.len());
        assert_eq!(names(&["sigterm", "kill9"]).unwrap(), ["kill9", "sigterm"]);
        let unknown = names(&["kill9", "nope"]).unwrap_err();
        assert!(
            unknown.contains("\"nope\"") && unknown.contains("poison-amqp"),
            "{unknown}"
        );
    }
}
