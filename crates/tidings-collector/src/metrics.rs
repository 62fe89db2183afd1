//! The collector's counters, and the families `/metrics` shows, encoded by
//! `prometheus-client` (so an application's own registry can show them).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};

use crate::Collector;
use crate::collector::Inner;
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use tidings_config::{Stage, StageMetrics};
use tidings_routing::{DropReason, MetricsSnapshot, RouterStats, SourceMetrics};
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

/// One metric family: its name (a counter's without `_total`, which the
/// encoder adds), help, kind, and samples, each a label set and a value.
struct Family<'a> {
    name: &'a str,
    help: &'a str,
    kind: MetricType,
    samples: Vec<(Labels, u64)>,
}

type Labels = Vec<(&'static str, String)>;

impl<'a> Family<'a> {
    fn counter(name: &'a str, help: &'a str) -> Self {
        Self {
            name,
            help,
            kind: MetricType::Counter,
            samples: Vec::new(),
        }
    }

    fn gauge(name: &'a str, help: &'a str) -> Self {
        Self {
            name,
            help,
            kind: MetricType::Gauge,
            samples: Vec::new(),
        }
    }

    fn sample(mut self, labels: Labels, value: u64) -> Self {
        self.samples.push((labels, value));
        self
    }

    fn samples(mut self, samples: impl IntoIterator<Item = (Labels, u64)>) -> Self {
        self.samples.extend(samples);
        self
    }

    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(self.name, self.help, None, self.kind)?;
        for (labels, value) in &self.samples {
            let family = metric.encode_family(labels)?;
            match self.kind {
                MetricType::Counter => ConstCounter::new(*value).encode(family)?,
                _ => ConstGauge::new(*value).encode(family)?,
            }
        }
        Ok(())
    }
}

/// A `reason` label set for each count of `counts`.
fn by_reason(counts: &Mutex<BTreeMap<&'static str, u64>>) -> Vec<(Labels, u64)> {
    counts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(reason, n)| (vec![("reason", (*reason).to_owned())], *n))
        .collect()
}

/// What `/metrics` shows, read at each scrape: the collector's counters,
/// its queue and budgets, and every stage of its routing tree.
pub(crate) struct Scrape<'a> {
    pub(crate) counters: &'a Counters,
    pub(crate) intake: MetricsSnapshot,
    pub(crate) capacity: usize,
    pub(crate) limits: &'a crate::budget::Limits,
    pub(crate) root: RouterStats,
    pub(crate) stages: &'a [Stage],
    pub(crate) wal: Option<WalStats>,
    pub(crate) sources: Vec<SourceMetrics>,
}

