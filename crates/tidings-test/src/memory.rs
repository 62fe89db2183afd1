//! `MemorySinkType`: a `type = "memory"` sink for config files in tests,
//! each `id` naming a process-wide [`RecordingSink`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde::Deserialize;
use tidings_config::{Delivery, SinkType};
use tidings_routing::{BoxError, Sink};

use crate::RecordingSink;

fn sinks() -> std::sync::MutexGuard<'static, HashMap<String, RecordingSink>> {
    static SINKS: OnceLock<Mutex<HashMap<String, RecordingSink>>> = OnceLock::new();
    SINKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// The recording sink named `id`, shared by every config that names it
/// (created accepting everything on first use).
#[must_use]
pub fn memory_sink(id: &str) -> RecordingSink {
    sinks().entry(id.to_owned()).or_default().clone()
}

/// Makes `sink` (a scripted one, say) the sink named `id`, for configs
/// built afterwards.
pub fn install_memory_sink(id: &str, sink: RecordingSink) {
    sinks().insert(id.to_owned(), sink);
}

/// `type = "memory"`, `id = "..."`: delivers into [`memory_sink`]`(id)`.
/// Register it with `registry.register_sink::<MemorySinkType>()`.
#[derive(Debug)]
pub struct MemorySinkType;

/// The options of the `memory` sink type.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryOptions {
    id: String,
}

impl SinkType for MemorySinkType {
    const NAME: &'static str = "memory";
    type Options = MemoryOptions;

    fn build(options: &MemoryOptions, _delivery: &Delivery) -> Result<Arc<dyn Sink>, BoxError> {
        Ok(Arc::new(memory_sink(&options.id)))
    }

    fn describe(options: &MemoryOptions) -> String {
        format!("id={}", options.id)
    }
}
