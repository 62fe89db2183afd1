//! SinkBackend and AsyncRouter: batching, retries, drops by reason,
//! flush and shutdown, and the accounting invariant.

use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::json;
use tidings_event::{Event, EventId, EventName};
use tidings_processors::{Verdict, processor_fn};
use tidings_routing::{
    AsyncRouter, Backend, BatchConfig, BatchKey, BatchLargerThanQueue, BatchOutcome,
    DispatchAttempt, DrainError, DropReason, MetricsSnapshot, ProcessorsOn, RetryPolicy,
    RoutingBackend, SendError, SinkBackend, SinkBuildError, WhenFull, log_dispatch,
};
use tidings_test::{Answer, RecordingBackend, RecordingSink};

const LONG: Duration = Duration::from_secs(10);

fn event(n: usize) -> Event {
    Event::new(EventName::new("delivery.test").unwrap(), json!({"n": n}))
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy::default()
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(5))
}

fn backend(sink: &RecordingSink) -> tidings_routing::SinkBackendBuilder {
    SinkBackend::builder("test", sink.clone()).retry(fast_retry())
}

fn ids(events: &[Event]) -> Vec<EventId> {
    events.iter().map(Event::id).collect()
}

fn assert_accounted(m: &MetricsSnapshot) {
    assert_eq!(
        m.received,
        m.delivered + m.dropped_total() + m.dead_lettered_total() + m.pending(),
        "{m:?}"
    );
}

#[test]
fn batches_never_exceed_max_events_and_keep_order() {
    let sink = RecordingSink::new();
    let backend = backend(&sink)
        .batch(BatchConfig::default().with_max_events(100))
        .build()
        .unwrap();
    let sent: Vec<Event> = (0..250).map(event).collect();
    for e in &sent {
        backend.send(e.clone()).unwrap();
    }
    backend.flush(LONG).unwrap();
    let sizes: Vec<usize> = sink.batches().iter().map(Vec::len).collect();
    assert!(sizes.iter().all(|&n| n <= 100), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 250);
    assert_eq!(ids(&sink.events()), ids(&sent));
    let m = backend.metrics();
    assert_eq!(
        (m.received, m.delivered, m.dropped_total(), m.pending()),
        (250, 250, 0, 0)
    );
}

#[test]
fn batches_never_exceed_max_bytes() {
    let sink = RecordingSink::new();
    let size = event(0).encoded_len();
    let backend = backend(&sink)
        .batch(BatchConfig::default().with_max_bytes(size * 3 + size / 2))
        .build()
        .unwrap();
    for n in 0..10 {
        backend.send(event(n)).unwrap();
    }
    backend.flush(LONG).unwrap();
    for batch in sink.batches() {
        let bytes: usize = batch.iter().map(Event::encoded_len).sum();
        assert!(
            batch.len() <= 3 && bytes <= size * 3 + size / 2,
            "{} events, {bytes} bytes",
            batch.len()
        );
    }
    assert_eq!(sink.events().len(), 10);
}

#[test]
fn a_partial_batch_is_sent_after_the_flush_interval_without_a_flush() {
    let sink = RecordingSink::new();
    let backend = backend(&sink)
        .batch(BatchConfig::default().with_flush_interval(Duration::from_millis(50)))
        .build()
        .unwrap();
    backend.send(event(1)).unwrap();
    let started = Instant::now();
    while sink.events().is_empty() {
        assert!(started.elapsed() < LONG, "the interval never fired");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(sink.batches().len(), 1);
}

#[test]
fn retryable_failures_then_success_deliver_each_event_exactly_once() {
    let sink = RecordingSink::scripted([
        Answer::Status(500, None),
        Answer::Status(503, None),
        Answer::Status(429, None),
    ]);
    let backend = backend(&sink).build().unwrap();
    let sent: Vec<Event> = (0..5).map(event).collect();
    for e in &sent {
        backend.send(e.clone()).unwrap();
    }
    backend.flush(LONG).unwrap();
    assert_eq!(ids(&sink.events()), ids(&sent));
    let m = backend.metrics();
    assert_eq!((m.delivered, m.retried, m.dropped_total()), (5, 15, 0));
    assert_eq!(sink.calls().len(), 4);
}

#[test]
fn retry_after_pauses_the_sink_for_at_least_that_long() {
    let sink = RecordingSink::scripted([Answer::Status(503, Some(Duration::from_millis(700)))]);
    let backend = backend(&sink).build().unwrap();
    backend.send(event(1)).unwrap();
    backend.flush(LONG).unwrap();
    let calls = sink.calls();
    assert_eq!(calls.len(), 2);
    let gap = calls[1].0 - calls[0].0;
    assert!(gap >= Duration::from_millis(700), "retried after {gap:?}");
}

#[test]
fn non_retryable_failures_drop_the_batch_with_the_reason_counted() {
    let sink = RecordingSink::scripted([Answer::Status(401, None)]);
    let backend = backend(&sink).build().unwrap();
    for n in 0..3 {
        backend.send(event(n)).unwrap();
    }
    backend.flush(LONG).unwrap();
    let m = backend.metrics();
    assert_eq!((m.delivered, m.dropped(DropReason::NonRetryable)), (0, 3));
    assert_eq!(sink.calls().len(), 1, "never retried");
    assert_accounted(&m);
}

#[test]
fn too_large_batches_are_split_until_they_fit() {
    let sink = RecordingSink::new().refusing_batches_over(3);
    let backend = backend(&sink).build().unwrap();
    let sent: Vec<Event> = (0..10).map(event).collect();
    for e in &sent {
        backend.send(e.clone()).unwrap();
    }
    backend.flush(LONG).unwrap();
    assert!(sink.batches().iter().all(|b| b.len() <= 3));
    assert_eq!(ids(&sink.events()), ids(&sent));
    assert_eq!(backend.metrics().delivered, 10);
}

#[test]
fn a_single_event_still_refused_as_too_large_is_dropped() {
    let sink = RecordingSink::new().refusing_batches_over(0);
    let backend = backend(&sink).build().unwrap();
    backend.send(event(1)).unwrap();
    backend.send(event(2)).unwrap();
    backend.flush(LONG).unwrap();
    assert_eq!(backend.metrics().dropped(DropReason::TooLarge), 2);
}

#[test]
fn an_event_larger_than_max_bytes_is_dropped_before_sending() {
    let sink = RecordingSink::new();
    let backend = backend(&sink)
        .batch(BatchConfig::default().with_max_bytes(10))
        .build()
        .unwrap();
    backend.send(event(1)).unwrap();
    backend.flush(LONG).unwrap();
    assert_eq!(backend.metrics().dropped(DropReason::TooLarge), 1);
    assert!(sink.calls().is_empty());
}

#[test]
fn retries_stop_after_max_attempts() {
    let sink = RecordingSink::scripted(vec![Answer::Status(500, None); 5]);
    let backend = backend(&sink)
        .retry(fast_retry().with_max_attempts(3))
        .build()
        .unwrap();
    backend.send(event(1)).unwrap();
    backend.flush(LONG).unwrap();
    assert_eq!(sink.calls().len(), 3);
    assert_eq!(backend.metrics().dropped(DropReason::RetriesExhausted), 1);
}

#[test]
fn batches_older_than_max_batch_age_expire() {
    let sink = RecordingSink::scripted(vec![Answer::Status(500, None); 5]);
    let retry = RetryPolicy::default()
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_millis(50))
        .with_max_batch_age(Duration::ZERO);
    let backend = backend(&sink).retry(retry).build().unwrap();
    backend.send(event(1)).unwrap();
    backend.flush(LONG).unwrap();
    assert_eq!(backend.metrics().dropped(DropReason::Expired), 1);
    assert_eq!(sink.calls().len(), 1);
}

