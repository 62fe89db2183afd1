//! The bounded queue between the emitting threads and a worker, with its
//! policy when full.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tidings_event::Event;
use tokio::sync::Notify;

/// What `send` does when a queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Refuse the new event (counted as `queue_full`). The default: the
    /// caller never waits.
    #[default]
    DropNewest,
    /// Make room by dropping the oldest queued event (counted as `queue_full`).
    DropOldest,
    /// Wait up to the duration for room, then refuse the event. The emitting
    /// thread blocks for at most that long.
    Block(Duration),
    /// Wait for room as long as it takes: nothing is dropped for lack of
    /// room, and the sender slows down to the stage's pace instead. Only the
    /// stage's shutdown releases a waiting sender (its event is then counted
    /// as dropped `shutdown`).
    ///
    /// Meant for a stage fed by another stage's worker, such as the sinks
    /// below an [`AsyncRouter`](crate::AsyncRouter) or below the collector's
    /// intake, where waiting passes the pressure up to a queue that can
    /// refuse a whole request (the collector answers 503). Never the
    /// default of a stage an application thread sends to directly: it would
    /// block that thread while a sink is down.
    Backpressure,
}

/// As in a config: `drop_newest`, `drop_oldest`, `block(1000ms)`,
/// `backpressure`.
impl std::fmt::Display for WhenFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DropNewest => f.write_str("drop_newest"),
            Self::DropOldest => f.write_str("drop_oldest"),
            Self::Block(t) => write!(f, "block({}ms)", t.as_millis()),
            Self::Backpressure => f.write_str("backpressure"),
        }
    }
}

impl WhenFull {
    /// Whether a full queue under this policy drops an event it was given
    /// (every policy but [`WhenFull::Backpressure`]).
    #[must_use]
    pub fn may_drop(self) -> bool {
        self != Self::Backpressure
    }
}

/// What became of a pushed event.
#[derive(Debug)]
pub(crate) enum Pushed {
    /// Queued.
    Accepted,
    /// Queued, and the oldest event was dropped to make room.
    Displaced,
    /// Not queued (and dropped): the queue is full.
    Full,
    /// Not queued (and dropped): the queue is closed.
    Closed,
}

#[derive(Debug)]
pub(crate) struct Queue {
    items: Mutex<VecDeque<Event>>,
    /// Mirrors `items.len()`, so a full queue refuses without taking the lock.
    len: AtomicUsize,
    /// Room promised to reservations not yet filled; changed only under the
    /// `items` lock, and counted as occupied by every push.
    reserved: AtomicUsize,
    capacity: usize,
    policy: WhenFull,
    closed: AtomicBool,
    /// Wakes the worker: on the first event into an empty queue, and on any
    /// control change (flush, shutdown).
    pub(crate) wake: Notify,
    /// Producers blocked by `WhenFull::Block` wait here for room.
    space: Condvar,
    blocked: AtomicUsize,
}

