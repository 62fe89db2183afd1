//! The skeleton every fault shares, written once: [`Trial::run`] starts
//! the collector on the fault's config, runs its load while the fault's
//! [`Trial::disturb`] does its harm, stops the load, lets the collector
//! settle and drain, reads back what the [`Sink`] stored, accounts it into
//! a [`Row`], and leaves the fault's own checks to [`Trial::check`].
//!
//! Also what several faults' sinks and checks share: the sinks' TOML, the
//! loads, the metric and log readers.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Context, FAST_RETRY, PADDING, Row};
use crate::harness::{
    Collector, Load, LoadReport, LoadSpec, Metrics, PgTable, event_id, free_addr, tail,
};

/// What one run of a fault is made of, apart from its hooks.
pub(crate) struct Plan {
    /// The name of its config and log files.
    pub(crate) file: String,
    /// The row's first column.
    pub(crate) description: String,
    /// Extra `[collector]` keys (each on its own line).
    pub(crate) collector_keys: String,
    /// The sink's tables in TOML.
    pub(crate) backend: String,
    /// The load that runs while the fault disturbs.
    pub(crate) load: LoadSpec,
    /// How long the collector is left to deliver once the load stopped,
    /// before its metrics are read and it is sent SIGTERM.
    pub(crate) settle: Duration,
    /// How long its drain after SIGTERM may take.
    pub(crate) drain_limit: Duration,
}

impl Plan {
    /// A plan with no extra collector keys, no settling and a 60 s drain.
    pub(crate) fn new(file: &str, description: String, backend: String, load: LoadSpec) -> Self {
        Self {
            file: file.to_owned(),
            description,
            collector_keys: String::new(),
            backend,
            load,
            settle: Duration::ZERO,
            drain_limit: Duration::from_secs(60),
        }
    }
}

/// What a sink stored, read back once the collector has exited.
#[derive(Debug, Default)]
pub(crate) struct Stored {
    /// The distinct ids.
    pub(crate) ids: HashSet<String>,
    /// How many ids were stored again (or removed as duplicates).
    pub(crate) duplicates: u64,
    /// What is wrong with the storage itself (torn lines, unfinished
    /// files): checks that failed.
    pub(crate) damage: Vec<String>,
}

impl From<(HashSet<String>, u64)> for Stored {
    fn from((ids, duplicates): (HashSet<String>, u64)) -> Self {
        Self {
            ids,
            duplicates,
            damage: Vec::new(),
        }
    }
}

/// The distinct ids among `ids` (each as often as it was stored), and
/// how many were stored again.
pub(crate) fn distinct(ids: &[String]) -> Stored {
    let unique: HashSet<String> = ids.iter().cloned().collect();
    let duplicates = (ids.len() - unique.len()) as u64;
    (unique, duplicates).into()
}

/// Where a fault's collector delivers.
pub(crate) trait Sink {
    /// What it stored.
    fn stored(&self) -> Result<Stored, String>;
    /// Removes what the fault created for it (default: nothing to remove).
    fn clean_up(&self) -> Result<(), String> {
        Ok(())
    }
}

/// A sink shared with the fault (such as a receiver it steers).
impl<S: Sink + ?Sized> Sink for std::sync::Arc<S> {
    fn stored(&self) -> Result<Stored, String> {
        (**self).stored()
    }

    fn clean_up(&self) -> Result<(), String> {
        (**self).clean_up()
    }
}

/// A PostgreSQL table, dropped after the run.
impl Sink for PgTable {
    fn stored(&self) -> Result<Stored, String> {
        Ok((self.ids()?, self.duplicates()?).into())
    }

    fn clean_up(&self) -> Result<(), String> {
        self.drop_all()
    }
}

/// The collector of a run while the fault disturbs it.
pub(crate) struct Run<'a> {
    pub(crate) context: &'a Context,
    config: PathBuf,
    file: &'a str,
    addr: SocketAddr,
    collector: Option<Collector>,
    /// The row's peak RSS when the fault measures it itself (else the
    /// one the collector reached before the final SIGTERM).
    pub(crate) peak_rss_kib: Option<u64>,
}

impl Run<'_> {
    /// The running collector.
    pub(crate) fn collector(&self) -> Result<&Collector, String> {
        self.collector
            .as_ref()
            .ok_or_else(|| "the collector is no longer running".to_owned())
    }

    /// The running collector, for the fault to stop itself.
    pub(crate) fn take_collector(&mut self) -> Result<Collector, String> {
        self.collector
            .take()
            .ok_or_else(|| "the collector is no longer running".to_owned())
    }

    /// Starts the collector again on the same config, port and log.
    pub(crate) fn restart(&mut self) -> Result<(), String> {
        self.collector = Some(self.context.start(&self.config, self.addr, self.file)?);
        Ok(())
    }
}

/// What a run ended with.
pub(crate) struct End<'a> {
    pub(crate) context: &'a Context,
    pub(crate) plan: &'a Plan,
    pub(crate) report: LoadReport,
    /// The collector's metrics once settled; `None` when the fault stopped
    /// it itself.
    pub(crate) metrics: Option<Metrics>,
    pub(crate) stored: Stored,
}

impl End<'_> {
    /// The collector's log.
    pub(crate) fn log(&self) -> PathBuf {
        self.context.work.join(format!("{}.log", self.plan.file))
    }

    /// The final metrics.
    pub(crate) fn metrics(&self) -> Result<&Metrics, String> {
        self.metrics
            .as_ref()
            .ok_or_else(|| "no metrics: the collector was stopped by the fault".to_owned())
    }
}

/// One run of a fault, set up (its sink created or listening), with the
/// hooks the skeleton ([`Trial::run`]) calls.
pub(crate) trait Trial {
    /// Its config, load and timings.
    fn plan(&self) -> Plan;

