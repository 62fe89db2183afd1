//! Connecting to the server (and reconnecting after an outage) on the
//! sink's own I/O thread, and checking or creating the stream.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::{Client, ConnectOptions, ServerAddr};

use crate::builder::TARGET;
use crate::error::NatsError;

/// The connection options and stream wishes, moved onto the I/O thread.
pub(crate) struct Setup {
    pub(crate) url: String,
    pub(crate) redacted: Arc<str>,
    pub(crate) ack_timeout: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) stream: Option<String>,
    pub(crate) create: Option<(String, String)>,
    pub(crate) duplicate_window: Duration,
    pub(crate) sample: String,
}

pub(crate) struct Connected {
    pub(crate) client: Client,
    pub(crate) jetstream: jetstream::Context,
    pub(crate) stream: String,
    pub(crate) duplicate_window: Duration,
}

/// Reconnect attempts follow each other quickly and forever: 0, 100, 200
/// ms, then every 500 ms, so delivery resumes within about half a second
/// of the server coming back.
pub(crate) fn reconnect_delay(attempts: usize) -> Duration {
    let steps = u64::try_from(attempts.saturating_sub(1)).unwrap_or(u64::MAX);
    Duration::from_millis(steps.saturating_mul(100).min(500))
}

/// The servers of `url`: one URL or several separated by commas (the
/// client parses a single string as one server).
pub(crate) fn server_addrs(url: &str) -> std::io::Result<Vec<ServerAddr>> {
    url.split(',').map(|one| one.trim().parse()).collect()
}

/// Connects to `url` (one server or several separated by commas, shown as
/// `redacted`) as `name`, reconnecting by itself forever after an outage,
/// which it logs.
pub(crate) async fn connect(
    url: &str,
    redacted: &Arc<str>,
    name: &str,
    timeout: Duration,
) -> Result<Client, NatsError> {
    let shown = redacted.clone();
    let options = ConnectOptions::new()
        .name(name)
        .connection_timeout(timeout)
        .reconnect_delay_callback(reconnect_delay)
        .event_callback(move |event| {
            let url = shown.clone();
            async move {
                match event {
                    async_nats::Event::Disconnected => {
                        tracing::warn!(target: TARGET, %url, "disconnected from NATS; reconnecting");
                    }
                    async_nats::Event::Connected => {
                        tracing::info!(target: TARGET, %url, "connected to NATS");
                    }
                    other => {
                        tracing::debug!(target: TARGET, %url, event = %other, "NATS client event");
                    }
                }
            }
        });
    let failed = |reason: String| NatsError::Connect {
        url: redacted.to_string(),
        reason,
    };
    let servers = server_addrs(url).map_err(|e| failed(e.to_string()))?;
    async_nats::connect_with_options(servers, options)
        .await
        .map_err(|e| failed(e.to_string()))
}

impl Setup {
    pub(crate) async fn run(&self) -> Result<Connected, NatsError> {
        let client = connect(&self.url, &self.redacted, "tidings", self.ack_timeout).await?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(self.ack_timeout)
            .ack_timeout(self.ack_timeout)
            // The sink bounds what is in flight itself; this only has to
            // leave room for the acks of abandoned attempts.
            .max_ack_inflight(self.max_in_flight.saturating_mul(8).max(4096))
            .backpressure_on_inflight(true)
            .build(client.clone());
        let stream_error = |stream: &str, reason: String| NatsError::Stream {
            stream: stream.to_owned(),
            url: self.redacted.to_string(),
            reason,
        };
        let stream = match (&self.create, &self.stream) {
            (Some((name, subject)), _) => jetstream
                .get_or_create_stream(jetstream::stream::Config {
                    name: name.clone(),
                    subjects: vec![subject.clone()],
                    duplicate_window: self.duplicate_window,
                    ..Default::default()
                })
                .await
                .map_err(|e| stream_error(name, e.to_string()))?,
            (None, Some(name)) => jetstream
                .get_stream(name)
                .await
                .map_err(|e| stream_error(name, e.to_string()))?,
            (None, None) => {
                let name = jetstream
                    .stream_by_subject(self.sample.clone())
                    .await
                    .map_err(|e| NatsError::NoStream {
                        url: self.redacted.to_string(),
                        subject: self.sample.clone(),
                        reason: e.to_string(),
                    })?;
                jetstream
                    .get_stream(&name)
                    .await
                    .map_err(|e| stream_error(&name, e.to_string()))?
            }
        };
        let config = &stream.cached_info().config;
        Ok(Connected {
            stream: config.name.clone(),
            duplicate_window: config.duplicate_window,
            client,
            jetstream,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_are_attempted_at_most_half_a_second_apart() {
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), Duration::from_millis(100));
        assert_eq!(reconnect_delay(100), Duration::from_millis(500));
    }

    #[test]
    fn a_url_may_name_several_servers() {
        let servers =
            server_addrs("nats://127.0.0.1:4222, nats://127.0.0.1:4223,127.0.0.1:4224").unwrap();
        let ports: Vec<u16> = servers.iter().map(ServerAddr::port).collect();
        assert_eq!(ports, [4222, 4223, 4224]);
        assert_eq!(server_addrs("nats://127.0.0.1:4222").unwrap().len(), 1);
        assert!(server_addrs("nats://127.0.0.1:4222,nats://:x").is_err());
    }
}
