//! The faults of the collector's process: `kill9` (`kill -9` under load,
//! then a restart), `sigterm` (SIGTERM during a burst) and `sigterm-down`
//! (SIGTERM while the sink is down).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tidings_test::CuttableProxy;

use super::receiver::Receiver;
use super::trial::{
    End, Plan, Run, Sink, Trial, burst, paced, pending, postgres_backend, strip_ansi,
};
use super::{Context, Fault, Row, Service, Single};
use crate::harness::{PG_ADDR, PgTable, ack_keys};

/// `kill -9` under load, restart, drain: in fast mode (an informational
/// row), then in durable mode.
pub(super) struct Kill9;

impl Fault for Kill9 {
    fn name(&self) -> &'static str {
        "kill9"
    }

    fn needs(&self) -> &'static [Service] {
        &[Service::Postgres]
    }

    /// Durable mode: the row that counts.
    fn run(&self, context: &Context) -> Result<Row, String> {
        Kill9Trial::new(context, true)?.run(context)
    }

    /// Fast mode first, shown but not counted, then durable mode.
    fn rows(&self, context: &Context) -> Vec<Result<Row, String>> {
        let fast = Kill9Trial::new(context, false)
            .and_then(|trial| trial.run(context))
            .map(|mut row| {
                row.informational = true;
                row.notes.push(
                    "informational: fast ack keeps accepted events in memory only".to_owned(),
                );
                row
            });
        vec![fast, self.run(context)]
    }
}

struct Kill9Trial {
    durable: bool,
    /// Its write-ahead log, in durable mode.
    wal: PathBuf,
    table: PgTable,
    proxy: CuttableProxy,
    /// Events in memory a moment before the kill.
    pending_before: u64,
}

impl Kill9Trial {
    fn new(context: &Context, durable: bool) -> Result<Self, String> {
        Ok(Self {
            durable,
            wal: context.work.join(format!("wal-{}", mode(durable))),
            table: PgTable::create(&format!(
                "tidings_chaos_kill9_{}_{:08x}",
                mode(durable),
                context.run
            ))?,
            proxy: CuttableProxy::start(PG_ADDR),
            pending_before: 0,
        })
    }
}

fn mode(durable: bool) -> &'static str {
    if durable { "durable" } else { "fast" }
}

impl Trial for Kill9Trial {
    fn plan(&self) -> Plan {
        let mode = mode(self.durable);
        Plan {
            collector_keys: ack_keys(self.durable, &self.wal),
            ..Plan::new(
                &format!("kill9-{mode}"),
                format!("kill -9 under load, restart ({mode} ack)"),
                postgres_backend(&self.table.name, self.proxy.port(), 100),
                paced("chaos.kill9", 2000.0, 4),
            )
        }
    }

    fn sink(&self) -> &dyn Sink {
        &self.table
    }

    fn disturb(&mut self, run: &mut Run<'_>) -> Result<(), String> {
        std::thread::sleep(Duration::from_secs(2));
        // The sink cut off for the last second: what arrives waits in memory.
        self.proxy.cut();
        std::thread::sleep(Duration::from_secs(1));
        self.pending_before = pending(&run.collector()?.metrics()?, "backends.warehouse");
        run.take_collector()?.kill9()?;
        println!(
            "killed with -9 ({} events pending a moment before)",
            self.pending_before
        );
        self.proxy.restore();
        std::thread::sleep(Duration::from_millis(500));
        run.restart()?;
        std::thread::sleep(Duration::from_secs(3));
        Ok(())
    }

    fn check(&mut self, row: &mut Row, _end: &End<'_>) -> Result<(), String> {
        row.notes.push(format!(
            "sink cut off 1 s before the kill: {} events pending in memory shortly before it",
            self.pending_before
        ));
        Ok(())
    }
}

