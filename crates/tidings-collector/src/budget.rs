//! Budgets that bound what clients can make the collector hold: request-body
//! bytes across all connections, and open connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A count of units (bytes, connections) that may be held at once.
#[derive(Debug)]
pub(crate) struct Budget {
    used: AtomicUsize,
    max: usize,
}

/// Units taken from a [`Budget`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    budget: Arc<Budget>,
    units: usize,
}

impl Budget {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            max,
        })
    }

    /// Takes `units`, or `None` when that would go over the budget.
    pub(crate) fn try_take(self: &Arc<Self>, units: usize) -> Option<Permit> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(units).filter(|&total| total <= self.max)
            })
            .ok()
            .map(|_| Permit {
                budget: self.clone(),
                units,
            })
    }

    /// Units held right now.
    pub(crate) fn in_use(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.units, Ordering::AcqRel);
    }
}

/// The collector's two budgets.
#[derive(Debug)]
pub(crate) struct Limits {
    /// Request-body bytes held (`max_inflight_body_bytes`).
    pub(crate) bodies: Arc<Budget>,
    /// Open connections (`max_connections`).
    pub(crate) connections: Arc<Budget>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_is_never_exceeded_and_permits_give_back_what_they_took() {
        let budget = Budget::new(10);
        let a = budget.try_take(6).unwrap();
        assert!(budget.try_take(5).is_none(), "6 + 5 > 10");
        let b = budget.try_take(4).unwrap();
        assert_eq!(budget.in_use(), 10);
        assert!(budget.try_take(1).is_none());
        drop(a);
        assert_eq!(budget.in_use(), 4);
        assert!(budget.try_take(usize::MAX).is_none(), "no overflow");
        let c = budget.try_take(6).unwrap();
        drop((b, c));
        assert_eq!(budget.in_use(), 0);
        assert!(Budget::new(0).try_take(1).is_none());
        assert!(Budget::new(0).try_take(0).is_some());
    }
}
