//! `type = "nats"`.

use std::sync::Arc;

use serde::Deserialize;
use tidings_routing::{BoxError, Sink};
use tidings_sink_nats::{
    DEFAULT_ACK_TIMEOUT_MS, DEFAULT_DUPLICATE_WINDOW_SECONDS, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_SUBJECT, DEFAULT_URL, NatsError, NatsSink, NatsSinkBuilder, SubjectTemplate,
};

use crate::{Delivery, SinkType};

/// `type = "nats"`: `url`, `subject`, `stream`, `create_stream`,
/// `duplicate_window_seconds`, `max_in_flight`, `ack_timeout_ms`.
#[derive(Debug)]
pub(crate) struct NatsType;

/// The options of `nats`; `Debug` never shows credentials.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NatsOptions {
    #[serde(default = "url")]
    url: String,
    #[serde(default = "subject")]
    subject: String,
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    create_stream: bool,
    #[serde(default = "duplicate_window_seconds")]
    duplicate_window_seconds: u64,
    #[serde(default = "max_in_flight")]
    max_in_flight: usize,
    #[serde(default = "ack_timeout_ms")]
    ack_timeout_ms: u64,
}

fn url() -> String {
    DEFAULT_URL.to_owned()
}

fn subject() -> String {
    DEFAULT_SUBJECT.to_owned()
}

fn duplicate_window_seconds() -> u64 {
    DEFAULT_DUPLICATE_WINDOW_SECONDS
}

fn max_in_flight() -> usize {
    DEFAULT_MAX_IN_FLIGHT
}

fn ack_timeout_ms() -> u64 {
    DEFAULT_ACK_TIMEOUT_MS
}

fn builder(options: &NatsOptions) -> NatsSinkBuilder {
    let builder = NatsSink::builder()
        .url(options.url.clone())
        .subject(options.subject.clone())
        .create_stream(options.create_stream)
        .duplicate_window_seconds(options.duplicate_window_seconds)
        .max_in_flight(options.max_in_flight)
        .ack_timeout_ms(options.ack_timeout_ms);
    match &options.stream {
        Some(stream) => builder.stream(stream.clone()),
        None => builder,
    }
}

impl SinkType for NatsType {
    const NAME: &'static str = "nats";
    type Options = NatsOptions;

    fn validate(options: &NatsOptions) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if let Err(NatsError::InvalidSubject { reason, .. }) =
            SubjectTemplate::new(options.subject.clone())
        {
            problems.push(("subject".to_owned(), reason));
        }
        for (key, value) in [
            ("duplicate_window_seconds", options.duplicate_window_seconds),
            ("max_in_flight", options.max_in_flight as u64),
            ("ack_timeout_ms", options.ack_timeout_ms),
        ] {
            if value == 0 {
                problems.push((key.to_owned(), "must be at least 1".to_owned()));
            }
        }
        if problems.is_empty() {
            // What is left: `url`, `stream` and `create_stream` together.
            match builder(options).check() {
                Ok(()) => {}
                Err(NatsError::InvalidOption { option, reason }) => {
                    problems.push((option.to_owned(), reason));
                }
                Err(NatsError::InvalidSubject { reason, .. }) => {
                    problems.push(("subject".to_owned(), reason));
                }
                Err(other) => problems.push((String::new(), other.to_string())),
            }
        }
        problems
    }

    fn build(options: &NatsOptions, delivery: &Delivery) -> Result<Arc<dyn Sink>, BoxError> {
        // The stream's duplicate window must outlast this sink's retries.
        let sink = builder(options)
            .retry_horizon(delivery.retry.horizon())
            .build()?;
        Ok(Arc::new(sink))
    }

    fn describe(options: &NatsOptions) -> String {
        let mut parts = vec![
            format!("url={}", tidings_core::RedactedUrl::new(&options.url)),
            format!("subject={}", options.subject),
        ];
        if let Some(stream) = &options.stream {
            parts.push(format!("stream={stream}"));
        }
        if options.create_stream {
            parts.push(format!(
                "create_stream=true duplicate_window_seconds={}",
                options.duplicate_window_seconds
            ));
        }
        parts.push(format!(
            "max_in_flight={} ack_timeout_ms={}",
            options.max_in_flight, options.ack_timeout_ms
        ));
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use crate::{Registry, load};

    #[test]
    fn nats_options_load_with_defaults_and_print_without_credentials() {
        let config = load(
            r#"
            [backends.js]
            type = "nats"
            url = "nats://user:hunter2@127.0.0.1:4222"
            stream = "EVENTS"
            create_stream = true
            "#,
            &Registry::default(),
        )
        .unwrap();
        let tree = config.to_string();
        assert!(
            tree.contains(
                "js: nats url=nats://***@127.0.0.1:4222 subject=events.{name} stream=EVENTS \
                 create_stream=true duplicate_window_seconds=120 max_in_flight=256 \
                 ack_timeout_ms=5000"
            ),
            "{tree}"
        );
        assert!(!tree.contains("hunter2"), "{tree}");
    }

    #[test]
    fn invalid_nats_options_are_reported_with_their_paths() {
        let errors = |text: &str| {
            load(text, &Registry::default())
                .unwrap_err()
                .0
                .into_iter()
                .map(|e| (e.path, e.message))
                .collect::<Vec<_>>()
        };
        let found = errors(
            r#"
            [backends.js]
            type = "nats"
            subject = "events {name}"
            max_in_flight = 0
            ack_timeout_ms = 0
            "#,
        );
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "backends.js.subject",
                "backends.js.max_in_flight",
                "backends.js.ack_timeout_ms"
            ],
            "{found:?}"
        );
        assert!(found[0].1.contains("whitespace"), "{found:?}");
        let found = errors("[backends.js]\ntype = \"nats\"\ncreate_stream = true\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "backends.js.stream");
        assert!(found[0].1.contains("create_stream"), "{found:?}");
    }

    #[test]
    fn building_against_an_unreachable_server_names_it_without_credentials() {
        let config = load(
            "[backends.js]\ntype = \"nats\"\nurl = \"nats://u:hunter2@127.0.0.1:1\"\nack_timeout_ms = 1000\n",
            &Registry::default(),
        )
        .unwrap();
        let message = config.build().unwrap_err().to_string();
        assert!(
            message.contains("cannot connect to NATS at nats://***@127.0.0.1:1"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
    }
}
