//! The loads of the backlog, capacity and latency phases: each request
//! answered 202 timed (the wall clock right after reading the answer), and
//! a pause after a 503 or a failure.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::harness::{Connection, LoadReport, event_id};

/// Connections per collector.
const CONNECTIONS: u64 = 2;
/// The pause after a 503 or a failed request, as a client honouring
/// `Retry-After` would take (without it, a full collector's quick 503s
/// keep the load's threads, and the machine, busy).
const BACKOFF: Duration = Duration::from_millis(10);
/// Bytes of padding in each event's data, as the other phases' loads.
const PADDING: usize = 64;

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
    pub(super) accepted_at: Vec<(u64, i64)>,
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
