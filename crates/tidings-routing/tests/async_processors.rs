//! Where an `AsyncRouter` runs the processors of its inner router: on the
//! calling thread by default (edX's `AsyncRoutingBackend`), so that what
//! they drop never takes room in the queue; on the worker when asked.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use serde_json::json;
use tidings_event::{Event, EventName};
use tidings_processors::{Interest, RegexFilter, Verdict, processor_fn};
use tidings_routing::{
    AsyncRouter, Backend, DropReason, ProcessorsOn, RoutingBackend, SendError, WhenFull,
};
use tidings_test::RecordingBackend;

const LONG: Duration = Duration::from_secs(10);

fn named(name: &'static str) -> Event {
    Event::new(EventName::new(name).unwrap(), json!({}))
}

/// A router whose processor records the thread it ran on and drops
/// `debug.*`, fanning out to `out`.
fn spied_router(out: &RecordingBackend, seen_on: &Arc<Mutex<Vec<ThreadId>>>) -> RoutingBackend {
    let seen_on = seen_on.clone();
    RoutingBackend::builder()
        .processor(processor_fn("spy", move |event| {
            seen_on.lock().unwrap().push(std::thread::current().id());
            if event.name().as_str().starts_with("debug.") {
                Ok(Verdict::Drop)
            } else {
                Ok(Verdict::Keep)
            }
        }))
        .backend("out", out.clone())
        .build()
        .unwrap()
}

#[test]
fn processors_run_on_the_emitting_thread_by_default_and_the_fan_out_on_the_worker() {
    let seen_on: Arc<Mutex<Vec<ThreadId>>> = Arc::default();
    let out = RecordingBackend::new();
    let router = AsyncRouter::builder("async", spied_router(&out, &seen_on))
        .build()
        .unwrap();
    assert_eq!(router.processors_on(), ProcessorsOn::Caller);
    for n in 0..10 {
        let name = if n % 2 == 0 {
            "page.view"
        } else {
            "debug.tick"
        };
        router.send(named(name)).unwrap();
    }
    router.flush(LONG).unwrap();
    let here = std::thread::current().id();
    assert_eq!(*seen_on.lock().unwrap(), vec![here; 10]);
    assert_eq!(out.names(), vec!["page.view"; 5]);
    let m = router.metrics();
    assert_eq!(
        (m.received, m.delivered),
        (5, 5),
        "dropped events never reach the queue"
    );
    router.shutdown(LONG).unwrap();
}

#[test]
fn an_arc_of_a_router_is_a_router_too() {
    let seen_on: Arc<Mutex<Vec<ThreadId>>> = Arc::default();
    let out = RecordingBackend::new();
    let inner = Arc::new(spied_router(&out, &seen_on));
    let router = AsyncRouter::builder("async", inner.clone())
        .build()
        .unwrap();
    assert_eq!(router.processors_on(), ProcessorsOn::Caller);
    router.send(named("debug.tick")).unwrap();
    router.send(named("page.view")).unwrap();
    router.flush(LONG).unwrap();
    assert_eq!(
        *seen_on.lock().unwrap(),
        vec![std::thread::current().id(); 2]
    );
    let stats = inner.stats();
    assert_eq!((stats.received, stats.filtered), (2, 1));
    assert_eq!(stats.backends[0].sent, 1);
    router.shutdown(LONG).unwrap();
}

#[test]
fn another_backend_runs_on_the_worker_whatever_is_asked() {
    let out = RecordingBackend::new();
    let router = AsyncRouter::builder("async", out.clone())
        .processors_on(ProcessorsOn::Caller)
        .build()
        .unwrap();
    assert_eq!(router.processors_on(), ProcessorsOn::Worker);
    router.send(named("page.view")).unwrap();
    router.flush(LONG).unwrap();
    assert_eq!(out.len(), 1);
    router.shutdown(LONG).unwrap();
}

/// A backend that holds every `send` until released.
#[derive(Debug, Default)]
struct Stall {
    released: Mutex<bool>,
    wake: Condvar,
    sent: Mutex<usize>,
}

