//! RoutingBackend: processor chains, fan-out order, isolation, nesting, drain.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tidings_event::{Event, EventName};
use tidings_processors::{ProcessorError, RegexFilter, Verdict, processor_fn};
use tidings_routing::{Backend, DrainError, RoutingBackend, SendError};
use tidings_test::RecordingBackend;

fn event(name: &'static str) -> Event {
    Event::new(EventName::new(name).unwrap(), json!({"n": 1}))
}

/// Appends its name to a shared log, to observe delivery order.
#[derive(Debug)]
struct OrderLog(&'static str, Arc<Mutex<Vec<&'static str>>>);

impl Backend for OrderLog {
    fn send(&self, _event: Event) -> Result<(), SendError> {
        self.1.lock().unwrap().push(self.0);
        Ok(())
    }
}

#[derive(Debug)]
struct Failing;

impl Backend for Failing {
    fn send(&self, _event: Event) -> Result<(), SendError> {
        Err(SendError::failed("disk on fire"))
    }
    fn flush(&self, _timeout: Duration) -> Result<(), DrainError> {
        Err(DrainError::Failed("still on fire".into()))
    }
}

#[derive(Debug)]
struct Panicking;

impl Backend for Panicking {
    fn send(&self, _event: Event) -> Result<(), SendError> {
        panic!("backend bug")
    }
    fn shutdown(&self, _timeout: Duration) -> Result<(), DrainError> {
        panic!("shutdown bug")
    }
}

#[test]
fn backends_receive_events_in_name_order_not_insertion_order() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let router = RoutingBackend::builder()
        .backend("zeta", OrderLog("zeta", log.clone()))
        .backend("alpha", OrderLog("alpha", log.clone()))
        .backend("mid", OrderLog("mid", log.clone()))
        .build()
        .unwrap();
    assert_eq!(
        router.backend_names().collect::<Vec<_>>(),
        ["alpha", "mid", "zeta"]
    );
    router.send(event("a")).unwrap();
    assert_eq!(*log.lock().unwrap(), ["alpha", "mid", "zeta"]);
}

#[test]
fn processors_run_in_order_before_fan_out() {
    let out = RecordingBackend::new();
    let router = RoutingBackend::builder()
        .processor(processor_fn("first", |e| {
            e.context_mut().insert("trail".into(), json!("first"));
            Ok(Verdict::Keep)
        }))
        .processor(processor_fn("second", |e| {
            let trail = format!("{},second", e.context()["trail"].as_str().unwrap());
            e.context_mut().insert("trail".into(), json!(trail));
            Ok(Verdict::Keep)
        }))
        .backend("out", out.clone())
        .build()
        .unwrap();
    router.send(event("a")).unwrap();
    assert_eq!(out.events()[0].context()["trail"], "first,second");
}

#[test]
fn a_dropping_processor_stops_the_chain_and_is_counted_as_filtered() {
    let out = RecordingBackend::new();
    let router = RoutingBackend::builder()
        .processor(RegexFilter::allowlist([r"keep\."]).unwrap())
        .processor(processor_fn("never", |_| {
            panic!("must not run for dropped events")
        }))
        .backend("out", out.clone())
        .build()
        .unwrap();
    router.send(event("drop.me")).unwrap();
    assert!(out.is_empty());
    let stats = router.stats();
    assert_eq!(
        (stats.received, stats.filtered, stats.processor_errors),
        (1, 1, 0)
    );
}

#[test]
fn a_failing_processor_is_counted_and_the_event_goes_on_unchanged() {
    let out = RecordingBackend::new();
    let router = RoutingBackend::builder()
        .processor(processor_fn("broken", |_| {
            Err(ProcessorError::new("lookup service down"))
        }))
        .processor(processor_fn("panics", |_| panic!("processor bug")))
        .backend("out", out.clone())
        .build()
        .unwrap();
    let sent = event("a");
    router.send(sent.clone()).unwrap();
    assert_eq!(out.events(), [sent]);
    assert_eq!(router.stats().processor_errors, 2);
}

