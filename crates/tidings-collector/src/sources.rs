//! `[sources.*]`: brokers read into the collector's intake (the relay of
//! ADR 0007), and their part of the drain: stop reading, hold the
//! acknowledgements, drain, acknowledge only if the drain delivered
//! everything.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tidings_config::{ConfigError, ConfigErrorKind, ConfigErrors};
use tidings_routing::{AsyncRouter, DEFAULT_FETCH_MAX, Source, SourceMetrics, SourceRunner};

/// How long closing the sources may take, each.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The collector's sources, each read by its runner.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    runners: Mutex<Vec<SourceRunner>>,
}

impl Sources {
    /// Starts reading `sources` into `intake`.
    pub(crate) fn start(
        &self,
        sources: Vec<tidings_config::NamedSource>,
        intake: &Arc<AsyncRouter>,
    ) -> Result<(), ConfigErrors> {
        for (name, source) in sources {
            let runner = SourceRunner::start(
                format!("source-{name}"),
                source,
                intake.clone(),
                DEFAULT_FETCH_MAX,
            )
            .map_err(|e| {
                ConfigError::new(
                    format!("sources.{name}"),
                    ConfigErrorKind::Build,
                    e.to_string(),
                )
            })?;
            self.runners().push(runner);
        }
        Ok(())
    }

    fn runners(&self) -> std::sync::MutexGuard<'_, Vec<SourceRunner>> {
        self.runners.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every source's counters.
    pub(crate) fn metrics(&self) -> Vec<SourceMetrics> {
        self.runners().iter().map(SourceRunner::metrics).collect()
    }

    /// Stops reading and holds the acknowledgements: what the drain cuts
    /// off is redelivered by the broker, never acknowledged.
    pub(crate) fn stop(&self) {
        for runner in self.runners().iter() {
            runner.stop();
            runner.source().hold();
        }
    }

    /// For a collector dropped without a drain: its queues' events are
    /// abandoned, so nothing they settle from now on is acknowledged.
    pub(crate) fn abandon(&self) {
        for runner in self.runners().iter() {
            runner.source().hold();
        }
    }

    /// After the drain: acknowledges what it settled when it `delivered`
    /// everything (else the broker redelivers it all), then closes the
    /// sources.
    pub(crate) fn finish(&self, delivered: bool) {
        // The runners stay, stopped: `/metrics` still shows their counts.
        let sources: Vec<Arc<dyn Source>> = self
            .runners()
            .iter()
            .map(|runner| runner.source().clone())
            .collect();
        if sources.is_empty() {
            return;
        }
        if delivered {
            for source in &sources {
                source.release();
            }
        } else {
            tracing::warn!(target: "tidings::collector", "the drain did not deliver everything: the sources' unacknowledged messages are left to the brokers' redelivery");
        }
        // `close` is async and this may run inside a runtime: close on a
        // thread with a runtime of its own.
        let closing = std::thread::Builder::new()
            .name("tidings-source-close".to_owned())
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                for source in sources {
                    let closed = runtime
                        .block_on(async { tokio::time::timeout(CLOSE_WAIT, source.close()).await });
                    match closed {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => tracing::warn!(target: "tidings::collector", %error, "a source did not close cleanly"),
                        Err(_) => tracing::warn!(target: "tidings::collector", "a source did not close within {CLOSE_WAIT:?}"),
                    }
                }
            });
        if let Ok(closing) = closing {
            let _ = closing.join();
        }
    }
}
