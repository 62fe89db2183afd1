//! Parsing and validating the backend tree (no I/O), and printing it.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::options::{CollectorOptions, DELIVERY_KEYS, DeliveryOptions, Feed, QueueOptions};
use crate::registry::{
    BuiltProcessor, ROUTER_TYPES, ValidatedBackend, ValidatedSink, ValidatedSource, deserialize_at,
};
use crate::{ConfigError, ConfigErrorKind, ConfigErrors, ConfigPath, Registry};

/// What parsing carries along: the types, the config file's directory
/// (relative paths resolve against it) and the mistakes found so far.
pub(crate) struct Parse<'a> {
    pub(crate) registry: &'a Registry,
    pub(crate) base: Option<&'a Path>,
    pub(crate) errors: Vec<ConfigError>,
}

/// A validated config: the collector options and the backend tree, ready to
/// be built. Printing it shows the tree (what `tidings check` prints).
pub struct Config {
    pub(crate) collector: CollectorOptions,
    pub(crate) root: RouterNode,
    /// `[sources.*]`, in file order.
    pub(crate) sources: Vec<(String, SourceNode)>,
    /// The text it was read from, to locate the mistakes found later.
    pub(crate) text: std::sync::Arc<str>,
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
    /// A plain backend ([`crate::BackendType`]): no delivery of the
    /// framework's.
    Plain {
        type_name: &'static str,
        backend: Box<dyn ValidatedBackend>,
    },
}

impl BackendNode {
    /// Its type and description (`file path=...`), or `a router`.
    pub(crate) fn summary(&self) -> String {
        match self {
            Self::Sink {
                type_name, sink, ..
            } => format!("{type_name} {}", sink.describe()),
            Self::Plain { type_name, backend } => format!("{type_name} {}", backend.describe()),
            Self::Router(_) | Self::AsyncRouter { .. } => "a router".to_owned(),
        }
    }
}

/// A validated `[sources.NAME]` table.
#[derive(Debug)]
pub(crate) struct SourceNode {
    pub(crate) type_name: &'static str,
    pub(crate) source: Box<dyn ValidatedSource>,
    pub(crate) dead_letter: DeadLetter,
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

    /// The backend a source's undecodable messages go to, if any.
    pub(crate) fn for_source(&self) -> Option<&BackendNode> {
        match self {
            Self::Default(node) => node.as_deref(),
            Self::Backend(node) => Some(node),
            Self::None => None,
        }
    }
}

impl fmt::Debug for BuiltProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.type_name, self.summary)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the text: it may hold secrets.
        f.debug_struct("Config")
            .field("collector", &self.collector)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// One sink of a config, as [`Config::sinks`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkSummary {
    /// Its path in the config (`backends.files`).
    pub path: String,
    /// Its type (`file`).
    pub type_name: &'static str,
    /// Where its data goes, without secrets (`path=tidings-data ...`).
    pub description: String,
    /// Why it may drop an event it was given, if it may.
    pub may_drop: Option<String>,
    /// Where the events it gives up on go (a type and description).
    pub dead_letters: Option<String>,
}

