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
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::harness::{Connection, LoadReport, event_id, psql};

/// Connections per collector.
const CONNECTIONS: u64 = 2;
/// The pause after a 503 or a failed request, as a client honouring
/// `Retry-After` would take (without it, a full collector's quick 503s
/// keep the load's threads, and the machine, busy).
const BACKOFF: Duration = Duration::from_millis(10);
/// Bytes of padding in each event's data, as the other phases' loads.
const PADDING: usize = 64;

/// The column the table gets: when each row was inserted.
pub(super) fn add_column(table: &str) -> Result<(), String> {
    psql(&format!(
        "ALTER TABLE {table} ADD COLUMN stored_at timestamptz NOT NULL DEFAULT clock_timestamp()"
    ))
    .map(drop)
}

/// What one worker saw: its report and the 202 time of each event.
type Worker = (LoadReport, Vec<(u64, i64)>);

/// A load on one collector that times each 202.
pub(super) struct TimedLoad {
    run: u32,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
    workers: Vec<JoinHandle<Worker>>,
}

/// A finished [`TimedLoad`]: the report, and the 202 time (µs since the
/// epoch) of every event accepted, by sequence number.
pub(super) struct Timed {
    pub(super) run: u32,
    pub(super) report: LoadReport,
    accepted_at: Vec<(u64, i64)>,
}

impl TimedLoad {
    /// Sends `rate` events/s to `addr` (`None`: as fast as it takes them,
    /// backing off after a 503), events of run `run` named `name`,
    /// `per_request` events a request.
    pub(super) fn start(
        addr: SocketAddr,
        run: u32,
        name: &str,
        rate: Option<f64>,
        per_request: u64,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let next_seq = Arc::new(AtomicU64::new(0));
        let every = rate.map_or(Duration::ZERO, |rate| {
            let requests_per_second = rate / per_request as f64 / CONNECTIONS as f64;
            Duration::from_secs_f64(1.0 / requests_per_second.max(0.001))
        });
        let workers = (0..CONNECTIONS)
            .map(|index| {
                let (stop, next_seq, name) = (stop.clone(), next_seq.clone(), name.to_owned());
                let counted = accepted.clone();
                std::thread::spawn(move || {
                    let mut next = Instant::now() + every * index as u32 / CONNECTIONS as u32;
                    let mut worker: Worker = Default::default();
                    let mut connection: Option<Connection> = None;
                    let padding = "x".repeat(PADDING);
                    while !stop.load(Ordering::SeqCst) {
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                        next += every;
                        let first = next_seq.fetch_add(per_request, Ordering::SeqCst);
                        let seqs = first..first + per_request;
                        let body: Vec<String> = seqs
                            .clone()
                            .map(|seq| {
                                format!(
                                    r#"{{"id":"{}","name":"{name}","data":{{"seq":{seq},"pad":"{padding}"}}}}"#,
                                    event_id(run, seq)
                                )
                            })
                            .collect();
                        let body = format!("[{}]", body.join(","));
                        let request = format!(
                            "POST /events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        worker.0.sent += per_request;
                        let answer = match connection.as_mut() {
                            Some(c) => c.request(request.as_bytes()),
                            None => Connection::open(addr)
                                .and_then(|c| connection.insert(c).request(request.as_bytes())),
                        };
                        match answer {
                            Ok((202, _)) => {
                                let at = micros(SystemTime::now());
                                counted.fetch_add(per_request, Ordering::SeqCst);
                                worker.0.requests += 1;
                                worker.0.accepted.extend(seqs.clone());
                                worker.1.extend(seqs.map(|seq| (seq, at)));
                            }
                            Ok((503, _)) => {
                                worker.0.busy += 1;
                                std::thread::sleep(BACKOFF);
                            }
                            Ok(_) => {
                                worker.0.failed += 1;
                                std::thread::sleep(BACKOFF);
                            }
                            Err(_) => {
                                worker.0.failed += 1;
                                connection = None;
                                std::thread::sleep(BACKOFF);
                            }
                        }
                    }
                    worker
                })
            })
            .collect();
        Self {
            run,
            stop,
            accepted,
            workers,
        }
    }

    /// Events answered 202 so far.
    pub(super) fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    pub(super) fn stop(self) -> Timed {
        self.stop.store(true, Ordering::SeqCst);
        let mut timed = Timed {
            run: self.run,
            report: LoadReport::default(),
            accepted_at: Vec::new(),
        };
        for worker in self.workers {
            let (report, at) = worker.join().unwrap_or_default();
            timed.report.sent += report.sent;
            timed.report.accepted.extend(report.accepted);
            timed.report.busy += report.busy;
            timed.report.failed += report.failed;
            timed.report.requests += report.requests;
            timed.accepted_at.extend(at);
        }
        timed
    }
}

fn micros(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
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
