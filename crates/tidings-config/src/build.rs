//! Building a validated config into a running routing tree.

use crate::buffer::BufferOptions;
use std::sync::Arc;

use tidings_routing::{
    AsyncRouter, Backend, MetricsSnapshot, RouterStats, RoutingBackend, SinkBackend, Source,
};

use crate::tree::{BackendNode, RouterNode};
use crate::{Config, ConfigError, ConfigErrorKind, ConfigErrors, ConfigPath, Delivery, Feed};

/// A source built from `[sources.NAME]`, with its name.
pub type NamedSource = (String, Arc<dyn Source>);

/// A running routing tree built from a [`Config`]: the root router, and a
/// handle on every stage for metrics.
#[derive(Debug)]
pub struct Pipeline {
    root: RoutingBackend,
    stages: Vec<Stage>,
}

/// One router or delivery stage of a [`Pipeline`], with its path in the config.
#[derive(Debug, Clone)]
pub struct Stage {
    /// The stage's path, such as `backends.spade.backends.ingest`.
    pub path: String,
    /// The stage.
    pub kind: StageKind,
}

/// What a [`Stage`] is.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StageKind {
    /// A synchronous router.
    Router(Arc<RoutingBackend>),
    /// An async router (its own queue and worker).
    AsyncRouter(Arc<AsyncRouter>),
    /// A sink behind its queue, batching and retry.
    Sink(Arc<SinkBackend>),
}

/// The counters of one stage.
#[derive(Debug, Clone)]
#[non_exhaustive]
#[allow(
    clippy::large_enum_variant,
    reason = "read once per stage per scrape; boxing would only add an allocation"
)]
pub enum StageMetrics {
    /// A router's counters.
    Router(RouterStats),
    /// A delivery stage's counters.
    Delivery(MetricsSnapshot),
}

impl Stage {
    /// A snapshot of the stage's counters.
    #[must_use]
    pub fn metrics(&self) -> StageMetrics {
        match &self.kind {
            StageKind::Router(router) => StageMetrics::Router(router.stats()),
            StageKind::AsyncRouter(router) => StageMetrics::Delivery(router.metrics()),
            StageKind::Sink(sink) => StageMetrics::Delivery(sink.metrics()),
        }
    }
}

impl Pipeline {
    /// The root router and the stages below it.
    #[must_use]
    pub fn into_parts(self) -> (RoutingBackend, Vec<Stage>) {
        (self.root, self.stages)
    }

    /// The stages below the root, depth first.
    #[must_use]
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }
}

impl Config {
    /// Starts every sink and worker of the tree, for a tree fed by a
    /// worker (the collector's intake): a stage that does not set
    /// `when_full` applies backpressure ([`Feed::Worker`]).
    ///
    /// # Errors
    ///
    /// [`ConfigErrors`] (of kind `Build`, with paths) for every sink that
    /// could not start; the stages already started are shut down again.
    pub fn build(&self) -> Result<Pipeline, ConfigErrors> {
        self.build_fed_by(Feed::Worker)
    }

    /// [`Config::build`] for a tree fed as `feed` says: a tracker's tree,
    /// fed by application threads, uses [`Feed::Callers`] so that no emit
    /// ever waits for a full queue.
    ///
    /// # Errors
    ///
    /// As [`Config::build`].
    pub fn build_fed_by(&self, feed: Feed) -> Result<Pipeline, ConfigErrors> {
        let mut stages = Vec::new();
        let mut errors = Vec::new();
        let root = build_router(
            &self.root,
            &ConfigPath::root(),
            feed,
            &mut stages,
            &mut errors,
        );
        if errors.is_empty() {
            Ok(Pipeline { root, stages })
        } else {
            // Dropping the started stages starts their shutdown.
            drop(stages);
            Err(self.locate(ConfigErrors(errors)))
        }
    }

