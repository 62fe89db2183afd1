//! An `AsyncRouter` with a disk buffer: what `send` accepted stays on disk
//! until the tree below settled it, and what was not settled is handed on
//! by the next router built on the same directory. (A crash of the whole
//! process is tested in the facade's `tests/disk_buffer.rs`.)

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tidings_event::{Event, EventId, EventName};
use tidings_routing::{AsyncRouter, Backend, DiskBuffer, DropReason, SendError};
use tidings_wal::{SyncMode, WalOptions};

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tidings-buffer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn options(dir: &Path) -> WalOptions {
    WalOptions::new(dir)
        .sync(SyncMode::Write)
        .segment_age(Duration::from_millis(20))
}

fn event(i: usize) -> Event {
    Event::new(EventName::new("app.tick").unwrap(), json!({ "i": i }))
}

fn segments(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "wal")
        })
        .count()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A backend that takes events only once opened, records their ids and
/// drops them (settles them).
#[derive(Debug, Clone, Default)]
struct Gate(Arc<(Mutex<GateState>, Condvar)>);

/// Whether the gate is open, and the ids it let through.
type GateState = (bool, Vec<EventId>);

impl Gate {
    fn open() -> Self {
        let gate = Self::default();
        gate.set_open(true);
        gate
    }

    fn set_open(&self, open: bool) {
        self.0.0.lock().unwrap().0 = open;
        self.0.1.notify_all();
    }

    fn ids(&self) -> Vec<EventId> {
        self.0.0.lock().unwrap().1.clone()
    }
}

impl Backend for Gate {
    fn send(&self, event: Event) -> Result<(), SendError> {
        let (lock, opened) = &*self.0;
        let mut state = opened
            .wait_timeout_while(lock.lock().unwrap(), Duration::from_secs(5), |s| !s.0)
            .unwrap()
            .0;
        if !state.0 {
            return Err(SendError::Closed);
        }
        state.1.push(event.id());
        Ok(())
    }
}

fn router(dir: &Path, inner: Gate) -> AsyncRouter {
    AsyncRouter::builder("buffered", inner)
        .queue_capacity(100)
        .disk_buffer(DiskBuffer::open(options(dir)).unwrap())
        .build()
        .unwrap()
}

#[test]
fn what_a_drain_could_not_deliver_is_handed_on_by_the_next_router() {
    let dir = dir("drain-cut");
    let gate = Gate::default(); // closed: nothing gets through
    let first = router(&dir, gate.clone());
    let sent: Vec<EventId> = (0..20)
        .map(|i| {
            let e = event(i);
            let id = e.id();
            first.send(e).unwrap();
            id
        })
        .collect();
    assert!(first.shutdown(Duration::from_millis(50)).is_err());
    gate.set_open(true);
    assert!(segments(&dir) > 0, "the undelivered events stay on disk");

    let next = Gate::open();
    let second = router(&dir, next.clone());
    wait_for("the replay", || next.ids().len() >= 20);
    second.shutdown(Duration::from_secs(5)).unwrap();
    let mut got = next.ids();
    // The first router's worker may have handed a few on as the gate
    // opened; the replay brings every one again.
    got.retain(|id| sent.contains(id));
    got.dedup();
    assert_eq!(got, sent, "every event, in order");
    assert_eq!(segments(&dir), 0, "delivered, then deleted");
}

#[test]
fn a_drain_that_delivers_everything_leaves_nothing_to_replay() {
    let dir = dir("drain-whole");
    let gate = Gate::open();
    let first = router(&dir, gate.clone());
    for i in 0..50 {
        first.send(event(i)).unwrap();
    }
    first.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(gate.ids().len(), 50);
    assert_eq!(segments(&dir), 0);

    let next = Gate::open();
    let second = router(&dir, next.clone());
    second.send(event(99)).unwrap();
    second.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(next.ids().len(), 1, "only the new event");
}

#[test]
fn a_router_dropped_without_a_drain_keeps_its_events_for_the_next() {
    let dir = dir("dropped");
    let gate = Gate::default();
    let first = router(&dir, gate.clone());
    let sent: Vec<EventId> = (0..10)
        .map(|i| {
            let e = event(i);
            let id = e.id();
            first.send(e).unwrap();
            id
        })
        .collect();
    drop(first);
    gate.set_open(true); // the abandoned worker now delivers them

    // The directory is free once the abandoned worker ends.
    let mut buffer = None;
    wait_for("the directory to be free", || {
        buffer = DiskBuffer::open(options(&dir)).ok();
        buffer.is_some()
    });
    let buffer = buffer.unwrap();
    let next = Gate::open();
    let second = AsyncRouter::builder("buffered", next.clone())
        .disk_buffer(buffer)
        .build()
        .unwrap();
    wait_for("the replay", || next.ids().len() >= 10);
    second.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(next.ids(), sent, "delivered once more, not lost");
}

#[test]
fn a_full_buffer_refuses_as_a_full_queue_and_counts_it() {
    let dir = dir("full");
    let gate = Gate::default();
    let buffer = DiskBuffer::open(options(&dir).max_bytes(600)).unwrap();
    let router = AsyncRouter::builder("buffered", gate.clone())
        .disk_buffer(buffer)
        .build()
        .unwrap();
    let answers: Vec<_> = (0..20).map(|i| router.send(event(i))).collect();
    let refused = answers
        .iter()
        .filter(|a| matches!(a, Err(SendError::QueueFull)))
        .count();
    assert!(refused > 0 && refused < 20, "{answers:?}");
    let metrics = router.metrics();
    assert_eq!(metrics.dropped(DropReason::QueueFull), refused as u64);
    assert_eq!(metrics.received, 20);
    gate.set_open(true);
    router.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(gate.ids().len(), 20 - refused);
}