#[test]
fn fire_and_forget_makes_one_attempt() {
    let sink = RecordingSink::scripted([Answer::Status(503, None)]);
    let backend = backend(&sink).retry(RetryPolicy::none()).build().unwrap();
    backend.send(event(1)).unwrap();
    backend.flush(LONG).unwrap();
    assert_eq!(sink.calls().len(), 1);
    assert_eq!(backend.metrics().dropped(DropReason::RetriesExhausted), 1);
}

#[test]
fn shutdown_against_a_hung_sink_returns_at_its_deadline_and_counts_what_was_lost() {
    let sink = RecordingSink::scripted([Answer::Hang]);
    let backend = backend(&sink).build().unwrap();
    for n in 0..20 {
        backend.send(event(n)).unwrap();
    }
    let started = Instant::now();
    let err = backend.shutdown(Duration::from_secs(1)).unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1100), "shutdown took {took:?}");
    assert!(
        err.to_string()
            .starts_with("20 events not delivered when the deadline passed"),
        "{err}"
    );
    let m = backend.metrics();
    assert_eq!((m.dropped(DropReason::Shutdown), m.pending()), (20, 0));
    assert_accounted(&m);
}

#[test]
fn shutdown_delivers_what_was_queued_and_later_sends_are_refused_and_counted() {
    let sink = RecordingSink::new();
    let backend = backend(&sink).build().unwrap();
    for n in 0..5 {
        backend.send(event(n)).unwrap();
    }
    backend.shutdown(LONG).unwrap();
    assert_eq!(sink.events().len(), 5);
    assert_eq!(sink.flushes_and_shutdowns().1, 1);
    assert!(matches!(backend.send(event(6)), Err(SendError::Closed)));
    let m = backend.metrics();
    assert_eq!(
        (m.received, m.delivered, m.dropped(DropReason::Shutdown)),
        (6, 5, 1)
    );
}

#[test]
fn a_full_queue_refuses_new_events_and_counts_them() {
    let sink = RecordingSink::scripted([Answer::Hang]);
    let backend = backend(&sink)
        .queue_capacity(5)
        .batch(BatchConfig::default().with_max_events(1))
        .build()
        .unwrap();
    let refused = (0..50).filter(|&n| backend.send(event(n)).is_err()).count();
    assert!(
        refused >= 44,
        "only {refused} of 50 refused with room for 5 queued and 1 in flight"
    );
    let m = backend.metrics();
    assert_eq!(m.dropped(DropReason::QueueFull) as usize, refused);
    assert_accounted(&m);
    drop(backend.shutdown(Duration::from_millis(100)));
    assert_accounted(&backend.metrics());
}

#[test]
fn drop_oldest_never_refuses_and_counts_what_it_displaced() {
    let sink = RecordingSink::scripted([Answer::Hang]);
    let backend = backend(&sink)
        .queue_capacity(5)
        .when_full(WhenFull::DropOldest)
        .batch(BatchConfig::default().with_max_events(1))
        .build()
        .unwrap();
    assert!((0..50).all(|n| backend.send(event(n)).is_ok()));
    let m = backend.metrics();
    assert!(m.dropped(DropReason::QueueFull) >= 44, "{m:?}");
    assert_accounted(&m);
}

#[test]
fn block_waits_then_refuses_when_no_room_appears() {
    let sink = RecordingSink::scripted([Answer::Hang]);
    let backend = backend(&sink)
        .queue_capacity(1)
        .when_full(WhenFull::Block(Duration::from_millis(100)))
        .batch(BatchConfig::default().with_max_events(1))
        .build()
        .unwrap();
    let outcomes: Vec<bool> = (0..4).map(|n| backend.send(event(n)).is_ok()).collect();
    assert!(outcomes.iter().any(|ok| !ok), "{outcomes:?}");
    assert_accounted(&backend.metrics());
}

#[test]
fn the_batch_hook_hears_of_every_batch() {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = RecordingSink::scripted([Answer::Status(403, None)]);
    let backend = {
        let reports = reports.clone();
        backend(&sink)
            .batch(BatchConfig::default().with_max_events(2))
            .on_batch(move |report| {
                reports.lock().unwrap().push((
                    report.events.len(),
                    report.attempts,
                    report.outcome,
                ));
            })
            .build()
            .unwrap()
    };
    for n in 0..4 {
        backend.send(event(n)).unwrap();
    }
    backend.flush(LONG).unwrap();
    assert_eq!(
        *reports.lock().unwrap(),
        [
            (2, 1, BatchOutcome::Dropped(DropReason::NonRetryable)),
            (2, 1, BatchOutcome::Delivered)
        ]
    );
}

#[test]
fn flush_reaches_the_sink() {
    let sink = RecordingSink::new();
    let backend = backend(&sink).build().unwrap();
    backend.flush(LONG).unwrap();
    assert_eq!(sink.flushes_and_shutdowns(), (1, 0));
}

#[tokio::test(flavor = "current_thread")]
async fn works_inside_a_single_threaded_runtime_without_deadlock() {
    let sink = RecordingSink::new();
    let backend = backend(&sink).build().unwrap();
    backend.send(event(1)).unwrap();
    // A blocking flush on the runtime's only thread: the worker has its own.
    backend.flush(LONG).unwrap();
    assert_eq!(sink.events().len(), 1);
    backend.shutdown(LONG).unwrap();
}

#[test]
fn async_router_runs_processors_on_its_worker_when_asked() {
    let seen_on: Arc<Mutex<Vec<ThreadId>>> = Arc::default();
    let recorder = RecordingBackend::new();
    let inner = RoutingBackend::builder()
        .processor({
            let seen_on = seen_on.clone();
            processor_fn("thread-spy", move |_| {
                seen_on.lock().unwrap().push(std::thread::current().id());
                Ok(Verdict::Keep)
            })
        })
        .backend("out", recorder.clone())
        .build()
        .unwrap();
    let router = AsyncRouter::builder("async", inner)
        .processors_on(ProcessorsOn::Worker)
        .build()
        .unwrap();
    assert_eq!(router.processors_on(), ProcessorsOn::Worker);
    for n in 0..10 {
        router.send(event(n)).unwrap();
    }
    router.flush(LONG).unwrap();
    assert_eq!(recorder.len(), 10);
    let threads = seen_on.lock().unwrap().clone();
    assert_eq!(threads.len(), 10);
    assert!(threads.iter().all(|t| *t != std::thread::current().id()));
    router.shutdown(LONG).unwrap();
    assert!(matches!(router.send(event(11)), Err(SendError::Closed)));
    let m = router.metrics();
    assert_eq!(
        (m.received, m.delivered, m.dropped(DropReason::Shutdown)),
        (11, 10, 1)
    );
}

