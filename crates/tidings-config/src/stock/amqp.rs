//! `type = "amqp"`.

use std::sync::Arc;

use serde::Deserialize;
use tidings_routing::{BoxError, Sink};
use tidings_sink_amqp::{
    AmqpSink, AmqpSinkBuilder, BuildError, DEFAULT_EXCHANGE, DEFAULT_PUBLISH_TIMEOUT_MS,
    DEFAULT_ROUTING_KEY, DEFAULT_URL,
};

use crate::{Delivery, SinkType};

/// `type = "amqp"`: `url`, `exchange`, `routing_key`, `declare`, `queue`,
/// `binding_key`, `publish_timeout_ms`.
#[derive(Debug)]
pub(crate) struct AmqpType;

/// The options of `amqp`; `Debug` never shows the password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AmqpOptions {
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
        let key = match &error {
            BuildError::Url { .. } => "url",
            BuildError::RoutingKey { .. } => "routing_key",
            BuildError::TooLong { option, .. } | BuildError::Requires { option, .. } => option,
            BuildError::DeclareDefaultExchange => "exchange",
            BuildError::ZeroTimeout => "publish_timeout_ms",
            _ => "",
        };
        vec![(key.to_owned(), error.to_string())]
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

#[cfg(test)]
mod tests {
    use tidings_routing::Backend;

    use super::super::tests::problems;
    use crate::{Registry, load};

    #[test]
    fn amqp_sinks_load_describe_without_the_password_and_build_without_connecting() {
        let config = load(
            r#"
            [backends.rabbit]
            type = "amqp"
            url = "amqp://app:s3cret@127.0.0.1:1/%2f"
            exchange = "analytics"
            routing_key = "tidings.{name}"
            declare = true
            queue = "analytics.all"
            binding_key = "tidings.#"
            publish_timeout_ms = 1000
            max_events = 500
            [backends.defaults]
            type = "amqp"
            "#,
            &Registry::default(),
        )
        .unwrap();
        let tree = config.to_string();
        assert!(
            tree.contains(
                r#"rabbit: amqp url=amqp://***@127.0.0.1:1/… exchange="analytics" routing_key="tidings.{name}" declare=true queue="analytics.all" binding_key="tidings.#" publish_timeout_ms=1000"#
            ),
            "{tree}"
        );
        assert!(
            tree.contains(
                r#"defaults: amqp url=amqp://***@127.0.0.1:5672/… exchange="tidings.events" routing_key="events.{name}" declare=false publish_timeout_ms=5000"#
            ),
            "{tree}"
        );
        assert!(!tree.contains("s3cret") && !format!("{config:?}").contains("s3cret"));
        // Nothing listens on port 1: building must not connect.
        let pipeline = config.build().unwrap();
        let (root, _stages) = pipeline.into_parts();
        root.shutdown(std::time::Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn every_bad_amqp_option_is_reported_with_its_path() {
        let found = problems(
            r#"
            [backends.a]
            type = "amqp"
            url = "http://app:s3cret@host/"
            [backends.b]
            type = "amqp"
            routing_key = "events.{id}"
            [backends.c]
            type = "amqp"
            queue = "q"
            [backends.d]
            type = "amqp"
            publish_timeout_ms = 0
            [backends.e]
            type = "amqp"
            exchnage = "x"
            "#,
        );
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "backends.a.url",
                "backends.b.routing_key",
                "backends.c.queue",
                "backends.d.publish_timeout_ms",
                "backends.e.exchnage",
            ],
            "{found:?}"
        );
        assert!(found[0].1.starts_with("invalid AMQP url"), "{found:?}");
        assert_eq!(found[2].1, "queue requires declare = true");
        assert!(
            found.iter().all(|(_, m)| !m.contains("s3cret")),
            "{found:?}"
        );
    }
}
