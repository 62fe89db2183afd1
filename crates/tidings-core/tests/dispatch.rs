//! `Dispatch`: what it asks of its backend (interest, sends, refusals), what
//! it reports, and the default it is installed as.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;
use tidings_core::{
    Backend, Dispatch, DropReason, EmitError, Event, Interest, MetricsSnapshot, SendError,
    Undelivered,
};

/// A backend that drops every `debug.*` name by interest, refuses events
/// while `full`, and records the rest.
#[derive(Debug, Default)]
struct Probe {
    sent: Mutex<Vec<String>>,
    asked: AtomicU64,
    refused: AtomicU64,
    full: std::sync::atomic::AtomicBool,
}

impl Backend for Probe {
    fn send(&self, event: Event) -> Result<(), SendError> {
        if self.full.load(Ordering::Relaxed) {
            return Err(SendError::QueueFull);
        }
        self.sent.lock().unwrap().push(event.name().to_string());
        Ok(())
    }

    fn interest(&self, name: &str) -> Interest {
        self.asked.fetch_add(1, Ordering::Relaxed);
        if name.starts_with("debug.") {
            Interest::Never
        } else {
            Interest::Always
        }
    }

    fn count_refused_by_name(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn a_name_the_backend_never_wants_is_refused_before_the_event_is_built_and_counted() {
    let dispatch = Dispatch::new(Probe::default());
    for _ in 0..5 {
        assert_eq!(dispatch.emit("debug.tick", json!({})).unwrap(), None);
    }
    let kept = dispatch.emit("page.view", json!({})).unwrap();
    assert!(kept.is_some());
    let probe = dispatch.backend();
    assert_eq!(*probe.sent.lock().unwrap(), ["page.view"]);
    assert_eq!(probe.refused.load(Ordering::Relaxed), 5);
    // Asked once per name on this thread, not once per emit.
    assert_eq!(probe.asked.load(Ordering::Relaxed), 2);
}

#[test]
fn an_owned_name_is_not_cached_and_reaches_the_backend_which_decides() {
    let dispatch = Dispatch::new(Probe::default());
    let id = dispatch.emit(String::from("debug.tick"), ()).unwrap();
    assert!(id.is_some());
    assert_eq!(*dispatch.backend().sent.lock().unwrap(), ["debug.tick"]);
    assert_eq!(dispatch.backend().asked.load(Ordering::Relaxed), 0);
}

#[test]
fn an_invalid_static_name_is_an_error_even_when_the_backend_refuses_the_rest() {
    let dispatch = Dispatch::new(Probe::default());
    // "debug.a\tb" is refused by interest but is not a valid name: the caller
    // hears about the mistake rather than a silent `None`.
    let err = dispatch.emit("debug.a\tb", ()).unwrap_err();
    assert!(matches!(err, EmitError::InvalidName(_)), "{err:?}");
    assert_eq!(dispatch.backend().refused.load(Ordering::Relaxed), 0);
}

#[test]
fn a_backend_that_refuses_the_event_is_an_error_naming_why() {
    let dispatch = Dispatch::new(Probe::default());
    dispatch.backend().full.store(true, Ordering::Relaxed);
    let err = dispatch.emit("page.view", ()).unwrap_err();
    assert!(
        matches!(err, EmitError::NotSent(SendError::QueueFull)),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "the event was not taken: queue is full");
}

#[test]
fn each_dispatch_caches_its_own_decisions() {
    // Two dispatches over backends that disagree about one name, on one
    // thread: neither sees the other's cached answer.
    #[derive(Debug)]
    struct Never;
    impl Backend for Never {
        fn send(&self, _: Event) -> Result<(), SendError> {
            Ok(())
        }
        fn interest(&self, _: &str) -> Interest {
            Interest::Never
        }
    }
    let refusing = Dispatch::new(Never);
    let keeping = Dispatch::new(Probe::default());
    assert_eq!(refusing.emit("page.view", ()).unwrap(), None);
    assert!(keeping.emit("page.view", ()).unwrap().is_some());
    assert_eq!(refusing.emit("page.view", ()).unwrap(), None);
}

#[test]
fn the_default_dispatch_is_what_emit_uses_on_this_thread_until_the_guard_goes() {
    let dispatch = Dispatch::new(Probe::default());
    assert_eq!(tidings_core::emit("page.view", ()).unwrap(), None);
    {
        let _default = tidings_core::set_default(&dispatch.clone().into_dyn());
        assert!(tidings_core::emit("page.view", ()).unwrap().is_some());
        let seen = tidings_core::with_default(|d| d.emit("page.next", ()).unwrap());
        assert!(seen.flatten().is_some());
    }
    assert_eq!(tidings_core::emit("page.gone", ()).unwrap(), None);
    assert_eq!(
        *dispatch.backend().sent.lock().unwrap(),
        ["page.view", "page.next"]
    );
}

/// A backend with two delivery stages to report.
#[derive(Debug)]
struct Stages;

impl Backend for Stages {
    fn send(&self, _: Event) -> Result<(), SendError> {
        Ok(())
    }
    fn for_each_stage(&self, visit: &mut dyn FnMut(MetricsSnapshot)) {
        let mut a = MetricsSnapshot::new("a");
        a.received = 10;
        a.delivered = 4;
        a.dropped[DropReason::QueueFull.index()].1 = 3;
        a.dead_lettered[DropReason::Invalid.index()].1 = 1;
        a.queued = 2;
        visit(a);
        let mut b = MetricsSnapshot::new("b");
        b.received = 5;
        b.delivered = 5;
        visit(b);
        let mut c = MetricsSnapshot::new("c");
        c.received = 2;
        c.queued = 2;
        visit(c);
    }
}

#[test]
fn undelivered_sums_the_stages_and_names_each_that_lost_events() {
    let undelivered = Dispatch::new(Stages).undelivered();
    let mut expected = Undelivered::default();
    expected.dropped = 3;
    expected.dead_lettered = 1;
    expected.pending = 4;
    expected.by_stage = vec![("a".to_owned(), 5), ("c".to_owned(), 2)];
    assert_eq!(undelivered, expected);
    assert_eq!(undelivered.lost(), 7);
    assert_eq!(
        undelivered.to_string(),
        "7 events not delivered (dropped 3, still queued or in flight 4; 1 more kept as dead letters; a: 5, c: 2)"
    );
    let mut one = Undelivered::default();
    one.pending = 1;
    assert_eq!(
        one.to_string(),
        "1 event not delivered (dropped 0, still queued or in flight 1)"
    );
}

/// A backend whose drains always run out of time.
#[derive(Debug)]
struct Stuck;

impl Backend for Stuck {
    fn send(&self, _: Event) -> Result<(), SendError> {
        Ok(())
    }
    fn flush(&self, timeout: std::time::Duration) -> Result<(), tidings_core::DrainError> {
        Err(tidings_core::DrainError::TimedOut {
            timeout,
            pending: 1,
        })
    }
    fn shutdown(&self, timeout: std::time::Duration) -> Result<(), tidings_core::DrainError> {
        self.flush(timeout)
    }
}

#[test]
fn flush_and_shutdown_say_what_the_backend_could_not_drain() {
    let dispatch = Dispatch::new(Stuck);
    let second = std::time::Duration::from_secs(1);
    assert!(dispatch.flush(second).is_err());
    assert!(dispatch.shutdown(second).is_err());
}

#[test]
fn a_typed_dispatch_and_its_dyn_form_share_one_backend() {
    let typed = Dispatch::new(Probe::default());
    let erased = typed.clone().into_dyn();
    erased.emit("page.view", ()).unwrap();
    typed.emit("page.next", ()).unwrap();
    assert_eq!(
        *typed.backend().sent.lock().unwrap(),
        ["page.view", "page.next"]
    );
}

/// Refuses names that start with `bad.`.
#[derive(Debug)]
struct RefusesBad;

impl tidings_core::EmitCheck for RefusesBad {
    fn check(&self, event: &Event) -> Result<(), tidings_core::BoxError> {
        if event.name().as_str().starts_with("bad.") {
            return Err(format!("{} is refused", event.name()).into());
        }
        Ok(())
    }
}

#[test]
fn a_check_refuses_events_at_the_call_for_every_clone_and_the_default() {
    let dispatch = Dispatch::new(Probe::default()).with_check(std::sync::Arc::new(RefusesBad));
    let err = dispatch.emit("bad.one", json!({})).unwrap_err();
    assert!(matches!(err, EmitError::Invalid(_)), "{err:?}");
    assert_eq!(err.to_string(), "bad.one is refused");
    assert!(dispatch.emit("good.one", json!({})).unwrap().is_some());
    // A name the backend never wants is refused before the check.
    assert_eq!(dispatch.emit("debug.bad", json!({})).unwrap(), None);

    let default = dispatch.clone().into_dyn();
    assert!(default.check().is_some());
    {
        let _default = tidings_core::set_default(&default);
        assert!(matches!(
            tidings_core::emit("bad.two", json!({})),
            Err(EmitError::Invalid(_))
        ));
        tidings_core::emit("good.two", json!({})).unwrap();
    }
    // Events sent as built are not checked.
    dispatch
        .send(Event::new("bad.three".try_into().unwrap(), json!({})))
        .unwrap();
    assert_eq!(
        *dispatch.backend().sent.lock().unwrap(),
        ["good.one", "good.two", "bad.three"]
    );
}
