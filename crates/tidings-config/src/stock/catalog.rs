//! `type = "catalog"` and `type = "pii_filter"`: processors from an event
//! catalog file (see `tidings-catalog`).

use std::sync::Arc;

use serde::Deserialize;
use tidings_catalog::{Catalog, CatalogProcessor, OnInvalid, PiiFilter};
use tidings_processors::Processor;

use crate::registry::{BuiltProcessor, DynProcessorType, build_processor_with};
use crate::tree::Parse;
use crate::{ConfigPath, ProcessorType};

fn load(path: &str) -> Result<Arc<Catalog>, (String, String)> {
    Catalog::from_file(path)
        .map(Arc::new)
        .map_err(|e| (String::new(), e.to_string()))
}

/// `path` resolved against `dir` when relative.
fn resolved(dir: &std::path::Path, path: &str) -> String {
    crate::tree::resolve(Some(dir), path.as_ref())
        .display()
        .to_string()
}

/// `type = "catalog"`: `path`, `strict` (default false), `on_invalid` =
/// `"drop"` (default) | `"annotate"`.
#[derive(Debug)]
pub(crate) struct CatalogType;

impl CatalogType {
    /// The processor, as itself.
    fn build_processor(options: CatalogOptions) -> Result<Arc<CatalogProcessor>, (String, String)> {
        let on_invalid = match options.on_invalid {
            OnInvalidOption::Drop => OnInvalid::Drop,
            OnInvalidOption::Annotate => OnInvalid::Annotate,
        };
        let catalog = load(&options.path).map_err(|(_, m)| ("path".to_owned(), m))?;
        Ok(Arc::new(
            CatalogProcessor::new(catalog)
                .strict(options.strict)
                .on_invalid(on_invalid),
        ))
    }
}

/// How the registry builds `catalog` processors: as any processor type,
/// keeping a handle on each ([`Config::root_catalog`](crate::Config::root_catalog)).
#[derive(Debug)]
pub(crate) struct CatalogEntry;

impl DynProcessorType for CatalogEntry {
    fn build(
        &self,
        table: toml::Table,
        at: &ConfigPath,
        cx: &mut Parse<'_>,
    ) -> Option<BuiltProcessor> {
        let (summary, processor) =
            build_processor_with::<CatalogType, _>(table, at, cx, CatalogType::build_processor)?;
        Some(BuiltProcessor {
            type_name: CatalogType::NAME,
            summary,
            processor: processor.clone(),
            catalog: Some(processor),
        })
    }
}

/// The options of `catalog`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CatalogOptions {
    path: String,
    #[serde(default)]
    strict: bool,
    #[serde(default)]
    on_invalid: OnInvalidOption,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OnInvalidOption {
    #[default]
    Drop,
    Annotate,
}

impl ProcessorType for CatalogType {
    const NAME: &'static str = "catalog";
    type Options = CatalogOptions;

    fn resolve_paths(options: &mut Self::Options, dir: &std::path::Path) {
        options.path = resolved(dir, &options.path);
    }

    fn build(options: Self::Options) -> Result<Arc<dyn Processor>, (String, String)> {
        Ok(Self::build_processor(options)?)
    }

    fn describe(options: &Self::Options) -> String {
        let on_invalid = match options.on_invalid {
            OnInvalidOption::Drop => "dropped",
            OnInvalidOption::Annotate => "annotated and kept",
        };
        format!(
            "{} ({}, invalid events {on_invalid})",
            options.path,
            if options.strict { "strict" } else { "lenient" },
        )
    }
}

/// `type = "pii_filter"`: `catalog` (a catalog file), `drop_undeclared`
/// (default false).
#[derive(Debug)]
pub(crate) struct PiiFilterType;

/// The options of `pii_filter`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PiiFilterOptions {
    catalog: String,
    #[serde(default)]
    drop_undeclared: bool,
}

impl ProcessorType for PiiFilterType {
    const NAME: &'static str = "pii_filter";
    type Options = PiiFilterOptions;

    fn resolve_paths(options: &mut Self::Options, dir: &std::path::Path) {
        options.catalog = resolved(dir, &options.catalog);
    }

    fn build(options: Self::Options) -> Result<Arc<dyn Processor>, (String, String)> {
        let catalog = load(&options.catalog).map_err(|(_, m)| ("catalog".to_owned(), m))?;
        let filter = PiiFilter::new(catalog);
        Ok(Arc::new(if options.drop_undeclared {
            filter.drop_undeclared()
        } else {
            filter
        }))
    }

    fn describe(options: &Self::Options) -> String {
        format!(
            "PII of {}{}",
            options.catalog,
            if options.drop_undeclared {
                ", and undeclared properties"
            } else {
                ""
            }
        )
    }
}