#[test]
fn each_branch_gets_its_own_copy() {
    let left = RecordingBackend::new();
    let right = RecordingBackend::new();
    let scrubbing = RoutingBackend::builder()
        .processor(processor_fn("scrub", |e| {
            *e.data_mut() = json!({"scrubbed": true});
            e.context_mut().insert("branch".into(), json!("a"));
            Ok(Verdict::Keep)
        }))
        .backend("out", left.clone())
        .build()
        .unwrap();
    // "a" sorts first, so it runs (and mutates its copy) before "b" sees the event.
    let router = RoutingBackend::builder()
        .backend("a", scrubbing)
        .backend("b", right.clone())
        .build()
        .unwrap();
    router.send(event("x")).unwrap();
    assert_eq!(left.events()[0].data(), &json!({"scrubbed": true}));
    assert_eq!(right.events()[0].data(), &json!({"n": 1}));
    assert_eq!(right.events()[0].context().get("branch"), None);
}

#[test]
fn failing_and_panicking_backends_do_not_stop_their_siblings_and_are_counted() {
    let out = RecordingBackend::new();
    let router = RoutingBackend::builder()
        .backend("a-fails", Failing)
        .backend("b-panics", Panicking)
        .backend("c-works", out.clone())
        .build()
        .unwrap();
    for _ in 0..3 {
        router.send(event("x")).unwrap();
    }
    assert_eq!(out.len(), 3);
    let stats = router.stats();
    let by_name = |n: &str| stats.backends.iter().find(|b| b.name == n).unwrap().clone();
    assert_eq!((by_name("a-fails").failed, by_name("a-fails").sent), (3, 0));
    assert_eq!(
        (by_name("b-panics").panicked, by_name("b-panics").sent),
        (3, 0)
    );
    assert_eq!(by_name("c-works").sent, 3);
}

#[test]
fn routers_nest_to_any_depth() {
    let out = RecordingBackend::new();
    let mut router = RoutingBackend::builder()
        .backend("leaf", out.clone())
        .build()
        .unwrap();
    for depth in 0..200 {
        router = RoutingBackend::builder()
            .processor(processor_fn("depth", move |e| {
                e.context_mut()
                    .insert(format!("d{depth}"), Value::from(depth));
                Ok(Verdict::Keep)
            }))
            .backend("inner", router)
            .build()
            .unwrap();
    }
    router.send(event("deep")).unwrap();
    let events = out.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].context().len(), 200);
}

#[test]
fn duplicate_backend_names_are_a_build_error() {
    let err = RoutingBackend::builder()
        .backend("logs", RecordingBackend::new())
        .backend("logs", RecordingBackend::new())
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), "backend name \"logs\" is used twice");
}

#[test]
fn flush_and_shutdown_reach_every_backend_and_report_each_failure() {
    let router = RoutingBackend::builder()
        .backend("fails", Failing)
        .backend("panics", Panicking)
        .backend("ok", RecordingBackend::new())
        .build()
        .unwrap();
    let err = router.flush(Duration::from_secs(1)).unwrap_err();
    assert_eq!(err.to_string(), "backend \"fails\": still on fire");
    let err = router.shutdown(Duration::from_secs(1)).unwrap_err();
    assert_eq!(err.to_string(), "backend \"panics\": shutdown bug");
}

#[test]
fn backends_are_object_safe_and_routers_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RoutingBackend>();
    let boxed: Box<dyn Backend> = Box::new(RecordingBackend::new());
    boxed.send(event("a")).unwrap();
}

#[test]
fn for_each_stage_visits_every_delivery_stage_through_routers_boxes_and_async_routers() {
    use tidings_routing::{AsyncRouter, SinkBackend};
    use tidings_test::RecordingSink;

    let sink = |name: &'static str| {
        SinkBackend::builder(name, RecordingSink::new())
            .build()
            .unwrap()
    };
    let inner = RoutingBackend::builder()
        .backend("below", sink("below"))
        .build()
        .unwrap();
    let boxed: Box<dyn Backend> = Box::new(sink("boxed"));
    let root = RoutingBackend::builder()
        .backend(
            "async",
            AsyncRouter::builder("async", Arc::new(inner))
                .build()
                .unwrap(),
        )
        .backend("boxed", boxed)
        .backend("plain", RecordingBackend::new())
        .build()
        .unwrap();
    let mut stages = Vec::new();
    root.for_each_stage(&mut |stage| stages.push(stage.name));
    assert_eq!(stages, ["async", "below", "boxed"]);
    root.shutdown(Duration::from_secs(5)).unwrap();
}