#[test]
fn async_router_shuts_down_its_sinks_within_the_deadline() {
    let hung = RecordingSink::scripted([Answer::Hang]);
    let sink = SinkBackend::builder("hung", hung).build().unwrap();
    let router = AsyncRouter::builder("async", sink).build().unwrap();
    for n in 0..3 {
        router.send(event(n)).unwrap();
    }
    let started = Instant::now();
    assert!(router.shutdown(Duration::from_millis(500)).is_err());
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the sink answers, every event ends up delivered, dropped or
    /// dead-lettered under a reason, and nothing stays pending after shutdown.
    #[test]
    fn every_event_is_accounted_for(
        answers in prop::collection::vec(
            prop_oneof![
                Just(Answer::Ok),
                Just(Answer::Status(500, None)),
                Just(Answer::Status(400, None)),
                Just(Answer::Status(401, None)),
                Just(Answer::Status(413, None)),
                Just(Answer::Status(429, None)),
            ],
            0..12,
        ),
        events in 0usize..60,
        capacity in 1usize..40,
        max_events in 1usize..10,
        with_dead_letter in any::<bool>(),
        requeue_failed in any::<bool>(),
    ) {
        let sink = RecordingSink::scripted(answers);
        let dead = RecordingBackend::new();
        let mut builder = backend(&sink)
            .queue_capacity(capacity)
            .batch(
                BatchConfig::default()
                    .with_max_events(max_events.min(capacity))
                    .with_flush_interval(Duration::from_millis(5)),
            )
            .retry(fast_retry().with_max_attempts(3))
            .requeue_failed(requeue_failed);
        if with_dead_letter {
            builder = builder.dead_letter(Arc::new(dead.clone()));
        }
        let backend = builder.build().unwrap();
        for n in 0..events {
            let _ = backend.send(event(n));
        }
        backend.flush(LONG).unwrap();
        let flushed = backend.metrics();
        prop_assert_eq!(flushed.received, events as u64);
        prop_assert_eq!(flushed.pending(), 0);
        prop_assert_eq!(
            flushed.received,
            flushed.delivered + flushed.dropped_total() + flushed.dead_lettered_total()
        );
        prop_assert_eq!(flushed.delivered as usize, sink.events().len());
        prop_assert_eq!(flushed.dead_lettered_total() as usize, dead.len());
        if !with_dead_letter {
            prop_assert_eq!(flushed.dead_lettered_total(), 0);
        }
        backend.shutdown(LONG).unwrap();
        prop_assert_eq!(backend.metrics(), flushed);
    }
}

/// Counts its ticks.
#[derive(Debug, Default)]
struct Ticking(std::sync::atomic::AtomicUsize);

#[tidings_routing::async_trait]
impl tidings_routing::Sink for Ticking {
    async fn send_batch(&self, _batch: &[Event]) -> Result<(), tidings_routing::SinkError> {
        Ok(())
    }
    async fn shutdown(&self) -> Result<(), tidings_routing::SinkError> {
        Ok(())
    }
    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(10))
    }
    async fn tick(&self) -> Result<(), tidings_routing::SinkError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn an_idle_sink_is_ticked_at_its_interval() {
    let ticking = Arc::new(Ticking::default());
    let backend = SinkBackend::builder_arc("ticking", ticking.clone())
        .build()
        .unwrap();
    let started = Instant::now();
    while ticking.0.load(std::sync::atomic::Ordering::SeqCst) < 3 {
        assert!(started.elapsed() < LONG, "no ticks while idle");
        std::thread::sleep(Duration::from_millis(5));
    }
    backend.shutdown(LONG).unwrap();
}

#[test]
fn reserved_room_is_kept_for_its_events_and_given_back_when_dropped() {
    // A worker blocked by its inner backend, so nothing leaves the queue.
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock().unwrap();
    let recorder = RecordingBackend::new();
    let inner = {
        let (gate, recorder) = (gate.clone(), recorder.clone());
        RoutingBackend::builder()
            .processor(processor_fn("gate", move |_e: &mut Event| {
                drop(gate.lock().unwrap());
                Ok(Verdict::Keep)
            }))
            .backend("recorder", recorder)
            .build()
            .unwrap()
    };
    // The gate holds the worker: the processors run there.
    let router = AsyncRouter::builder("reserving", inner)
        .processors_on(ProcessorsOn::Worker)
        .queue_capacity(4)
        .build()
        .unwrap();
    router.send(event(0)).unwrap(); // taken by the worker, which waits at the gate
    let started = Instant::now();
    while router.metrics().queued > 0 {
        assert!(started.elapsed() < LONG, "the worker never took the event");
        std::thread::sleep(Duration::from_millis(1));
    }
    let reservation = router.reserve(3).unwrap();
    assert_eq!(reservation.len(), 3);
    router.send(event(1)).unwrap(); // the one free place
    assert!(matches!(router.send(event(2)), Err(SendError::QueueFull)));
    assert!(matches!(router.reserve(1), Err(SendError::QueueFull)));
    assert!(router.send_all(vec![event(3)]).is_err());
    let (error, back) = router
        .reserve(0)
        .unwrap()
        .send_all(vec![event(4)])
        .unwrap_err();
    assert!(
        matches!(error, SendError::QueueFull) && back.len() == 1,
        "more events than reserved"
    );
    reservation.send_all(vec![event(5), event(6)]).unwrap(); // the third place comes back
    router.send(event(7)).unwrap();
    drop(held);
    router.flush(Duration::from_secs(5)).unwrap();
    let delivered: Vec<u64> = recorder
        .events()
        .iter()
        .map(|e| e.data()["n"].as_u64().unwrap())
        .collect();
    assert_eq!(delivered, [0, 1, 5, 6, 7]);
    let m = router.metrics();
    // 0, 1, 5, 6, 7 queued; 2 and 3 refused (and counted); 4 never counted.
    assert_eq!(m.received, 7);
    router.shutdown(Duration::from_secs(5)).unwrap();
    assert!(matches!(router.reserve(1), Err(SendError::Closed)));
}

#[test]
fn an_async_router_whose_drain_runs_out_of_time_says_so() {
    // The worker is held at the first event until just after the drain's
    // deadline; the other 19 are then dropped at once, well within the
    // slack the drain waits for the worker to report (so it does finish:
    // only the count of what it cut off can make the drain fail).
    let (open, opened) = std::sync::mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(Some(opened)));
    let recorder = RecordingBackend::new();
    let inner = RoutingBackend::builder()
        .processor(processor_fn("gate", move |_e: &mut Event| {
            // Only the first event waits.
            if let Some(opened) = gate.lock().unwrap().take() {
                let _ = opened.recv();
            }
            Ok(Verdict::Keep)
        }))
        .backend("recorder", recorder.clone())
        .build()
        .unwrap();
    // The gate holds the worker: the processors run there.
    let router = AsyncRouter::builder("slow", inner)
        .processors_on(ProcessorsOn::Worker)
        .build()
        .unwrap();
    for n in 0..20 {
        router.send(event(n)).unwrap();
    }
    let timeout = Duration::from_millis(300);
    // The opener counts from the moment the drain starts (not from its own
    // start, which a loaded machine may delay past the deadline).
    let (start, drain_started) = std::sync::mpsc::channel::<Instant>();
    let opener = std::thread::spawn(move || {
        let started = drain_started.recv().unwrap();
        let open_at = started + timeout + Duration::from_millis(30);
        std::thread::sleep(open_at.saturating_duration_since(Instant::now()));
        let _ = open.send(());
    });
    start.send(Instant::now()).unwrap();
    let error = router.shutdown(timeout).unwrap_err();
    opener.join().unwrap();
    // On a loaded machine the worker may report after the drain returned.
    let started = Instant::now();
    while router.metrics().pending() > 0 && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The events of the chunk the worker held when the gate opened may
    // still be handed on; every later one is cut off and reported.
    let m = router.metrics();
    let cut = m.dropped(DropReason::Shutdown);
    assert!(cut > 0, "{m:?}");
    assert_eq!(recorder.len() as u64 + cut, 20, "{m:?}");
    // Reported: exactly what was cut off once the worker finished in time,
    // at least that while it was still going.
    let DrainError::TimedOut {
        pending: reported, ..
    } = error
    else {
        panic!("{error:?}");
    };
    assert!(
        reported >= cut,
        "the events dropped at the deadline are reported: {reported} < {cut}"
    );
}

fn poison(n: usize) -> Event {
    Event::new(EventName::new("delivery.poison").unwrap(), json!({"n": n}))
}