impl Queue {
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn new(capacity: usize, policy: WhenFull) -> Self {
        let capacity = capacity.max(1);
        Self {
            items: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            len: AtomicUsize::new(0),
            reserved: AtomicUsize::new(0),
            capacity,
            policy,
            closed: AtomicBool::new(false),
            wake: Notify::new(),
            space: Condvar::new(),
            blocked: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Event>> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether `n` more events would fit now (queued and reserved events
    /// count as occupied); a hint, taken without the lock.
    pub(crate) fn has_room(&self, n: usize) -> bool {
        self.len() + self.reserved.load(Ordering::Relaxed) + n <= self.capacity
    }

    pub(crate) fn policy(&self) -> WhenFull {
        self.policy
    }

    /// Producers waiting for room right now (`Block` and `Backpressure`).
    pub(crate) fn waiting(&self) -> usize {
        self.blocked.load(Ordering::SeqCst)
    }

    /// Queued and reserved events: what counts against the capacity.
    fn occupied(&self, items: &VecDeque<Event>) -> usize {
        items.len() + self.reserved.load(Ordering::Relaxed)
    }

    /// Holds room for `n` events until [`Queue::push_reserved`] or
    /// [`Queue::unreserve`]; refused when closed or without that room.
    pub(crate) fn reserve(&self, n: usize) -> Result<(), Pushed> {
        if self.is_closed() {
            return Err(Pushed::Closed);
        }
        let items = self.lock();
        if self.occupied(&items) + n > self.capacity {
            return Err(Pushed::Full);
        }
        self.reserved.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    /// Gives back `n` reserved places.
    pub(crate) fn unreserve(&self, n: usize) {
        let items = self.lock();
        self.reserved.fetch_sub(n, Ordering::Relaxed);
        drop(items);
        if self.blocked.load(Ordering::SeqCst) > 0 {
            self.space.notify_all();
        }
    }

    /// Queues `events` into `reserved` places reserved before (at least as
    /// many as there are events), giving all of them back; refused only
    /// when closed.
    pub(crate) fn push_reserved(
        &self,
        events: Vec<Event>,
        reserved: usize,
    ) -> Result<(), (Pushed, Vec<Event>)> {
        debug_assert!(events.len() <= reserved);
        if self.is_closed() {
            self.unreserve(reserved);
            return Err((Pushed::Closed, events));
        }
        let items = self.lock();
        self.reserved.fetch_sub(reserved, Ordering::Relaxed);
        self.extend(items, events);
        Ok(())
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        // Taking the lock orders the notification after a waiting
        // producer's check of `closed` (a `Backpressure` wait has no timeout
        // to recover a lost wake-up).
        drop(self.lock());
        self.space.notify_all();
        self.wake.notify_one();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub(crate) fn push(&self, event: Event) -> Pushed {
        if self.is_closed() {
            return Pushed::Closed;
        }
        if self.policy == WhenFull::DropNewest
            && self.len() + self.reserved.load(Ordering::Relaxed) >= self.capacity
        {
            return Pushed::Full;
        }
        let mut items = self.lock();
        let outcome = if self.occupied(&items) < self.capacity {
            items.push_back(event);
            Pushed::Accepted
        } else {
            match self.policy {
                WhenFull::DropNewest => Pushed::Full,
                WhenFull::DropOldest if !items.is_empty() => {
                    items.pop_front();
                    items.push_back(event);
                    Pushed::Displaced
                }
                // Full of reservations only: nothing to displace.
                WhenFull::DropOldest => Pushed::Full,
                WhenFull::Block(timeout) => {
                    let (guard, outcome) =
                        self.wait_for_room(items, event, Some(Instant::now() + timeout));
                    items = guard;
                    outcome
                }
                WhenFull::Backpressure => {
                    let (guard, outcome) = self.wait_for_room(items, event, None);
                    items = guard;
                    outcome
                }
            }
        };
        let was_empty = items.len() == 1 && matches!(outcome, Pushed::Accepted);
        self.len.store(items.len(), Ordering::Relaxed);
        drop(items);
        if was_empty {
            self.wake.notify_one();
        }
        outcome
    }

    /// Queues all of `events` or none of them: refused (and handed back)
    /// when closed or without room for every one, whatever the policy.
    pub(crate) fn push_all(&self, events: Vec<Event>) -> Result<(), (Pushed, Vec<Event>)> {
        if self.is_closed() {
            return Err((Pushed::Closed, events));
        }
        let items = self.lock();
        if self.occupied(&items) + events.len() > self.capacity {
            return Err((Pushed::Full, events));
        }
        self.extend(items, events);
        Ok(())
    }

    /// Appends `events` under the held lock, then wakes the worker if the
    /// queue was empty.
    fn extend(&self, mut items: MutexGuard<'_, VecDeque<Event>>, events: Vec<Event>) {
        let was_empty = items.is_empty();
        items.extend(events);
        self.len.store(items.len(), Ordering::Relaxed);
        drop(items);
        if was_empty {
            self.wake.notify_one();
        }
    }

    fn wait_for_room<'a>(
        &'a self,
        mut items: MutexGuard<'a, VecDeque<Event>>,
        event: Event,
        deadline: Option<Instant>,
    ) -> (MutexGuard<'a, VecDeque<Event>>, Pushed) {
        self.blocked.fetch_add(1, Ordering::SeqCst);
        let outcome = loop {
            if self.is_closed() {
                break Pushed::Closed;
            }
            if self.occupied(&items) < self.capacity {
                items.push_back(event);
                break Pushed::Accepted;
            }
            items = match deadline {
                None => self
                    .space
                    .wait(items)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break Pushed::Full;
                    }
                    self.space
                        .wait_timeout(items, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        };
        self.blocked.fetch_sub(1, Ordering::SeqCst);
        (items, outcome)
    }

    /// Takes up to `max` events from the front.
    pub(crate) fn pop_up_to(&self, max: usize, out: &mut impl Extend<Event>) {
        let mut items = self.lock();
        let n = max.min(items.len());
        out.extend(items.drain(..n));
        self.len.store(items.len(), Ordering::Relaxed);
        drop(items);
        if n > 0 && self.blocked.load(Ordering::SeqCst) > 0 {
            // Taking the lock orders this notification after a blocked
            // producer's check, so no wake-up is lost.
            drop(self.lock());
            self.space.notify_all();
        }
    }

    /// Takes every queued event.
    #[cfg(test)]
    pub(crate) fn drain_all(&self) -> Vec<Event> {
        let mut out = Vec::new();
        self.pop_up_to(usize::MAX, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tidings_event::EventName;

    use super::*;

    fn event(n: u64) -> Event {
        Event::new(EventName::new("q").unwrap(), json!(n))
    }

    fn data(events: &[Event]) -> Vec<u64> {
        events.iter().map(|e| e.data().as_u64().unwrap()).collect()
    }

    #[test]
    fn drop_newest_refuses_when_full() {
        let q = Queue::new(2, WhenFull::DropNewest);
        assert!(matches!(q.push(event(1)), Pushed::Accepted));
        assert!(matches!(q.push(event(2)), Pushed::Accepted));
        assert!(matches!(q.push(event(3)), Pushed::Full));
        assert_eq!(data(&q.drain_all()), [1, 2]);
    }

    #[test]
    fn reserved_room_is_kept_from_every_other_push_until_filled_or_given_back() {
        for policy in [WhenFull::DropNewest, WhenFull::Block(Duration::ZERO)] {
            let q = Queue::new(3, policy);
            q.reserve(2).unwrap();
            assert!(q.has_room(1) && !q.has_room(2), "reserved room is taken");
            assert!(matches!(q.push(event(1)), Pushed::Accepted));
            assert!(matches!(q.push(event(2)), Pushed::Full), "{policy:?}");
            assert!(matches!(q.reserve(1), Err(Pushed::Full)));
            assert!(q.push_all(vec![event(3)]).is_err());
            q.push_reserved(vec![event(4), event(5)], 2).unwrap();
            assert_eq!(data(&q.drain_all()), [1, 4, 5]);
            q.reserve(3).unwrap();
            q.unreserve(3);
            q.push_all(vec![event(6), event(7), event(8)]).unwrap();
        }
        // Drop-oldest displaces queued events, never reserved room.
        let q = Queue::new(2, WhenFull::DropOldest);
        q.reserve(1).unwrap();
        q.push(event(1));
        assert!(matches!(q.push(event(2)), Pushed::Displaced));
        q.push_reserved(vec![event(3)], 1).unwrap();
        assert_eq!(data(&q.drain_all()), [2, 3]);
        let q = Queue::new(1, WhenFull::DropOldest);
        q.reserve(1).unwrap();
        assert!(matches!(q.push(event(1)), Pushed::Full));
        q.close();
        assert!(matches!(
            q.push_reserved(vec![event(2)], 1),
            Err((Pushed::Closed, _))
        ));
        assert!(matches!(q.reserve(1), Err(Pushed::Closed)));
    }

    #[test]
    fn drop_oldest_makes_room() {
        let q = Queue::new(2, WhenFull::DropOldest);
        q.push(event(1));
        q.push(event(2));
        assert!(matches!(q.push(event(3)), Pushed::Displaced));
        assert_eq!(data(&q.drain_all()), [2, 3]);
    }

    #[test]
    fn block_waits_for_room_then_gives_up() {
        let q = std::sync::Arc::new(Queue::new(1, WhenFull::Block(Duration::from_millis(300))));
        q.push(event(1));
        let started = Instant::now();
        assert!(matches!(q.push(event(2)), Pushed::Full));
        assert!(started.elapsed() >= Duration::from_millis(300));

        let consumer = {
            let q = q.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                let mut out = Vec::new();
                q.pop_up_to(1, &mut out);
                out
            })
        };
        assert!(
            matches!(q.push(event(3)), Pushed::Accepted),
            "room made while waiting"
        );
        assert_eq!(data(&consumer.join().unwrap()), [1]);
        assert_eq!(data(&q.drain_all()), [3]);
    }

    #[test]
    fn backpressure_waits_for_room_as_long_as_it_takes() {
        let q = std::sync::Arc::new(Queue::new(1, WhenFull::Backpressure));
        assert!(!WhenFull::Backpressure.may_drop());
        assert!(WhenFull::DropNewest.may_drop() && WhenFull::Block(Duration::ZERO).may_drop());
        q.push(event(1));
        assert!(!q.has_room(1) && q.has_room(0));
        let producer = {
            let q = q.clone();
            std::thread::spawn(move || matches!(q.push(event(2)), Pushed::Accepted))
        };
        // Longer than any `Block` default: the producer is still waiting.
        while q.waiting() == 0 {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(!producer.is_finished());
        let mut out = Vec::new();
        q.pop_up_to(1, &mut out);
        assert!(producer.join().unwrap(), "queued once room was made");
        assert_eq!(data(&out), [1]);
        assert_eq!(data(&q.drain_all()), [2]);
        assert_eq!(q.waiting(), 0);

        // Only closing releases a waiting producer without room.
        q.push(event(3));
        let producer = {
            let q = q.clone();
            std::thread::spawn(move || matches!(q.push(event(4)), Pushed::Closed))
        };
        while q.waiting() == 0 {
            std::thread::yield_now();
        }
        q.close();
        assert!(producer.join().unwrap());
        assert_eq!(data(&q.drain_all()), [3]);
    }

    #[test]
    fn push_all_takes_everything_or_nothing() {
        let q = Queue::new(3, WhenFull::DropOldest);
        q.push(event(1));
        let refused = q.push_all(vec![event(2), event(3), event(4)]).unwrap_err();
        assert!(matches!(refused.0, Pushed::Full));
        assert_eq!(data(&refused.1), [2, 3, 4]);
        q.push_all(vec![event(2), event(3)]).unwrap();
        assert_eq!(data(&q.drain_all()), [1, 2, 3]);
        q.close();
        assert!(matches!(
            q.push_all(vec![event(5)]).unwrap_err().0,
            Pushed::Closed
        ));
    }

    #[test]
    fn closed_queues_refuse_and_release_blocked_producers() {
        let q = std::sync::Arc::new(Queue::new(1, WhenFull::Block(Duration::from_secs(30))));
        q.push(event(1));
        let producer = {
            let q = q.clone();
            std::thread::spawn(move || matches!(q.push(event(2)), Pushed::Closed))
        };
        std::thread::sleep(Duration::from_millis(50));
        q.close();
        assert!(producer.join().unwrap());
        assert!(matches!(q.push(event(3)), Pushed::Closed));
    }
}
