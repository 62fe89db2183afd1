//! The collector's counters and the Prometheus text of `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tidings_config::{Stage, StageMetrics};
use tidings_routing::{DropReason, MetricsSnapshot, RouterStats};
use tidings_wal::WalStats;

/// Counters of the HTTP side.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// Catalog violations that refused a request, by violation code.
    invalid: Mutex<BTreeMap<&'static str, u64>>,
    pub(crate) events_received: AtomicU64,
    pub(crate) events_accepted: AtomicU64,
}

impl Counters {
    pub(crate) fn request(&self, route: &'static str, status: u16) {
        *self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((route, status))
            .or_default() += 1;
    }

    pub(crate) fn rejected(&self, reason: &'static str) {
        bump(&self.rejected, reason);
    }

    /// Requests refused, by reason.
    pub(crate) fn rejected_counts(&self) -> Vec<(&'static str, u64)> {
        self.rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(reason, n)| (*reason, *n))
            .collect()
    }

    /// A request refused for a catalog violation of kind `code`.
    pub(crate) fn invalid(&self, code: &'static str) {
        bump(&self.invalid, code);
    }
}

fn bump(map: &Mutex<BTreeMap<&'static str, u64>>, key: &'static str) {
    *map.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(key)
        .or_default() += 1;
}

/// Escapes a label value for the Prometheus text format.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    /// A counter family with one sample per `reason` label.
    fn by_reason(&mut self, name: &str, help: &str, counts: &Mutex<BTreeMap<&'static str, u64>>) {
        self.head(name, "counter", help);
        let counts = counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (reason, n) in counts.iter() {
            self.sample(name, &[("reason", reason)], *n);
        }
    }

    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
            .collect();
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{}}} {value}", labels.join(","));
        }
    }
}

/// Renders every metric. `intake` is the collector's own queue; `root` the
/// root router; `stages` everything below it.
pub(crate) fn render(
    counters: &Counters,
    intake: &MetricsSnapshot,
    capacity: usize,
    limits: &crate::budget::Limits,
    root: &RouterStats,
    stages: &[Stage],
    wal: Option<&WalStats>,
) -> String {
    let mut out = String::with_capacity(4096);
    let mut f = Family { out: &mut out };

    f.head(
        "tidings_collector_requests_total",
        "counter",
        "HTTP requests, by route and status.",
    );
    for ((route, status), n) in counters
        .requests
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
    {
        f.sample(
            "tidings_collector_requests_total",
            &[("route", route), ("status", &status.to_string())],
            *n,
        );
    }
    f.by_reason(
        "tidings_collector_rejected_requests_total",
        "Requests refused as a whole, by reason.",
        &counters.rejected,
    );
    f.by_reason(
        "tidings_collector_invalid_events_total",
        "Requests refused for an event that does not match the catalog, by violation.",
        &counters.invalid,
    );
    f.head(
        "tidings_collector_events_received_total",
        "counter",
        "Events decoded from requests.",
    );
    f.sample(
        "tidings_collector_events_received_total",
        &[],
        counters.events_received.load(Ordering::Relaxed),
    );
    f.head(
        "tidings_collector_events_accepted_total",
        "counter",
        "Events answered with 202.",
    );
    f.sample(
        "tidings_collector_events_accepted_total",
        &[],
        counters.events_accepted.load(Ordering::Relaxed),
    );
    f.head(
        "tidings_collector_queue_depth",
        "gauge",
        "Accepted events waiting for the pipeline.",
    );
    f.sample(
        "tidings_collector_queue_depth",
        &[],
        intake.queued + intake.buffered,
    );
    f.head(
        "tidings_collector_queue_capacity",
        "gauge",
        "Room of the collector's queue, in events.",
    );
    f.sample("tidings_collector_queue_capacity", &[], capacity as u64);
    f.head(
        "tidings_collector_inflight_body_bytes",
        "gauge",
        "Request-body bytes held right now, against max_inflight_body_bytes.",
    );
    f.sample(
        "tidings_collector_inflight_body_bytes",
        &[],
        limits.bodies.in_use() as u64,
    );
    f.head(
        "tidings_collector_connections",
        "gauge",
        "Connections open right now, against max_connections.",
    );
    f.sample(
        "tidings_collector_connections",
        &[],
        limits.connections.in_use() as u64,
    );

    let mut routers: Vec<(&str, &RouterStats)> = vec![("root", root)];
    let mut deliveries: Vec<&MetricsSnapshot> = vec![intake];
    let metrics: Vec<(String, StageMetrics)> = stages
        .iter()
        .map(|s| (s.path.clone(), s.metrics()))
        .collect();
    for (path, m) in &metrics {
        match m {
            StageMetrics::Router(stats) => routers.push((path, stats)),
            StageMetrics::Delivery(snapshot) => deliveries.push(snapshot),
            _ => {}
        }
    }

    f.head(
        "tidings_router_received_total",
        "counter",
        "Events given to a router.",
    );
    for (name, s) in &routers {
        f.sample(
            "tidings_router_received_total",
            &[("router", name)],
            s.received,
        );
    }
    f.head(
        "tidings_router_filtered_total",
        "counter",
        "Events a router's processors dropped.",
    );
    for (name, s) in &routers {
        f.sample(
            "tidings_router_filtered_total",
            &[("router", name)],
            s.filtered,
        );
    }
    f.head(
        "tidings_router_processor_errors_total",
        "counter",
        "Processor failures (the event went on).",
    );
    for (name, s) in &routers {
        f.sample(
            "tidings_router_processor_errors_total",
            &[("router", name)],
            s.processor_errors,
        );
    }
    f.head(
        "tidings_router_backend_failures_total",
        "counter",
        "Events a router's backend refused or panicked on.",
    );
    for (name, s) in &routers {
        for b in &s.backends {
            f.sample(
                "tidings_router_backend_failures_total",
                &[("router", name), ("backend", &b.name)],
                b.failed + b.panicked,
            );
        }
    }

    type DeliveryFamily = (
        &'static str,
        &'static str,
        &'static str,
        fn(&MetricsSnapshot) -> u64,
    );
    let families: [DeliveryFamily; 7] = [
        (
            "tidings_backend_received_total",
            "counter",
            "Events offered to a delivery stage.",
            |m| m.received,
        ),
        (
            "tidings_backend_delivered_total",
            "counter",
            "Events a delivery stage delivered.",
            |m| m.delivered,
        ),
        (
            "tidings_backend_retried_total",
            "counter",
            "Event deliveries retried.",
            |m| m.retried,
        ),
        (
            "tidings_backend_batches_total",
            "counter",
            "Batches a sink accepted.",
            |m| m.batches,
        ),
        (
            "tidings_backend_queue_depth",
            "gauge",
            "Events waiting in a stage's queue.",
            |m| m.queued,
        ),
        (
            "tidings_backend_buffered_events",
            "gauge",
            "Events being batched, in flight or waiting to retry.",
            |m| m.buffered,
        ),
        (
            "tidings_backend_waiting_events",
            "gauge",
            "Events whose sender waits for room in a stage's full queue (backpressure).",
            |m| m.waiting,
        ),
    ];
    for (name, kind, help, value) in families {
        f.head(name, kind, help);
        for m in &deliveries {
            f.sample(name, &[("backend", &m.name)], value(m));
        }
    }
    type ReasonFamily = (
        &'static str,
        &'static str,
        fn(&MetricsSnapshot, DropReason) -> u64,
    );
    let by_reason: [ReasonFamily; 2] = [
        (
            "tidings_backend_dropped_total",
            "Events a delivery stage dropped, by reason.",
            MetricsSnapshot::dropped,
        ),
        (
            "tidings_backend_dead_lettered_total",
            "Events a sink gave up on and handed to its dead-letter destination, by reason.",
            MetricsSnapshot::dead_lettered,
        ),
    ];
    for (name, help, value) in by_reason {
        f.head(name, "counter", help);
        for m in &deliveries {
            for reason in DropReason::ALL {
                f.sample(
                    name,
                    &[("backend", &m.name), ("reason", reason.as_str())],
                    value(m, reason),
                );
            }
        }
    }
    if let Some(wal) = wal {
        render_wal(&mut f, wal);
    }
    out
}

