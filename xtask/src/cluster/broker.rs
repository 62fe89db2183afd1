//! The broker between the collectors and the relays, in one of three
//! modes: the local NATS server (a stream of one replica in memory), a
//! three-node NATS cluster the command starts (a stream of three replicas
//! on file), or the local RabbitMQ (a durable topic exchange and one
//! durable queue the relays share as competing consumers).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use async_nats::jetstream::stream::StorageType;

use super::nats_cluster::NatsCluster;
use super::{BrokerMode, CONSUMER};
use crate::brokers::{AmqpQueue, JetStream, Placement};
use crate::harness::{NATS_ADDR, require_nats, require_rabbitmq};

/// The relays' `ack_wait_ms` (NATS).
const ACK_WAIT_MS: u64 = 5000;
/// How long a new cluster may take to accept the stream (it elects its
/// JetStream leader first).
const CREATE_LIMIT: Duration = Duration::from_secs(30);

/// What the broker holds for the relays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Held {
    /// Messages not delivered to a relay yet (or given back).
    pub(super) pending: u64,
    /// Messages delivered and not acknowledged yet (for RabbitMQ only
    /// known when asked `thoroughly`: `rabbitmqctl` is slow).
    pub(super) unacknowledged: u64,
}

/// The broker of one run. Its fields drop in order: the stream (deleted
/// through the cluster) before the cluster's nodes are killed.
pub(super) enum Broker {
    Nats {
        stream: Box<JetStream>,
        /// The nodes, with `--nats cluster`.
        nodes: Option<NatsCluster>,
        urls: Vec<String>,
    },
    Amqp(AmqpQueue),
}

impl Broker {
    /// Sets up the broker of `mode` for run `run` (nodes under `work`).
    pub(super) fn create(mode: BrokerMode, run: u32, work: &Path) -> Result<Self, String> {
        let name = format!("TIDINGS_CLUSTER_{run:08x}");
        let prefix = format!("cl{run:08x}");
        let window = Duration::from_secs(120);
        match mode {
            BrokerMode::Nats => {
                require_nats()?;
                let stream = Box::new(JetStream::create(&name, &prefix, -1, window)?);
                Ok(Self::Nats {
                    stream,
                    nodes: None,
                    urls: vec![format!("nats://{NATS_ADDR}")],
                })
            }
            BrokerMode::NatsCluster => {
                let nodes = NatsCluster::start(work)?;
                let placement = Placement {
                    servers: nodes.urls(),
                    replicas: 3,
                    storage: StorageType::File,
                };
                let started = Instant::now();
                let stream = loop {
                    match JetStream::create_on(&placement, &name, &prefix, -1, window) {
                        Ok(stream) => break Box::new(stream),
                        Err(e) if started.elapsed() > CREATE_LIMIT => return Err(e),
                        Err(_) => std::thread::sleep(Duration::from_millis(500)),
                    }
                };
                Ok(Self::Nats {
                    stream,
                    urls: placement.servers,
                    nodes: Some(nodes),
                })
            }
            BrokerMode::Amqp => {
                require_rabbitmq()?;
                Ok(Self::Amqp(AmqpQueue::declare_with(
                    &format!("tidings.cluster.{run:08x}"),
                    true,
                )?))
            }
        }
    }

    /// The keys of the collectors' sink (`type` and its options).
    pub(super) fn sink(&self) -> (&'static str, String) {
        match self {
            Self::Nats { stream, urls, .. } => (
                "nats",
                format!(
                    "url = \"{}\"\nsubject = \"{}.{{name}}\"\nstream = \"{}\"",
                    urls.join(","),
                    stream_prefix(&stream.name),
                    stream.name
                ),
            ),
            Self::Amqp(queue) => (
                "amqp",
                format!(
                    "url = \"{}\"\nexchange = \"{}\"\nrouting_key = \"events.{{name}}\"",
                    AmqpQueue::url(),
                    queue.name
                ),
            ),
        }
    }

    /// The relays' `[sources.in]` table.
    pub(super) fn source(&self) -> String {
        match self {
            Self::Nats { stream, urls, .. } => format!(
                "[sources.in]\ntype = \"nats\"\nurl = \"{}\"\nstream = \"{}\"\nconsumer = \"{CONSUMER}\"\nack_wait_ms = {ACK_WAIT_MS}\n",
                urls.join(","),
                stream.name
            ),
            Self::Amqp(queue) => format!(
                "[sources.in]\ntype = \"amqp\"\nurl = \"{}\"\nqueue = \"{}\"\n",
                AmqpQueue::url(),
                queue.name
            ),
        }
    }

    /// A line naming the broker, for the table.
    pub(super) fn describe(&self) -> String {
        match self {
            Self::Nats { nodes: None, .. } => {
                "JetStream (one local server, stream in memory)".to_owned()
            }
            Self::Nats { nodes: Some(_), .. } => {
                "JetStream (3-node cluster, stream of 3 replicas on file)".to_owned()
            }
            Self::Amqp(_) => "RabbitMQ (one durable queue)".to_owned(),
        }
    }

    /// What the broker still holds for the relays; `thorough` asks
    /// RabbitMQ for its unacknowledged messages too.
    pub(super) fn held(&self, thorough: bool) -> Result<Held, String> {
        match self {
            Self::Nats { stream, .. } => {
                let counts = stream.counts(CONSUMER)?;
                Ok(Held {
                    pending: counts.pending,
                    unacknowledged: counts.ack_pending,
                })
            }
            Self::Amqp(queue) => Ok(Held {
                pending: queue.ready()?.0,
                unacknowledged: if thorough {
                    unacknowledged(&queue.name)?
                } else {
                    0
                },
            }),
        }
    }

    /// Messages the stream holds (one per distinct id published); `None`
    /// for RabbitMQ, whose queue keeps nothing once acknowledged.
    pub(super) fn stream_messages(&self) -> Option<u64> {
        match self {
            Self::Nats { stream, .. } => stream.counts(CONSUMER).ok().map(|c| c.messages),
            Self::Amqp(_) => None,
        }
    }

    /// The nodes, with `--nats cluster`.
    pub(super) fn nodes(&mut self) -> Option<&mut NatsCluster> {
        match self {
            Self::Nats { nodes, .. } => nodes.as_mut(),
            Self::Amqp(_) => None,
        }
    }

    /// The node leading the stream (its index among the nodes), if known.
    pub(super) fn leader(&self) -> Option<usize> {
        match self {
            Self::Nats {
                stream,
                nodes: Some(nodes),
                ..
            } => stream
                .leader()
                .ok()
                .flatten()
                .and_then(|name| nodes.index_of(&name)),
            _ => None,
        }
    }
}

/// `cl<run>` of `TIDINGS_CLUSTER_<run>`.
fn stream_prefix(stream: &str) -> String {
    format!("cl{}", stream.trim_start_matches("TIDINGS_CLUSTER_"))
}

/// The queue's unacknowledged messages, from `rabbitmqctl list_queues`.
fn unacknowledged(queue: &str) -> Result<u64, String> {
    let output = Command::new("rabbitmqctl")
        .args(["list_queues", "-q", "--no-table-headers"])
        .args(["name", "messages_unacknowledged"])
        .output()
        .map_err(|e| format!("cannot run rabbitmqctl: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(queue)).then(|| words.next()?.parse().ok())?
        })
        .next()
        .ok_or_else(|| {
            format!(
                "rabbitmqctl list_queues does not show {queue}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )
        })
}