#[test]
fn one_event_refused_for_its_content_never_costs_its_batch() {
    let sink = RecordingSink::new().refusing_events_named("delivery.poison");
    let dead = RecordingBackend::new();
    let backend = backend(&sink)
        .batch(BatchConfig::default().with_max_events(100))
        .dead_letter(Arc::new(dead.clone()))
        .build()
        .unwrap();
    let mut sent = Vec::new();
    for n in 0..100 {
        let e = if n == 17 || n == 60 {
            poison(n)
        } else {
            event(n)
        };
        sent.push(e.clone());
        backend.send(e).unwrap();
    }
    backend.flush(LONG).unwrap();
    let innocent: Vec<EventId> = sent
        .iter()
        .filter(|e| e.name().as_str() != "delivery.poison")
        .map(Event::id)
        .collect();
    let mut delivered = ids(&sink.events());
    delivered.sort();
    assert_eq!(delivered, innocent, "every innocent event delivered once");
    let culprits = dead.events();
    assert_eq!(ids(&culprits), [sent[17].id(), sent[60].id()]);
    let mark = &culprits[0].context()["dead_letter"];
    assert_eq!(mark["backend"], "test");
    assert_eq!(mark["reason"], "invalid");
    assert_eq!(mark["attempts"], 1);
    assert!(
        mark["error"].as_str().unwrap().contains("HTTP 400"),
        "{mark}"
    );
    assert_eq!(culprits[0].data(), sent[17].data(), "kept as it was");
    let m = backend.metrics();
    assert_eq!(
        (
            m.delivered,
            m.dead_lettered(DropReason::Invalid),
            m.dropped_total()
        ),
        (98, 2, 0)
    );
    // Bisection is bounded: at most two calls per culprit per level.
    assert!(
        sink.calls().len() <= 1 + 2 * 2 * 7,
        "{}",
        sink.calls().len()
    );
    assert_accounted(&m);
}

#[test]
fn without_a_dead_letter_destination_the_culprits_are_dropped_as_invalid() {
    let sink = RecordingSink::new().refusing_events_named("delivery.poison");
    let backend = backend(&sink).build().unwrap();
    backend.send(event(0)).unwrap();
    backend.send(poison(1)).unwrap();
    backend.send(event(2)).unwrap();
    backend.flush(LONG).unwrap();
    let m = backend.metrics();
    assert_eq!((m.delivered, m.dropped(DropReason::Invalid)), (2, 1));
    assert_eq!(m.dead_lettered_total(), 0);
    assert_accounted(&m);
}

#[test]
fn given_up_batches_go_to_the_dead_letter_destination_with_their_reason() {
    let sink = RecordingSink::scripted([Answer::Status(401, None)]);
    let dead = RecordingBackend::new();
    let stage = backend(&sink)
        .dead_letter(Arc::new(dead.clone()))
        .build()
        .unwrap();
    stage.send(event(0)).unwrap();
    stage.send(event(1)).unwrap();
    stage.flush(LONG).unwrap();
    assert_eq!(sink.calls().len(), 1, "a fatal answer is not retried");
    assert_eq!(dead.len(), 2);
    assert_eq!(
        dead.events()[1].context()["dead_letter"]["reason"],
        "non_retryable"
    );
    let m = stage.metrics();
    assert_eq!(m.dead_lettered(DropReason::NonRetryable), 2);
    assert_accounted(&m);

    // A destination that refuses: counted as dropped, never lost silently.
    let sink = RecordingSink::scripted([Answer::Status(401, None)]);
    let refusing = SinkBackend::builder("refusing", RecordingSink::new())
        .build()
        .unwrap();
    refusing.shutdown(Duration::ZERO).unwrap();
    let stage = backend(&sink)
        .dead_letter(Arc::new(refusing))
        .build()
        .unwrap();
    stage.send(event(0)).unwrap();
    stage.flush(LONG).unwrap();
    let m = stage.metrics();
    assert_eq!(
        (m.dead_lettered_total(), m.dropped(DropReason::NonRetryable)),
        (0, 1)
    );
    assert_accounted(&m);
}

#[test]
fn the_dead_letter_destination_is_drained_with_its_sink() {
    let sink = RecordingSink::new().refusing_events_named("delivery.poison");
    let dead_sink = RecordingSink::new();
    let dead = SinkBackend::builder("dead", dead_sink.clone())
        .batch(BatchConfig::default().with_flush_interval(Duration::from_secs(3600)))
        .build()
        .unwrap();
    let backend = backend(&sink).dead_letter(Arc::new(dead)).build().unwrap();
    backend.send(poison(0)).unwrap();
    backend.shutdown(LONG).unwrap();
    assert_eq!(dead_sink.events().len(), 1);
    assert_eq!(dead_sink.flushes_and_shutdowns().1, 1);
}

#[test]
fn a_drain_keeps_retrying_until_its_deadline() {
    // Down for the first 5 tries, then back: the drain delivers instead
    // of giving up after one last try.
    let sink = RecordingSink::scripted((0..5).map(|_| Answer::Status(503, None)));
    let backend = SinkBackend::builder("test", sink.clone())
        .retry(
            RetryPolicy::default()
                .with_initial_backoff(Duration::from_millis(50))
                .with_max_backoff(Duration::from_secs(60)),
        )
        .build()
        .unwrap();
    backend.send(event(0)).unwrap();
    backend.shutdown(LONG).unwrap();
    assert_eq!(sink.events().len(), 1);
    assert_eq!(sink.calls().len(), 6);

    // Down for good: tried until the deadline, never past it.
    let sink = RecordingSink::scripted((0..1000).map(|_| Answer::Status(503, None)));
    let backend = SinkBackend::builder("test", sink.clone())
        .retry(
            RetryPolicy::default()
                .with_max_attempts(10_000)
                .with_initial_backoff(Duration::from_millis(20))
                .with_max_backoff(Duration::from_millis(100)),
        )
        .build()
        .unwrap();
    backend.send(event(0)).unwrap();
    let started = Instant::now();
    let error = backend.shutdown(Duration::from_millis(600)).unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(800), "{took:?}");
    assert!(sink.calls().len() > 2, "{} tries", sink.calls().len());
    assert!(
        matches!(error, DrainError::TimedOut { pending: 1, .. }),
        "{error:?}"
    );
    assert_eq!(backend.metrics().dropped(DropReason::Shutdown), 1);
}

#[test]
fn backpressure_slows_the_feeding_worker_instead_of_dropping() {
    // A sink that takes one event at a time behind a queue of 2, fed by an
    // async router: nothing is dropped anywhere, however fast events come.
    let sink = RecordingSink::scripted((0..20).map(|_| Answer::Status(503, None)));
    let builder = SinkBackend::builder("slow", sink.clone())
        .retry(fast_retry().with_max_attempts(1000))
        .queue_capacity(2)
        .when_full(WhenFull::Backpressure)
        .batch(BatchConfig::default().with_max_events(1));
    let shown = format!("{builder:?}");
    assert!(
        shown.contains("when_full: Backpressure") && shown.contains("dead_letter: None"),
        "{shown}"
    );
    let stage = builder.build().unwrap();
    assert_eq!(stage.when_full(), WhenFull::Backpressure);
    let router = AsyncRouter::builder("intake", stage)
        .queue_capacity(1000)
        .build()
        .unwrap();
    for n in 0..200 {
        router.send(event(n)).unwrap();
    }
    router.shutdown(LONG).unwrap();
    assert_eq!(sink.events().len(), 200);
    let m = router.metrics();
    assert_eq!((m.delivered, m.dropped_total()), (200, 0));
}

