//! The accounting of `cargo xtask cluster`: each phase's loads against the
//! ids stored in PostgreSQL, and the Markdown table.

use std::collections::HashSet;

use super::ClusterArgs;
use crate::harness::{LoadReport, event_id};

/// The figures of one phase, from the loads' reports and the ids stored.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Tally {
    pub(super) sent: u64,
    pub(super) accepted: u64,
    /// Distinct ids of the phase's loads found in PostgreSQL.
    pub(super) stored: u64,
    /// Answered 202 but not in PostgreSQL.
    pub(super) lost: u64,
    /// In PostgreSQL without a 202 (a request cut by a kill after its
    /// events reached the log): allowed, but shown.
    pub(super) without_202: u64,
}

/// Tallies the loads of a phase (each with its run id) against `stored`.
pub(super) fn tally(loads: &[(u32, &LoadReport)], stored: &HashSet<String>) -> Tally {
    let mut tally = Tally::default();
    for (run, report) in loads {
        tally.sent += report.sent;
        tally.accepted += report.accepted.len() as u64;
        tally.lost += report
            .accepted
            .iter()
            .filter(|seq| !stored.contains(&event_id(*run, **seq)))
            .count() as u64;
    }
    let prefixes: Vec<String> = loads.iter().map(|(run, _)| format!("{run:08x}-")).collect();
    tally.stored = stored
        .iter()
        .filter(|id| prefixes.iter().any(|p| id.starts_with(p.as_str())))
        .count() as u64;
    tally.without_202 = tally.stored.saturating_sub(tally.accepted - tally.lost);
    tally
}

/// One row of the table, besides its tally.
pub(super) struct Phase {
    pub(super) name: String,
    /// The run id of each of its two loads.
    pub(super) runs: [u32; 2],
    pub(super) reports: Vec<LoadReport>,
    /// Rows `ON CONFLICT` removed during it.
    pub(super) duplicates: u64,
    /// The relays' `tidings_source_redelivered_total` at its end.
    pub(super) redelivered: u64,
    /// Rows per second, and how they were measured.
    pub(super) throughput: String,
    /// The draining relay's peak `VmRSS`, if sampled.
    pub(super) rss: Option<String>,
    /// p50 / p99 of 202 → row, if measured.
    pub(super) latency: Option<String>,
    pub(super) notes: Vec<String>,
}

/// Prints the table (under a line naming `broker`); whether anything
/// answered 202 was lost.
pub(super) fn report(
    broker: &str,
    phases: &[Phase],
    stored: &HashSet<String>,
    stream_messages: Option<u64>,
    args: &ClusterArgs,
) -> bool {
    println!(
        "\nBroker: {broker}\n\n| phase | events sent | accepted (202) | distinct ids in PostgreSQL | stored without a 202 | duplicates removed | relay redeliveries | lost | relay rows/s | peak relay RSS | latency p50 / p99 (202 → row) | notes |\n|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|"
    );
    let mut lost = 0;
    for phase in phases {
        let loads: Vec<(u32, &LoadReport)> =
            phase.runs.iter().copied().zip(&phase.reports).collect();
        let t = tally(&loads, stored);
        lost += t.lost;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            phase.name,
            t.sent,
            t.accepted,
            t.stored,
            t.without_202,
            phase.duplicates,
            phase.redelivered,
            t.lost,
            phase.throughput,
            phase.rss.as_deref().unwrap_or("–"),
            phase.latency.as_deref().unwrap_or("–"),
            phase.notes.join("; ")
        );
    }
    if let Some(messages) = stream_messages {
        println!(
            "\nThe stream held {messages} messages (one per distinct id published); {} rows in PostgreSQL.",
            stored.len()
        );
    } else {
        println!("\n{} rows in PostgreSQL.", stored.len());
    }
    println!("\nCommand: `cargo xtask cluster{}`", command(args));
    if lost > 0 {
        println!("\nLOST: {lost} events answered 202 are not in PostgreSQL");
    }
    lost > 0
}

/// The options that repeat the run.
fn command(args: &ClusterArgs) -> String {
    let mut line = format!(
        "{} --rate {} --seconds {}",
        args.broker.flags(),
        args.rate,
        args.seconds
    );
    if args.backlog_events > 0 {
        line += &format!(" --backlog-events {}", args.backlog_events);
    } else {
        line += &format!(" --backlog-seconds {}", args.backlog_seconds);
    }
    if args.backlog_relays != 1 {
        line += &format!(" --backlog-relays {}", args.backlog_relays);
    }
    line += &format!(" --latency-seconds {}", args.latency_seconds);
    if let Some(rate) = args.latency_rate {
        line += &format!(" --latency-rate {rate}");
    }
    for (kill, flag) in [
        (args.files, " --no-files"),
        (args.kill_relay, " --no-kill-relay"),
        (args.kill_collector, " --no-kill-collector"),
        (args.kill_broker, " --no-kill-broker"),
    ] {
        if !kill {
            line += flag;
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_counts_what_was_promised_against_what_was_stored() {
        let (a, b) = (0x0000_00a0, 0x0000_00b0);
        let load = |sent, accepted: Vec<u64>| LoadReport {
            sent,
            accepted,
            ..LoadReport::default()
        };
        let (first, second) = (load(4, vec![0, 1, 2]), load(3, vec![0, 1]));
        // Load a: 0 and 1 stored, 2 lost, 3 stored without its 202 (its
        // request cut); load b: both stored; another run's id ignored.
        let stored: HashSet<String> = [
            event_id(a, 0),
            event_id(a, 1),
            event_id(a, 3),
            event_id(b, 0),
            event_id(b, 1),
            event_id(0xc0, 0),
        ]
        .into_iter()
        .collect();
        let t = tally(&[(a, &first), (b, &second)], &stored);
        assert_eq!(
            t,
            Tally {
                sent: 7,
                accepted: 5,
                stored: 5,
                lost: 1,
                without_202: 1,
            }
        );
    }
}
