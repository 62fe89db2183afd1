//! The registry of sink, plain backend and processor types, and the traits
//! a third-party crate implements to plug its own types into config files.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use tidings_core::{Backend, BackendType, Delivery, SinkType, Source, SourceType};
use tidings_processors::Processor;
use tidings_routing::{BoxError, Sink};

use crate::options::DELIVERY_KEYS;
use crate::tree::Parse;
use crate::{ConfigError, ConfigErrorKind, ConfigPath};

/// The keys of a sink's table that the framework reads, not the sink.
const SINK_FRAMEWORK_KEYS: [&str; 12] = [
    "type",
    DELIVERY_KEYS[0],
    DELIVERY_KEYS[1],
    DELIVERY_KEYS[2],
    DELIVERY_KEYS[3],
    DELIVERY_KEYS[4],
    DELIVERY_KEYS[5],
    DELIVERY_KEYS[6],
    DELIVERY_KEYS[7],
    DELIVERY_KEYS[8],
    DELIVERY_KEYS[9],
    "dead_letter",
];

/// A processor type that config files can name with `type = "NAME"` in a
/// `processors` list.
pub trait ProcessorType: Send + Sync + 'static {
    /// The name used in `type = "..."`.
    const NAME: &'static str;
    /// The processor's options (every key of its table but `type`).
    type Options: DeserializeOwned + fmt::Debug + Send + Sync + 'static;

    /// Resolves the relative paths among the options (a catalog file)
    /// against `dir`, the directory of the config file. The default does
    /// nothing.
    fn resolve_paths(options: &mut Self::Options, dir: &std::path::Path) {
        let _ = (options, dir);
    }

    /// Builds the processor, without I/O. Errors are the key (relative to
    /// the processor's table) and a message, such as an invalid pattern.
    ///
    /// # Errors
    ///
    /// `(key, message)` when the options are invalid.
    fn build(options: Self::Options) -> Result<Arc<dyn Processor>, (String, String)>;

    /// A one-line summary for `tidings check`.
    fn describe(options: &Self::Options) -> String {
        format!("{options:?}")
    }
}

/// A sink whose options are valid, ready to be built.
pub(crate) trait ValidatedSink: Send + Sync + fmt::Debug {
    fn build(&self, delivery: &Delivery) -> Result<Arc<dyn Sink>, BoxError>;
    fn describe(&self) -> String;
    fn preflight(&self) -> Vec<(String, String)>;
}

struct Validated<T: SinkType>(T::Options);

impl<T: SinkType> fmt::Debug for Validated<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", T::NAME, T::describe(&self.0))
    }
}

impl<T: SinkType> ValidatedSink for Validated<T> {
    fn build(&self, delivery: &Delivery) -> Result<Arc<dyn Sink>, BoxError> {
        T::build(&self.0, delivery)
    }
    fn describe(&self) -> String {
        T::describe(&self.0)
    }
    fn preflight(&self) -> Vec<(String, String)> {
        T::preflight(&self.0)
    }
}

/// A plain backend whose options are valid, ready to be built.
pub(crate) trait ValidatedBackend: Send + Sync {
    fn build(&self) -> Result<Arc<dyn Backend>, BoxError>;
    fn describe(&self) -> String;
    fn may_drop(&self) -> Option<String>;
}

struct ValidatedPlain<T: BackendType>(T::Options);

impl<T: BackendType> ValidatedBackend for ValidatedPlain<T> {
    fn build(&self) -> Result<Arc<dyn Backend>, BoxError> {
        T::build(&self.0)
    }
    fn describe(&self) -> String {
        T::describe(&self.0)
    }
    fn may_drop(&self) -> Option<String> {
        T::may_drop(&self.0)
    }
}

impl fmt::Debug for dyn ValidatedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A source whose options are valid, ready to be built.
pub(crate) trait ValidatedSource: Send + Sync {
    fn build(
        &self,
        name: &str,
        dead_letter: Option<Arc<dyn Backend>>,
    ) -> Result<Arc<dyn Source>, BoxError>;
    fn describe(&self) -> String;
}

struct ValidatedSourceOf<T: SourceType>(T::Options);

impl<T: SourceType> ValidatedSource for ValidatedSourceOf<T> {
    fn build(
        &self,
        name: &str,
        dead_letter: Option<Arc<dyn Backend>>,
    ) -> Result<Arc<dyn Source>, BoxError> {
        T::build(&self.0, name, dead_letter)
    }
    fn describe(&self) -> String {
        T::describe(&self.0)
    }
}

