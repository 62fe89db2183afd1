//! `Lease`: a value that every copy of an event keeps alive.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// A shared value carried by an event and by every copy made of it, and
/// dropped when the last of them is: when every branch of a routing tree
/// has delivered or dropped its copy.
///
/// Whoever takes responsibility for an event until it is settled attaches
/// a lease with [`Event::set_lease`](crate::Event::set_lease) and puts its
/// bookkeeping in the value's `Drop`: the collector's durable mode, for
/// one, deletes a write-ahead log segment once no event read from it is
/// alive. Components that pass events on never look at it; a component
/// that builds a new event from an old one should carry the lease over,
/// and a sink that reports an event delivered before it is durable (a
/// file written but not yet fsynced) should keep a clone of its lease
/// until it is.
///
/// A lease is not part of the event's value: it is neither serialized nor
/// compared (two events that differ only in their leases are equal).
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use serde_json::json;
/// use tidings_event::{Event, EventName, Lease};
///
/// struct Settled(Arc<AtomicBool>);
/// impl Drop for Settled {
///     fn drop(&mut self) { self.0.store(true, Ordering::SeqCst) }
/// }
///
/// let settled = Arc::new(AtomicBool::new(false));
/// let mut event = Event::new(EventName::new("page.view")?, json!({}));
/// event.set_lease(Lease::new(Arc::new(Settled(settled.clone()))));
/// let copy = event.clone();
/// drop(event);
/// assert!(!settled.load(Ordering::SeqCst)); // a copy is still alive
/// drop(copy);
/// assert!(settled.load(Ordering::SeqCst));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct Lease(Option<Arc<dyn Any + Send + Sync>>);

impl Lease {
    /// A lease holding `value`.
    #[must_use]
    pub fn new(value: Arc<dyn Any + Send + Sync>) -> Self {
        Self(Some(value))
    }

    /// Whether the lease holds a value (an event without one holds none).
    #[must_use]
    pub fn is_held(&self) -> bool {
        self.0.is_some()
    }

    /// Whether both leases hold the same value (or both none): events
    /// from one source share one, so a holder can keep one per run.
    #[must_use]
    pub fn same_as(&self, other: &Lease) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }

    /// The value, if it is a `T`.
    #[must_use]
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.0.as_deref().and_then(|v| v.downcast_ref())
    }
}

impl PartialEq for Lease {
    /// Always true: a lease is not part of an event's value.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_held() {
            "Lease(held)"
        } else {
            "Lease(none)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_the_same_when_they_share_their_value() {
        let one = Lease::new(Arc::new(1_u8));
        assert!(one.same_as(&one.clone()));
        assert!(
            !one.same_as(&Lease::new(Arc::new(1_u8))),
            "equal values, not the same"
        );
        assert!(!one.same_as(&Lease::default()));
        assert!(Lease::default().same_as(&Lease::default()));
        assert_eq!(one.downcast_ref::<u8>(), Some(&1));
        assert_eq!(one.downcast_ref::<u16>(), None);
        assert_eq!(
            format!("{one:?} {:?}", Lease::default()),
            "Lease(held) Lease(none)"
        );
    }
}
