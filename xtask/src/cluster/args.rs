//! The command line of `cargo xtask cluster`.

pub(super) const USAGE: &str = "usage: cargo xtask cluster [--broker nats|amqp] [--nats local|cluster] [--rate EVENTS_PER_SECOND] [--seconds N] [--backlog-seconds N | --backlog-events N] [--backlog-relays 1|2] [--latency-seconds N] [--latency-rate EVENTS_PER_SECOND] [--no-files] [--no-kill-relay] [--no-kill-collector] [--no-kill-broker]";

/// Which broker carries the events from the collectors to the relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BrokerMode {
    /// The local NATS server: a stream of one replica, in memory.
    Nats,
    /// Three `nats-server` processes started by the command: a stream of
    /// three replicas, on file; one node killed mid-run.
    NatsCluster,
    /// The local RabbitMQ: one durable queue, the relays its competing
    /// consumers.
    Amqp,
}

impl BrokerMode {
    /// The options that select it.
    pub(crate) fn flags(self) -> &'static str {
        match self {
            Self::Nats => "",
            Self::NatsCluster => " --nats cluster",
            Self::Amqp => " --broker amqp",
        }
    }
}

/// The command line of `cargo xtask cluster`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClusterArgs {
    pub(crate) broker: BrokerMode,
    /// Events per second over both collectors.
    pub(crate) rate: f64,
    /// Length of the run under load.
    pub(crate) seconds: f64,
    /// Length of the load that builds the backlog (0: no backlog phase,
    /// unless `backlog_events`).
    pub(crate) backlog_seconds: f64,
    /// Events of the backlog, sent as fast as the collectors take them
    /// (0: `backlog_seconds` at `rate` instead).
    pub(crate) backlog_events: u64,
    /// Relays that drain the backlog: 1 or 2 (the issue's "a second relay
    /// process does not lower the total").
    pub(crate) backlog_relays: usize,
    /// Length of the latency phase (0: none).
    pub(crate) latency_seconds: f64,
    /// Its rate; `None`: half of what the capacity phase stored (see
    /// `latency.rs`).
    pub(crate) latency_rate: Option<f64>,
    /// The relays also write gzip files (the topology of issue 17); off
    /// to time a relay into PostgreSQL alone.
    pub(crate) files: bool,
    pub(crate) kill_relay: bool,
    pub(crate) kill_collector: bool,
    /// Kill the stream's leader (`--nats cluster` only).
    pub(crate) kill_broker: bool,
}