impl fmt::Debug for dyn ValidatedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Deserializes `table`, the entry at `at`, into `T`, recording every
/// mistake with its full path. `also_allowed`: keys of the table the caller
/// reads itself, listed with `T`'s when a key is unknown.
pub(crate) fn deserialize_at<T: DeserializeOwned>(
    table: toml::Table,
    at: &ConfigPath,
    cx: &mut Parse<'_>,
    also_allowed: &[&str],
) -> Option<T> {
    match tidings_toml::deserialize(toml::Value::Table(table), at, also_allowed) {
        Ok(value) => Some(value),
        Err(mistakes) => {
            cx.errors
                .extend(mistakes.into_iter().map(ConfigError::from));
            None
        }
    }
}

trait DynSinkType: Send + Sync {
    fn validate(
        &self,
        table: toml::Table,
        at: &ConfigPath,
        cx: &mut Parse<'_>,
    ) -> Option<Box<dyn ValidatedSink>>;
}

struct SinkEntry<T>(std::marker::PhantomData<fn() -> T>);

impl<T: SinkType> DynSinkType for SinkEntry<T> {
    fn validate(
        &self,
        table: toml::Table,
        at: &ConfigPath,
        cx: &mut Parse<'_>,
    ) -> Option<Box<dyn ValidatedSink>> {
        let options = options(
            deserialize_at(table, at, cx, &SINK_FRAMEWORK_KEYS)?,
            T::resolve_paths,
            T::validate,
            at,
            cx,
        )?;
        Some(Box::new(Validated::<T>(options)))
    }
}

/// `options` with their paths resolved and checked; `None` when the check
/// found problems (recorded).
fn options<O>(
    mut options: O,
    resolve_paths: fn(&mut O, &std::path::Path),
    validate: fn(&O) -> Vec<(String, String)>,
    at: &ConfigPath,
    cx: &mut Parse<'_>,
) -> Option<O> {
    if let Some(dir) = cx.base {
        resolve_paths(&mut options, dir);
    }
    let problems = validate(&options);
    if problems.is_empty() {
        return Some(options);
    }
    cx.errors.extend(
        problems.into_iter().map(|(key, message)| {
            ConfigError::new(at.join(&key), ConfigErrorKind::Invalid, message)
        }),
    );
    None
}

trait DynSourceType: Send + Sync {
    fn validate(
        &self,
        table: toml::Table,
        at: &ConfigPath,
        cx: &mut Parse<'_>,
    ) -> Option<Box<dyn ValidatedSource>>;
}

struct SourceEntry<T>(std::marker::PhantomData<fn() -> T>);

impl<T: SourceType> DynSourceType for SourceEntry<T> {
    fn validate(
        &self,
        table: toml::Table,
        at: &ConfigPath,
        cx: &mut Parse<'_>,
    ) -> Option<Box<dyn ValidatedSource>> {
        let options = options(
            deserialize_at(table, at, cx, &["type", "dead_letter"])?,
            |_, _| {},
            T::validate,
            at,
            cx,
        )?;
        Some(Box::new(ValidatedSourceOf::<T>(options)))
    }
}

trait DynBackendType: Send + Sync {
    fn validate(
        &self,
        table: toml::Table,
        at: &ConfigPath,
        cx: &mut Parse<'_>,
    ) -> Option<Box<dyn ValidatedBackend>>;
}

struct BackendEntry<T>(std::marker::PhantomData<fn() -> T>);

impl<T: BackendType> DynBackendType for BackendEntry<T> {
    fn validate(
        &self,
        table: toml::Table,
        at: &ConfigPath,
        cx: &mut Parse<'_>,
    ) -> Option<Box<dyn ValidatedBackend>> {
        let options = options(
            deserialize_at(table, at, cx, &["type"])?,
            T::resolve_paths,
            T::validate,
            at,
            cx,
        )?;
        Some(Box::new(ValidatedPlain::<T>(options)))
    }
}

/// A processor built from config, with its summary.
pub(crate) struct BuiltProcessor {
    pub(crate) type_name: &'static str,
    pub(crate) summary: String,
    pub(crate) processor: Arc<dyn Processor>,
    /// The processor itself when it is the stock `catalog` type: what a
    /// tracker built from the config checks its emits with.
    #[cfg(feature = "catalog")]
    pub(crate) catalog: Option<Arc<tidings_catalog::CatalogProcessor>>,
}

