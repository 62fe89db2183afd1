//! `AmqpSinkBuilder`: the sink's options, their defaults and the checks
//! made before connecting.

use std::fmt;
use std::time::Duration;

use crate::error::BuildError;
use crate::sink::AmqpSink;

use lapin::types::ShortString;
use tokio::sync::Mutex;

use crate::routing_key::RoutingKeyTemplate;
use crate::url::BrokerUrl;

/// Default for [`AmqpSinkBuilder::url`]: the local broker's default user and
/// virtual host.
pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Default for [`AmqpSinkBuilder::exchange`].
pub const DEFAULT_EXCHANGE: &str = "tidings.events";
/// Default for [`AmqpSinkBuilder::routing_key`].
pub const DEFAULT_ROUTING_KEY: &str = "events.{name}";
/// Default for [`AmqpSinkBuilder::binding_key`]: every routing key.
pub const DEFAULT_BINDING_KEY: &str = "#";
/// Default for [`AmqpSinkBuilder::publish_timeout_ms`].
pub const DEFAULT_PUBLISH_TIMEOUT_MS: u64 = 5_000;

/// The longest exchange, queue or routing key AMQP 0-9-1 allows, in bytes.
pub(crate) const MAX_SHORT_STRING: usize = 255;
/// AMQP delivery mode 2: the broker writes the message to disk (on a
/// durable queue).
pub(crate) const PERSISTENT: u8 = 2;
pub(crate) const CONTENT_TYPE: &str = "application/json";

/// Builds an [`AmqpSink`]. Created by [`AmqpSink::builder`]; the setters are
/// named as the keys of `type = "amqp"` in a config file.
#[derive(Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct AmqpSinkBuilder {
    url: String,
    exchange: String,
    routing_key: String,
    declare: bool,
    queue: Option<String>,
    binding_key: Option<String>,
    publish_timeout_ms: u64,
}

impl fmt::Debug for AmqpSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpSinkBuilder")
            .field("url", &tidings_core::RedactedUrl::new(&self.url))
            .field("exchange", &self.exchange)
            .field("routing_key", &self.routing_key)
            .field("declare", &self.declare)
            .field("queue", &self.queue)
            .field("binding_key", &self.binding_key)
            .field("publish_timeout_ms", &self.publish_timeout_ms)
            .finish()
    }
}

impl AmqpSinkBuilder {
    /// A builder with every default ([`AmqpSink::builder`]).
    pub(crate) fn new() -> Self {
        Self {
            url: DEFAULT_URL.to_owned(),
            exchange: DEFAULT_EXCHANGE.to_owned(),
            routing_key: DEFAULT_ROUTING_KEY.to_owned(),
            declare: false,
            queue: None,
            binding_key: None,
            publish_timeout_ms: DEFAULT_PUBLISH_TIMEOUT_MS,
        }
    }

    /// The broker, `amqp://user:password@host:port/vhost` (the virtual host
    /// percent-encoded: `%2f` is `/`) or `amqps://…`. Defaults to
    /// [`DEFAULT_URL`]. The password is shown as `***` everywhere.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// The exchange published to. Defaults to [`DEFAULT_EXCHANGE`]; `""` is
    /// the default exchange, which routes by queue name.
    pub fn exchange(mut self, exchange: impl Into<String>) -> Self {
        self.exchange = exchange.into();
        self
    }

    /// The routing key, where `{name}` is replaced by the event name.
    /// Defaults to [`DEFAULT_ROUTING_KEY`] (`events.{name}`).
    pub fn routing_key(mut self, template: impl Into<String>) -> Self {
        self.routing_key = template.into();
        self
    }

    /// Declares the exchange (type `topic`, durable) on every new connection,
    /// and the [`queue`](Self::queue) if one is set. Defaults to false: the
    /// exchange must exist.
    pub fn declare(mut self, declare: bool) -> Self {
        self.declare = declare;
        self
    }

    /// A durable queue to declare and bind to the exchange with
    /// [`binding_key`](Self::binding_key); needs `declare(true)`. Without
    /// any bound queue, every publish is returned unroutable and fails.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// The binding key of [`queue`](Self::queue). Defaults to
    /// [`DEFAULT_BINDING_KEY`] (`#`, every routing key).
    pub fn binding_key(mut self, binding_key: impl Into<String>) -> Self {
        self.binding_key = Some(binding_key.into());
        self
    }

    /// The most one `send_batch` may take, in milliseconds: connecting,
    /// declaring, publishing and waiting for every confirm. Defaults to 5000.
    pub fn publish_timeout_ms(mut self, timeout_ms: u64) -> Self {
        self.publish_timeout_ms = timeout_ms;
        self
    }

    /// Checks the options. Does no I/O: the connection is made by the first
    /// `send_batch`, on the delivery worker's runtime.
    ///
    /// # Errors
    ///
    /// [`BuildError`] when the URL does not parse, the routing key template
    /// is invalid, a name is too long, `queue`/`binding_key` are set without
    /// `declare`, or the timeout is zero.
    pub fn build(self) -> Result<AmqpSink, BuildError> {
        let url =
            BrokerUrl::parse(&self.url).map_err(|(url, reason)| BuildError::Url { url, reason })?;
        let template = RoutingKeyTemplate::parse(&self.routing_key).map_err(|reason| {
            BuildError::RoutingKey {
                template: self.routing_key.clone(),
                reason,
            }
        })?;
        if template.literal_len() > MAX_SHORT_STRING {
            return Err(BuildError::TooLong {
                option: "routing_key",
                len: template.literal_len(),
            });
        }
        if self.publish_timeout_ms == 0 {
            return Err(BuildError::ZeroTimeout);
        }
        let exchange = short("exchange", self.exchange)?;
        let queue = match (self.declare, self.queue, self.binding_key) {
            (_, None, Some(_)) => {
                return Err(BuildError::Requires {
                    option: "binding_key",
                    requires: "queue",
                });
            }
            (false, Some(_), _) => {
                return Err(BuildError::Requires {
                    option: "queue",
                    requires: "declare = true",
                });
            }
            (true, Some(queue), binding_key) => Some((
                short("queue", queue)?,
                short(
                    "binding_key",
                    binding_key.unwrap_or_else(|| DEFAULT_BINDING_KEY.to_owned()),
                )?,
            )),
            (_, None, None) => None,
        };
        if self.declare && exchange.as_str().is_empty() {
            return Err(BuildError::DeclareDefaultExchange);
        }
        Ok(AmqpSink {
            url,
            exchange,
            template,
            declare: self.declare,
            queue,
            timeout: Duration::from_millis(self.publish_timeout_ms),
            session: Mutex::new(None),
        })
    }
}

pub(crate) fn short(option: &'static str, value: String) -> Result<ShortString, BuildError> {
    let len = value.len();
    ShortString::try_new(value).map_err(|_| BuildError::TooLong { option, len })
}
