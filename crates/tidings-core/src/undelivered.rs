//! [`Undelivered`]: what a tree's delivery stages did not deliver, and the
//! one line that says so when a tracker goes without a clean shutdown.

use std::fmt;

use crate::Backend;

/// What the delivery stages of a backend tree accepted and did not deliver
/// ([`Dispatch::undelivered`](crate::Dispatch::undelivered)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Undelivered {
    /// Dropped: a full queue with a drop policy, a batch given up on with
    /// no dead-letter destination, the end of a drain.
    pub dropped: u64,
    /// Given up on and handed to a dead-letter destination (kept there,
    /// not lost).
    pub dead_lettered: u64,
    /// Still queued, batched or in flight.
    pub pending: u64,
    /// Each stage with events dropped or pending, and how many.
    pub by_stage: Vec<(String, u64)>,
}

impl Undelivered {
    /// Sums what the stages under `root` did not deliver
    /// ([`Backend::for_each_stage`]).
    #[must_use]
    pub fn of(root: &(impl Backend + ?Sized)) -> Self {
        let mut total = Self::default();
        root.for_each_stage(&mut |stage| {
            let (dropped, pending) = (stage.dropped_total(), stage.pending());
            total.dropped += dropped;
            total.pending += pending;
            total.dead_lettered += stage.dead_lettered_total();
            if dropped + pending > 0 {
                total.by_stage.push((stage.name, dropped + pending));
            }
        });
        total
    }

    /// Events that reached no destination: dropped or still pending.
    #[must_use]
    pub fn lost(&self) -> u64 {
        self.dropped + self.pending
    }
}

impl fmt::Display for Undelivered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} not delivered (dropped {}, still queued or in flight {}",
            self.lost(),
            if self.lost() == 1 { "event" } else { "events" },
            self.dropped,
            self.pending
        )?;
        if self.dead_lettered > 0 {
            write!(f, "; {} more kept as dead letters", self.dead_lettered)?;
        }
        for (i, (stage, n)) in self.by_stage.iter().enumerate() {
            write!(f, "{}{stage}: {n}", if i == 0 { "; " } else { ", " })?;
        }
        f.write_str(")")
    }
}

/// One line about `undelivered` events, `when` saying when it was seen:
/// through `tracing` when a subscriber is installed, else on stderr.
pub(crate) fn report(undelivered: &Undelivered, when: &str) {
    if undelivered.lost() == 0 {
        return;
    }
    if tracing::dispatcher::has_been_set() {
        tracing::error!(target: "tidings", "{undelivered} {when}");
    } else {
        #[allow(clippy::print_stderr)] // the only voice left without a subscriber
        {
            eprintln!("tidings: {undelivered} {when} (install a `tracing` subscriber to see why)");
        }
    }
}
