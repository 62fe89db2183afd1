//! The config types of this crate (feature `config`): what a config file's
//! `type = ...` names, its options, their defaults and checks, and how
//! the sink is built from them. `tidings-config` registers them.

use std::sync::Arc;

use crate::{
    AmqpSink, AmqpSinkBuilder, DEFAULT_EXCHANGE, DEFAULT_PUBLISH_TIMEOUT_MS, DEFAULT_ROUTING_KEY,
    DEFAULT_URL,
};
use serde::Deserialize;
use tidings_core::{BoxError, Sink};

use tidings_core::{Delivery, SinkType};

/// `type = "amqp"`: `url`, `exchange`, `routing_key`, `declare`, `queue`,
/// `binding_key`, `publish_timeout_ms`.
#[derive(Debug)]
pub struct AmqpType;

/// The options of `amqp`; `Debug` never shows the password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpOptions {
    #[serde(default = "url")]
    url: String,
    #[serde(default = "exchange")]
    exchange: String,
    #[serde(default = "routing_key")]
    routing_key: String,
    #[serde(default)]
    declare: bool,
    queue: Option<String>,
    binding_key: Option<String>,
    #[serde(default = "publish_timeout_ms")]
    publish_timeout_ms: u64,
}

fn url() -> String {
    DEFAULT_URL.to_owned()
}

fn exchange() -> String {
    DEFAULT_EXCHANGE.to_owned()
}

fn routing_key() -> String {
    DEFAULT_ROUTING_KEY.to_owned()
}

fn publish_timeout_ms() -> u64 {
    DEFAULT_PUBLISH_TIMEOUT_MS
}

fn builder(options: &AmqpOptions) -> AmqpSinkBuilder {
    let mut builder = AmqpSink::builder()
        .url(options.url.clone())
        .exchange(options.exchange.clone())
        .routing_key(options.routing_key.clone())
        .declare(options.declare)
        .publish_timeout_ms(options.publish_timeout_ms);
    if let Some(queue) = &options.queue {
        builder = builder.queue(queue.clone());
    }
    if let Some(binding_key) = &options.binding_key {
        builder = builder.binding_key(binding_key.clone());
    }
    builder
}

impl SinkType for AmqpType {
    const NAME: &'static str = "amqp";
    type Options = AmqpOptions;

    fn validate(options: &AmqpOptions) -> Vec<(String, String)> {
        // Building checks every option without connecting.
        let Err(error) = builder(options).build() else {
            return Vec::new();
        };
        vec![(error.option().to_owned(), error.to_string())]
    }

    fn build(options: &AmqpOptions, _delivery: &Delivery) -> Result<Arc<dyn Sink>, BoxError> {
        Ok(Arc::new(builder(options).build()?))
    }

    fn describe(options: &AmqpOptions) -> String {
        let mut text = format!(
            "url={} exchange={:?} routing_key={:?} declare={}",
            tidings_core::RedactedUrl::new(&options.url),
            options.exchange,
            options.routing_key,
            options.declare
        );
        if let Some(queue) = &options.queue {
            text.push_str(&format!(" queue={queue:?}"));
        }
        if let Some(binding_key) = &options.binding_key {
            text.push_str(&format!(" binding_key={binding_key:?}"));
        }
        text.push_str(&format!(
            " publish_timeout_ms={}",
            options.publish_timeout_ms
        ));
        text
    }
}

/// Shown as [`SinkType::describe`] shows it: never a secret.
impl std::fmt::Debug for AmqpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&AmqpType::describe(self))
    }
}

/// `type = "amqp"` in a `[sources.*]` table: an [`AmqpSource`](crate::AmqpSource).
#[derive(Debug)]
pub struct AmqpSourceType;

/// The options of an `amqp` source: `queue` (required), `url`, `prefetch`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSourceOptions {
    queue: String,
    #[serde(default = "url")]
    url: String,
    #[serde(default = "prefetch")]
    prefetch: u16,
}

fn prefetch() -> u16 {
    crate::DEFAULT_PREFETCH
}

impl std::fmt::Debug for AmqpSourceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&<AmqpSourceType as tidings_core::SourceType>::describe(
            self,
        ))
    }
}

fn source_builder(options: &AmqpSourceOptions) -> crate::AmqpSourceBuilder {
    crate::AmqpSource::builder(options.queue.clone())
        .url(options.url.clone())
        .prefetch(options.prefetch)
}

impl tidings_core::SourceType for AmqpSourceType {
    const NAME: &'static str = "amqp";
    type Options = AmqpSourceOptions;

    fn validate(options: &AmqpSourceOptions) -> Vec<(String, String)> {
        match source_builder(options).check() {
            Ok(()) => Vec::new(),
            Err(error) => vec![(error.option().to_owned(), error.to_string())],
        }
    }

    fn build(
        options: &AmqpSourceOptions,
        name: &str,
        dead_letter: Option<Arc<dyn tidings_core::Backend>>,
    ) -> Result<Arc<dyn tidings_core::Source>, BoxError> {
        let mut builder = source_builder(options).name(name);
        if let Some(dead_letter) = dead_letter {
            builder = builder.dead_letter(dead_letter);
        }
        Ok(Arc::new(builder.build()?))
    }

    fn describe(options: &AmqpSourceOptions) -> String {
        format!(
            "url={} queue={} prefetch={}",
            tidings_core::RedactedUrl::new(&options.url),
            options.queue,
            options.prefetch
        )
    }
}