impl Stall {
    fn release(&self) {
        *self.released.lock().unwrap() = true;
        self.wake.notify_all();
    }
}

impl Backend for Stall {
    fn send(&self, _event: Event) -> Result<(), SendError> {
        let released = self.released.lock().unwrap();
        drop(self.wake.wait_while(released, |r| !*r).unwrap());
        *self.sent.lock().unwrap() += 1;
        Ok(())
    }
}

/// Sends one kept event (which the stalled worker holds), then `dropped`
/// events the processor drops, then 3 kept ones, into a queue of 3.
fn stalled_run(on: ProcessorsOn, dropped: usize) -> (AsyncRouter, Arc<Stall>) {
    let stall = Arc::new(Stall::default());
    let inner = RoutingBackend::builder()
        .processor(RegexFilter::blocklist([r"debug\."]).unwrap())
        .backend_arc("stall", stall.clone())
        .build()
        .unwrap();
    let router = AsyncRouter::builder("async", inner)
        .processors_on(on)
        .queue_capacity(3)
        .when_full(WhenFull::DropNewest)
        .build()
        .unwrap();
    router.send(named("page.first")).unwrap();
    // Wait until the worker holds it, so the queue is empty again.
    let deadline = std::time::Instant::now() + LONG;
    while router.metrics().queued > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    for _ in 0..dropped {
        let _ = router.send(named("debug.tick"));
    }
    for _ in 0..3 {
        let _ = router.send(named("page.view"));
    }
    (router, stall)
}

#[test]
fn a_dropped_event_never_takes_room_in_the_queue() {
    let (router, stall) = stalled_run(ProcessorsOn::Caller, 100);
    assert_eq!(router.metrics().dropped(DropReason::QueueFull), 0);
    stall.release();
    router.shutdown(LONG).unwrap();
    assert_eq!(
        *stall.sent.lock().unwrap(),
        4,
        "the first and the 3 after the debug events"
    );

    // On the worker, the same run fills the queue with debug events.
    let (router, stall) = stalled_run(ProcessorsOn::Worker, 100);
    assert_eq!(router.metrics().dropped(DropReason::QueueFull), 100);
    stall.release();
    router.shutdown(LONG).unwrap();
    assert_eq!(*stall.sent.lock().unwrap(), 1);
}

#[test]
fn send_all_and_a_reservation_queue_only_what_the_processors_keep() {
    let seen_on: Arc<Mutex<Vec<ThreadId>>> = Arc::default();
    let out = RecordingBackend::new();
    let router = AsyncRouter::builder("async", spied_router(&out, &seen_on))
        .build()
        .unwrap();
    router
        .send_all(vec![named("a.one"), named("debug.x"), named("a.two")])
        .unwrap();
    router.send_all(vec![named("debug.only")]).unwrap();
    let reservation = router.reserve(3).unwrap();
    reservation
        .send_all(vec![named("debug.y"), named("a.three")])
        .unwrap();
    router.flush(LONG).unwrap();
    assert_eq!(out.names(), ["a.one", "a.two", "a.three"]);
    let m = router.metrics();
    assert_eq!((m.received, m.delivered, m.queued), (3, 3, 0));
    assert!(
        router.has_room(10_000),
        "the reservation's unused room was given back"
    );
    router.shutdown(LONG).unwrap();
}

#[test]
fn the_router_answers_interest_from_the_processors_below_it() {
    for on in [ProcessorsOn::Caller, ProcessorsOn::Worker] {
        let out = RecordingBackend::new();
        let inner = Arc::new(
            RoutingBackend::builder()
                .processor(RegexFilter::blocklist([r"debug\."]).unwrap())
                .backend("out", out.clone())
                .build()
                .unwrap(),
        );
        let router = AsyncRouter::builder("async", inner.clone())
            .processors_on(on)
            .build()
            .unwrap();
        assert_eq!(router.interest("debug.tick"), Interest::Never, "{on:?}");
        assert_eq!(router.interest("page.view"), Interest::Always, "{on:?}");
        router.count_refused_by_name();
        let stats = inner.stats();
        assert_eq!((stats.received, stats.filtered), (1, 1), "{on:?}");
        router.shutdown(LONG).unwrap();
    }
}

