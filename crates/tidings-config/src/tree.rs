//! Parsing and validating the backend tree (no I/O), and printing it.

use std::fmt;

use crate::options::{CollectorOptions, DELIVERY_KEYS, DeliveryOptions, QueueOptions};
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
    },
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
            let delivery_table = split_off(&mut table, &DELIVERY_KEYS);
            let delivery: Option<DeliveryOptions> = deserialize_at(delivery_table, at, errors);
            let sink = registry.validate_sink(&type_name, table, at, errors);
            let (type_name, sink) = sink?;
            delivery.map(|delivery| BackendNode::Sink {
                type_name,
                delivery,
                sink,
            })
        }
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.collector;
        writeln!(
            f,
            "collector listen={} max_body_bytes={} max_batch_events={} write_keys={} allowed_origins={:?} queue_capacity={}",
            c.listen,
            c.max_body_bytes,
            c.max_batch_events,
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
        write_router(f, "root router", &self.root, 0)
    }
}

fn write_router(
    f: &mut fmt::Formatter<'_>,
    head: &str,
    node: &RouterNode,
    depth: usize,
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
                write_router(f, &format!("{name}: router"), router, depth + 1)?
            }
            BackendNode::AsyncRouter { router, queue } => {
                write_router(
                    f,
                    &format!("{name}: async_router {}", queue.describe()),
                    router,
                    depth + 1,
                )?;
            }
            BackendNode::Sink {
                type_name,
                delivery,
                sink,
            } => {
                writeln!(f, "{pad}  {name}: {type_name} {}", sink.describe())?;
                writeln!(f, "{pad}    delivery: {}", delivery.describe())?;
            }
        }
    }
    Ok(())
}
