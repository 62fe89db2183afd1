//! End-to-end latency: from the 202 a collector answered to the event's
//! row in PostgreSQL.
//!
//! The load records, for every request answered 202, the wall-clock time
//! (`SystemTime`) right after reading the answer; each of its events gets
//! that time. The table has a column `stored_at timestamptz DEFAULT
//! clock_timestamp()`, which PostgreSQL fills as the relay's `INSERT …
//! SELECT` writes the row (inside the batch's transaction, just before its
//! commit makes the row visible). Both clocks are this machine's, so the
//! difference per event is the time from the 202 to the row's insertion:
//! the collector's publish, the broker, the relay's fetch and batch, and
//! the insert. Every event answered 202 counts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::load::{Timed, TimedLoad};
use super::{Cluster, EVENT, Phase, SETTLE_LIMIT, refused};
use crate::harness::{LoadReport, event_id, psql};

/// The column the table gets: when each row was inserted.
pub(super) fn add_column(table: &str) -> Result<(), String> {
    psql(&format!(
        "ALTER TABLE {table} ADD COLUMN stored_at timestamptz NOT NULL DEFAULT clock_timestamp()"
    ))
    .map(drop)
}

/// The latencies of the events accepted, in ms: p50, p99, max, and the
/// events counted (those found in `table`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Latency {
    pub(super) p50: f64,
    pub(super) p99: f64,
    pub(super) max: f64,
    pub(super) events: usize,
}

impl Latency {
    /// Looks up each accepted event's `stored_at` in `table`.
    pub(super) fn measure(table: &str, loads: &[Timed]) -> Result<Option<Self>, String> {
        let mut latencies = Vec::new();
        for load in loads {
            let stored = stored_at(table, load.run)?;
            latencies.extend(load.accepted_at.iter().filter_map(|(seq, at)| {
                let stored = stored.get(&event_id(load.run, *seq))?;
                Some((stored - at) as f64 / 1000.0)
            }));
        }
        Ok(Self::of(latencies))
    }

    /// p50, p99 (nearest rank) and max of `latencies`.
    fn of(mut latencies: Vec<f64>) -> Option<Self> {
        if latencies.is_empty() {
            return None;
        }
        latencies.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let n = latencies.len();
            latencies[((p * n as f64).ceil() as usize).clamp(1, n) - 1]
        };
        Some(Self {
            p50: rank(0.50),
            p99: rank(0.99),
            max: latencies[latencies.len() - 1],
            events: latencies.len(),
        })
    }

    pub(super) fn describe(&self) -> String {
        format!("{:.0} / {:.0} ms", self.p50, self.p99)
    }
}

/// `stored_at` (µs since the epoch) of each row of run `run`.
fn stored_at(table: &str, run: u32) -> Result<HashMap<String, i64>, String> {
    let text = psql(&format!(
        "SELECT id, (extract(epoch FROM stored_at) * 1000000)::bigint FROM {table} \
         WHERE id BETWEEN '{run:08x}-0000-0000-0000-000000000000' AND '{run:08x}-ffff-ffff-ffff-ffffffffffff'"
    ))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (id, at) = line.split_once('|')?;
            Some((id.to_owned(), at.parse().ok()?))
        })
        .collect())
}

impl Cluster {
    /// Both relays running (started if stopped).
    fn relays_running(&mut self) -> Result<(), String> {
        for relay in &mut self.relays {
            if relay.process.is_none() {
                relay.start(&self.binary)?;
            }
        }
        Ok(())
    }

    /// What the whole setup sustains: both relays running, both collectors
    /// loaded for `--latency-seconds` as fast as they take it (100 events
    /// a request, 10 ms apart after a 503); the rows PostgreSQL gained per
    /// second meanwhile (or the 202s per second, if fewer).
    pub(super) fn capacity_phase(&mut self, runs: [u32; 2]) -> Result<(Phase, f64), String> {
        self.relays_running()?;
        let seconds = self.args.latency_seconds;
        println!("== capacity: {seconds} s as fast as the collectors take it, both relays");
        let duplicates_before = self.table.duplicates()?;
        let rows_before = self.table.count()?;
        let started = Instant::now();
        let loads: Vec<TimedLoad> = (0..2)
            .map(|n| TimedLoad::start(self.collectors[n].addr, runs[n], EVENT, None, 100))
            .collect();
        std::thread::sleep(Duration::from_secs_f64(seconds));
        let reports: Vec<LoadReport> = loads.into_iter().map(|l| l.stop().report).collect();
        let elapsed = started.elapsed().as_secs_f64();
        let stored = (self.table.count()? - rows_before) as f64 / elapsed;
        let accepted = reports.iter().map(|r| r.accepted.len()).sum::<usize>() as f64 / elapsed;
        let (settled, _) = self.settle(Duration::from_millis(100), SETTLE_LIMIT)?;
        let mut notes = vec![format!(
            "{accepted:.0} events/s answered 202, {stored:.0} rows/s stored while loaded; settled {:.1} s after",
            settled.as_secs_f64()
        )];
        notes.extend(refused(&reports));
        let phase = Phase {
            name: "capacity: both relays, as fast as the collectors take it".to_owned(),
            runs,
            reports,
            duplicates: self.table.duplicates()? - duplicates_before,
            redelivered: self.redelivered()?,
            throughput: format!("{stored:.0} (both relays, while loaded)"),
            rss: None,
            latency: None,
            notes,
        };
        Ok((phase, stored.min(accepted)))
    }

    /// Both relays running, a paced load at `rate.0` events/s (chosen as
    /// `rate.1` says) timing each 202 to its row.
    pub(super) fn latency_phase(
        &mut self,
        runs: [u32; 2],
        (rate, basis): (f64, String),
    ) -> Result<Phase, String> {
        self.relays_running()?;
        let seconds = self.args.latency_seconds;
        println!("== latency: {seconds} s at {rate} events/s ({basis}), both relays");
        let duplicates_before = self.table.duplicates()?;
        let loads: Vec<TimedLoad> = (0..2)
            .map(|n| {
                TimedLoad::start(
                    self.collectors[n].addr,
                    runs[n],
                    EVENT,
                    Some(rate / 2.0),
                    10,
                )
            })
            .collect();
        std::thread::sleep(Duration::from_secs_f64(seconds));
        let timed: Vec<Timed> = loads.into_iter().map(TimedLoad::stop).collect();
        self.settle(Duration::from_millis(100), SETTLE_LIMIT)?;
        let latency = Latency::measure(&self.table.name, &timed)?;
        let mut notes = vec![format!("{rate} events/s: {basis}")];
        if let Some(latency) = &latency {
            notes.push(format!(
                "202 → row insertion over {} events, max {:.0} ms",
                latency.events, latency.max
            ));
        }
        let reports: Vec<LoadReport> = timed.into_iter().map(|t| t.report).collect();
        notes.extend(refused(&reports));
        Ok(Phase {
            name: "latency: both relays, paced".to_owned(),
            runs,
            reports,
            duplicates: self.table.duplicates()? - duplicates_before,
            redelivered: self.redelivered()?,
            throughput: "–".to_owned(),
            rss: None,
            latency: latency.map(|l| l.describe()),
            notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_ranks() {
        let latencies: Vec<f64> = (1..=200).map(f64::from).collect();
        let latency = Latency::of(latencies).unwrap();
        assert_eq!(
            (latency.p50, latency.p99, latency.max, latency.events),
            (100.0, 198.0, 200.0, 200)
        );
        assert_eq!(Latency::of(vec![7.0]).unwrap().p99, 7.0);
        assert!(Latency::of(Vec::new()).is_none());
    }
}
