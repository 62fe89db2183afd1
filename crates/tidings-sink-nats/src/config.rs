//! The config types of this crate (feature `config`): what a config file's
//! `type = ...` names, its options, their defaults and checks, and how
//! the sink is built from them. `tidings-config` registers them.

use std::sync::Arc;

use crate::{
    DEFAULT_ACK_TIMEOUT_MS, DEFAULT_DUPLICATE_WINDOW_SECONDS, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_SUBJECT, DEFAULT_URL, NatsError, NatsSink, NatsSinkBuilder, SubjectTemplate,
};
use serde::Deserialize;
use tidings_core::{BoxError, Sink};

use tidings_core::{Delivery, SinkType};

/// `type = "nats"`: `url`, `subject`, `stream`, `create_stream`,
/// `duplicate_window_seconds`, `max_in_flight`, `ack_timeout_ms`.
#[derive(Debug)]
pub struct NatsType;

/// The options of `nats`; `Debug` never shows credentials.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsOptions {
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
            .retry_horizon(delivery.retry_horizon)
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

/// Shown as [`SinkType::describe`] shows it: never a secret.
impl std::fmt::Debug for NatsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&NatsType::describe(self))
    }
}

/// `type = "nats"` in a `[sources.*]` table: a [`NatsSource`](crate::NatsSource).
#[derive(Debug)]
pub struct NatsSourceType;

/// The options of a `nats` source: `stream` (required), `url`, `consumer`,
/// `subject`, `ack_wait_ms`, `max_deliver`, `max_ack_pending`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSourceOptions {
    stream: String,
    #[serde(default = "url")]
    url: String,
    #[serde(default = "consumer")]
    consumer: String,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default = "ack_wait_ms")]
    ack_wait_ms: u64,
    #[serde(default = "max_deliver")]
    max_deliver: i64,
    #[serde(default = "max_ack_pending")]
    max_ack_pending: i64,
}

fn consumer() -> String {
    crate::DEFAULT_CONSUMER.to_owned()
}

fn ack_wait_ms() -> u64 {
    crate::DEFAULT_ACK_WAIT_MS
}

fn max_deliver() -> i64 {
    -1
}

fn max_ack_pending() -> i64 {
    crate::DEFAULT_MAX_ACK_PENDING
}

fn source_builder(options: &NatsSourceOptions) -> crate::NatsSourceBuilder {
    let builder = crate::NatsSource::builder(options.stream.clone())
        .url(options.url.clone())
        .consumer(options.consumer.clone())
        .ack_wait_ms(options.ack_wait_ms)
        .max_deliver(options.max_deliver)
        .max_ack_pending(options.max_ack_pending);
    match &options.subject {
        Some(subject) => builder.subject(subject.clone()),
        None => builder,
    }
}

impl tidings_core::SourceType for NatsSourceType {
    const NAME: &'static str = "nats";
    type Options = NatsSourceOptions;

    fn validate(options: &NatsSourceOptions) -> Vec<(String, String)> {
        match source_builder(options).check() {
            Ok(()) => Vec::new(),
            Err(NatsError::InvalidOption { option, reason }) => vec![(option.to_owned(), reason)],
            Err(other) => vec![(String::new(), other.to_string())],
        }
    }

    fn build(
        options: &NatsSourceOptions,
        name: &str,
        dead_letter: Option<Arc<dyn tidings_core::Backend>>,
    ) -> Result<Arc<dyn tidings_core::Source>, BoxError> {
        let mut builder = source_builder(options).name(name);
        if let Some(dead_letter) = dead_letter {
            builder = builder.dead_letter(dead_letter);
        }
        Ok(Arc::new(builder.build()?))
    }

    fn describe(options: &NatsSourceOptions) -> String {
        let mut text = format!(
            "url={} stream={} consumer={}",
            tidings_core::RedactedUrl::new(&options.url),
            options.stream,
            options.consumer
        );
        if let Some(subject) = &options.subject {
            text.push_str(&format!(" subject={subject}"));
        }
        text.push_str(&format!(" ack_wait_ms={}", options.ack_wait_ms));
        if options.max_deliver > 0 {
            text.push_str(&format!(" max_deliver={}", options.max_deliver));
        }
        text
    }
}

impl std::fmt::Debug for NatsSourceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&<NatsSourceType as tidings_core::SourceType>::describe(
            self,
        ))
    }
}