#[test]
fn flush_and_shutdown_reach_the_sinks_below_a_router_whose_processors_run_on_the_caller() {
    use tidings_routing::{BatchConfig, SinkBackend};
    use tidings_test::RecordingSink;

    let sink = RecordingSink::new();
    // A batch waits an hour unless flushed.
    let stage = SinkBackend::builder("slow-batches", sink.clone())
        .batch(BatchConfig::default().with_flush_interval(Duration::from_secs(3600)))
        .build()
        .unwrap();
    let inner = RoutingBackend::builder()
        .backend("stage", stage)
        .build()
        .unwrap();
    let router = AsyncRouter::builder("async", inner).build().unwrap();
    assert_eq!(router.processors_on(), ProcessorsOn::Caller);
    router.send(named("page.view")).unwrap();
    router.flush(LONG).unwrap();
    assert_eq!(sink.events().len(), 1, "the flush went through to the sink");
    let mut stages = Vec::new();
    router.for_each_stage(&mut |m| stages.push(m.name.clone()));
    assert_eq!(stages, ["async", "slow-batches"]);
    router.send(named("page.view")).unwrap();
    router.shutdown(LONG).unwrap();
    assert_eq!(sink.events().len(), 2, "the shutdown delivered the rest");
    assert!(matches!(
        router.send(named("page.view")),
        Err(SendError::Closed)
    ));
}

#[test]
fn a_router_lists_its_backends_processors_and_tree() {
    use tidings_routing::{SinkBackend, Topology};
    use tidings_test::RecordingSink;

    let out = RecordingBackend::new();
    let make = || {
        let sink = SinkBackend::builder("ingest", RecordingSink::new())
            .queue_capacity(7)
            .dead_letter(Arc::new(RecordingBackend::new()))
            .build()
            .unwrap();
        RoutingBackend::builder()
            .processor(RegexFilter::blocklist([r"debug\."]).unwrap())
            .backend("out", out.clone())
            .backend("ingest", sink)
            .build()
            .unwrap()
    };
    let inner = make();
    assert!(inner.backend("out").is_some());
    assert!(inner.backend("ingest").is_some());
    assert!(inner.backend("nobody").is_none());
    let described: Vec<String> = inner.processors().map(|p| p.describe()).collect();
    assert_eq!(described, [r#"regex_filter blocklist ["debug\\."]"#]);

    let expected_below = |topology: &Topology| {
        assert_eq!(topology.processors, described);
        let names: Vec<&str> = topology.backends.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["ingest", "out"]);
        let ingest = topology.backend("ingest").unwrap();
        assert_eq!(
            (ingest.kind.as_str(), ingest.detail.as_str()),
            ("sink", "ingest queue_capacity=7 when_full=drop_newest")
        );
        assert_eq!(
            ingest.backend("dead_letter").unwrap().kind,
            "RecordingBackend"
        );
    };
    let plain = inner.topology();
    assert_eq!(plain.kind, "router");
    expected_below(&plain);
    for (on, shown) in [
        (ProcessorsOn::Caller, "caller"),
        (ProcessorsOn::Worker, "worker"),
    ] {
        let router = AsyncRouter::builder("async", make())
            .processors_on(on)
            .queue_capacity(9)
            .build()
            .unwrap();
        let topology = router.topology();
        assert_eq!(topology.kind, "async_router");
        assert_eq!(
            topology.detail,
            format!("queue_capacity=9 when_full=drop_newest processors_on={shown}")
        );
        expected_below(&topology);
        router.shutdown(LONG).unwrap();
    }
    inner.shutdown(LONG).unwrap();
    let wrapped = AsyncRouter::builder("plain", out).build().unwrap();
    let topology = wrapped.topology();
    assert_eq!(topology.backend("inner").unwrap().kind, "RecordingBackend");
    wrapped.shutdown(LONG).unwrap();
}
