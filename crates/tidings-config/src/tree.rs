//! Parsing and validating the backend tree (no I/O), and printing it.

use std::fmt;

use crate::options::{CollectorOptions, DELIVERY_KEYS, DeliveryOptions, Feed, QueueOptions};
use crate::registry::{BuiltProcessor, ROUTER_TYPES, ValidatedSink, deserialize_at};
use crate::{ConfigError, ConfigErrorKind, ConfigErrors, ConfigPath, Registry};

/// A validated config: the collector options and the backend tree, ready to
/// be built. Printing it shows the tree (what `tidings check` prints).
#[derive(Debug)]
pub struct Config {
    pub(crate) collector: CollectorOptions,
    pub(crate) root: RouterNode,
}

#[derive(Debug, Default)]
pub(crate) struct RouterNode {
    pub(crate) processors: Vec<BuiltProcessor>,
    pub(crate) backends: Vec<(String, BackendNode)>,
}

#[derive(Debug)]
pub(crate) enum BackendNode {
    Router(RouterNode),
    AsyncRouter {
        router: RouterNode,
        queue: QueueOptions,
    },
    Sink {
        type_name: &'static str,
        delivery: DeliveryOptions,
        sink: Box<dyn ValidatedSink>,
        dead_letter: DeadLetter,
    },
}

/// A sink's `dead_letter`: where the events it gives up on go.
#[derive(Debug)]
pub(crate) enum DeadLetter {
    /// Unset: the default file (when the `file` type is registered), used
    /// only when the sink keeps every event it is given.
    Default(Option<Box<BackendNode>>),
    /// `dead_letter = "none"`: given-up events are dropped and counted.
    None,
    /// `dead_letter = { type = ..., ... }`.
    Backend(Box<BackendNode>),
}

/// The directory under which a sink's default dead letters are written,
/// one subdirectory per sink, named by its path in the config.
pub const DEFAULT_DEAD_LETTER_DIR: &str = "tidings-dead-letter";

impl DeadLetter {
    /// The backend the sink's given-up events go to, if any, for a sink
    /// with `delivery` fed by `feed`.
    pub(crate) fn resolve(&self, delivery: &DeliveryOptions, feed: Feed) -> Option<&BackendNode> {
        match self {
            Self::Default(node) if delivery.may_drop(feed).is_none() => node.as_deref(),
            Self::Backend(node) => Some(node),
            Self::Default(_) | Self::None => None,
        }
    }
}

impl fmt::Debug for BuiltProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.type_name, self.summary)
    }
}

impl Config {
    /// The `[collector]` options.
    #[must_use]
    pub fn collector(&self) -> &CollectorOptions {
        &self.collector
    }
}

fn type_name(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a datetime",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

fn expect_table(
    value: toml::Value,
    at: &ConfigPath,
    errors: &mut Vec<ConfigError>,
) -> Option<toml::Table> {
    match value {
        toml::Value::Table(table) => Some(table),
        other => {
            errors.push(ConfigError::new(
                at,
                ConfigErrorKind::Invalid,
                format!("expected a table, found {}", type_name(&other)),
            ));
            None
        }
    }
}

/// Parses and validates `text` against `registry`, reporting every mistake.
pub(crate) fn parse(text: &str, registry: &Registry) -> Result<Config, ConfigErrors> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        ConfigError::new(
            "",
            ConfigErrorKind::Syntax,
            format!("not valid TOML: {}", e.to_string().trim()),
        )
    })?;
    let mut errors = Vec::new();
    let mut collector = CollectorOptions::default();
    let mut root = RouterNode::default();
    let at = ConfigPath::root();
    for (key, value) in table {
        match key.as_str() {
            "collector" => {
                if let Some(table) = expect_table(value, &at.key("collector"), &mut errors)
                    && let Some(options) = deserialize_at(table, &at.key("collector"), &mut errors)
                {
                    collector = options;
                }
            }
            "processors" => {
                root.processors = processors(value, &at.key("processors"), registry, &mut errors)
            }
            "backends" => {
                root.backends = backends(value, &at.key("backends"), registry, &mut errors)
            }
            other => errors.push(ConfigError::new(
                at.key(other),
                ConfigErrorKind::UnknownKey,
                "unknown top-level key, expected `collector`, `processors` or `backends`",
            )),
        }
    }
    if errors.is_empty() {
        Ok(Config { collector, root })
    } else {
        Err(ConfigErrors(errors))
    }
}

fn processors(
    value: toml::Value,
    at: &ConfigPath,
    registry: &Registry,
    errors: &mut Vec<ConfigError>,
) -> Vec<BuiltProcessor> {
    let toml::Value::Array(items) = value else {
        errors.push(ConfigError::new(
            at,
            ConfigErrorKind::Invalid,
            format!(
                "expected an array of processor tables ([[processors]]), found {}",
                type_name(&value)
            ),
        ));
        return Vec::new();
    };
    items
        .into_iter()
        .enumerate()
        .filter_map(|(index, item)| {
            let at = at.index(index);
            let mut table = expect_table(item, &at, errors)?;
            let type_name = take_type(&mut table, &at, errors)?;
            registry.build_processor(&type_name, table, &at, errors)
        })
        .collect()
}

fn backends(
    value: toml::Value,
    at: &ConfigPath,
    registry: &Registry,
    errors: &mut Vec<ConfigError>,
) -> Vec<(String, BackendNode)> {
    let Some(table) = expect_table(value, at, errors) else {
        return Vec::new();
    };
    table
        .into_iter()
        .filter_map(|(name, value)| {
            let at = at.key(&name);
            let table = expect_table(value, &at, errors)?;
            backend(table, &at, registry, errors).map(|node| (name, node))
        })
        .collect()
}