impl Scrape<'_> {
    /// Every family, in the order `/metrics` shows them.
    fn families(&self) -> Vec<Family<'static>> {
        let counters = self.counters;
        let requests: Vec<(Labels, u64)> = counters
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|((route, status), n)| {
                (
                    vec![
                        ("route", (*route).to_owned()),
                        ("status", status.to_string()),
                    ],
                    *n,
                )
            })
            .collect();
        let mut families = vec![
            Family::counter(
                "tidings_collector_requests",
                "HTTP requests, by route and status.",
            )
            .samples(requests),
            Family::counter(
                "tidings_collector_rejected_requests",
                "Requests refused as a whole, by reason.",
            )
            .samples(by_reason(&counters.rejected)),
            Family::counter(
                "tidings_collector_invalid_events",
                "Requests refused for an event that does not match the catalog, by violation.",
            )
            .samples(by_reason(&counters.invalid)),
            Family::counter(
                "tidings_collector_events_received",
                "Events decoded from requests.",
            )
            .sample(vec![], counters.events_received.load(Ordering::Relaxed)),
            Family::counter(
                "tidings_collector_events_accepted",
                "Events answered with 202.",
            )
            .sample(vec![], counters.events_accepted.load(Ordering::Relaxed)),
            Family::gauge(
                "tidings_collector_queue_depth",
                "Accepted events waiting for the pipeline.",
            )
            .sample(vec![], self.intake.queued + self.intake.buffered),
            Family::gauge(
                "tidings_collector_queue_capacity",
                "Room of the collector's queue, in events.",
            )
            .sample(vec![], self.capacity as u64),
            Family::gauge(
                "tidings_collector_inflight_body_bytes",
                "Request-body bytes held right now, against max_inflight_body_bytes.",
            )
            .sample(vec![], self.limits.bodies.in_use() as u64),
            Family::gauge(
                "tidings_collector_connections",
                "Connections open right now, against max_connections.",
            )
            .sample(vec![], self.limits.connections.in_use() as u64),
        ];

        let mut routers: Vec<(String, RouterStats)> = vec![("root".to_owned(), self.root.clone())];
        let mut deliveries: Vec<MetricsSnapshot> = vec![self.intake.clone()];
        for stage in self.stages {
            match stage.metrics() {
                StageMetrics::Router(stats) => routers.push((stage.path.clone(), stats)),
                StageMetrics::Delivery(snapshot) => deliveries.push(snapshot),
                _ => {}
            }
        }
        let router = |name: &str| vec![("router", name.to_owned())];
        type RouterFamily = (&'static str, &'static str, fn(&RouterStats) -> u64);
        let router_families: [RouterFamily; 3] = [
            (
                "tidings_router_received",
                "Events given to a router.",
                |s| s.received,
            ),
            (
                "tidings_router_filtered",
                "Events a router's processors dropped.",
                |s| s.filtered,
            ),
            (
                "tidings_router_processor_errors",
                "Processor failures (the event went on).",
                |s| s.processor_errors,
            ),
        ];
        for (name, help, value) in router_families {
            families.push(
                Family::counter(name, help)
                    .samples(routers.iter().map(|(n, s)| (router(n), value(s)))),
            );
        }
        families.push(
            Family::counter(
                "tidings_router_backend_failures",
                "Events a router's backend refused or panicked on.",
            )
            .samples(routers.iter().flat_map(|(n, s)| {
                s.backends.iter().map(move |b| {
                    (
                        vec![("router", n.clone()), ("backend", b.name.clone())],
                        b.failed + b.panicked,
                    )
                })
            })),
        );

        let backend = |m: &MetricsSnapshot| vec![("backend", m.name.clone())];
        type DeliveryFamily = (
            fn(&'static str, &'static str) -> Family<'static>,
            &'static str,
            &'static str,
            fn(&MetricsSnapshot) -> u64,
        );
        let delivery_families: [DeliveryFamily; 7] = [
            (
                Family::counter,
                "tidings_backend_received",
                "Events offered to a delivery stage.",
                |m| m.received,
            ),
            (
                Family::counter,
                "tidings_backend_delivered",
                "Events a delivery stage delivered.",
                |m| m.delivered,
            ),
            (
                Family::counter,
                "tidings_backend_retried",
                "Event deliveries retried.",
                |m| m.retried,
            ),
            (
                Family::counter,
                "tidings_backend_batches",
                "Batches a sink accepted.",
                |m| m.batches,
            ),
            (
                Family::gauge,
                "tidings_backend_queue_depth",
                "Events waiting in a stage's queue.",
                |m| m.queued,
            ),
            (
                Family::gauge,
                "tidings_backend_buffered_events",
                "Events being batched, in flight or waiting to retry.",
                |m| m.buffered,
            ),
            (
                Family::gauge,
                "tidings_backend_waiting_events",
                "Events whose sender waits for room in a stage's full queue (backpressure).",
                |m| m.waiting,
            ),
        ];
        for (family, name, help, value) in delivery_families {
            families.push(
                family(name, help).samples(deliveries.iter().map(|m| (backend(m), value(m)))),
            );
        }
        type ReasonFamily = (
            &'static str,
            &'static str,
            fn(&MetricsSnapshot, DropReason) -> u64,
        );
        let reason_families: [ReasonFamily; 2] = [
            (
                "tidings_backend_dropped",
                "Events a delivery stage dropped, by reason.",
                MetricsSnapshot::dropped,
            ),
            (
                "tidings_backend_dead_lettered",
                "Events a sink gave up on and handed to its dead-letter destination, by reason.",
                MetricsSnapshot::dead_lettered,
            ),
        ];
        for (name, help, value) in reason_families {
            families.push(
                Family::counter(name, help).samples(deliveries.iter().flat_map(|m| {
                    DropReason::ALL.into_iter().map(move |reason| {
                        (
                            vec![
                                ("backend", m.name.clone()),
                                ("reason", reason.as_str().to_owned()),
                            ],
                            value(m, reason),
                        )
                    })
                })),
            );
        }
        if !self.sources.is_empty() {
            families.extend(source_families(&self.sources));
        }
        if let Some(wal) = &self.wal {
            families.extend(wal_families(wal));
        }
        families
    }
}