/// How the registry builds the processors of one type from their tables.
pub(crate) trait DynProcessorType: Send + Sync {
    fn build(
        &self,
        table: toml::Table,
        at: &ConfigPath,
        cx: &mut Parse<'_>,
    ) -> Option<BuiltProcessor>;
}

struct ProcessorEntry<T>(std::marker::PhantomData<fn() -> T>);

impl<T: ProcessorType> DynProcessorType for ProcessorEntry<T> {
    fn build(
        &self,
        table: toml::Table,
        at: &ConfigPath,
        cx: &mut Parse<'_>,
    ) -> Option<BuiltProcessor> {
        let (summary, processor) = build_processor_with::<T, _>(table, at, cx, T::build)?;
        Some(BuiltProcessor {
            type_name: T::NAME,
            summary,
            processor,
            #[cfg(feature = "catalog")]
            catalog: None,
        })
    }
}

/// Reads the options of a processor of type `T` from `table` (at `at`),
/// resolves their paths and makes it with `build`: its summary and what
/// `build` made; `None` when the options are wrong (recorded).
pub(crate) fn build_processor_with<T: ProcessorType, R>(
    table: toml::Table,
    at: &ConfigPath,
    cx: &mut Parse<'_>,
    build: impl FnOnce(T::Options) -> Result<R, (String, String)>,
) -> Option<(String, R)> {
    let mut options: T::Options = deserialize_at(table, at, cx, &["type"])?;
    if let Some(dir) = cx.base {
        T::resolve_paths(&mut options, dir);
    }
    let summary = T::describe(&options);
    match build(options) {
        Ok(made) => Some((summary, made)),
        Err((key, message)) => {
            cx.errors.push(ConfigError::new(
                at.join(&key),
                ConfigErrorKind::Invalid,
                message,
            ));
            None
        }
    }
}

/// The sink, plain backend and processor types config files may name.
///
/// `Registry::default()` holds the stock types enabled by this crate's
/// features; a third-party crate adds its own with [`Registry::register_sink`],
/// [`Registry::register_backend`] and [`Registry::register_processor`]. Sink
/// and backend types share the names of `type = "..."` in `[backends.*]`.
pub struct Registry {
    sinks: BTreeMap<&'static str, Box<dyn DynSinkType>>,
    backends: BTreeMap<&'static str, Box<dyn DynBackendType>>,
    sources: BTreeMap<&'static str, Box<dyn DynSourceType>>,
    processors: BTreeMap<&'static str, Box<dyn DynProcessorType>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("sinks", &self.sinks.keys().collect::<Vec<_>>())
            .field("backends", &self.backends.keys().collect::<Vec<_>>())
            .field("sources", &self.sources.keys().collect::<Vec<_>>())
            .field("processors", &self.processors.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Names that are not sink types: the routers.
pub(crate) const ROUTER_TYPES: [&str; 2] = ["router", "async_router"];

impl Registry {
    /// A registry with no types at all.
    #[must_use]
    pub fn empty() -> Self {
        Self {
            sinks: BTreeMap::new(),
            backends: BTreeMap::new(),
            sources: BTreeMap::new(),
            processors: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) the sink type `T`, which replaces a plain
    /// backend type of the same name.
    ///
    /// # Panics
    ///
    /// If `T::NAME` is `router` or `async_router`, which are built in.
    pub fn register_sink<T: SinkType>(&mut self) -> &mut Self {
        reserve(T::NAME);
        self.backends.remove(T::NAME);
        self.sinks
            .insert(T::NAME, Box::new(SinkEntry::<T>(std::marker::PhantomData)));
        self
    }

    /// Adds (or replaces) the plain backend type `T`, which replaces a sink
    /// type of the same name.
    ///
    /// # Panics
    ///
    /// If `T::NAME` is `router` or `async_router`, which are built in.
    pub fn register_backend<T: BackendType>(&mut self) -> &mut Self {
        reserve(T::NAME);
        self.sinks.remove(T::NAME);
        self.backends.insert(
            T::NAME,
            Box::new(BackendEntry::<T>(std::marker::PhantomData)),
        );
        self
    }

    /// Adds (or replaces) the source type `T`, for `[sources.*]` tables.
    pub fn register_source<T: SourceType>(&mut self) -> &mut Self {
        self.sources.insert(
            T::NAME,
            Box::new(SourceEntry::<T>(std::marker::PhantomData)),
        );
        self
    }

    /// Adds (or replaces) the processor type `T`.
    pub fn register_processor<T: ProcessorType>(&mut self) -> &mut Self {
        self.register_processor_entry(
            T::NAME,
            Box::new(ProcessorEntry::<T>(std::marker::PhantomData)),
        )
    }

    /// Adds (or replaces) a processor type built its own way (the stock
    /// `catalog`, which keeps a handle on what it builds).
    pub(crate) fn register_processor_entry(
        &mut self,
        name: &'static str,
        entry: Box<dyn DynProcessorType>,
    ) -> &mut Self {
        self.processors.insert(name, entry);
        self
    }

    /// The registered sink type names.
    pub fn sink_types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.sinks.keys().copied()
    }

    /// The registered plain backend type names.
    pub fn backend_types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.backends.keys().copied()
    }

    /// The registered source type names.
    pub fn source_types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.sources.keys().copied()
    }