/// Parses the arguments after `cluster`.
pub(crate) fn parse(args: &[String]) -> Result<ClusterArgs, String> {
    let mut parsed = ClusterArgs {
        broker: BrokerMode::Nats,
        rate: 6000.0,
        seconds: 20.0,
        backlog_seconds: 10.0,
        backlog_events: 0,
        backlog_relays: 1,
        latency_seconds: 10.0,
        latency_rate: None,
        files: true,
        kill_relay: true,
        kill_collector: true,
        kill_broker: true,
    };
    let (mut amqp, mut nats_cluster) = (false, false);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |positive: bool| -> Result<f64, String> {
            args.next()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite() && (*v > 0.0 || (!positive && *v == 0.0)))
                .ok_or_else(|| format!("{arg} takes a number; {USAGE}"))
        };
        match arg.as_str() {
            "--rate" => parsed.rate = value(true)?,
            "--seconds" => parsed.seconds = value(true)?,
            "--backlog-seconds" => parsed.backlog_seconds = value(false)?,
            "--backlog-events" => {
                let events = value(false)?;
                if events.fract() != 0.0 {
                    return Err(format!("--backlog-events takes a whole number; {USAGE}"));
                }
                parsed.backlog_events = events as u64;
            }
            "--backlog-relays" => {
                parsed.backlog_relays = match value(true)? {
                    1.0 => 1,
                    2.0 => 2,
                    _ => return Err(format!("--backlog-relays takes 1 or 2; {USAGE}")),
                };
            }
            "--latency-seconds" => parsed.latency_seconds = value(false)?,
            "--latency-rate" => parsed.latency_rate = Some(value(true)?),
            "--broker" | "--nats" => {
                let choice = args.next().map(String::as_str);
                match (arg.as_str(), choice) {
                    ("--broker", Some("nats")) => amqp = false,
                    ("--broker", Some("amqp")) => amqp = true,
                    ("--nats", Some("local")) => nats_cluster = false,
                    ("--nats", Some("cluster")) => nats_cluster = true,
                    _ => {
                        return Err(format!(
                            "--broker takes nats or amqp, --nats local or cluster (not {choice:?}); {USAGE}"
                        ));
                    }
                }
            }
            "--no-files" => parsed.files = false,
            "--no-kill-relay" => parsed.kill_relay = false,
            "--no-kill-collector" => parsed.kill_collector = false,
            "--no-kill-broker" => parsed.kill_broker = false,
            other => return Err(format!("unknown cluster argument {other:?}; {USAGE}")),
        }
    }
    parsed.broker = match (amqp, nats_cluster) {
        (false, false) => BrokerMode::Nats,
        (false, true) => BrokerMode::NatsCluster,
        (true, false) => BrokerMode::Amqp,
        (true, true) => return Err(format!("--nats cluster needs --broker nats; {USAGE}")),
    };
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Result<ClusterArgs, String> {
        parse(&words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn arguments_have_defaults_and_kills_can_be_skipped() {
        let defaults = args(&[]).unwrap();
        assert!(defaults.kill_relay && defaults.kill_collector && defaults.backlog_seconds > 0.0);
        assert_eq!(defaults.broker, BrokerMode::Nats);
        assert_eq!((defaults.backlog_events, defaults.latency_rate), (0, None));
        let set = args(&[
            "--rate",
            "800",
            "--seconds",
            "5",
            "--backlog-seconds",
            "0",
            "--no-kill-relay",
        ])
        .unwrap();
        assert_eq!(
            (set.rate, set.seconds, set.backlog_seconds),
            (800.0, 5.0, 0.0)
        );
        assert!(!set.kill_relay && set.kill_collector && set.kill_broker);
        assert!(args(&["--seconds", "0"]).is_err());
        assert!(args(&["--rate", "inf"]).is_err());
        assert!(args(&["--nope"]).unwrap_err().contains("usage"));
    }

    #[test]
    fn brokers_are_chosen_by_name() {
        assert_eq!(
            args(&["--nats", "cluster"]).unwrap().broker,
            BrokerMode::NatsCluster
        );
        assert_eq!(
            args(&["--broker", "nats", "--nats", "cluster"])
                .unwrap()
                .broker,
            BrokerMode::NatsCluster
        );
        assert_eq!(
            args(&["--broker", "amqp"]).unwrap().broker,
            BrokerMode::Amqp
        );
        assert_eq!(
            args(&["--nats", "cluster", "--nats", "local"])
                .unwrap()
                .broker,
            BrokerMode::Nats
        );
        assert!(args(&["--broker", "amqp", "--nats", "cluster"]).is_err());
        assert!(args(&["--broker", "kafka"]).unwrap_err().contains("usage"));
        assert!(args(&["--broker"]).is_err());
        assert!(!args(&["--no-kill-broker"]).unwrap().kill_broker);
    }

    #[test]
    fn the_backlog_and_the_latency_phase_can_be_sized() {
        let set = args(&[
            "--backlog-events",
            "1000000",
            "--latency-seconds",
            "0",
            "--latency-rate",
            "2500",
        ])
        .unwrap();
        assert_eq!(set.backlog_events, 1_000_000);
        assert_eq!(set.backlog_relays, 1);
        assert_eq!(args(&["--backlog-relays", "2"]).unwrap().backlog_relays, 2);
        assert!(set.files && !args(&["--no-files"]).unwrap().files);
        assert!(args(&["--backlog-relays", "3"]).is_err());
        assert_eq!(set.latency_seconds, 0.0);
        assert_eq!(set.latency_rate, Some(2500.0));
        assert!(args(&["--backlog-events", "1.5"]).is_err());
        assert!(args(&["--backlog-events", "-3"]).is_err());
        assert!(args(&["--latency-rate", "0"]).is_err());
    }
}