    /// Starts the `[sources.*]` of the config, each with its dead letters
    /// (a stage of their own, added to `pipeline`): `(name, source)` in
    /// file order. The sources connect here; reading them is the caller's
    /// (`tidings_routing::SourceRunner`).
    ///
    /// # Errors
    ///
    /// [`ConfigErrors`] (of kind `Build`, with paths) for every source that
    /// could not start.
    pub fn build_sources(&self, pipeline: &mut Pipeline) -> Result<Vec<NamedSource>, ConfigErrors> {
        let stages = &mut pipeline.stages;
        let mut errors = Vec::new();
        let mut built = Vec::new();
        for (name, node) in &self.sources {
            let at = ConfigPath::root().key("sources").key(name);
            let dead_letter = match node.dead_letter.for_source() {
                Some(dead) => {
                    let at = at.key("dead_letter");
                    match build_backend(dead, &at, Feed::Worker, stages, &mut errors) {
                        Some(backend) => Some(backend),
                        None => continue,
                    }
                }
                None => None,
            };
            match node.source.build(name, dead_letter) {
                Ok(source) => built.push((name.clone(), source)),
                Err(e) => errors.push(ConfigError::new(at, ConfigErrorKind::Build, e.to_string())),
            }
        }
        if errors.is_empty() {
            Ok(built)
        } else {
            Err(self.locate(ConfigErrors(errors)))
        }
    }

    /// Checks what [`Config::build`] would find wrong on this machine,
    /// without changing anything on it: each sink's own checks (a file
    /// sink's directory that cannot be created, say), for the sinks of a
    /// tree fed by a worker, their dead-letter destinations included.
    /// `tidings check` runs it, so that it fails when `serve` would.
    ///
    /// # Errors
    ///
    /// [`ConfigErrors`] with every problem found, located in the file.
    pub fn preflight(&self) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        preflight_router(&self.root, &ConfigPath::root(), Feed::Worker, &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(self.locate(ConfigErrors(errors)))
        }
    }

    /// Gives `errors` (found about this config after it was loaded) the
    /// line and column of their paths in the file, in file order.
    #[must_use]
    pub fn locate(&self, errors: ConfigErrors) -> ConfigErrors {
        match tidings_toml::Document::parse(&self.text) {
            Ok(document) => crate::tree::locate(errors.0, &document),
            Err(_) => errors,
        }
    }
}

fn preflight_router(node: &RouterNode, at: &ConfigPath, feed: Feed, errors: &mut Vec<ConfigError>) {
    for (name, backend) in &node.backends {
        preflight_backend(backend, &at.key("backends").key(name), feed, errors);
    }
}

fn preflight_backend(
    node: &BackendNode,
    at: &ConfigPath,
    feed: Feed,
    errors: &mut Vec<ConfigError>,
) {
    match node {
        BackendNode::Router(router) => preflight_router(router, at, feed, errors),
        BackendNode::AsyncRouter { router, .. } => {
            preflight_router(router, at, Feed::Worker, errors);
        }
        BackendNode::Sink {
            delivery,
            sink,
            dead_letter,
            ..
        } => {
            errors.extend(sink.preflight().into_iter().map(|(key, message)| {
                ConfigError::new(at.join(&key), ConfigErrorKind::Build, message)
            }));
            if let Some(node) = dead_letter.resolve(delivery, feed) {
                preflight_backend(node, &at.key("dead_letter"), Feed::Worker, errors);
            }
        }
        BackendNode::Plain { .. } => {}
    }
}

fn build_router(
    node: &RouterNode,
    at: &ConfigPath,
    feed: Feed,
    stages: &mut Vec<Stage>,
    errors: &mut Vec<ConfigError>,
) -> RoutingBackend {
    let mut builder = RoutingBackend::builder();
    for processor in &node.processors {
        builder = builder.processor_arc(processor.processor.clone());
    }
    for (name, backend) in &node.backends {
        let at = at.key("backends").key(name);
        if let Some(backend) = build_backend(backend, &at, feed, stages, errors) {
            builder = builder.backend_arc(name.clone(), backend);
        }
    }
    builder.build().unwrap_or_else(|e| {
        errors.push(ConfigError::new(at, ConfigErrorKind::Build, e.to_string()));
        RoutingBackend::default()
    })
}

