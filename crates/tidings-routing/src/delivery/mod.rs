//! Delivery off the emitting thread: bounded queues, workers, batching,
//! retry and accounting.

mod async_router;
mod batch;
mod control;
mod disk_buffer;
mod listeners;
mod metrics;
mod queue;
mod retry;
mod sink_backend;
mod source_runner;
mod stage;
mod worker;

pub use async_router::{AsyncRouter, AsyncRouterBuilder, ProcessorsOn, Reservation};
pub use batch::{
    BatchConfig, BatchKey, BatchKeyError, BatchLargerThanQueue, DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS,
};
pub use disk_buffer::DiskBuffer;
pub use listeners::{DispatchAttempt, ListenerId, log_dispatch};
pub(crate) use metrics::Metrics;
pub use queue::WhenFull;
pub use retry::{
    DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_BACKOFF, DEFAULT_MAX_BATCH_AGE,
    RetryPolicy,
};
pub use sink_backend::{
    BatchOutcome, BatchReport, DEFAULT_QUEUE_CAPACITY, SinkBackend, SinkBackendBuilder,
    SinkBuildError, SpawnError,
};
pub use source_runner::{DEFAULT_FETCH_MAX, SourceRunner};
