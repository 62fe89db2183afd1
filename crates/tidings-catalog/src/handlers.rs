//! Handlers (eventlib): functions run for each event of a name or family,
//! off the caller's thread, after processing.

use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tidings_core::{Backend, BoxError, SendError};
use tidings_event::Event;

use crate::spec::NamePattern;
use crate::typed::HandleEvent;

type HandlerFn = Box<dyn Fn(&Event) -> Result<(), BoxError> + Send + Sync>;

struct Entry {
    pattern: NamePattern,
    label: String,
    run: HandlerFn,
}

/// The handlers of a service: handlers declared on event types
/// ([`HandleEvent`]) run first, then function handlers, each group in the
/// order registered. A handler that fails or panics is logged and counted,
/// and never stops the others.
///
/// `Handlers` is a [`Backend`] that runs the handlers on the thread that
/// sends to it; put it behind an `AsyncRouter` (tidings-routing) to run
/// them on a worker of their own, off the emitting thread, which is how
/// they are meant to run.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::time::Duration;
/// use tidings_catalog::Handlers;
/// use tidings_event::{Event, EventName};
/// use tidings_routing::{AsyncRouter, Backend};
///
/// let seen = Arc::new(AtomicUsize::new(0));
/// let counter = seen.clone();
/// let handlers = Handlers::builder()
///     .on("edx.video.*", move |_event: &Event| {
///         counter.fetch_add(1, Ordering::Relaxed);
///         Ok(())
///     })?
///     .build();
/// let counts = handlers.counters();
/// let worker = AsyncRouter::builder("handlers", handlers).queue_capacity(1000).build()?;
/// worker.send(Event::new(EventName::new("edx.video.played")?, serde_json::json!({})))?;
/// worker.flush(Duration::from_secs(5))?;
/// assert_eq!(seen.load(Ordering::Relaxed), 1);
/// assert_eq!(counts.snapshot().succeeded, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Handlers {
    /// Type handlers, then function handlers.
    entries: Vec<Entry>,
    counters: HandlerCounters,
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handlers")
            .field(
                "handlers",
                &self.entries.iter().map(|e| &e.label).collect::<Vec<_>>(),
            )
            .field("counters", &self.counters.snapshot())
            .finish()
    }
}

/// Builds [`Handlers`].
#[derive(Default)]
pub struct HandlersBuilder {
    typed: Vec<Entry>,
    functions: Vec<Entry>,
}

impl fmt::Debug for HandlersBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlersBuilder")
            .field("typed", &self.typed.len())
            .field("functions", &self.functions.len())
            .finish()
    }
}

/// A handler name that is not a valid event name or family.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot register a handler: {0}")]
pub struct HandlerNameError(String);

impl HandlersBuilder {
    /// Registers `T`'s own handler for events named `T::NAME`; the data is
    /// read back into a `T` first (a failure to read it counts as a failed
    /// handler).
    ///
    /// # Panics
    ///
    /// If `T::NAME` is not a valid event name (a bug in `T`'s declaration).
    #[must_use]
    pub fn on_type<T: HandleEvent>(mut self) -> Self {
        let pattern = NamePattern::parse(T::NAME)
            .unwrap_or_else(|e| panic!("TypedEvent::NAME of {}: {e}", std::any::type_name::<T>()));
        self.typed.push(Entry {
            pattern,
            label: std::any::type_name::<T>().to_owned(),
            run: Box::new(|event: &Event| {
                let data: T = event.deserialize_data(PhantomData::<T>)?;
                data.handle(event)
            }),
        });
        self
    }

    /// Registers a function for events named `name`, or for a family
    /// (`edx.video.*`).
    ///
    /// # Errors
    ///
    /// [`HandlerNameError`] when `name` is not a valid name or family.
    pub fn on<F>(mut self, name: &str, handler: F) -> Result<Self, HandlerNameError>
    where
        F: Fn(&Event) -> Result<(), BoxError> + Send + Sync + 'static,
    {
        let pattern = NamePattern::parse(name).map_err(HandlerNameError)?;
        self.functions.push(Entry {
            label: format!("fn for {pattern}"),
            pattern,
            run: Box::new(handler),
        });
        Ok(self)
    }

    /// The handlers.
    #[must_use]
    pub fn build(mut self) -> Handlers {
        self.typed.append(&mut self.functions);
        Handlers {
            entries: self.typed,
            counters: HandlerCounters::default(),
        }
    }
}

/// Counts of handler runs, shared with a running [`Handlers`].
#[derive(Debug, Clone, Default)]
pub struct HandlerCounters(Arc<[AtomicU64; 3]>);

/// A snapshot of [`HandlerCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandlerStats {
    /// Handler runs that returned `Ok`.
    pub succeeded: u64,
    /// Handler runs that returned an error.
    pub failed: u64,
    /// Handler runs that panicked.
    pub panicked: u64,
}

impl HandlerCounters {
    /// The counts now.
    #[must_use]
    pub fn snapshot(&self) -> HandlerStats {
        let [succeeded, failed, panicked] = &*self.0;
        HandlerStats {
            succeeded: succeeded.load(Ordering::Relaxed),
            failed: failed.load(Ordering::Relaxed),
            panicked: panicked.load(Ordering::Relaxed),
        }
    }

    fn add(&self, index: usize) {
        self.0[index].fetch_add(1, Ordering::Relaxed);
    }
}

impl Handlers {
    /// A builder.
    #[must_use]
    pub fn builder() -> HandlersBuilder {
        HandlersBuilder::default()
    }

    /// The counters, to read after the handlers have moved to a worker.
    #[must_use]
    pub fn counters(&self) -> HandlerCounters {
        self.counters.clone()
    }

    /// Runs every handler for `event` on this thread, in order; returns how
    /// many failed or panicked.
    pub fn run(&self, event: &Event) -> usize {
        let name = event.name().as_str();
        let mut failures = 0;
        for entry in self.entries.iter().filter(|e| e.pattern.matches(name)) {
            match catch_unwind(AssertUnwindSafe(|| (entry.run)(event))) {
                Ok(Ok(())) => self.counters.add(0),
                Ok(Err(error)) => {
                    failures += 1;
                    self.counters.add(1);
                    tracing::warn!(
                        target: "tidings::handlers",
                        handler = %entry.label, event = name, id = %event.id(), %error,
                        "event handler failed"
                    );
                }
                Err(panic) => {
                    failures += 1;
                    self.counters.add(2);
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "(no message)".to_owned());
                    tracing::error!(
                        target: "tidings::handlers",
                        handler = %entry.label, event = name, id = %event.id(), panic = %message,
                        "event handler panicked"
                    );
                }
            }
        }
        failures
    }
}

impl Backend for Handlers {
    fn send(&self, event: Event) -> Result<(), SendError> {
        self.run(&event);
        Ok(())
    }
}