    /// The registered processor type names.
    pub fn processor_types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.processors.keys().copied()
    }

    /// Whether `type_name` is a plain backend type.
    pub(crate) fn is_plain(&self, type_name: &str) -> bool {
        self.backends.contains_key(type_name)
    }

    /// Validates the table of a plain backend of type `type_name`.
    pub(crate) fn validate_plain(
        &self,
        type_name: &str,
        table: toml::Table,
        at: &ConfigPath,
        cx: &mut Parse<'_>,
    ) -> Option<(&'static str, Box<dyn ValidatedBackend>)> {
        let (&name, entry) = self.backends.get_key_value(type_name)?;
        entry.validate(table, at, cx).map(|backend| (name, backend))
    }

    /// Validates the table of a sink of type `type_name`; an unknown type
    /// is recorded with the names of every backend type.
    pub(crate) fn validate_sink(
        &self,
        type_name: &str,
        table: toml::Table,
        at: &ConfigPath,
        cx: &mut Parse<'_>,
    ) -> Option<(&'static str, Box<dyn ValidatedSink>)> {
        let Some((&name, entry)) = self.sinks.get_key_value(type_name) else {
            let mut known: Vec<&str> = ROUTER_TYPES.to_vec();
            known.extend(self.sink_types());
            known.extend(self.backend_types());
            cx.errors
                .push(unknown_type("backend", type_name, &known, at.key("type")));
            return None;
        };
        entry.validate(table, at, cx).map(|sink| (name, sink))
    }

    /// Validates the table of a source of type `type_name`.
    pub(crate) fn validate_source(
        &self,
        type_name: &str,
        table: toml::Table,
        at: &ConfigPath,
        cx: &mut Parse<'_>,
    ) -> Option<(&'static str, Box<dyn ValidatedSource>)> {
        let Some((&name, entry)) = self.sources.get_key_value(type_name) else {
            let known: Vec<&str> = self.source_types().collect();
            cx.errors
                .push(unknown_type("source", type_name, &known, at.key("type")));
            return None;
        };
        entry.validate(table, at, cx).map(|source| (name, source))
    }

    pub(crate) fn build_processor(
        &self,
        type_name: &str,
        table: toml::Table,
        at: &ConfigPath,
        cx: &mut Parse<'_>,
    ) -> Option<BuiltProcessor> {
        let Some(entry) = self.processors.get(type_name) else {
            let known: Vec<&str> = self.processor_types().collect();
            cx.errors
                .push(unknown_type("processor", type_name, &known, at.key("type")));
            return None;
        };
        entry.build(table, at, cx)
    }
}

/// Panics when `name` is a router's.
fn reserve(name: &str) {
    assert!(
        !ROUTER_TYPES.contains(&name),
        "backend type name {name:?} is reserved"
    );
}

/// `type = "..."` names no registered type: the nearest one, and all.
fn unknown_type(what: &str, type_name: &str, known: &[&str], at: ConfigPath) -> ConfigError {
    let suggestion =
        tidings_toml::did_you_mean(type_name, known.iter().copied(), |t| format!("{t:?}"));
    ConfigError::new(
        at,
        ConfigErrorKind::UnknownType,
        format!(
            "unknown {what} type {type_name:?}{suggestion} The {what} types are: {}",
            known.join(", ")
        ),
    )
}

impl Default for Registry {
    fn default() -> Self {
        let mut registry = Self::empty();
        crate::stock::register(&mut registry);
        registry
    }
}
