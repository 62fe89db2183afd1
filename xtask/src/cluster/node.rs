//! One `tidings serve` process of the topology, and the sampler of a
//! relay's resident memory while it drains a backlog.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::harness::{Collector, Metrics, free_addr};

/// One `tidings serve` process of the topology: its config, port and log
/// stay across restarts.
pub(super) struct Node {
    pub(super) name: String,
    config: PathBuf,
    pub(super) addr: SocketAddr,
    log: PathBuf,
    pub(super) process: Option<Collector>,
}

impl Node {
    /// Writes `[collector]` on a free port with `keys`, then `tables`.
    pub(super) fn new(work: &Path, name: &str, keys: &str, tables: &str) -> Result<Self, String> {
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

    /// Starts the process and waits until it answers `/metrics` (its port
    /// takes connections before its sinks and sources are built).
    pub(super) fn start(&mut self, binary: &Path) -> Result<(), String> {
        let process = Collector::start(binary, &self.config, self.addr, &self.log, "info")
            .map_err(|e| format!("{}: {e}", self.name))?;
        let started = Instant::now();
        while let Err(e) = process.metrics() {
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "{}: no /metrics within 60 s: {e} (log {})",
                    self.name,
                    self.log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.process = Some(process);
        Ok(())
    }

    pub(super) fn running(&self) -> Result<&Collector, String> {
        self.process
            .as_ref()
            .ok_or_else(|| format!("{} is not running", self.name))
    }

    pub(super) fn metrics(&self) -> Result<Metrics, String> {
        self.running()?
            .metrics()
            .map_err(|e| format!("{}: {e}", self.name))
    }

    pub(super) fn kill9(&mut self) -> Result<(), String> {
        match self.process.take() {
            Some(process) => process.kill9(),
            None => Ok(()),
        }
    }

    /// SIGTERM and a clean exit within 60 s (nothing when not running).
    pub(super) fn terminate(&mut self) -> Result<(), String> {
        match self.process.take() {
            Some(process) => process
                .terminate(Duration::from_secs(60))
                .map(drop)
                .map_err(|e| format!("{}: {e} (log {})", self.name, self.log.display())),
            None => Ok(()),
        }
    }
}

/// What [`RssSampler`] saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct RssReport {
    /// `VmRSS` when sampling started, KiB.
    pub(super) first_kib: u64,
    /// The largest `VmRSS` sampled, KiB, and when (seconds after the start).
    pub(super) peak_kib: u64,
    pub(super) peak_at: f64,
    /// Samples taken.
    pub(super) samples: u64,
}

/// Reads `VmRSS` of `/proc/PID/status` every 100 ms on a thread of its own.
pub(super) struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<RssReport>,
}

impl RssSampler {
    pub(super) fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut report = RssReport::default();
            while !stopped.load(Ordering::SeqCst) {
                let Some(kib) = vm_rss_kib(pid) else { break };
                if report.samples == 0 {
                    report.first_kib = kib;
                }
                report.samples += 1;
                if kib > report.peak_kib {
                    report.peak_kib = kib;
                    report.peak_at = started.elapsed().as_secs_f64();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            report
        });
        Self { stop, thread }
    }

    pub(super) fn stop(self) -> RssReport {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or_default()
    }
}

/// `VmRSS` of process `pid`, KiB.
fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// KiB as MiB, one decimal.
pub(super) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
