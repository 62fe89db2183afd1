//! Printing a validated config: the tree `tidings check` shows, each
//! destination with its delivery, what it may drop after a 202 and where
//! its dead letters go.

use std::fmt;

use tidings_routing::ProcessorsOn;

use crate::options::Feed;
use crate::tree::{BackendNode, Config, RouterNode};

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.collector;
        writeln!(
            f,
            "collector listen={} max_body_bytes={} max_batch_events={} max_inflight_body_bytes={} max_connections={} write_keys={} allowed_origins={:?} queue_capacity={}",
            c.listen,
            c.max_body_bytes,
            c.max_batch_events,
            c.max_inflight_body_bytes,
            c.max_connections,
            if c.write_keys.is_empty() {
                "none (open)".to_owned()
            } else {
                format!("{} (redacted)", c.write_keys.len())
            },
            c.allowed_origins,
            c.queue_capacity,
        )?;
        if c.ui.enabled {
            writeln!(
                f,
                "collector ui at /ui (admin key set, redacted) max_streams={} tail_buffer={}",
                c.ui.max_streams, c.ui.tail_buffer
            )?;
        }
        if let Some(catalog) = &c.catalog {
            let mode = if catalog.strict { "strict" } else { "lenient" };
            writeln!(f, "collector catalog {} ({mode})", catalog.path)?;
        }
        if c.client_ip != crate::ClientIp::Anonymized || !c.trusted_proxies.is_empty() {
            writeln!(
                f,
                "collector client_ip={} trusted_proxies={:?}",
                c.client_ip.as_str(),
                c.trusted_proxies
            )?;
        }
        if let Some(dir) = &c.static_dir {
            writeln!(f, "collector static files at / from {dir}")?;
        }
        if c.ack == crate::AckMode::Durable {
            writeln!(
                f,
                "collector ack={} wal_path={} wal_max_bytes={}",
                c.ack.as_str(),
                c.wal_path,
                c.wal_max_bytes
            )?;
        }
        for (name, source) in &self.sources {
            writeln!(
                f,
                "source {name}: {} {}",
                source.type_name,
                source.source.describe()
            )?;
            writeln!(
                f,
                "  acknowledges a message once its events are settled; undecodable ones go to {}",
                source.dead_letter.for_source().map_or_else(
                    || "no dead letters (dropped and counted)".to_owned(),
                    |node| format!("dead letters: {}", node.summary())
                )
            )?;
        }
        write_router(f, "root router", &self.root, 0, Feed::Worker)
    }
}

fn write_router(
    f: &mut fmt::Formatter<'_>,
    head: &str,
    node: &RouterNode,
    depth: usize,
    feed: Feed,
) -> fmt::Result {
    let pad = "  ".repeat(depth);
    writeln!(f, "{pad}{head}")?;
    for (i, p) in node.processors.iter().enumerate() {
        writeln!(f, "{pad}  processor [{i}] {} {}", p.type_name, p.summary)?;
    }
    if node.backends.is_empty() {
        writeln!(f, "{pad}  (no backends: events stop here)")?;
    }
    for (name, backend) in &node.backends {
        match backend {
            BackendNode::Router(router) => {
                write_router(f, &format!("{name}: router"), router, depth + 1, feed)?
            }
            BackendNode::AsyncRouter { router, queue } => {
                let mut head = format!("{name}: async_router {}", queue.describe(feed));
                if queue.processors_on() == ProcessorsOn::Worker {
                    head.push_str(" processors_on=worker");
                }
                if queue.when_full(feed).may_drop() {
                    head.push_str(" (after 202: MAY DROP events while its queue is full)");
                }
                write_router(f, &head, router, depth + 1, Feed::Worker)?;
            }
            BackendNode::Sink {
                type_name,
                delivery,
                sink,
                dead_letter,
            } => {
                writeln!(f, "{pad}  {name}: {type_name} {}", sink.describe())?;
                writeln!(f, "{pad}    delivery: {}", delivery.describe(feed))?;
                match delivery.may_drop(feed) {
                    Some(why) => writeln!(f, "{pad}    after 202: MAY DROP events ({why})")?,
                    None => writeln!(
                        f,
                        "{pad}    after 202: keeps every event (backpressure up to the door)"
                    )?,
                }
                match dead_letter.resolve(delivery, feed) {
                    Some(node) => writeln!(f, "{pad}    dead letters: {}", node.summary())?,
                    None => writeln!(
                        f,
                        "{pad}    dead letters: none (events the sink gives up on are dropped and counted)"
                    )?,
                }
            }
            BackendNode::Plain { type_name, backend } => {
                writeln!(f, "{pad}  {name}: {type_name} {}", backend.describe())?;
                writeln!(
                    f,
                    "{pad}    delivery: none (a plain backend, sent to in line)"
                )?;
                match backend.may_drop() {
                    Some(why) => writeln!(f, "{pad}    after 202: MAY DROP events ({why})")?,
                    None => writeln!(f, "{pad}    after 202: keeps every event it accepts")?,
                }
            }
        }
    }
    Ok(())
}
