//! Building a [`Collector`]: its options checked, the catalog and the flume
//! allowlist loaded, the intake queue and the write-ahead log wired in front
//! of the pipeline.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use tidings_catalog::Catalog;
use tidings_config::{
    AckMode, CollectorOptions, Config, ConfigError, ConfigErrorKind, ConfigErrors, Pipeline,
};
use tidings_event::Limits;
use tidings_processors::PropertyAllowlist;
use tidings_routing::{AsyncRouter, ProcessorsOn, WhenFull};

use crate::budget::{self, Budget};
use crate::collector::{Collector, Inner};
use crate::durable::Durable;
use crate::metrics::Counters;
use crate::service::Mount;
use crate::sources::Sources;
use crate::static_files::StaticFiles;
use crate::ui::Ui;

/// `[collector] flume_allowed_properties`, checked.
fn flume_allowlist(options: &CollectorOptions) -> Result<Option<PropertyAllowlist>, ConfigError> {
    let Some(paths) = &options.flume_allowed_properties else {
        return Ok(None);
    };
    PropertyAllowlist::new(paths.iter().cloned())
        .map(Some)
        .map_err(|e| {
            ConfigError::new(
                format!("collector.flume_allowed_properties[{}]", e.index),
                ConfigErrorKind::Invalid,
                e.to_string(),
            )
        })
}

/// `[collector.catalog]`, loaded, with whether it is strict.
fn load_catalog(options: &CollectorOptions) -> Result<Option<(Arc<Catalog>, bool)>, ConfigError> {
    let Some(c) = &options.catalog else {
        return Ok(None);
    };
    Catalog::from_file(&c.path)
        .map(|catalog| Some((Arc::new(catalog), c.strict)))
        .map_err(|e| {
            ConfigError::new(
                "collector.catalog.path",
                ConfigErrorKind::Invalid,
                e.to_string(),
            )
        })
}

impl Collector {
    /// Checks, without changing anything on the machine, what
    /// [`Collector::from_config`] would refuse: every sink's own checks
    /// ([`Config::preflight`]), the collector's options that are read at
    /// start (the catalog file, `flume_allowed_properties`) and, in durable
    /// mode, the write-ahead log's directory. `tidings check` and
    /// `tidings serve` both run it first, so `check` fails when `serve`
    /// would.
    ///
    /// # Errors
    ///
    /// [`ConfigErrors`] with every problem found, located in the file.
    pub fn preflight(config: &Config) -> Result<(), ConfigErrors> {
        let mut errors = match config.preflight() {
            Ok(()) => Vec::new(),
            Err(found) => found.0,
        };
        let options = config.collector();
        errors.extend(flume_allowlist(options).err());
        errors.extend(load_catalog(options).err());
        if options.ack == AckMode::Durable
            && let Err(message) =
                tidings_config::probe_directory(std::path::Path::new(&options.wal_path))
        {
            errors.push(ConfigError::new(
                "collector.wal_path",
                ConfigErrorKind::Build,
                message,
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(config.locate(ConfigErrors(errors)))
        }
    }

    /// Builds the pipeline of `config` and a collector over it.
    ///
    /// # Errors
    ///
    /// [`ConfigErrors`] when a sink cannot start or a collector option is invalid.
    pub fn from_config(config: &Config) -> Result<Self, ConfigErrors> {
        let mut pipeline = config.build()?;
        let sources = config.build_sources(&mut pipeline)?;
        let collector = Self::new(config.collector().clone(), pipeline)?;
        let inner = &collector.inner;
        inner.sources.start(sources, &inner.intake)?;
        Ok(collector)
    }

    /// A collector over an already built pipeline.
    ///
    /// # Errors
    ///
    /// [`ConfigErrors`] when `flume_allowed_properties` holds an invalid path
    /// or the collector's worker cannot start.
    pub fn new(options: CollectorOptions, pipeline: Pipeline) -> Result<Self, ConfigErrors> {
        let flume_allowlist = flume_allowlist(&options)?;
        let catalog = load_catalog(&options)?;
        let ui = if options.ui.enabled {
            // The config refuses this already; options built in code too.
            if options.ui.admin_key.trim().is_empty() {
                return Err(ConfigError::new(
                    "collector.ui.admin_key",
                    ConfigErrorKind::Missing,
                    "the live view (`enabled = true`) needs a non-empty `admin_key`",
                )
                .into());
            }
            Some(Ui::new(
                &options.ui,
                catalog.as_ref().map(|(catalog, _)| catalog.clone()),
            ))
        } else {
            None
        };
        let static_files = match &options.static_dir {
            Some(dir) => Some(StaticFiles::open(dir).map_err(|e| {
                ConfigError::new(
                    "collector.static_dir",
                    ConfigErrorKind::Invalid,
                    format!("cannot serve {dir:?}: {e}"),
                )
            })?),
            None => None,
        };
        let (root, stages) = pipeline.into_parts();
        let root = Arc::new(root);
        let intake = Arc::new(
            // The root's processors run on the intake worker, not on the
            // request's thread: the 202 waits for the queue only, and the
            // write-ahead log holds events as they were received.
            AsyncRouter::builder("intake", root.clone())
                .processors_on(ProcessorsOn::Worker)
                .queue_capacity(options.queue_capacity)
                .when_full(WhenFull::DropNewest)
                .build()
                .map_err(|e| {
                    ConfigError::new("collector", ConfigErrorKind::Build, e.to_string())
                })?,
        );
        let durable = match options.ack {
            AckMode::Durable => Some(Durable::start(&options, intake.clone())?),
            _ => {
                crate::durable::warn_if_log_left(&options);
                None
            }
        };
        // A batch larger than the queue could never be admitted: a 503
        // would be retried forever, so it is a 413 at once.
        let limits = Limits::default()
            .with_max_bytes(options.max_body_bytes)
            .with_max_events(options.max_batch_events.min(options.queue_capacity));
        let budgets = budget::Limits {
            bodies: Budget::new(options.max_inflight_body_bytes),
            connections: Budget::new(options.max_connections),
        };
        Ok(Self {
            mount: Mount::Root,
            inner: Arc::new(Inner {
                options,
                limits,
                flume_allowlist,
                catalog,
                intake,
                durable,
                root,
                stages,
                budgets,
                counters: Counters::default(),
                flume_log: Mutex::new(Box::new(std::io::stdout())),
                ui,
                static_files,
                sources: Sources::default(),
            }),
        })
    }

    /// Writes `/flume` log lines to `writer` instead of stdout.
    ///
    /// # Panics
    ///
    /// If called after the collector was cloned.
    #[must_use]
    pub fn with_flume_log(mut self, writer: impl Write + Send + 'static) -> Self {
        let inner = Arc::get_mut(&mut self.inner)
            .expect("with_flume_log is called before the collector is shared");
        *inner
            .flume_log
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = Box::new(writer);
        self
    }

    /// The collector's options.
    #[must_use]
    pub fn options(&self) -> &CollectorOptions {
        &self.inner.options
    }
}