/// Starts the backend `node` at `at`, recording it (and what it holds) in
/// `stages`; `None` when it could not start (recorded in `errors`).
fn build_backend(
    node: &BackendNode,
    at: &ConfigPath,
    feed: Feed,
    stages: &mut Vec<Stage>,
    errors: &mut Vec<ConfigError>,
) -> Option<Arc<dyn Backend>> {
    let path = at.to_string();
    match node {
        BackendNode::Router(router) => {
            let router = Arc::new(build_router(router, at, feed, stages, errors));
            stages.push(Stage {
                path,
                kind: StageKind::Router(router.clone()),
            });
            Some(router)
        }
        BackendNode::AsyncRouter { router, queue } => {
            let inner = Arc::new(build_router(router, at, Feed::Worker, stages, errors));
            stages.push(Stage {
                path: format!("{path}.router"),
                kind: StageKind::Router(inner.clone()),
            });
            let mut builder = AsyncRouter::builder(path.clone(), inner)
                .queue_capacity(queue.capacity())
                .when_full(queue.when_full(feed))
                .processors_on(queue.processors_on());
            match queue.buffer.as_ref().map(BufferOptions::open) {
                None | Some(Ok(None)) => {}
                Some(Ok(Some(buffer))) => builder = builder.disk_buffer(buffer),
                Some(Err(e)) => {
                    let at = at.key("buffer").key("path");
                    errors.push(ConfigError::new(at, ConfigErrorKind::Build, e.to_string()));
                    return None;
                }
            }
            match builder.build() {
                Ok(router) => {
                    let router = Arc::new(router);
                    stages.push(Stage {
                        path,
                        kind: StageKind::AsyncRouter(router.clone()),
                    });
                    Some(router)
                }
                Err(e) => {
                    errors.push(ConfigError::new(at, ConfigErrorKind::Build, e.to_string()));
                    None
                }
            }
        }
        BackendNode::Sink {
            delivery,
            sink,
            dead_letter,
            ..
        } => {
            // Fed by this sink's worker.
            let dead_letter = match dead_letter.resolve(delivery, feed) {
                Some(node) => Some(build_backend(
                    node,
                    &at.key("dead_letter"),
                    Feed::Worker,
                    stages,
                    errors,
                )?),
                None => None,
            };
            let (batch, retry) = (delivery.batch(), delivery.retry());
            let context = Delivery::new(batch.max_events(), batch.max_bytes(), retry.horizon());
            let built = sink
                .build(&context)
                .map_err(|e| e.to_string())
                .and_then(|sink| {
                    let queue = delivery.queue();
                    let mut builder = SinkBackend::builder_arc(path.clone(), sink)
                        .queue_capacity(queue.capacity())
                        .when_full(queue.when_full(feed))
                        .batch(batch)
                        .retry(retry)
                        .requeue_failed(delivery.requeue_failed());
                    if let Some(key) = delivery.batch_key() {
                        builder = builder.batch_key(key);
                    }
                    if let Some(dead_letter) = dead_letter {
                        builder = builder.dead_letter(dead_letter);
                    }
                    let backend = builder.build().map_err(|e| e.to_string())?;
                    if delivery.log_dispatch() {
                        backend.add_dispatch_listener(tidings_routing::log_dispatch);
                    }
                    Ok(backend)
                });
            match built {
                Ok(backend) => {
                    let backend = Arc::new(backend);
                    stages.push(Stage {
                        path,
                        kind: StageKind::Sink(backend.clone()),
                    });
                    Some(backend)
                }
                Err(message) => {
                    errors.push(ConfigError::new(at, ConfigErrorKind::Build, message));
                    None
                }
            }
        }
        // Not a stage: it has no queue or counters of the framework's.
        BackendNode::Plain { backend, .. } => match backend.build() {
            Ok(backend) => Some(backend),
            Err(e) => {
                errors.push(ConfigError::new(at, ConfigErrorKind::Build, e.to_string()));
                None
            }
        },
    }
}