/// The write-ahead log's families (durable mode only).
/// The families of `[sources.*]`, labelled by source.
fn source_families(sources: &[SourceMetrics]) -> Vec<Family<'static>> {
    type SourceFamily = (&'static str, &'static str, bool, fn(&SourceMetrics) -> u64);
    let families: [SourceFamily; 6] = [
        (
            "tidings_source_fetched",
            "Messages a source read.",
            true,
            |m| m.fetched,
        ),
        (
            "tidings_source_redelivered",
            "Messages read that the broker had delivered before.",
            true,
            |m| m.redelivered,
        ),
        (
            "tidings_source_acked",
            "Messages acknowledged once their events were settled.",
            true,
            |m| m.acked,
        ),
        (
            "tidings_source_dead_lettered",
            "Undecodable messages, never redelivered: dead-lettered (or dropped with dead_letter = none).",
            true,
            |m| m.dead_lettered,
        ),
        (
            "tidings_source_unsettled",
            "Messages read and not yet acknowledged.",
            false,
            |m| m.unsettled,
        ),
        (
            "tidings_source_lag",
            "Messages in the broker not yet delivered to the consumer.",
            false,
            |m| m.lag,
        ),
    ];
    families
        .into_iter()
        .map(|(name, help, counter, value)| {
            let family = if counter {
                Family::counter(name, help)
            } else {
                Family::gauge(name, help)
            };
            family.samples(
                sources
                    .iter()
                    .map(|m| (vec![("source", m.name.clone())], value(m))),
            )
        })
        .collect()
}

fn wal_families(wal: &WalStats) -> Vec<Family<'static>> {
    vec![
        Family::counter(
            "tidings_wal_appended_events",
            "Events made durable in the write-ahead log before their 202.",
        )
        .sample(vec![], wal.appended_events),
        Family::counter(
            "tidings_wal_syncs",
            "Group commits: one write and fsync for every append waiting.",
        )
        .sample(vec![], wal.syncs),
        Family::gauge(
            "tidings_wal_bytes",
            "Bytes of write-ahead log segments not yet retired.",
        )
        .sample(vec![], wal.live_bytes),
        Family::gauge(
            "tidings_wal_segments",
            "Write-ahead log segments not yet retired.",
        )
        .sample(vec![], wal.live_segments),
        Family::counter(
            "tidings_wal_retired_segments",
            "Segments deleted once every event in them was settled.",
        )
        .sample(vec![], wal.retired_segments),
        Family::counter(
            "tidings_wal_replayed_events",
            "Events read back from the log at start.",
        )
        .sample(vec![], wal.replayed_events),
        Family::counter(
            "tidings_wal_damaged_records",
            "Torn or corrupt regions skipped while replaying.",
        )
        .sample(vec![], wal.damaged_regions),
        Family::counter("tidings_wal_damaged_bytes", "Bytes in those regions.")
            .sample(vec![], wal.damaged_bytes),
        Family::counter(
            "tidings_wal_refused_appends",
            "Appends refused (503), by reason: the log over its budget, or a failed write.",
        )
        .sample(vec![("reason", "full".to_owned())], wal.refused_full)
        .sample(vec![("reason", "failed".to_owned())], wal.failed),
    ]
}

impl Scrape<'_> {
    /// Encodes every family into `encoder` (a `prometheus-client` scrape).
    pub(crate) fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for family in self.families() {
            family.encode(&mut encoder)?;
        }
        Ok(())
    }
}

/// A collector's metrics for an application's `prometheus-client`
/// registry ([`Collector::metrics_collector`]).
pub struct MetricsCollector {
    inner: std::sync::Weak<Inner>,
}

impl fmt::Debug for MetricsCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsCollector")
            .field("collector_alive", &(self.inner.strong_count() > 0))
            .finish()
    }
}

impl prometheus_client::collector::Collector for MetricsCollector {
    fn encode(
        &self,
        encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> Result<(), fmt::Error> {
        match self.inner.upgrade() {
            Some(inner) => Collector::scrape(&inner).encode(encoder),
            None => Ok(()),
        }
    }
}

/// The text served at `/metrics`.
pub(crate) fn text(inner: &Arc<Inner>) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(MetricsCollector {
        inner: Arc::downgrade(inner),
    }));
    let mut text = String::new();
    // Writing into a `String` never fails.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

impl Collector {
    /// The text served at `/metrics` (OpenMetrics, which Prometheus reads):
    /// [`Collector::metrics_collector`] encoded on its own.
    #[must_use]
    pub fn metrics_text(&self) -> String {
        text(&self.inner)
    }

    /// The collector's metrics as a `prometheus-client` collector: register
    /// it in your application's registry
    /// (`registry.register_collector(Box::new(collector.metrics_collector()))`)
    /// and your own exporter shows every family of `/metrics`, read at each
    /// scrape. It does not keep the collector alive: once the collector is
    /// gone it shows nothing.
    #[must_use]
    pub fn metrics_collector(&self) -> MetricsCollector {
        MetricsCollector {
            inner: Arc::downgrade(&self.inner),
        }
    }

    fn scrape(inner: &Inner) -> Scrape<'_> {
        Scrape {
            counters: &inner.counters,
            intake: inner.intake.metrics(),
            capacity: inner.options.queue_capacity,
            limits: &inner.budgets,
            root: inner.root.stats(),
            stages: &inner.stages,
            wal: inner.durable.as_ref().map(|d| d.stats()),
            sources: inner.sources.metrics(),
        }
    }
}