/// SIGTERM during a burst: every 202 is delivered by the drain.
pub(super) const SIGTERM: Single<SigtermTrial> = Single {
    name: "sigterm",
    needs: &[Service::Postgres],
    set_up: |context| {
        Ok(SigtermTrial {
            table: PgTable::create(&format!("tidings_chaos_sigterm_{:08x}", context.run))?,
            pending: 0,
            drain_time: Duration::ZERO,
        })
    },
};

pub(super) struct SigtermTrial {
    table: PgTable,
    /// Events pending a moment before the signal.
    pending: u64,
    /// From the signal to the exit.
    drain_time: Duration,
}

impl Trial for SigtermTrial {
    fn plan(&self) -> Plan {
        Plan::new(
            "sigterm",
            "SIGTERM during a burst (8 connections × 100 events)".to_owned(),
            postgres_backend(&self.table.name, 5432, 1000),
            burst("chaos.sigterm", 100, 8),
        )
    }

    fn sink(&self) -> &dyn Sink {
        &self.table
    }

    fn disturb(&mut self, run: &mut Run<'_>) -> Result<(), String> {
        std::thread::sleep(Duration::from_secs(2));
        let collector = run.take_collector()?;
        self.pending = pending(&collector.metrics()?, "backends.warehouse");
        run.peak_rss_kib = collector.peak_rss_kib();
        collector.signal("-TERM")?;
        let signalled = Instant::now();
        // The burst goes on against the stopping collector.
        let drained = collector.wait_exit(Duration::from_secs(60));
        self.drain_time = signalled.elapsed();
        drained
    }

    fn check(&mut self, row: &mut Row, end: &End<'_>) -> Result<(), String> {
        row.notes.push(format!(
            "{} events pending shortly before SIGTERM; exited {:.2} s after it",
            self.pending,
            self.drain_time.as_secs_f64()
        ));
        row.notes.extend(shutdown_summaries(&end.log()));
        Ok(())
    }
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

/// SIGTERM under load while the sink is down: the drain retries until its
/// deadline, then logs exactly what it could not deliver and exits 3.
pub(super) const SIGTERM_DOWN: Single<SigtermDownTrial> = Single {
    name: "sigterm-down",
    needs: &[],
    set_up: |_| {
        let receiver = Receiver::start()?;
        receiver.unavailable.store(true, Ordering::SeqCst);
        Ok(SigtermDownTrial {
            receiver,
            code: None,
            drain_time: Duration::ZERO,
        })
    },
};

pub(super) struct SigtermDownTrial {
    receiver: Arc<Receiver>,
    /// The collector's exit code.
    code: Option<i32>,
    /// From the signal to the exit.
    drain_time: Duration,
}

impl Trial for SigtermDownTrial {
    fn plan(&self) -> Plan {
        Plan {
            collector_keys: "shutdown_timeout_ms = 3000".to_owned(),
            ..Plan::new(
                "sigterm-down",
                "SIGTERM under load with the sink down (shutdown_timeout_ms = 3000)".to_owned(),
                self.receiver.backend(),
                paced("chaos.sigterm_down", 2000.0, 4),
            )
        }
    }

    fn sink(&self) -> &dyn Sink {
        &*self.receiver
    }

    fn disturb(&mut self, run: &mut Run<'_>) -> Result<(), String> {
        std::thread::sleep(Duration::from_secs(3));
        let collector = run.take_collector()?;
        run.peak_rss_kib = collector.peak_rss_kib();
        collector.signal("-TERM")?;
        let signalled = Instant::now();
        self.code = collector.wait_status(Duration::from_secs(60))?;
        self.drain_time = signalled.elapsed();
        Ok(())
    }

    fn check(&mut self, row: &mut Row, end: &End<'_>) -> Result<(), String> {
        let (code, drain_time) = (self.code, self.drain_time);
        let log = std::fs::read_to_string(end.log()).unwrap_or_default();
        let reported: u64 = log
            .lines()
            .find_map(|line| {
                let line = strip_ansi(line);
                let rest = line.split("shut down with ").nth(1)?;
                rest.split(' ').next()?.parse().ok()
            })
            .unwrap_or(0);
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
        Ok(())
    }
}