#[test]
fn a_drain_cut_by_its_deadline_releases_a_worker_waiting_on_a_full_queue_and_counts_all() {
    let sink = RecordingSink::scripted([Answer::Hang]);
    let stage = Arc::new(
        SinkBackend::builder("stuck", sink.clone())
            .queue_capacity(5)
            .when_full(WhenFull::Backpressure)
            .batch(BatchConfig::default().with_max_events(5))
            .build()
            .unwrap(),
    );
    // As in a config's tree: the router isolates the stage's refusals.
    let root = RoutingBackend::builder()
        .backend_arc("stuck", stage.clone())
        .build()
        .unwrap();
    let router = AsyncRouter::builder("intake", root)
        .queue_capacity(100)
        .build()
        .unwrap();
    for n in 0..50 {
        router.send(event(n)).unwrap();
    }
    // The worker fills the stage (5 in flight, 5 queued) and waits.
    let started = Instant::now();
    while stage.metrics().waiting == 0 && started.elapsed() < LONG {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(stage.metrics().waiting, 1, "{:?}", stage.metrics());
    let started = Instant::now();
    let error = router.shutdown(Duration::from_millis(300)).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    // Where each event is counted depends on when the deadline caught it:
    // still at the intake (its own error), or handed to the closed stage
    // (the stage's, under the router's).
    assert!(
        matches!(error, DrainError::TimedOut { .. } | DrainError::Backends(_)),
        "{error:?}"
    );
    let (r, s) = (router.metrics(), stage.metrics());
    assert_accounted(&r);
    assert_accounted(&s);
    assert_eq!((r.pending(), s.pending()), (0, 0), "{r:?} {s:?}");
    // Every one of the 50 is counted lost at exactly one stage.
    assert_eq!(
        r.dropped(DropReason::Shutdown) + s.dropped(DropReason::Shutdown),
        50,
        "{r:?} {s:?}"
    );
    assert_eq!(sink.events().len(), 0);
}

#[test]
fn a_router_drains_its_branches_side_by_side() {
    let hung = |name: &'static str| {
        SinkBackend::builder(name, RecordingSink::scripted([Answer::Hang]))
            .build()
            .unwrap()
    };
    let router = RoutingBackend::builder()
        .backend("a", hung("a"))
        .backend("b", hung("b"))
        .backend("c", hung("c"))
        .build()
        .unwrap();
    router.send(event(0)).unwrap();
    let started = Instant::now();
    let error = router.shutdown(Duration::from_millis(400)).unwrap_err();
    let took = started.elapsed();
    // One after the other, the second and third would get no time at all;
    // side by side each gets the whole deadline and they end together.
    assert!(took < Duration::from_millis(700), "{took:?}");
    let DrainError::Backends(failures) = error else {
        panic!("{error:?}")
    };
    let names: Vec<&str> = failures.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
}

/// A backend whose `send` waits until it is released: by its own
/// `shutdown` when `obeys_shutdown`, else only by [`Gate::release`].
#[derive(Debug, Default)]
struct Gate {
    released: Mutex<bool>,
    changed: std::sync::Condvar,
    obeys_shutdown: bool,
    /// Set once a send waits at the gate.
    entered: std::sync::atomic::AtomicBool,
}

impl Gate {
    /// Waits until the worker is held at the gate.
    fn wait_entered(&self) {
        let started = Instant::now();
        while !self.entered.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(started.elapsed() < LONG, "nothing reached the gate");
            std::thread::yield_now();
        }
    }

    fn release(&self) {
        *self.released.lock().unwrap() = true;
        self.changed.notify_all();
    }
}

impl Backend for Gate {
    fn send(&self, _event: Event) -> Result<(), SendError> {
        self.entered
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let mut released = self.released.lock().unwrap();
        while !*released {
            released = self.changed.wait(released).unwrap();
        }
        Err(SendError::Closed)
    }

    fn shutdown(&self, _timeout: Duration) -> Result<(), DrainError> {
        if self.obeys_shutdown {
            self.release();
        }
        Ok(())
    }
}

#[test]
fn an_async_router_past_its_deadline_closes_what_holds_its_worker_and_counts_exactly() {
    let gate = Arc::new(Gate {
        obeys_shutdown: true,
        ..Gate::default()
    });
    let router = AsyncRouter::builder("held", gate.clone())
        .queue_capacity(100)
        .build()
        .unwrap();
    assert!(router.has_room(100) && !router.has_room(101));
    for n in 0..10 {
        router.send(event(n)).unwrap();
    }
    // The worker waits in its first send (holding its chunk; the rest, if
    // any, still queued).
    gate.wait_entered();
    let error = router.shutdown(Duration::from_millis(100)).unwrap_err();
    assert!(
        matches!(error, DrainError::TimedOut { pending: 10, .. }),
        "{error:?}"
    );
    let m = router.metrics();
    assert_eq!((m.dropped(DropReason::Shutdown), m.pending()), (10, 0));
    // A second shutdown loses nothing more.
    router.shutdown(Duration::from_millis(100)).unwrap();
}

#[test]
fn an_async_router_whose_worker_stays_stuck_reports_what_it_still_holds() {
    let gate = Arc::new(Gate::default());
    let router = AsyncRouter::builder("stuck", gate.clone())
        .queue_capacity(100)
        .build()
        .unwrap();
    for n in 0..10 {
        router.send(event(n)).unwrap();
    }
    gate.wait_entered();
    let error = router.shutdown(Duration::from_millis(100)).unwrap_err();
    assert!(
        matches!(error, DrainError::TimedOut { pending: 10, .. }),
        "{error:?}"
    );
    gate.release();
}

#[test]
fn has_room_counts_queued_events_against_the_capacity() {
    let gate = Arc::new(Gate::default());
    let router = AsyncRouter::builder("room", gate.clone())
        .queue_capacity(3)
        .build()
        .unwrap();
    // The worker takes the first event and holds it in its send.
    router.send(event(0)).unwrap();
    gate.wait_entered();
    router.send(event(1)).unwrap();
    router.send(event(2)).unwrap();
    assert!(router.has_room(1));
    assert!(!router.has_room(2));
    router.send(event(3)).unwrap();
    assert!(!router.has_room(1));
    assert!(router.has_room(0));
    gate.release();
    // The gate refuses what it held: counted, whichever way the race goes.
    let _ = router.shutdown(LONG);
    assert_eq!(router.metrics().pending(), 0);
}

#[test]
fn a_flush_reaches_the_dead_letter_destination() {
    let sink = RecordingSink::new().refusing_events_named("delivery.poison");
    // The destination takes a while (a 503 asking for 300 ms): the flush
    // gives it the time left of its own timeout.
    let dead_sink =
        RecordingSink::scripted([Answer::Status(503, Some(Duration::from_millis(300)))]);
    let dead = SinkBackend::builder("dead", dead_sink.clone())
        .batch(BatchConfig::default().with_flush_interval(Duration::from_secs(3600)))
        .retry(fast_retry())
        .build()
        .unwrap();
    let backend = backend(&sink).dead_letter(Arc::new(dead)).build().unwrap();
    backend.send(poison(0)).unwrap();
    backend.flush(LONG).unwrap();
    // Delivered by the flush, not by the hour-long interval.
    assert_eq!(dead_sink.events().len(), 1);
    backend.shutdown(LONG).unwrap();
}

#[test]
fn an_event_exactly_as_large_as_a_batch_may_be_is_sent() {
    let sink = RecordingSink::new();
    let one = event(1);
    let backend = backend(&sink)
        .batch(BatchConfig::default().with_max_bytes(one.encoded_len()))
        .build()
        .unwrap();
    backend.send(one).unwrap();
    backend.flush(LONG).unwrap();
    assert_eq!(sink.events().len(), 1);
    assert_eq!(backend.metrics().dropped(DropReason::TooLarge), 0);
}

