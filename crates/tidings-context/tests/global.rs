//! Process-wide contexts: entered once, seen by every thread and task,
//! beneath their own contexts.
//!
//! The contexts are process-wide, so these tests take turns.

use std::sync::{Mutex, MutexGuard};

use serde_json::json;
use tidings_context::{
    WithContextExt, current, current_global, enter, enter_global, exit, exit_global,
};

static TURN: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    let turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    assert!(
        current_global().is_empty(),
        "a test left a process-wide context entered"
    );
    turn
}

#[test]
fn a_context_entered_once_is_seen_by_every_thread_beneath_its_own() {
    let _turn = turn();
    let _app = enter_global("app", json!({"app": "lms", "release": "1"}));
    let seen = std::thread::spawn(|| {
        let before = current().to_value();
        let _request = enter("request", json!({"release": "canary", "path": "/a"}));
        (before, current().to_value())
    })
    .join()
    .unwrap();
    assert_eq!(seen.0, json!({"app": "lms", "release": "1"}));
    assert_eq!(
        seen.1,
        json!({"app": "lms", "release": "canary", "path": "/a"})
    );
}

#[test]
fn a_thread_that_already_merged_sees_a_later_change() {
    let _turn = turn();
    let _request = enter("request", json!({"path": "/a"}));
    assert_eq!(current().to_value(), json!({"path": "/a"}));
    let app = enter_global("app", json!({"app": "lms", "path": "/global"}));
    assert_eq!(current().to_value(), json!({"app": "lms", "path": "/a"}));
    let _inner = enter("inner", json!({"k": 1}));
    assert_eq!(
        current().to_value(),
        json!({"app": "lms", "path": "/a", "k": 1})
    );
    drop(app);
    assert_eq!(current().to_value(), json!({"path": "/a", "k": 1}));
}

#[test]
fn a_task_sees_the_process_wide_contexts_as_they_are_when_it_runs() {
    let _turn = turn();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let _request = enter("request", json!({"request_id": "r1"}));
    let first = enter_global("app", json!({"release": "1"}));
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let (looked, first_look) = std::sync::mpsc::channel();
    let task = runtime.spawn(
        async move {
            looked.send(current().to_value()).unwrap();
            wait.await.unwrap();
            current().to_value()
        }
        .with_current_context(),
    );
    let early = first_look.recv().unwrap();
    drop(first);
    let _second = enter_global("deploy", json!({"release": "2"}));
    go.send(()).unwrap();
    let late = runtime.block_on(task).unwrap();
    assert_eq!(early, json!({"release": "1", "request_id": "r1"}));
    assert_eq!(
        late,
        json!({"release": "2", "request_id": "r1"}),
        "the task carried its own contexts, not a copy of the process-wide ones"
    );
}

#[test]
fn the_guard_may_be_dropped_on_another_thread() {
    let _turn = turn();
    let guard = enter_global("app", json!({"app": "lms"}));
    std::thread::spawn(move || drop(guard)).join().unwrap();
    assert!(current().is_empty());
}

#[test]
fn a_kept_context_stays_until_exited_by_name() {
    let _turn = turn();
    enter_global("app", json!({"app": "lms"})).keep();
    assert_eq!(current_global().to_value(), json!({"app": "lms"}));
    assert!(!exit("app"), "not a context of this thread");
    assert!(exit_global("app"));
    assert!(!exit_global("app"));
    assert!(current().is_empty());
}

#[test]
fn re_entering_a_name_replaces_its_values_in_place_until_the_newer_entry_exits() {
    let _turn = turn();
    let _a = enter_global("a", json!({"k": "a1", "only_a": true}));
    let _b = enter_global("b", json!({"k": "b"}));
    let a2 = enter_global("a", json!({"k": "a2"}));
    assert_eq!(current().to_value(), json!({"k": "b"}));
    drop(a2);
    assert_eq!(current().to_value(), json!({"k": "b", "only_a": true}));
    assert!(exit_global("b"));
    assert_eq!(current().to_value(), json!({"k": "a1", "only_a": true}));
    drop(_b); // its context was exited by name: nothing happens
    assert_eq!(
        current_global().to_value(),
        json!({"k": "a1", "only_a": true})
    );
}

#[test]
fn a_scalar_is_stored_under_the_context_name() {
    let _turn = turn();
    let _g = enter_global("release", json!("2026.12"));
    assert_eq!(current().to_value(), json!({"release": "2026.12"}));
}