impl Config {
    /// Every sink of the tree (in a tree fed by a worker, the collector's),
    /// in config order: for a start-up banner or a health page.
    #[must_use]
    pub fn sinks(&self) -> Vec<SinkSummary> {
        fn walk(node: &RouterNode, at: &ConfigPath, feed: Feed, out: &mut Vec<SinkSummary>) {
            for (name, backend) in &node.backends {
                let at = at.key("backends").key(name);
                match backend {
                    BackendNode::Router(router) => walk(router, &at, feed, out),
                    BackendNode::AsyncRouter { router, .. } => walk(router, &at, Feed::Worker, out),
                    BackendNode::Sink {
                        type_name,
                        delivery,
                        sink,
                        dead_letter,
                    } => out.push(SinkSummary {
                        path: at.to_string(),
                        type_name,
                        description: sink.describe(),
                        may_drop: delivery.may_drop(feed),
                        dead_letters: dead_letter
                            .resolve(delivery, feed)
                            .map(BackendNode::summary),
                    }),
                    BackendNode::Plain { type_name, backend } => out.push(SinkSummary {
                        path: at.to_string(),
                        type_name,
                        description: backend.describe(),
                        may_drop: backend.may_drop(),
                        dead_letters: None,
                    }),
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &ConfigPath::root(), Feed::Worker, &mut out);
        out
    }

    /// The `[collector]` options.
    #[must_use]
    pub fn collector(&self) -> &CollectorOptions {
        &self.collector
    }

    /// The first `catalog` processor of the root chain (the top-level
    /// `[[processors]]`), if there is one: the processor itself, shared by
    /// every tree built from this config. A tracker built from the config
    /// checks each emit with it (a strict one refuses invalid events at the
    /// call). Catalogs in a router below the root are not returned: they
    /// filter their own branch only. A `catalog` type registered in place
    /// of the stock one is not found either.
    #[cfg(feature = "catalog")]
    #[must_use]
    pub fn root_catalog(&self) -> Option<std::sync::Arc<tidings_catalog::CatalogProcessor>> {
        self.root
            .processors
            .iter()
            .find_map(|processor| processor.catalog.clone())
    }
}

use tidings_toml::type_name;

fn expect_table(value: toml::Value, at: &ConfigPath, cx: &mut Parse<'_>) -> Option<toml::Table> {
    match value {
        toml::Value::Table(table) => Some(table),
        other => {
            cx.errors.push(ConfigError::new(
                at,
                ConfigErrorKind::Invalid,
                format!("expected a table, found {}", type_name(&other)),
            ));
            None
        }
    }
}

/// The keys of the file itself.
const TOP_LEVEL_KEYS: [&str; 4] = ["collector", "processors", "backends", "sources"];

/// Parses and validates `text` against `registry`, reporting every mistake
/// in the order of the file. Relative paths resolve against `base`, the
/// config file's directory (the working directory when `None`).
pub(crate) fn parse(
    text: &str,
    registry: &Registry,
    base: Option<&Path>,
) -> Result<Config, ConfigErrors> {
    let document = tidings_toml::Document::parse(text).map_err(ConfigError::from)?;
    let mut cx = Parse {
        registry,
        base,
        errors: Vec::new(),
    };
    let mut collector = CollectorOptions::default();
    let mut root = RouterNode::default();
    let mut sources = Vec::new();
    let at = ConfigPath::root();
    for (key, value) in document.table().clone() {
        match key.as_str() {
            "collector" => {
                if let Some(table) = expect_table(value, &at.key("collector"), &mut cx)
                    && let Some(options) = deserialize_at(table, &at.key("collector"), &mut cx, &[])
                {
                    collector = options;
                    collector.resolve_paths(base);
                    if let Some(dir) = &collector.static_dir
                        && !Path::new(dir).is_dir()
                    {
                        cx.errors.push(ConfigError::new(
                            at.key("collector").key("static_dir"),
                            ConfigErrorKind::Invalid,
                            format!("`static_dir` {dir:?} is not a directory"),
                        ));
                    }
                }
            }
            "processors" => root.processors = processors(value, &at.key("processors"), &mut cx),
            "backends" => root.backends = backends(value, &at.key("backends"), &mut cx),
            "sources" => sources = parse_sources(value, &at.key("sources"), &mut cx),
            other => cx.errors.push(unknown_key(
                &at.key(other),
                other,
                &TOP_LEVEL_KEYS,
                "the file",
            )),
        }
    }
    if cx.errors.is_empty() {
        Ok(Config {
            collector,
            root,
            sources,
            text: text.into(),
        })
    } else {
        Err(locate(cx.errors, &document))
    }
}

/// Sets each mistake's line and column from its path, and sorts them in
/// the order of the file.
pub(crate) fn locate(errors: Vec<ConfigError>, document: &tidings_toml::Document) -> ConfigErrors {
    let mut errors: Vec<ConfigError> = errors
        .into_iter()
        .map(|mut error| {
            if error.location.is_none() {
                error.location = ConfigPath::parse(&error.path).and_then(|p| document.locate(&p));
            }
            error
        })
        .collect();
    errors.sort_by_key(|e| e.location.map_or((1, None), |l| (0, Some(l))));
    ConfigErrors(errors)
}

/// A key `table` (such as "a router") does not take, with the nearest of
/// `keys` and all of them.
fn unknown_key(at: &ConfigPath, key: &str, keys: &[&str], table: &str) -> ConfigError {
    let suggestion = tidings_toml::did_you_mean(key, keys.iter().copied(), |k| format!("`{k}`"));
    ConfigError::new(
        at,
        ConfigErrorKind::UnknownKey,
        format!(
            "unknown key `{key}`{suggestion} The keys of {table} are: {}",
            keys.join(", ")
        ),
    )
}

/// Resolves `path` against `base` when it is relative.
pub(crate) fn resolve(base: Option<&Path>, path: &Path) -> PathBuf {
    match base {
        Some(base) if path.is_relative() => base.join(path),
        _ => path.to_owned(),
    }
}

fn processors(value: toml::Value, at: &ConfigPath, cx: &mut Parse<'_>) -> Vec<BuiltProcessor> {
    let toml::Value::Array(items) = value else {
        cx.errors.push(ConfigError::new(
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
            let mut table = expect_table(item, &at, cx)?;
            let type_name = take_type(&mut table, &at, cx)?;
            cx.registry.build_processor(&type_name, table, &at, cx)
        })
        .collect()
}

fn backends(value: toml::Value, at: &ConfigPath, cx: &mut Parse<'_>) -> Vec<(String, BackendNode)> {
    let Some(table) = expect_table(value, at, cx) else {
        return Vec::new();
    };
    table
        .into_iter()
        .filter_map(|(name, value)| {
            let at = at.key(&name);
            let table = expect_table(value, &at, cx)?;
            backend(table, &at, cx).map(|node| (name, node))
        })
        .collect()
}

fn parse_sources(
    value: toml::Value,
    at: &ConfigPath,
    cx: &mut Parse<'_>,
) -> Vec<(String, SourceNode)> {
    let Some(table) = expect_table(value, at, cx) else {
        return Vec::new();
    };
    table
        .into_iter()
        .filter_map(|(name, value)| {
            let at = at.key(&name);
            let mut table = expect_table(value, &at, cx)?;
            let type_name = take_type(&mut table, &at, cx)?;
            let dead_letter = dead_letter(table.remove("dead_letter"), &at, cx);
            let (type_name, source) = cx.registry.validate_source(&type_name, table, &at, cx)?;
            let node = SourceNode {
                type_name,
                source,
                dead_letter: dead_letter?,
            };
            Some((name, node))
        })
        .collect()
}

fn take_type(table: &mut toml::Table, at: &ConfigPath, cx: &mut Parse<'_>) -> Option<String> {
    match table.remove("type") {
        Some(toml::Value::String(name)) => Some(name),
        Some(other) => {
            cx.errors.push(ConfigError::new(
                at.key("type"),
                ConfigErrorKind::Invalid,
                format!("expected a string, found {}", type_name(&other)),
            ));
            None
        }
        None => {
            cx.errors.push(ConfigError::new(
                at,
                ConfigErrorKind::Missing,
                "the required key `type` is missing",
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
    asynchronous: bool,
    cx: &mut Parse<'_>,
) -> RouterNode {
    let mut node = RouterNode::default();
    if let Some(value) = table.remove("processors") {
        node.processors = processors(value, &at.key("processors"), cx);
    }
    if let Some(value) = table.remove("backends") {
        node.backends = backends(value, &at.key("backends"), cx);
    }
    let keys: &[&str] = if asynchronous {
        &[
            "type",
            "processors",
            "backends",
            "queue_capacity",
            "when_full",
            "block_timeout_ms",
        ]
    } else {
        &["type", "processors", "backends"]
    };
    let kind = if asynchronous {
        "an async_router"
    } else {
        "a router"
    };
    for key in table.keys() {
        cx.errors.push(unknown_key(&at.key(key), key, keys, kind));
    }
    node
}

fn backend(mut table: toml::Table, at: &ConfigPath, cx: &mut Parse<'_>) -> Option<BackendNode> {
    let type_name = take_type(&mut table, at, cx)?;
    match type_name.as_str() {
        "router" => Some(BackendNode::Router(router(table, at, false, cx))),
        "async_router" => {
            let queue_table = split_off(
                &mut table,
                &[
                    "queue_capacity",
                    "when_full",
                    "block_timeout_ms",
                    "buffer",
                    "processors_on",
                ],
            );
            let queue: Option<QueueOptions> = deserialize_at(queue_table, at, cx, &[]);
            if let Some(buffer) = queue.as_ref().and_then(|q| q.buffer.as_ref()) {
                cx.errors.extend(buffer.check(at));
            }
            let router = router(table, at, true, cx);
            queue.map(|queue| BackendNode::AsyncRouter { router, queue })
        }
        plain if cx.registry.is_plain(plain) => {
            let (type_name, backend) = cx.registry.validate_plain(plain, table, at, cx)?;
            Some(BackendNode::Plain { type_name, backend })
        }
        _ => {
            debug_assert!(!ROUTER_TYPES.contains(&type_name.as_str()));
            let dead_letter = dead_letter(table.remove("dead_letter"), at, cx);
            let delivery_table = split_off(&mut table, &DELIVERY_KEYS);
            let delivery: Option<DeliveryOptions> = deserialize_at(delivery_table, at, cx, &[]);
            if let Some(delivery) = &delivery {
                cx.errors.extend(delivery.check(at));
            }
            let sink = cx.registry.validate_sink(&type_name, table, at, cx);
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
    cx: &mut Parse<'_>,
) -> Option<DeadLetter> {
    let at_key = at.key("dead_letter");
    match value {
        None => {
            // The default: a file of its own (no gzip: easy to read).
            let fallback = cx.registry.sink_types().any(|t| t == "file").then(|| {
                let mut table = toml::Table::new();
                let path = format!("{DEFAULT_DEAD_LETTER_DIR}/{at}");
                table.insert("path".to_owned(), toml::Value::String(path));
                let (type_name, sink) = cx.registry.validate_sink("file", table, &at_key, cx)?;
                Some(Box::new(BackendNode::Sink {
                    type_name,
                    delivery: deserialize_at(toml::Table::new(), &at_key, cx, &[])?,
                    sink,
                    dead_letter: DeadLetter::None,
                }))
            });
            Some(DeadLetter::Default(fallback.flatten()))
        }
        Some(toml::Value::String(none)) if none == "none" => Some(DeadLetter::None),
        Some(toml::Value::Table(table)) => {
            let mut node = backend(table, &at_key, cx)?;
            // A dead-letter destination has no dead letters of its own.
            if let BackendNode::Sink { dead_letter, .. } = &mut node
                && matches!(dead_letter, DeadLetter::Default(_))
            {
                *dead_letter = DeadLetter::None;
            }
            Some(DeadLetter::Backend(Box::new(node)))
        }
        Some(other) => {
            cx.errors.push(ConfigError::new(
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