#[test]
fn a_router_gives_each_branch_the_time_left_to_drain() {
    // Each branch needs about 300 ms (a 503 asking for that long).
    let slow = |name: &'static str| {
        let sink = RecordingSink::scripted([Answer::Status(503, Some(Duration::from_millis(300)))]);
        let stage = SinkBackend::builder(name, sink.clone())
            .retry(fast_retry())
            .build()
            .unwrap();
        (stage, sink)
    };
    let ((a, a_sink), (b, b_sink)) = (slow("a"), slow("b"));
    let router = RoutingBackend::builder()
        .backend("a", a)
        .backend("b", b)
        .build()
        .unwrap();
    router.send(event(0)).unwrap();
    router.shutdown(LONG).unwrap();
    assert_eq!((a_sink.events().len(), b_sink.events().len()), (1, 1));
}

// Optimizely's batching options: batch keys, dispatch listeners, failed
// batches requeued, `max_events` against `queue_capacity`.

fn keyed(n: usize, project: Option<serde_json::Value>, revision: u64) -> Event {
    let mut context = tidings_event::Map::new();
    if let Some(project) = project {
        context.insert("project_id".to_owned(), project);
    }
    Event::new(
        EventName::new("delivery.keyed").unwrap(),
        json!({"n": n, "revision": revision}),
    )
    .with_context(context)
}

fn batch_sizes(sink: &RecordingSink) -> Vec<usize> {
    sink.batches().iter().map(Vec::len).collect()
}

#[test]
fn a_batch_key_sends_the_batch_being_formed_when_another_key_comes() {
    let sink = RecordingSink::new();
    let key = BatchKey::new(["context.project_id", "data.revision"]).unwrap();
    let backend = backend(&sink)
        .batch_key(key)
        .batch(BatchConfig::default().with_flush_interval(LONG))
        .build()
        .unwrap();
    let p = |s: &str| Some(json!(s));
    let sent = vec![
        keyed(0, p("a"), 1),
        keyed(1, p("a"), 1),
        keyed(2, p("a"), 1),
        keyed(3, p("a"), 2),
        keyed(4, p("a"), 2),
        keyed(5, p("b"), 2),
        keyed(6, p("a"), 1),
        keyed(7, p("a"), 1),
        // Absent and null are two keys.
        keyed(8, None, 1),
        keyed(9, Some(serde_json::Value::Null), 1),
        keyed(10, Some(serde_json::Value::Null), 1),
    ];
    for e in &sent {
        backend.send(e.clone()).unwrap();
    }
    backend.flush(LONG).unwrap();
    assert_eq!(batch_sizes(&sink), [3, 2, 1, 2, 1, 2]);
    assert_eq!(ids(&sink.events()), ids(&sent), "never reordered");
    let m = backend.metrics();
    assert_eq!((m.delivered, m.batches), (11, 6));
    assert_accounted(&m);
}

#[test]
fn a_batch_key_reads_names_whole_objects_and_nested_paths() {
    let sink = RecordingSink::new();
    let backend = backend(&sink)
        .batch_key(BatchKey::new(["name", "data.page.kind"]).unwrap())
        .build()
        .unwrap();
    let named = |name: &'static str, data| Event::new(EventName::new(name).unwrap(), data);
    for e in [
        named("a", json!({"page": {"kind": 1, "n": 0}})),
        named("a", json!({"page": {"kind": 1, "n": 1}})),
        named("b", json!({"page": {"kind": 1}})),
        named("b", json!({"page": {"kind": 2}})),
        // `page` not an object, then missing: both absent.
        named("b", json!({"page": 3})),
        named("b", json!({})),
        named("b", json!([1])),
    ] {
        backend.send(e).unwrap();
    }
    backend.flush(LONG).unwrap();
    assert_eq!(batch_sizes(&sink), [2, 1, 1, 3]);

    let sink = RecordingSink::new();
    let backend = backend_with_key(&sink, &["context"]);
    for project in ["a", "a", "b"] {
        backend.send(keyed(0, Some(json!(project)), 0)).unwrap();
    }
    backend.flush(LONG).unwrap();
    assert_eq!(batch_sizes(&sink), [2, 1], "the whole context is the key");

    let sink = RecordingSink::new();
    let backend = backend_with_key(&sink, &["data"]);
    for data in [json!(1), json!(1), json!("x"), json!({"a": 1})] {
        backend
            .send(Event::new(EventName::new("d").unwrap(), data))
            .unwrap();
    }
    backend.flush(LONG).unwrap();
    assert_eq!(batch_sizes(&sink), [2, 1, 1], "the whole data is the key");
}

fn backend_with_key(sink: &RecordingSink, paths: &[&str]) -> SinkBackend {
    backend(sink)
        .batch_key(BatchKey::new(paths.iter().copied()).unwrap())
        .build()
        .unwrap()
}

#[test]
fn batch_key_paths_start_at_name_context_or_data_and_have_no_empty_segment() {
    let key = BatchKey::new(["name", "context", "data.a.b"]).unwrap();
    assert_eq!(key.paths(), ["name", "context", "data.a.b"]);
    for (bad, index) in [
        (vec!["user.id"], 0),
        (vec!["name", "name.first"], 1),
        (vec!["data..a"], 0),
        (vec!["context."], 0),
        (vec![""], 0),
        (vec!["id"], 0),
    ] {
        let error = BatchKey::new(bad.clone()).unwrap_err();
        assert_eq!((error.index, error.path.as_str()), (index, bad[index]));
        assert!(error.to_string().contains(bad[index]), "{error}");
    }
}

type Heard = Arc<Mutex<Vec<(String, u32, Vec<EventId>, usize)>>>;

