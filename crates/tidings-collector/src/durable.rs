//! Durable acknowledgement (`[collector] ack = "durable"`): a request is
//! answered 202 only once its events are fsynced in the write-ahead log;
//! what an earlier run left there is replayed into the pipeline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tidings_config::{CollectorOptions, ConfigError, ConfigErrorKind};
use tidings_event::Event;
use tidings_routing::{AsyncRouter, Backend, DrainError};
use tidings_wal::{AppendError, Replay, Wal, WalOptions, WalStats};

use crate::reject::Reject;

/// How often the replay retries when the intake queue has no room.
const REPLAY_BACKOFF: Duration = Duration::from_millis(2);

/// The write-ahead log in front of the collector's intake queue.
#[derive(Debug)]
pub(crate) struct Durable {
    wal: Wal,
    /// The intake queue's capacity: the largest batch a replay queues at once.
    capacity: usize,
    stop_replay: AtomicBool,
    replay: Mutex<Option<JoinHandle<()>>>,
}

impl Durable {
    /// Opens the log at `wal_path` and starts replaying what it holds into
    /// `intake`, alongside new requests.
    pub(crate) fn start(
        options: &CollectorOptions,
        intake: Arc<AsyncRouter>,
    ) -> Result<Arc<Self>, ConfigError> {
        let wal_options = WalOptions::new(&options.wal_path).max_bytes(options.wal_max_bytes);
        let (wal, replay) = Wal::open(wal_options).map_err(|e| {
            ConfigError::new("collector.wal_path", ConfigErrorKind::Build, e.to_string())
        })?;
        let durable = Arc::new(Self {
            wal,
            capacity: options.queue_capacity.max(1),
            stop_replay: AtomicBool::new(false),
            replay: Mutex::new(None),
        });
        if replay.segments_left() > 0 {
            tracing::info!(target: "tidings::collector", segments = replay.segments_left(), path = %options.wal_path, "replaying the write-ahead log");
            let worker = durable.clone();
            let handle = std::thread::Builder::new()
                .name("tidings-wal-replay".to_owned())
                .spawn(move || worker.replay(replay, &intake))
                .map_err(|e| {
                    ConfigError::new("collector.wal_path", ConfigErrorKind::Build, e.to_string())
                })?;
            *durable
                .replay
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(handle);
        }
        Ok(durable)
    }

    /// Admits a request's events: room in `intake` is reserved first (503
    /// without writing anything when there is none), then the events are
    /// made durable, then queued in the reserved room.
    pub(crate) async fn admit(
        &self,
        intake: &AsyncRouter,
        mut events: Vec<Event>,
    ) -> Result<(), Reject> {
        let reservation = intake
            .reserve(events.len())
            .map_err(|_| Reject::QueueFull)?;
        self.wal
            .append(&mut events)
            .await
            .map_err(|error| match error {
                AppendError::Closed => Reject::QueueFull,
                AppendError::TooLarge { .. } => Reject::TooLarge(error.to_string()),
                AppendError::Full { .. } => Reject::LogUnavailable {
                    reason: "wal_full",
                    message: error.to_string(),
                },
                // The path and cause are logged by the writer, not told to clients.
                _ => Reject::LogUnavailable {
                    reason: "wal_failed",
                    message: "the write-ahead log cannot be written".to_owned(),
                },
            })?;
        // Only a shutdown closing the intake meanwhile refuses this: the
        // events stay in the log (held by the shutdown) and the client is
        // asked to retry.
        reservation.send_all(events).map_err(|_| Reject::QueueFull)
    }

    fn replay(&self, replay: Replay, intake: &AsyncRouter) {
        let capacity = self.capacity;
        let (mut batches, mut events) = (0u64, 0u64);
        // Returning mid-way (a shutdown) drops the replay, which keeps the
        // segment it was reading on disk for the next start.
        let stopped = || self.stop_replay.load(Ordering::SeqCst);
        for mut batch in replay {
            while !batch.is_empty() {
                let chunk: Vec<Event> = batch.drain(..batch.len().min(capacity)).collect();
                let reservation = loop {
                    if stopped() {
                        return;
                    }
                    if let Ok(reservation) = intake.reserve(chunk.len()) {
                        break reservation;
                    }
                    std::thread::sleep(REPLAY_BACKOFF);
                };
                events += chunk.len() as u64;
                if reservation.send_all(chunk).is_err() {
                    return;
                }
            }
            batches += 1;
        }
        tracing::info!(target: "tidings::collector", batches, events, "write-ahead log replayed");
    }

    /// For a collector dropped without [`Durable::shutdown`]: its queues'
    /// events are abandoned (dropped as `shutdown` after a grace period),
    /// so keep every segment for the next start.
    pub(crate) fn abandon(&self) {
        self.wal.hold_deletions();
        self.stop_replay.store(true, Ordering::SeqCst);
    }

    pub(crate) fn stats(&self) -> WalStats {
        self.wal.stats()
    }

    /// Drains like the fast mode, but a segment is only deleted if the
    /// drain delivered everything: an event dropped for lack of time stays
    /// in the log, replayed at the next start.
    pub(crate) fn shutdown(
        &self,
        intake: &AsyncRouter,
        timeout: Duration,
    ) -> Result<(), DrainError> {
        self.wal.hold_deletions();
        self.stop_replay.store(true, Ordering::SeqCst);
        let replay = self
            .replay
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = replay {
            let _ = handle.join();
        }
        self.wal.close();
        // Every stage reports the events its deadline cut off, so `Ok`
        // means everything held was delivered (or dropped for a reason
        // other than the deadline).
        let drained = intake.shutdown(timeout);
        match &drained {
            Ok(()) => {
                self.wal.release_deletions();
            }
            Err(error) => tracing::warn!(
                target: "tidings::collector",
                %error,
                path = %self.wal.options().dir().display(),
                "the drain did not deliver everything: the write-ahead log keeps it for the next start"
            ),
        }
        drained
    }
}

/// Warns when fast mode starts over a write-ahead log a durable run left:
/// its events are delivered only by a durable collector on that path.
pub(crate) fn warn_if_log_left(options: &CollectorOptions) {
    match tidings_wal::segments_in(std::path::Path::new(&options.wal_path)) {
        Ok(0) => {}
        Ok(segments) => tracing::warn!(
            target: "tidings::collector",
            segments,
            path = %options.wal_path,
            "ack = \"fast\", but the write-ahead log holds events a durable run has not delivered; start with ack = \"durable\" on this wal_path to deliver them"
        ),
        Err(error) => {
            tracing::warn!(target: "tidings::collector", %error, path = %options.wal_path, "cannot read the write-ahead log directory")
        }
    }
}
