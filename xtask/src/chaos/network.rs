//! The faults of the network between the collector and its sink:
//! `blackhole` (PostgreSQL cut off, then restored), `stall` (an HTTP
//! receiver holding every request) and `retry-after` (an HTTP receiver
//! answering 503 with `Retry-After`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tidings_test::CuttableProxy;

use super::receiver::{RETRY_AFTER_SECONDS, Receiver};
use super::trial::{
    End, Plan, Run, Sink, Trial, burst, check_no_drops, paced, postgres_backend, time_until_grows,
};
use super::{Row, Service, Single};
use crate::harness::{PG_ADDR, PgTable, locked};

/// The default length of the black-hole.
const BLACKHOLE_SECONDS: u64 = 60;

/// How long the `stall` fault's receiver holds every request.
const STALL_SECONDS: u64 = 15;

/// The PostgreSQL sink black-holed (`TIDINGS_CHAOS_BLACKHOLE_SECONDS`,
/// else 60 s), then restored.
pub(super) const BLACKHOLE: Single<BlackholeTrial> = Single {
    name: "blackhole",
    needs: &[Service::Postgres],
    set_up: |context| {
        let seconds = std::env::var("TIDINGS_CHAOS_BLACKHOLE_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(BLACKHOLE_SECONDS);
        Ok(BlackholeTrial {
            outage: Duration::from_secs(seconds),
            table: PgTable::create(&format!("tidings_chaos_blackhole_{:08x}", context.run))?,
            proxy: CuttableProxy::start(PG_ADDR),
            waiting: 0,
            resumed: None,
        })
    },
};

pub(super) struct BlackholeTrial {
    outage: Duration,
    table: PgTable,
    proxy: CuttableProxy,
    /// Events waiting at the restore.
    waiting: u64,
    /// How long after the restore delivery resumed.
    resumed: Option<Duration>,
}

/// The stage of the PostgreSQL sink.
const WAREHOUSE: &str = "backends.warehouse";

impl Trial for BlackholeTrial {
    fn plan(&self) -> Plan {
        Plan::new(
            "blackhole",
            format!(
                "PostgreSQL black-holed {} s at 500 events/s, restored",
                self.outage.as_secs()
            ),
            postgres_backend(&self.table.name, self.proxy.port(), 100),
            paced("chaos.blackhole", 500.0, 2),
        )
    }

    fn sink(&self) -> &dyn Sink {
        &self.table
    }

    fn disturb(&mut self, run: &mut Run<'_>) -> Result<(), String> {
        let collector = run.collector()?;
        let outage = self.outage;
        std::thread::sleep(Duration::from_secs(3));
        self.proxy.cut();
        println!("PostgreSQL cut for {} s", outage.as_secs());
        let cut_at = Instant::now();
        while cut_at.elapsed() < outage {
            std::thread::sleep(
                Duration::from_secs(10).min(outage.saturating_sub(cut_at.elapsed())),
            );
            let m = collector.metrics()?;
            println!(
                "  {:>3.0} s: waiting {} events, {} delivery attempts retried",
                cut_at.elapsed().as_secs_f64(),
                m.waiting(WAREHOUSE),
                m.get("tidings_backend_retried_total", &[("backend", WAREHOUSE)])
            );
        }
        let before = collector.metrics()?;
        let delivered_before =
            before.get("tidings_backend_delivered_total", &[("backend", WAREHOUSE)]);
        self.waiting = before.waiting(WAREHOUSE);
        self.proxy.restore();
        self.resumed = time_until_grows(
            collector,
            "tidings_backend_delivered_total",
            &[("backend", WAREHOUSE)],
            delivered_before,
            Instant::now(),
            Duration::from_secs(60),
        )?;
        std::thread::sleep(Duration::from_secs(3));
        Ok(())
    }

    fn check(&mut self, row: &mut Row, end: &End<'_>) -> Result<(), String> {
        let after = end.metrics()?;
        row.notes
            .push(format!("{} events waiting at restore", self.waiting));
        match self.resumed {
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
        check_no_drops(row, after, WAREHOUSE);
        row.notes.push(format!(
            "{} delivery attempts retried",
            after.get("tidings_backend_retried_total", &[("backend", WAREHOUSE)])
        ));
        Ok(())
    }
}

/// A receiver that holds every request for `STALL_SECONDS` under a load as
/// fast as 16 connections go: the door answers 503, nothing is dropped.
pub(super) const STALL: Single<StallTrial> = Single {
    name: "stall",
    needs: &[],
    set_up: |_| {
        Ok(StallTrial {
            receiver: Receiver::start()?,
            queued: (0, 0),
        })
    },
};

pub(super) struct StallTrial {
    receiver: Arc<Receiver>,
    /// Events queued at the collector and at the sink while stalled.
    queued: (u64, u64),
}

impl Trial for StallTrial {
    fn plan(&self) -> Plan {
        Plan {
            settle: Duration::from_secs(2),
            drain_limit: Duration::from_secs(120),
            ..Plan::new(
                "stall",
                format!("HTTP sink stalled {STALL_SECONDS} s at maximum load (16 connections)"),
                self.receiver.backend(),
                burst("chaos.stall", 10, 16),
            )
        }
    }

    fn sink(&self) -> &dyn Sink {
        &*self.receiver
    }

    fn disturb(&mut self, run: &mut Run<'_>) -> Result<(), String> {
        std::thread::sleep(Duration::from_secs(2));
        self.receiver.stalled.store(true, Ordering::SeqCst);
        println!("the receiver holds every request for {STALL_SECONDS} s");
        std::thread::sleep(Duration::from_secs(STALL_SECONDS));
        let during = run.collector()?.metrics()?;
        self.queued = (
            during.get("tidings_collector_queue_depth", &[]),
            during.get(
                "tidings_backend_queue_depth",
                &[("backend", "backends.receiver")],
            ),
        );
        self.receiver.stalled.store(false, Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(2));
        Ok(())
    }

    fn check(&mut self, row: &mut Row, end: &End<'_>) -> Result<(), String> {
        row.notes.push(format!(
            "{} events queued at the collector and {} at the sink while stalled",
            self.queued.0, self.queued.1
        ));
        check_no_drops(row, end.metrics()?, "backends.receiver");
        if end.report.busy == 0 {
            row.failures
                .push("the door never answered 503 while the sink was stalled".to_owned());
        }
        Ok(())
    }
}

/// An HTTP receiver answering 503 with `Retry-After`.
pub(super) const RETRY_AFTER: Single<RetryAfterTrial> = Single {
    name: "retry-after",
    needs: &[],
    set_up: |_| {
        Ok(RetryAfterTrial {
            receiver: Receiver::start()?,
            available: None,
        })
    },
};

pub(super) struct RetryAfterTrial {
    receiver: Arc<Receiver>,
    /// When the receiver recovered.
    available: Option<Instant>,
}

impl Trial for RetryAfterTrial {
    fn plan(&self) -> Plan {
        Plan::new(
            "retry-after",
            format!("HTTP receiver 503 + Retry-After: {RETRY_AFTER_SECONDS} for 6 s"),
            self.receiver.backend(),
            paced("chaos.retry_after", 200.0, 2),
        )
    }

    fn sink(&self) -> &dyn Sink {
        &*self.receiver
    }

    fn disturb(&mut self, _run: &mut Run<'_>) -> Result<(), String> {
        std::thread::sleep(Duration::from_secs(1));
        self.receiver.unavailable.store(true, Ordering::SeqCst);
        println!("the receiver answers 503 with Retry-After: {RETRY_AFTER_SECONDS} for 6 s");
        std::thread::sleep(Duration::from_secs(6));
        self.receiver.unavailable.store(false, Ordering::SeqCst);
        self.available = Some(Instant::now());
        std::thread::sleep(Duration::from_secs(4));
        Ok(())
    }

    fn check(&mut self, row: &mut Row, _end: &End<'_>) -> Result<(), String> {
        let refused = locked(&self.receiver.refused).clone();
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
        if let (Some(first), Some(available)) = (*locked(&self.receiver.first_ok), self.available) {
            row.notes.push(format!(
                "first delivery {:.2} s after the receiver recovered",
                first.saturating_duration_since(available).as_secs_f64()
            ));
        }
        Ok(())
    }
}