/// A listener recording each attempt and how many calls the sink had
/// seen when it ran.
fn recording_listener(
    heard: &Heard,
    sink: &RecordingSink,
) -> impl Fn(&DispatchAttempt<'_>) + Send + Sync + 'static {
    let (heard, sink) = (heard.clone(), sink.clone());
    move |attempt| {
        heard.lock().unwrap().push((
            attempt.backend.to_owned(),
            attempt.attempt,
            ids(attempt.events),
            sink.calls().len(),
        ));
    }
}

#[test]
fn dispatch_listeners_hear_each_attempt_before_it_is_made_until_removed() {
    let sink = RecordingSink::scripted([Answer::Status(500, None), Answer::Status(503, None)]);
    let backend = backend(&sink).build().unwrap();
    let (first, second) = (Heard::default(), Heard::default());
    let id = backend.add_dispatch_listener(recording_listener(&first, &sink));
    let other = backend.add_dispatch_listener(recording_listener(&second, &sink));
    assert_ne!(id, other);
    let sent: Vec<Event> = (0..3).map(event).collect();
    for e in &sent {
        backend.send(e.clone()).unwrap();
    }
    backend.flush(LONG).unwrap();
    let expected: Vec<_> = (1..=3)
        .map(|attempt| ("test".to_owned(), attempt, ids(&sent), attempt as usize - 1))
        .collect();
    assert_eq!(*first.lock().unwrap(), expected, "before each call");
    assert_eq!(*second.lock().unwrap(), expected);

    assert!(backend.remove_dispatch_listener(id));
    assert!(!backend.remove_dispatch_listener(id), "removed already");
    backend.send(event(3)).unwrap();
    backend.flush(LONG).unwrap();
    assert_eq!(
        first.lock().unwrap().len(),
        3,
        "a removed listener hears nothing"
    );
    assert_eq!(second.lock().unwrap().len(), 4);
    assert!(backend.remove_dispatch_listener(other));
    backend.send(event(4)).unwrap();
    backend.flush(LONG).unwrap();
    assert_eq!(second.lock().unwrap().len(), 4);
    assert_eq!(backend.metrics().delivered, 5);
    // Another backend's ids never remove this one's listeners.
    let elsewhere = SinkBackend::builder("other", RecordingSink::new())
        .build()
        .unwrap();
    let live = backend.add_dispatch_listener(recording_listener(&second, &sink));
    assert!(format!("{backend:?}").contains("Listeners { count: 1"));
    for _ in 0..3 {
        let foreign = elsewhere.add_dispatch_listener(|_| {});
        assert_ne!(foreign, live);
        assert!(!backend.remove_dispatch_listener(foreign));
    }
    backend.add_dispatch_listener(log_dispatch);
    backend.send(event(5)).unwrap();
    backend.flush(LONG).unwrap();
    assert_eq!(backend.metrics().delivered, 6);
    assert_eq!(second.lock().unwrap().len(), 5, "still listening");
}

#[test]
fn a_panicking_dispatch_listener_never_harms_delivery_or_the_other_listeners() {
    let sink = RecordingSink::scripted([Answer::Status(500, None)]);
    let backend = backend(&sink).build().unwrap();
    backend.add_dispatch_listener(|_| panic!("a listener's bug"));
    let heard = Heard::default();
    backend.add_dispatch_listener(recording_listener(&heard, &sink));
    let sent: Vec<Event> = (0..4).map(event).collect();
    for e in &sent {
        backend.send(e.clone()).unwrap();
    }
    backend.flush(LONG).unwrap();
    assert_eq!(ids(&sink.events()), ids(&sent));
    assert_eq!(heard.lock().unwrap().len(), 2, "both attempts heard");
    let m = backend.metrics();
    assert_eq!((m.delivered, m.dropped_total()), (4, 0));
    backend.shutdown(LONG).unwrap();
}

fn requeuing(
    sink: &RecordingSink,
    reports: &Arc<Mutex<Vec<(usize, BatchOutcome)>>>,
) -> tidings_routing::SinkBackendBuilder {
    let reports = reports.clone();
    backend(sink)
        .retry(fast_retry().with_max_attempts(1))
        .requeue_failed(true)
        .batch(BatchConfig::default().with_flush_interval(Duration::from_millis(20)))
        .on_batch(move |report| {
            reports
                .lock()
                .unwrap()
                .push((report.events.len(), report.outcome));
        })
}

#[test]
fn a_batch_out_of_retries_goes_back_to_the_queue_ahead_of_newer_events() {
    let sink = RecordingSink::scripted([Answer::Status(500, None), Answer::Status(503, None)]);
    let reports = Arc::default();
    let backend = requeuing(&sink, &reports)
        .batch(
            BatchConfig::default()
                .with_max_events(3)
                .with_flush_interval(Duration::from_millis(20)),
        )
        .build()
        .unwrap();
    let sent: Vec<Event> = (0..6).map(event).collect();
    for e in &sent {
        backend.send(e.clone()).unwrap();
    }
    backend.flush(LONG).unwrap();
    assert_eq!(ids(&sink.events()), ids(&sent), "order kept");
    assert_eq!(
        sink.calls().iter().map(|c| c.1).collect::<Vec<_>>(),
        [3, 3, 3, 3]
    );
    let requeued = BatchOutcome::Requeued(DropReason::RetriesExhausted);
    assert_eq!(
        *reports.lock().unwrap(),
        [
            (3, requeued),
            (3, requeued),
            (3, BatchOutcome::Delivered),
            (3, BatchOutcome::Delivered)
        ]
    );
    let m = backend.metrics();
    assert_eq!(
        (
            m.delivered,
            m.retried,
            m.dropped_total(),
            m.dead_lettered_total()
        ),
        (6, 6, 0, 0)
    );
    assert_accounted(&m);
    assert_eq!((m.queued, m.buffered, m.pending()), (0, 0, 0));
}

#[test]
fn a_requeued_batch_goes_before_the_event_that_closed_it() {
    // The batch is closed by an event with another key, then requeued:
    // it goes back ahead of that event.
    let sink = RecordingSink::scripted([Answer::Status(500, None)]);
    let reports = Arc::default();
    let backend = requeuing(&sink, &reports)
        .batch_key(BatchKey::new(["data.revision"]).unwrap())
        .build()
        .unwrap();
    let sent: Vec<Event> = [1, 1, 2, 2]
        .into_iter()
        .enumerate()
        .map(|(n, revision)| keyed(n, None, revision))
        .collect();
    for e in &sent {
        backend.send(e.clone()).unwrap();
    }
    backend.flush(LONG).unwrap();
    assert_eq!(ids(&sink.events()), ids(&sent));
    assert_eq!(batch_sizes(&sink), [2, 2]);

    // A batch closed by its bytes, likewise.
    let sink = RecordingSink::scripted([Answer::Status(500, None)]);
    let size = event(0).encoded_len();
    let backend = requeuing(&sink, &reports)
        .batch(
            BatchConfig::default()
                .with_max_bytes(size * 2)
                .with_flush_interval(Duration::from_millis(20)),
        )
        .build()
        .unwrap();
    let sent: Vec<Event> = (0..4).map(event).collect();
    for e in &sent {
        backend.send(e.clone()).unwrap();
    }
    backend.flush(LONG).unwrap();
    assert_eq!(ids(&sink.events()), ids(&sent));
    assert_eq!(batch_sizes(&sink), [2, 2], "exactly max_bytes fits");
    assert_accounted(&backend.metrics());
}

#[test]
fn an_expired_batch_is_requeued_too_but_a_refused_one_is_not() {
    let sink = RecordingSink::scripted([Answer::Status(500, None)]);
    let reports = Arc::default();
    let backend = requeuing(&sink, &reports)
        .retry(fast_retry().with_max_batch_age(Duration::ZERO))
        .build()
        .unwrap();
    backend.send(event(0)).unwrap();
    backend.flush(LONG).unwrap();
    assert_eq!(
        *reports.lock().unwrap(),
        [
            (1, BatchOutcome::Requeued(DropReason::Expired)),
            (1, BatchOutcome::Delivered)
        ]
    );

    let sink = RecordingSink::scripted([Answer::Status(401, None)]);
    let reports = Arc::default();
    let backend = requeuing(&sink, &reports).build().unwrap();
    backend.send(event(0)).unwrap();
    backend.flush(LONG).unwrap();
    assert_eq!(
        *reports.lock().unwrap(),
        [(1, BatchOutcome::Dropped(DropReason::NonRetryable))]
    );
    assert_eq!(sink.calls().len(), 1);
}

#[test]
fn without_requeue_failed_a_batch_out_of_retries_is_settled() {
    let sink = RecordingSink::scripted([Answer::Status(500, None)]);
    let reports = Arc::default();
    let backend = requeuing(&sink, &reports)
        .requeue_failed(false)
        .build()
        .unwrap();
    backend.send(event(0)).unwrap();
    backend.flush(LONG).unwrap();
    assert_eq!(
        *reports.lock().unwrap(),
        [(1, BatchOutcome::Dropped(DropReason::RetriesExhausted))]
    );
}

#[test]
fn a_batch_out_of_retries_is_settled_when_the_queue_has_no_room_for_it() {
    let sink = RecordingSink::scripted([Answer::Status(500, None)]);
    let dead = RecordingBackend::new();
    let reports = Arc::default();
    let backend = requeuing(&sink, &reports)
        .queue_capacity(3)
        .dead_letter(Arc::new(dead.clone()))
        .build()
        .unwrap();
    // The first attempt waits until the queue is full again.
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let wait = Mutex::new(wait);
    let gate = backend.add_dispatch_listener(move |attempt| {
        if attempt.events[0].data()["n"] == 0 {
            wait.lock().unwrap().recv_timeout(LONG).unwrap();
        }
    });
    let sent: Vec<Event> = (0..6).map(event).collect();
    for e in &sent[..3] {
        backend.send(e.clone()).unwrap();
    }
    std::thread::scope(|s| {
        s.spawn(|| backend.flush(LONG).unwrap());
        let started = Instant::now();
        while backend.metrics().queued > 0 {
            assert!(started.elapsed() < LONG, "the batch was never taken");
            std::thread::yield_now();
        }
        for e in &sent[3..] {
            backend.send(e.clone()).unwrap();
        }
        go.send(()).unwrap();
    });
    backend.flush(LONG).unwrap();
    assert!(backend.remove_dispatch_listener(gate));
    assert_eq!(ids(&dead.events()), ids(&sent[..3]));
    assert_eq!(ids(&sink.events()), ids(&sent[3..]));
    assert_eq!(
        reports.lock().unwrap()[0],
        (3, BatchOutcome::DeadLettered(DropReason::RetriesExhausted))
    );
    let m = backend.metrics();
    assert_eq!(
        (
            m.delivered,
            m.dead_lettered(DropReason::RetriesExhausted),
            m.retried
        ),
        (3, 3, 0)
    );
    assert_accounted(&m);
}

#[test]
fn a_sink_that_keeps_failing_backs_off_longer_each_round_and_shuts_down_on_time() {
    let sink = RecordingSink::scripted(vec![Answer::Status(500, None); 1000]);
    let reports = Arc::default();
    let backend = requeuing(&sink, &reports)
        .retry(
            RetryPolicy::none()
                .with_initial_backoff(Duration::from_millis(50))
                .with_max_backoff(Duration::from_millis(400)),
        )
        .build()
        .unwrap();
    let sent: Vec<Event> = (0..3).map(event).collect();
    for e in &sent {
        backend.send(e.clone()).unwrap();
    }
    let started = Instant::now();
    while sink.calls().len() < 5 {
        assert!(started.elapsed() < LONG, "stopped trying");
        let m = backend.metrics();
        assert_accounted(&m);
        assert_eq!((m.dropped_total(), m.dead_lettered_total()), (0, 0));
        std::thread::sleep(Duration::from_millis(5));
    }
    // Pauses of the backoff ceiling after 1 attempt, one doubling more per
    // round: 100, 200, 400 ms, then capped at 400 ms.
    let calls = sink.calls();
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].0 - w[0].0).collect();
    for (gap, floor) in gaps.iter().zip([100, 200, 400, 400]) {
        assert!(*gap >= Duration::from_millis(floor), "{gaps:?}");
    }
    assert_eq!(backend.metrics().pending(), 3, "kept, not lost");
    // A shutdown ends the pause; the batch's last attempt fails, and it is
    // settled as without the option.
    backend.shutdown(LONG).unwrap();
    let m = backend.metrics();
    assert_eq!(
        (
            m.delivered,
            m.pending(),
            m.dropped(DropReason::RetriesExhausted)
        ),
        (0, 0, 3)
    );
    assert_accounted(&m);

    // Retried until the deadline, then cut off by it.
    let sink = RecordingSink::scripted(vec![Answer::Status(500, None); 100_000]);
    let backend = requeuing(&sink, &reports)
        .retry(fast_retry().with_max_batch_age(Duration::ZERO))
        .build()
        .unwrap();
    for e in &sent {
        backend.send(e.clone()).unwrap();
    }
    let started = Instant::now();
    while sink.calls().len() < 2 {
        assert!(started.elapsed() < LONG, "stopped trying");
        std::thread::sleep(Duration::from_millis(5));
    }
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| done.send(backend.shutdown(Duration::from_millis(300))));
        let outcome = outcome.recv_timeout(LONG).expect("shutdown returns");
        assert!(
            matches!(outcome, Err(DrainError::TimedOut { pending: 3, .. })),
            "{outcome:?}"
        );
    });
    let m = backend.metrics();
    assert_eq!(
        (m.delivered, m.pending(), m.dropped(DropReason::Shutdown)),
        (0, 0, 3)
    );
    assert_accounted(&m);
}