fn take_type(
    table: &mut toml::Table,
    at: &ConfigPath,
    errors: &mut Vec<ConfigError>,
) -> Option<String> {
    match table.remove("type") {
        Some(toml::Value::String(name)) => Some(name),
        Some(other) => {
            errors.push(ConfigError::new(
                at.key("type"),
                ConfigErrorKind::Invalid,
                format!("expected a string, found {}", type_name(&other)),
            ));
            None
        }
        None => {
            errors.push(ConfigError::new(
                at,
                ConfigErrorKind::Missing,
                "missing key `type`",
            ));
            None
        }
    }
}

/// Takes `keys` out of `table` into a table of their own.
fn split_off(table: &mut toml::Table, keys: &[&str]) -> toml::Table {
    keys.iter()
        .filter_map(|&k| table.remove(k).map(|v| (k.to_owned(), v)))
        .collect()
}

fn router(
    mut table: toml::Table,
    at: &ConfigPath,
    registry: &Registry,
    errors: &mut Vec<ConfigError>,
) -> RouterNode {
    let mut node = RouterNode::default();
    if let Some(value) = table.remove("processors") {
        node.processors = processors(value, &at.key("processors"), registry, errors);
    }
    if let Some(value) = table.remove("backends") {
        node.backends = backends(value, &at.key("backends"), registry, errors);
    }
    for key in table.keys() {
        errors.push(ConfigError::new(
            at.key(key),
            ConfigErrorKind::UnknownKey,
            "unknown key for a router, expected `processors` or `backends`",
        ));
    }
    node
}

fn backend(
    mut table: toml::Table,
    at: &ConfigPath,
    registry: &Registry,
    errors: &mut Vec<ConfigError>,
) -> Option<BackendNode> {
    let type_name = take_type(&mut table, at, errors)?;
    match type_name.as_str() {
        "router" => Some(BackendNode::Router(router(table, at, registry, errors))),
        "async_router" => {
            let queue_table = split_off(
                &mut table,
                &["queue_capacity", "when_full", "block_timeout_ms"],
            );
            let queue: Option<QueueOptions> = deserialize_at(queue_table, at, errors);
            let router = router(table, at, registry, errors);
            queue.map(|queue| BackendNode::AsyncRouter { router, queue })
        }
        _ => {
            debug_assert!(!ROUTER_TYPES.contains(&type_name.as_str()));
            let dead_letter = dead_letter(table.remove("dead_letter"), at, registry, errors);
            let delivery_table = split_off(&mut table, &DELIVERY_KEYS);
            let delivery: Option<DeliveryOptions> = deserialize_at(delivery_table, at, errors);
            let sink = registry.validate_sink(&type_name, table, at, errors);
            let (type_name, sink) = sink?;
            Some(BackendNode::Sink {
                type_name,
                delivery: delivery?,
                sink,
                dead_letter: dead_letter?,
            })
        }
    }
}

/// Reads a sink's `dead_letter` key (`None`: a mistake, recorded).
fn dead_letter(
    value: Option<toml::Value>,
    at: &ConfigPath,
    registry: &Registry,
    errors: &mut Vec<ConfigError>,
) -> Option<DeadLetter> {
    let at_key = at.key("dead_letter");
    match value {
        None => {
            // The default: a file of its own (no gzip: easy to read).
            let fallback = registry.sink_types().any(|t| t == "file").then(|| {
                let mut table = toml::Table::new();
                let path = format!("{DEFAULT_DEAD_LETTER_DIR}/{at}");
                table.insert("path".to_owned(), toml::Value::String(path));
                let (type_name, sink) = registry.validate_sink("file", table, &at_key, errors)?;
                Some(Box::new(BackendNode::Sink {
                    type_name,
                    delivery: deserialize_at(toml::Table::new(), &at_key, errors)?,
                    sink,
                    dead_letter: DeadLetter::None,
                }))
            });
            Some(DeadLetter::Default(fallback.flatten()))
        }
        Some(toml::Value::String(none)) if none == "none" => Some(DeadLetter::None),
        Some(toml::Value::Table(table)) => {
            let mut node = backend(table, &at_key, registry, errors)?;
            // A dead-letter destination has no dead letters of its own.
            if let BackendNode::Sink { dead_letter, .. } = &mut node
                && matches!(dead_letter, DeadLetter::Default(_))
            {
                *dead_letter = DeadLetter::None;
            }
            Some(DeadLetter::Backend(Box::new(node)))
        }
        Some(other) => {
            errors.push(ConfigError::new(
                at_key,
                ConfigErrorKind::Invalid,
                format!(
                    "expected \"none\" or a backend table such as {{ type = \"file\", path = \"dead\" }}, found {}",
                    type_name(&other)
                ),
            ));
            None
        }
    }
}

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
        if let Some(catalog) = &c.catalog {
            let mode = if catalog.strict { "strict" } else { "lenient" };
            writeln!(f, "collector catalog {} ({mode})", catalog.path)?;
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
                    Some(BackendNode::Sink {
                        type_name, sink, ..
                    }) => writeln!(f, "{pad}    dead letters: {type_name} {}", sink.describe())?,
                    Some(_) => writeln!(f, "{pad}    dead letters: a router")?,
                    None => writeln!(
                        f,
                        "{pad}    dead letters: none (events the sink gives up on are dropped and counted)"
                    )?,
                }
            }
        }
    }
    Ok(())
}