    /// Where the collector delivers.
    fn sink(&self) -> &dyn Sink;

    /// Between the collector's start and the load's (default: nothing).
    fn before_load(&mut self, _run: &mut Run<'_>) -> Result<(), String> {
        Ok(())
    }

    /// The fault itself, while the load runs.
    fn disturb(&mut self, run: &mut Run<'_>) -> Result<(), String>;

    /// Fills the counts of `row` (default: [`account`]).
    fn account(&self, row: &mut Row, end: &End<'_>) -> Result<(), String> {
        account(row, &end.report, end.context.run, &end.stored.ids);
        Ok(())
    }

    /// The fault's own notes and checks, once the counts are in (default:
    /// none).
    fn check(&mut self, _row: &mut Row, _end: &End<'_>) -> Result<(), String> {
        Ok(())
    }

    /// The skeleton: collector, load, [`Trial::disturb`], settle, drain,
    /// read back, account, [`Trial::check`]. The load is stopped and the
    /// sink cleaned up whatever happens.
    fn run(mut self, context: &Context) -> Result<Row, String>
    where
        Self: Sized,
    {
        let plan = self.plan();
        let row = drive(&mut self, context, &plan);
        let cleaned = self.sink().clean_up();
        let row = row?;
        cleaned?;
        Ok(row)
    }
}

fn drive(trial: &mut impl Trial, context: &Context, plan: &Plan) -> Result<Row, String> {
    let addr = free_addr()?;
    let config = context.config(&plan.file, addr, &plan.collector_keys, &plan.backend)?;
    let mut run = Run {
        context,
        collector: Some(context.start(&config, addr, &plan.file)?),
        config,
        file: &plan.file,
        addr,
        peak_rss_kib: None,
    };
    trial.before_load(&mut run)?;
    let load = Load::start(addr, context.run, &plan.load);
    let disturbed = trial.disturb(&mut run);
    let report = load.stop();
    disturbed?;
    std::thread::sleep(plan.settle);
    let (metrics, peak_rss_kib) = match run.collector.take() {
        Some(collector) => {
            let metrics = collector.metrics()?;
            let peak = collector.terminate(plan.drain_limit)?;
            (Some(metrics), run.peak_rss_kib.or(peak))
        }
        None => (None, run.peak_rss_kib),
    };
    let end = End {
        context,
        plan,
        report,
        metrics,
        stored: trial.sink().stored()?,
    };
    let mut row = Row {
        peak_rss_kib,
        fault: plan.description.clone(),
        duplicates: end.stored.duplicates,
        ..Row::default()
    };
    trial.account(&mut row, &end)?;
    trial.check(&mut row, &end)?;
    row.failures.extend(end.stored.damage.iter().cloned());
    Ok(row)
}

/// Fills `row`'s counts from what the load saw and the ids found in the sink.
pub(crate) fn account(row: &mut Row, load: &LoadReport, run: u32, stored: &HashSet<String>) {
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

/// A PostgreSQL sink table in TOML, batches of at most `max_events`.
pub(crate) fn postgres_backend(table: &str, port: u16, max_events: usize) -> String {
    format!(
        "[backends.warehouse]\ntype = \"postgres\"\nurl = \"host=127.0.0.1 port={port} user=postgres dbname=test\"\ntable = \"{table}\"\nconnect_timeout_ms = 1000\nstatement_timeout_ms = 5000\nmax_events = {max_events}\nflush_interval_ms = 100\n{FAST_RETRY}\n\n"
    )
}

/// The sink `backends.NAME` of type `kind` in TOML: its address (`keys`),
/// batches of at most 100 events flushed every 100 ms, and `FAST_RETRY`.
pub(crate) fn backend(name: &str, kind: &str, keys: &str) -> String {
    format!(
        "[backends.{name}]\ntype = \"{kind}\"\n{keys}\nmax_events = 100\nflush_interval_ms = 100\n{FAST_RETRY}\n"
    )
}

/// Paced load: `rate` events/s in requests of 10 events over `connections`.
pub(crate) fn paced(name: &str, rate: f64, connections: usize) -> LoadSpec {
    LoadSpec {
        requests_per_second: Some(rate / 10.0),
        ..burst(name, 10, connections)
    }
}

/// Load as fast as `connections` go, in requests of `events` events.
pub(crate) fn burst(name: &str, events: usize, connections: usize) -> LoadSpec {
    LoadSpec {
        name: name.to_owned(),
        events_per_request: events,
        connections,
        requests_per_second: None,
        padding: PADDING,
        poison: None,
    }
}

/// How long after `since` the counter `metric{labels}` first grows past
/// `from` (polled every 5 ms); `None` if not within `limit`.
pub(crate) fn time_until_grows(
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

/// Checks a row's sink dropped nothing (`tidings_backend_dropped_total`).
pub(crate) fn check_no_drops(row: &mut Row, metrics: &Metrics, stage: &str) {
    let dropped = metrics.sum(
        "tidings_backend_dropped_total",
        &format!("backend=\"{stage}\""),
    );
    if dropped > 0 {
        row.failures
            .push(format!("{stage} dropped {dropped} events"));
    }
}

/// The collector's events queued before its sink `stage`: in its own queue
/// and waiting at the sink.
pub(crate) fn pending(metrics: &Metrics, stage: &str) -> u64 {
    metrics.get("tidings_collector_queue_depth", &[]) + metrics.waiting(stage)
}

/// `line` without terminal colour codes.
pub(crate) fn strip_ansi(line: &str) -> String {
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

/// The log's path and its last lines, for a failed check.
pub(crate) fn collector_log_hint(log: &Path) -> String {
    format!("({}):\n{}", log.display(), tail(log))
}
