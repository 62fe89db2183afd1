//! The [`Processor`] contract: one step of a processing chain that keeps,
//! changes or drops each event.

use std::fmt;

use tidings_event::Event;

use crate::ProcessorError;

/// What a processor decided about an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Pass the event (possibly changed) on.
    Keep,
    /// Drop the event: later processors and backends never see it. This is
    /// a decision, not a failure; routers count it as `filtered`.
    Drop,
}

impl Verdict {
    /// `Keep` when `keeps`, else `Drop`.
    #[must_use]
    pub const fn keep_if(keeps: bool) -> Self {
        if keeps { Self::Keep } else { Self::Drop }
    }
}

/// What a processor decides about events from their name alone
/// ([`Processor::interest`]): a tracker asks its root chain once per name and
/// refuses the events it would drop before building them, as `tracing` asks
/// a callsite's interest once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interest {
    /// Every event of this name passes, unchanged.
    Always,
    /// Every event of this name is dropped.
    Never,
    /// It depends on the event (its data or context), or the processor may
    /// change it.
    Sometimes,
}

impl Interest {
    /// For a processor that decides by name alone and never changes an
    /// event: `Always` when it `keeps` the name, else `Never`.
    #[must_use]
    pub const fn keep_if(keeps: bool) -> Self {
        if keeps { Self::Always } else { Self::Never }
    }
}

/// One step of a processing chain.
///
/// Implementations must be cheap and must not block: they run on the
/// emitting thread, or on a router's worker. They must return `Err` before
/// changing the event, because the event goes on as they leave it.
pub trait Processor: Send + Sync + fmt::Debug {
    /// Keeps (possibly after changing it) or drops `event`.
    ///
    /// # Errors
    ///
    /// [`ProcessorError`] when the processor cannot do its job for this
    /// event; the router logs and counts it and the event goes on unchanged.
    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessorError>;

    /// What this processor does with every event named `name`, if the name
    /// alone decides it. The default, [`Interest::Sometimes`], is always
    /// right; a processor that decides by name alone (a name filter) says
    /// [`Interest::Always`] or [`Interest::Never`], so that events it drops
    /// cost almost nothing. It must agree with `process`, and never change.
    fn interest(&self, name: &str) -> Interest {
        let _ = name;
        Interest::Sometimes
    }

    /// What this processor does, on one line, for a listing of a built
    /// tree ([`Topology`](crate::Topology)). The default is its `Debug`
    /// output; the stock processors print what `tidings check` prints for
    /// their config (`regex_filter allowlist ["edx\\."]`).
    fn describe(&self) -> String {
        format!("{self:?}")
    }
}

impl<P: Processor + ?Sized> Processor for std::sync::Arc<P> {
    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessorError> {
        (**self).process(event)
    }
    fn interest(&self, name: &str) -> Interest {
        (**self).interest(name)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

impl<P: Processor + ?Sized> Processor for Box<P> {
    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessorError> {
        (**self).process(event)
    }
    fn interest(&self, name: &str) -> Interest {
        (**self).interest(name)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// A processor made from a closure. Created by [`processor_fn`].
#[derive(Clone)]
pub struct FnProcessor<F> {
    name: &'static str,
    f: F,
}

impl<F> fmt::Debug for FnProcessor<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnProcessor")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<F> Processor for FnProcessor<F>
where
    F: Fn(&mut Event) -> Result<Verdict, ProcessorError> + Send + Sync,
{
    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessorError> {
        (self.f)(event)
    }

    fn describe(&self) -> String {
        format!("processor_fn {:?}", self.name)
    }
}

/// A processor from a closure; `name` appears in logs and `Debug` output.
///
/// ```
/// use tidings_core::{processor_fn, Verdict};
///
/// let tag = processor_fn("tag-source", |event| {
///     event.context_mut().insert("source".into(), "server".into());
///     Ok(Verdict::Keep)
/// });
/// # let _ = tag;
/// ```
pub fn processor_fn<F>(name: &'static str, f: F) -> FnProcessor<F>
where
    F: Fn(&mut Event) -> Result<Verdict, ProcessorError> + Send + Sync,
{
    FnProcessor { name, f }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_if_maps_a_decision_by_name() {
        assert_eq!(Verdict::keep_if(true), Verdict::Keep);
        assert_eq!(Verdict::keep_if(false), Verdict::Drop);
        assert_eq!(Interest::keep_if(true), Interest::Always);
        assert_eq!(Interest::keep_if(false), Interest::Never);
    }
}
