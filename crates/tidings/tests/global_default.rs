//! The process-wide default tracker: installed once, used from any thread,
//! drained by its guard.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tidings::{Backend, DrainError, Event, SendError, Tracker};
use tidings_test::RecordingBackend;

#[derive(Debug, Clone, Default)]
struct CountsShutdowns(Arc<AtomicUsize>);

impl Backend for CountsShutdowns {
    fn send(&self, _event: Event) -> Result<(), SendError> {
        Ok(())
    }
    fn shutdown(&self, _timeout: Duration) -> Result<(), DrainError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn the_global_default_is_installed_once_and_its_guard_shuts_it_down() {
    let recorder = RecordingBackend::new();
    let shutdowns = CountsShutdowns::default();
    let tracker = Tracker::builder()
        .backend("memory", recorder.clone())
        .backend("shutdowns", shutdowns.clone())
        .build()
        .unwrap();

    let guard = tidings::try_init(tracker.clone()).unwrap();
    let again = tidings::try_init(tracker.clone()).unwrap_err();
    assert_eq!(
        again.to_string(),
        "a global default tracker is already installed"
    );
    let panic = std::panic::catch_unwind(|| tidings::init(Tracker::builder().build().unwrap()))
        .unwrap_err();
    assert!(
        panic
            .downcast_ref::<String>()
            .unwrap()
            .contains("already installed")
    );

    tidings::emit("main.thread", json!({})).unwrap().unwrap();
    std::thread::spawn(|| tidings::emit("other.thread", json!({})).unwrap().unwrap())
        .join()
        .unwrap();
    assert_eq!(recorder.names(), ["main.thread", "other.thread"]);

    // A scoped default wins over the global one on its thread.
    let scoped = RecordingBackend::new();
    {
        let _s = tidings::set_default(
            &Tracker::builder()
                .backend("m", scoped.clone())
                .build()
                .unwrap(),
        );
        tidings::emit("scoped", json!({})).unwrap();
    }
    assert_eq!(scoped.names(), ["scoped"]);

    assert_eq!(shutdowns.0.load(Ordering::SeqCst), 0);
    drop(guard);
    assert_eq!(shutdowns.0.load(Ordering::SeqCst), 1);
}