#[test]
fn when_the_disk_fails_events_are_still_delivered_from_memory() {
    let dir = dir("disk-fails");
    let gate = Gate::open();
    let router = router(&dir, gate.clone());
    router.send(event(0)).unwrap();
    wait_for("the first event", || gate.ids().len() == 1);
    std::fs::remove_dir_all(&dir).unwrap(); // no new segment can be created
    std::thread::sleep(Duration::from_millis(50)); // the segment's age passes
    for i in 1..5 {
        router.send(event(i)).unwrap();
    }
    assert!(router.buffer_stats().unwrap().failed > 0, "the disk failed");
    router.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(gate.ids().len(), 5);
    assert_eq!(router.metrics().dropped_total(), 0);
}

#[test]
fn replayed_events_are_counted_as_received_and_delivered() {
    let dir = dir("counted");
    let gate = Gate::default();
    let first = router(&dir, gate.clone());
    for i in 0..7 {
        first.send(event(i)).unwrap();
    }
    let _ = first.shutdown(Duration::from_millis(20));
    gate.set_open(true);

    let next = Gate::open();
    let second = router(&dir, next.clone());
    wait_for("the replay", || next.ids().len() >= 7);
    let metrics = second.metrics();
    assert_eq!((metrics.received, metrics.delivered), (7, 7));
    assert_eq!(second.buffer_stats().unwrap().replayed_events, 7);
    second.shutdown(Duration::from_secs(5)).unwrap();
}

/// Takes a millisecond per event, then records its id: a slow sink.
#[derive(Debug, Clone, Default)]
struct Slow(Arc<Mutex<Vec<EventId>>>);

impl Backend for Slow {
    fn send(&self, event: Event) -> Result<(), SendError> {
        std::thread::sleep(Duration::from_millis(1));
        self.0.lock().unwrap().push(event.id());
        Ok(())
    }
}

#[test]
fn a_drain_asked_for_during_the_replay_delivers_the_replay_first() {
    let dir = dir("drain-during-replay");
    let gate = Gate::default();
    let first = AsyncRouter::builder("buffered", gate.clone())
        .queue_capacity(1000)
        .disk_buffer(DiskBuffer::open(options(&dir)).unwrap())
        .build()
        .unwrap();
    for i in 0..300 {
        first.send(event(i)).unwrap();
    }
    let _ = first.shutdown(Duration::from_millis(20));
    gate.set_open(true);

    let slow = Slow::default();
    let second = AsyncRouter::builder("buffered", slow.clone())
        .disk_buffer(DiskBuffer::open(options(&dir)).unwrap())
        .build()
        .unwrap();
    // At once, while the worker is still replaying.
    second.shutdown(Duration::from_secs(20)).unwrap();
    assert_eq!(slow.0.lock().unwrap().len(), 300, "the whole replay");
    assert_eq!(segments(&dir), 0);
}

/// What `f` logs on this thread (where `send` writes to the buffer).
fn logged(f: impl FnOnce()) -> String {
    let log = tidings_test::SharedBuffer::default();
    let subscriber = log.subscriber(tracing::Level::INFO);
    tracing::subscriber::with_default(subscriber, f);
    log.text()
}

#[test]
fn an_event_larger_than_the_whole_buffer_is_refused_as_too_large() {
    let dir = dir("too-large");
    let gate = Gate::open();
    let router = AsyncRouter::builder("buffered", gate.clone())
        .disk_buffer(DiskBuffer::open(options(&dir).max_bytes(200)).unwrap())
        .build()
        .unwrap();
    let big = Event::new(
        EventName::new("app.big").unwrap(),
        json!({ "pad": "x".repeat(1000) }),
    );
    let log = logged(|| {
        assert!(matches!(router.send(big), Err(SendError::Failed(_))));
    });
    assert!(!log.contains("cannot write"), "not a disk failure: {log}");
    assert_eq!(router.metrics().dropped(DropReason::TooLarge), 1);
    router.send(event(1)).unwrap();
    router.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(gate.ids().len(), 1, "the small one only");
}

#[test]
fn after_a_shutdown_a_send_is_refused_as_closed_without_a_disk_warning() {
    let dir = dir("closed");
    let router = router(&dir, Gate::open());
    router.shutdown(Duration::from_secs(5)).unwrap();
    let log = logged(|| {
        assert!(matches!(router.send(event(0)), Err(SendError::Closed)));
    });
    assert!(!log.contains("cannot write"), "{log}");
    assert_eq!(router.metrics().dropped(DropReason::Shutdown), 1);
}

#[test]
fn a_failing_disk_is_said_once_not_for_every_event() {
    let dir = dir("disk-fails-said");
    let gate = Gate::open();
    let router = router(&dir, gate.clone());
    router.send(event(0)).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    std::thread::sleep(Duration::from_millis(50)); // the segment's age passes
    let log = logged(|| {
        for i in 1..6 {
            router.send(event(i)).unwrap();
        }
    });
    assert_eq!(
        log.matches("cannot write to the disk buffer").count(),
        1,
        "{log}"
    );
    router.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(gate.ids().len(), 6);
}