#[test]
fn a_max_events_over_the_queue_capacity_is_refused_naming_both() {
    let sink = RecordingSink::new();
    let refused = backend(&sink)
        .queue_capacity(10)
        .batch(BatchConfig::default().with_max_events(11))
        .build()
        .unwrap_err();
    let message = refused.to_string();
    assert!(
        message.contains("max_events 11") && message.contains("queue_capacity 10"),
        "{message}"
    );
    assert!(matches!(
        refused,
        SinkBuildError::BatchLargerThanQueue {
            source: BatchLargerThanQueue {
                max_events: 11,
                queue_capacity: 10
            },
            ..
        }
    ));
    backend(&sink)
        .queue_capacity(10)
        .batch(BatchConfig::default().with_max_events(10))
        .build()
        .unwrap();
    assert_eq!(
        BatchConfig::default().for_queue(5).unwrap().max_events(),
        5,
        "a default max_events is lowered to a smaller queue"
    );
    assert_eq!(
        BatchConfig::default().for_queue(500).unwrap().max_events(),
        100
    );
    assert_eq!(
        BatchConfig::default()
            .with_max_events(7)
            .for_queue(7)
            .unwrap()
            .max_events(),
        7
    );
}

#[test]
fn a_small_queue_sends_full_batches_of_its_capacity() {
    // No flush and a long interval: batches go as they fill, so they must
    // fill at the queue's capacity.
    let sink = RecordingSink::new();
    let backend = backend(&sink)
        .queue_capacity(5)
        .when_full(WhenFull::Backpressure)
        .batch(BatchConfig::default().with_flush_interval(Duration::from_secs(600)))
        .build()
        .unwrap();
    for n in 0..10 {
        backend.send(event(n)).unwrap();
    }
    let started = Instant::now();
    while sink.events().len() < 10 {
        assert!(started.elapsed() < LONG, "{:?}", batch_sizes(&sink));
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(batch_sizes(&sink).iter().all(|&n| n == 5));
}

#[test]
fn the_room_a_requeued_batch_holds_in_the_queue_is_given_back_as_it_is_sent_again() {
    let sink = RecordingSink::scripted([Answer::Status(500, None)]);
    let reports = Arc::default();
    let backend = requeuing(&sink, &reports)
        .queue_capacity(3)
        .build()
        .unwrap();
    let sent: Vec<Event> = (0..9).map(event).collect();
    for chunk in sent.chunks(3) {
        for e in chunk {
            backend.send(e.clone()).unwrap();
        }
        backend.flush(LONG).unwrap();
    }
    assert_eq!(ids(&sink.events()), ids(&sent));
    let m = backend.metrics();
    assert_eq!((m.delivered, m.dropped_total(), m.retried), (9, 0, 3));
}

#[test]
fn a_partial_batch_waits_for_its_flush_interval() {
    let sink = RecordingSink::new();
    let backend = backend(&sink)
        .batch(BatchConfig::default().with_flush_interval(Duration::from_secs(600)))
        .build()
        .unwrap();
    backend.send(event(0)).unwrap();
    // The worker wakes for the event, and must leave its batch forming.
    std::thread::sleep(Duration::from_millis(200));
    assert!(sink.calls().is_empty(), "sent before its interval");
    assert_eq!(backend.metrics().buffered, 1);
    backend.flush(LONG).unwrap();
    assert_eq!(sink.calls().len(), 1);
}
