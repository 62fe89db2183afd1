//! The process-wide contexts: entered once, seen by every thread and task,
//! beneath their own contexts (edX's default tracker keeps one context
//! dictionary per tracker, shared by every thread).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, PoisonError, RwLock};

use tidings_event::Map;

use crate::{Context, IntoContextMap};

/// The process-wide contexts, in the order entered, and their merge.
#[derive(Debug)]
struct Global {
    frames: Vec<(u64, Cow<'static, str>, Map)>,
    merged: Context,
    /// Bumped on every change, under the lock.
    generation: u64,
}

static GLOBAL: LazyLock<RwLock<Global>> = LazyLock::new(|| {
    RwLock::new(Global {
        frames: Vec::new(),
        merged: Context::default(),
        generation: 0,
    })
});

/// [`Global::generation`], readable without the lock: a thread's cached
/// merge stays valid while this has not moved.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Frame ids, unique process-wide.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The generation a thread last saw, for a cheap "has anything changed".
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// The merge of the process-wide contexts and its generation.
pub(crate) fn snapshot() -> (u64, Context) {
    let global = GLOBAL.read().unwrap_or_else(PoisonError::into_inner);
    (global.generation, global.merged.clone())
}

fn change(f: impl FnOnce(&mut Vec<(u64, Cow<'static, str>, Map)>) -> bool) -> bool {
    let mut global = GLOBAL.write().unwrap_or_else(PoisonError::into_inner);
    if !f(&mut global.frames) {
        return false;
    }
    global.merged = crate::stack::merge_frames(
        &Context::default(),
        global
            .frames
            .iter()
            .map(|(_, name, values)| (&**name, values)),
    );
    global.generation += 1;
    GENERATION.store(global.generation, Ordering::Release);
    true
}

/// Exits its process-wide context when dropped. Returned by
/// [`enter_global`].
///
/// Unlike a [`ContextGuard`](crate::ContextGuard), it may be sent to and
/// dropped on any thread. [`GlobalContextGuard::keep`] leaves the context
/// entered for the rest of the process (or until [`exit_global`]).
#[must_use = "the context is exited as soon as the guard is dropped; bind it with `let _guard = ...` or call `.keep()`"]
#[derive(Debug)]
pub struct GlobalContextGuard {
    id: u64,
}

impl GlobalContextGuard {
    /// Leaves the context entered after the guard is gone: for a context
    /// entered once at start-up. [`exit_global`] still exits it.
    pub fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for GlobalContextGuard {
    fn drop(&mut self) {
        let id = self.id;
        change(|frames| match frames.iter().rposition(|f| f.0 == id) {
            Some(at) => {
                frames.remove(at);
                true
            }
            None => false,
        });
    }
}

/// Enters the context `name` with `values` for the whole process: every
/// event emitted afterwards, on any thread or task, carries it, beneath the
/// contexts of its own thread or task (which override its keys).
///
/// The rules of [`enter`](crate::enter) apply among process-wide contexts:
/// later ones override earlier keys, and re-entering a name replaces its
/// values in place until the newer entry exits.
///
/// ```
/// use serde_json::json;
/// use tidings_context as context;
///
/// context::enter_global("app", json!({"app": "lms", "release": "2026.12"})).keep();
/// let seen = std::thread::spawn(|| {
///     let _request = context::enter("request", json!({"release": "canary"}));
///     context::current().to_value()
/// })
/// .join()
/// .unwrap();
/// assert_eq!(seen, json!({"app": "lms", "release": "canary"}));
/// assert!(context::exit_global("app"));
/// assert!(context::current().is_empty());
/// ```
pub fn enter_global(
    name: impl Into<Cow<'static, str>>,
    values: impl IntoContextMap,
) -> GlobalContextGuard {
    let name = name.into();
    let values = values.into_context_map(&name);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    change(|frames| {
        frames.push((id, name, values));
        true
    });
    GlobalContextGuard { id }
}

/// Exits the most recently entered process-wide context named `name`.
/// Returns whether there was one. Its guard then does nothing.
pub fn exit_global(name: &str) -> bool {
    change(|frames| match frames.iter().rposition(|f| f.1 == name) {
        Some(at) => {
            frames.remove(at);
            true
        }
        None => false,
    })
}

/// The merge of the process-wide contexts alone.
#[must_use]
pub fn current_global() -> Context {
    snapshot().1
}
