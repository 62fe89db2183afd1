//! Handlers: order, isolation, families, typed handlers, off-thread runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tidings_catalog::{BoxError, HandleEvent, HandlerStats, Handlers, TypedEvent};
use tidings_event::{Event, EventName};
use tidings_routing::{AsyncRouter, Backend};

type Log = Arc<Mutex<Vec<String>>>;

static TYPED_LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[derive(Serialize, Deserialize)]
struct Played {
    video_id: String,
}

impl TypedEvent for Played {
    const NAME: &'static str = "video.played";
}

impl HandleEvent for Played {
    fn handle(&self, event: &Event) -> Result<(), BoxError> {
        TYPED_LOG
            .lock()
            .unwrap()
            .push(format!("typed {} {}", self.video_id, event.name()));
        Ok(())
    }
}

fn recorder(log: &Log, label: &'static str) -> impl Fn(&Event) -> Result<(), BoxError> + use<> {
    let log = log.clone();
    move |event: &Event| {
        log.lock()
            .unwrap()
            .push(format!("{label} {}", event.name()));
        Ok(())
    }
}

fn played(video_id: &str) -> Event {
    Event::from_serializable(
        EventName::new("video.played").unwrap(),
        &Played {
            video_id: video_id.to_owned(),
        },
    )
    .unwrap()
}

#[test]
fn type_handlers_run_before_function_handlers_and_failures_never_stop_the_others() {
    let log: Log = Arc::default();
    let handlers = Handlers::builder()
        .on("video.*", recorder(&log, "family"))
        .unwrap()
        .on("video.played", |_: &Event| Err("refused".into()))
        .unwrap()
        .on("video.played", |_: &Event| panic!("handler bug"))
        .unwrap()
        .on("video.played", recorder(&log, "exact"))
        .unwrap()
        .on("other", recorder(&log, "other"))
        .unwrap()
        .on_type::<Played>()
        .build();
    TYPED_LOG.lock().unwrap().clear();

    assert_eq!(handlers.run(&played("v1")), 2, "one failure and one panic");
    // The typed handler ran first, then the functions in registration order.
    assert_eq!(*TYPED_LOG.lock().unwrap(), ["typed v1 video.played"]);
    assert_eq!(
        *log.lock().unwrap(),
        ["family video.played", "exact video.played"]
    );
    assert_eq!(
        handlers.counters().snapshot(),
        HandlerStats {
            succeeded: 3,
            failed: 1,
            panicked: 1
        }
    );
}

#[test]
fn a_typed_handler_whose_data_does_not_read_back_counts_as_failed() {
    let handlers = Handlers::builder().on_type::<Played>().build();
    let wrong = Event::new(EventName::new("video.played").unwrap(), json!({"id": 1}));
    assert_eq!(handlers.run(&wrong), 1);
    assert_eq!(handlers.counters().snapshot().failed, 1);
}

#[test]
fn spawned_handlers_run_off_the_emitting_thread() {
    let threads: Arc<Mutex<Vec<std::thread::ThreadId>>> = Arc::default();
    let seen = threads.clone();
    let handlers = Handlers::builder()
        .on("video.*", move |_: &Event| {
            seen.lock().unwrap().push(std::thread::current().id());
            Ok(())
        })
        .unwrap()
        .build();
    let counters = handlers.counters();
    let worker = AsyncRouter::builder("handlers", handlers)
        .queue_capacity(100)
        .build()
        .unwrap();
    for i in 0..10 {
        worker.send(played(&format!("v{i}"))).unwrap();
    }
    worker.flush(Duration::from_secs(10)).unwrap();
    let threads = threads.lock().unwrap();
    assert_eq!(threads.len(), 10);
    assert!(threads.iter().all(|t| *t != std::thread::current().id()));
    assert_eq!(counters.snapshot().succeeded, 10);
}

#[test]
fn bad_handler_names_are_refused() {
    let err = Handlers::builder()
        .on("video.*.played", |_: &Event| Ok(()))
        .unwrap_err();
    assert!(err.to_string().contains("only at the end"), "{err}");
}
