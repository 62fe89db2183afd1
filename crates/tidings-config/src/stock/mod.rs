//! The stock processor types, and the registration of the stock sink
//! types (each defined in its sink crate), by `Registry::default()`.

use std::sync::Arc;

use serde::Deserialize;
use tidings_processors::{FilterMode, NameFilter, Processor, PropertyAllowlist, RegexFilter};

use crate::{ProcessorType, Registry};

pub(crate) mod log;

pub(crate) fn register(registry: &mut Registry) {
    registry.register_processor::<RegexFilterType>();
    registry.register_processor::<NameFilterType>();
    registry.register_processor::<PropertyAllowlistType>();
    registry.register_backend::<log::LogType>();
    #[cfg(feature = "catalog")]
    {
        registry.register_processor_entry(
            <catalog::CatalogType as ProcessorType>::NAME,
            Box::new(catalog::CatalogEntry),
        );
        registry.register_processor::<catalog::PiiFilterType>();
    }
    // Each sink crate owns its types (options, checks, `describe`) behind
    // its `config` feature: one line each here.
    #[cfg(feature = "console")]
    registry.register_sink::<tidings_sink_console::ConsoleType>();
    #[cfg(feature = "file")]
    registry.register_sink::<tidings_sink_file::FileType>();
    #[cfg(feature = "http")]
    {
        registry.register_sink::<tidings_sink_http::SpadeType>();
        registry.register_sink::<tidings_sink_http::FlumeType>();
        registry.register_sink::<tidings_sink_http::HttpType>();
        registry.register_sink::<tidings_sink_http::SegmentType>();
    }
    #[cfg(feature = "postgres")]
    registry.register_sink::<tidings_sink_postgres::PostgresType>();
    #[cfg(feature = "amqp")]
    {
        registry.register_sink::<tidings_sink_amqp::AmqpType>();
        registry.register_source::<tidings_sink_amqp::AmqpSourceType>();
    }
    #[cfg(feature = "nats")]
    {
        registry.register_sink::<tidings_sink_nats::NatsType>();
        registry.register_source::<tidings_sink_nats::NatsSourceType>();
    }
}

/// `type = "regex_filter"`: `filter = "allowlist" | "blocklist"`, `patterns`.
#[derive(Debug)]
pub struct RegexFilterType;

/// The options of `regex_filter`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexFilterOptions {
    filter: Filter,
    patterns: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Filter {
    Allowlist,
    Blocklist,
}

impl ProcessorType for RegexFilterType {
    const NAME: &'static str = "regex_filter";
    type Options = RegexFilterOptions;

    fn build(options: Self::Options) -> Result<Arc<dyn Processor>, (String, String)> {
        RegexFilter::new(options.filter.mode(), options.patterns)
            .map(|f| Arc::new(f) as Arc<dyn Processor>)
            .map_err(|e| (format!("patterns[{}]", e.index), e.to_string()))
    }

    fn describe(options: &Self::Options) -> String {
        format!("{} {:?}", options.filter.as_str(), options.patterns)
    }
}

impl Filter {
    fn mode(self) -> FilterMode {
        match self {
            Filter::Allowlist => FilterMode::Allowlist,
            Filter::Blocklist => FilterMode::Blocklist,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Filter::Allowlist => "allowlist",
            Filter::Blocklist => "blocklist",
        }
    }
}

/// `type = "name_filter"`: `filter = "allowlist" | "blocklist"`, `names`
/// (exact names, as edX's `NameWhitelistProcessor`).
#[derive(Debug)]
pub struct NameFilterType;

/// The options of `name_filter`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameFilterOptions {
    filter: Filter,
    names: Vec<String>,
}

impl ProcessorType for NameFilterType {
    const NAME: &'static str = "name_filter";
    type Options = NameFilterOptions;

    fn build(options: Self::Options) -> Result<Arc<dyn Processor>, (String, String)> {
        if let Some(index) = options.names.iter().position(String::is_empty) {
            return Err((
                format!("names[{index}]"),
                "an event name is never empty".to_owned(),
            ));
        }
        Ok(Arc::new(NameFilter::new(
            options.filter.mode(),
            options.names,
        )))
    }

    fn describe(options: &Self::Options) -> String {
        format!("{} {:?}", options.filter.as_str(), options.names)
    }
}

/// `type = "property_allowlist"`: `allowed` (dotted paths).
#[derive(Debug)]
pub struct PropertyAllowlistType;

/// The options of `property_allowlist`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyAllowlistOptions {
    allowed: Vec<String>,
}

impl ProcessorType for PropertyAllowlistType {
    const NAME: &'static str = "property_allowlist";
    type Options = PropertyAllowlistOptions;

    fn build(options: Self::Options) -> Result<Arc<dyn Processor>, (String, String)> {
        PropertyAllowlist::new(options.allowed)
            .map(|p| Arc::new(p) as Arc<dyn Processor>)
            .map_err(|e| (format!("allowed[{}]", e.index), e.to_string()))
    }

    fn describe(options: &Self::Options) -> String {
        format!("allowed {:?}", options.allowed)
    }
}

#[cfg(feature = "catalog")]
mod catalog;