/// The write-ahead log's families (durable mode only).
fn render_wal(f: &mut Family<'_>, wal: &WalStats) {
    let families: [(&str, &str, &str, u64); 8] = [
        (
            "tidings_wal_appended_events_total",
            "counter",
            "Events made durable in the write-ahead log before their 202.",
            wal.appended_events,
        ),
        (
            "tidings_wal_syncs_total",
            "counter",
            "Group commits: one write and fsync for every append waiting.",
            wal.syncs,
        ),
        (
            "tidings_wal_bytes",
            "gauge",
            "Bytes of write-ahead log segments not yet retired.",
            wal.live_bytes,
        ),
        (
            "tidings_wal_segments",
            "gauge",
            "Write-ahead log segments not yet retired.",
            wal.live_segments,
        ),
        (
            "tidings_wal_retired_segments_total",
            "counter",
            "Segments deleted once every event in them was settled.",
            wal.retired_segments,
        ),
        (
            "tidings_wal_replayed_events_total",
            "counter",
            "Events read back from the log at start.",
            wal.replayed_events,
        ),
        (
            "tidings_wal_damaged_records_total",
            "counter",
            "Torn or corrupt regions skipped while replaying.",
            wal.damaged_regions,
        ),
        (
            "tidings_wal_damaged_bytes_total",
            "counter",
            "Bytes in those regions.",
            wal.damaged_bytes,
        ),
    ];
    for (name, kind, help, value) in families {
        f.head(name, kind, help);
        f.sample(name, &[], value);
    }
    let name = "tidings_wal_refused_appends_total";
    f.head(
        name,
        "counter",
        "Appends refused (503), by reason: the log over its budget, or a failed write.",
    );
    f.sample(name, &[("reason", "full")], wal.refused_full);
    f.sample(name, &[("reason", "failed")], wal.failed);
}
