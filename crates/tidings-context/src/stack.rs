//! The per-thread context stack, its guard and the free functions over it.

use std::borrow::Cow;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use tidings_event::Map;

use crate::{Context, IntoContextMap};

/// Frame ids are unique process-wide, so a guard never removes a frame of
/// another stack that happens to be installed on its thread.
static NEXT_FRAME_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
struct Frame {
    id: u64,
    name: Cow<'static, str>,
    values: Map,
    /// The merge of the base and every frame up to this one, computed on
    /// first use, so exiting the innermost context costs no recomputation.
    merged: Option<Context>,
}

/// One stack of entered contexts on top of a base snapshot, on top of the
/// process-wide contexts.
///
/// Each thread has one; a [`WithContext`](crate::WithContext) future owns
/// another and swaps it in for the duration of each poll.
#[derive(Debug, Default)]
pub(crate) struct Stack {
    base: Context,
    frames: Vec<Frame>,
    /// The process-wide contexts as last seen, and their generation.
    global: Context,
    global_generation: u64,
    /// The merge of `global` and `base`, under every frame.
    under: Option<Context>,
}

impl Stack {
    pub(crate) fn with_base(base: Context) -> Self {
        Self {
            base,
            ..Self::default()
        }
    }

    /// Takes in a change of the process-wide contexts, if there was one,
    /// dropping every merge made on the old ones.
    fn refresh_global(&mut self) {
        if crate::global::generation() == self.global_generation {
            return;
        }
        (self.global_generation, self.global) = crate::global::snapshot();
        self.under = None;
        for frame in &mut self.frames {
            frame.merged = None;
        }
    }

    /// The process-wide contexts merged with the base.
    fn under(&mut self) -> Context {
        self.under
            .get_or_insert_with(|| match (self.global.is_empty(), self.base.is_empty()) {
                (true, _) => self.base.clone(),
                (false, true) => self.global.clone(),
                (false, false) => {
                    let mut merged = self.global.as_map().clone();
                    merged.extend(
                        self.base
                            .as_map()
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone())),
                    );
                    Context::new(merged)
                }
            })
            .clone()
    }

    /// The merge of the base and the frames, without the process-wide
    /// contexts: what a future or thread carries away, so that it keeps
    /// seeing the process-wide contexts as they change.
    fn local(&mut self) -> Context {
        self.refresh_global();
        if self.global.is_empty() {
            return self.current();
        }
        merge_frames(&self.base, self.named_frames(self.frames.len()))
    }

    fn named_frames(&self, through: usize) -> impl Iterator<Item = (&str, &Map)> {
        self.frames[..through].iter().map(|f| (&*f.name, &f.values))
    }

    pub(crate) fn push(&mut self, name: Cow<'static, str>, values: Map) -> u64 {
        let id = NEXT_FRAME_ID.fetch_add(1, Ordering::Relaxed);
        self.frames.push(Frame {
            id,
            name,
            values,
            merged: None,
        });
        id
    }

    fn remove_at(&mut self, at: usize) {
        self.frames.remove(at);
        for frame in &mut self.frames[at..] {
            frame.merged = None;
        }
    }

    fn remove_id(&mut self, id: u64) {
        if let Some(at) = self.frames.iter().rposition(|f| f.id == id) {
            self.remove_at(at);
        }
    }

    fn remove_name(&mut self, name: &str) -> bool {
        let found = self.frames.iter().rposition(|f| f.name == name);
        if let Some(at) = found {
            self.remove_at(at);
        }
        found.is_some()
    }

    fn current(&mut self) -> Context {
        self.refresh_global();
        let Some(last) = self.frames.len().checked_sub(1) else {
            return self.under();
        };
        if let Some(merged) = &self.frames[last].merged {
            return merged.clone();
        }
        let under = self.under();
        let first_missing = self
            .frames
            .iter()
            .rposition(|f| f.merged.is_some())
            .map_or(0, |i| i + 1);
        for at in first_missing..=last {
            let merged = self.merge_through(at, &under);
            self.frames[at].merged = Some(merged);
        }
        self.frames[last].merged.clone().unwrap_or_default()
    }

    /// The merge through frame `at`, given the merges of the frames before
    /// it and `under` them all.
    fn merge_through(&self, at: usize, under: &Context) -> Context {
        let frame = &self.frames[at];
        let previous = match at.checked_sub(1) {
            None => under,
            Some(before) => self.frames[before].merged.as_ref().unwrap_or(under),
        };
        if self.frames[..at].iter().any(|f| f.name == frame.name) {
            // A re-entered name keeps its first position: merge from scratch.
            return merge_frames(under, self.named_frames(at + 1));
        }
        let mut merged = previous.as_map().clone();
        merged.extend(frame.values.iter().map(|(k, v)| (k.clone(), v.clone())));
        Context::new(merged)
    }
}

/// Shallow merge: base first, then each name at the position where it was
/// first entered, with the values of its latest entry.
pub(crate) fn merge_frames<'a>(
    base: &Context,
    frames: impl Iterator<Item = (&'a str, &'a Map)>,
) -> Context {
    let mut order: Vec<(&str, &Map)> = Vec::new();
    for (name, values) in frames {
        match order.iter_mut().find(|(seen, _)| *seen == name) {
            Some(slot) => slot.1 = values,
            None => order.push((name, values)),
        }
    }
    let mut merged = base.as_map().clone();
    for (_, values) in order {
        merged.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Context::new(merged)
}

thread_local! {
    static STACK: RefCell<Stack> = RefCell::new(Stack::default());
}

/// Swaps a stack into the current thread until dropped (also on panic).
pub(crate) struct Swap<'a> {
    stack: &'a mut Stack,
}

impl<'a> Swap<'a> {
    pub(crate) fn new(stack: &'a mut Stack) -> Self {
        STACK.with(|current| std::mem::swap(&mut *current.borrow_mut(), stack));
        Self { stack }
    }
}

impl Drop for Swap<'_> {
    fn drop(&mut self) {
        // During thread teardown the thread-local may be gone; nothing to restore then.
        let _ = STACK.try_with(|current| std::mem::swap(&mut *current.borrow_mut(), self.stack));
    }
}

/// Exits its context when dropped. Returned by [`enter`].
///
/// The guard is tied to the thread (it is neither `Send` nor `Sync`). Do not
/// hold it across an `.await`; see the [crate docs](crate#async-code).
#[must_use = "the context is exited as soon as the guard is dropped; bind it with `let _guard = ...`"]
#[derive(Debug)]
pub struct ContextGuard {
    id: u64,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        let _ = STACK.try_with(|stack| stack.borrow_mut().remove_id(self.id));
    }
}

/// Enters the context `name` with `values` on this thread, until the
/// returned guard is dropped or [`exit`] is called with the same name.
///
/// Entering a name that is already entered replaces its values for as long
/// as this entry lasts (see the [crate docs](crate#rules)).
pub fn enter(name: impl Into<Cow<'static, str>>, values: impl IntoContextMap) -> ContextGuard {
    let name = name.into();
    let values = values.into_context_map(&name);
    let id = STACK.with(|stack| stack.borrow_mut().push(name, values));
    ContextGuard {
        id,
        _not_send: PhantomData,
    }
}

/// Exits the most recently entered context named `name`, wherever it is in
/// the stack. Returns whether such a context was entered.
///
/// The guard of an exited context does nothing when it is dropped.
pub fn exit(name: &str) -> bool {
    STACK.with(|stack| stack.borrow_mut().remove_name(name))
}

/// Runs `f` inside the context `name`, exiting it afterwards even if `f`
/// panics.
pub fn in_scope<R>(
    name: impl Into<Cow<'static, str>>,
    values: impl IntoContextMap,
    f: impl FnOnce() -> R,
) -> R {
    let _guard = enter(name, values);
    f()
}

/// The merged context of this thread (or of the [`WithContext`](crate::WithContext)
/// future being polled), on top of the process-wide contexts
/// ([`enter_global`](crate::enter_global)): a cheap snapshot, cached until
/// the next enter or exit.
///
/// A snapshot carried to another thread ([`Context::in_scope`]) holds the
/// process-wide contexts of the moment it was taken.
#[must_use]
pub fn current() -> Context {
    STACK
        .try_with(|stack| stack.borrow_mut().current())
        .unwrap_or_else(|_| crate::global::current_global())
}

/// The contexts of this thread or future without the process-wide ones:
/// what [`WithContextExt`](crate::WithContextExt) carries into a future,
/// which sees the process-wide contexts as they are when it runs.
pub(crate) fn current_local() -> Context {
    STACK
        .try_with(|stack| stack.borrow_mut().local())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn later_contexts_override_earlier_keys() {
        let _a = enter("a", json!({"user_id": 1, "org": "x"}));
        let _b = enter("b", json!({"user_id": 2}));
        assert_eq!(current().to_value(), json!({"user_id": 2, "org": "x"}));
    }

    #[test]
    fn exit_by_name_removes_a_context_that_is_not_the_innermost() {
        let _a = enter("a", json!({"a": 1, "shared": "a"}));
        let _b = enter("b", json!({"b": 2, "shared": "b"}));
        let _c = enter("c", json!({"c": 3}));
        assert!(exit("b"));
        assert_eq!(current().to_value(), json!({"a": 1, "c": 3, "shared": "a"}));
        assert!(!exit("b"), "b was already exited");
        drop(_b); // its guard is now a no-op
        assert_eq!(current().to_value(), json!({"a": 1, "c": 3, "shared": "a"}));
    }

    #[test]
    fn reentering_a_name_replaces_its_values_in_place() {
        let _a = enter("a", json!({"k": "a1", "only_a": true}));
        let _b = enter("b", json!({"k": "b"}));
        {
            let _a2 = enter("a", json!({"k": "a2"}));
            // `a` keeps its position (before `b`), so `b` still wins on `k`,
            // and the replaced values of `a` no longer contribute `only_a`.
            assert_eq!(current().to_value(), json!({"k": "b"}));
        }
        assert_eq!(current().to_value(), json!({"k": "b", "only_a": true}));
    }

    #[test]
    fn guard_exits_on_panic() {
        let result = std::panic::catch_unwind(|| {
            let _g = enter("doomed", json!({"x": 1}));
            panic!("boom");
        });
        assert!(result.is_err());
        assert!(current().is_empty());
    }

    #[test]
    fn in_scope_exits_on_panic_and_returns_the_value() {
        assert_eq!(
            in_scope("s", json!({"x": 1}), || current().get("x").cloned()),
            Some(json!(1))
        );
        let result = std::panic::catch_unwind(|| in_scope("s", json!({"x": 1}), || panic!("boom")));
        assert!(result.is_err());
        assert!(current().is_empty());
    }

    #[test]
    fn scalar_values_are_stored_under_the_context_name() {
        let _g = enter("user_id", json!(7));
        let _n = enter("nothing", json!(null));
        assert_eq!(current().to_value(), json!({"user_id": 7}));
    }

    #[test]
    fn exiting_a_middle_context_recomputes_the_merges_after_it() {
        let _a = enter("a", json!({"k": "a", "a": 1}));
        let _b = enter("b", json!({"k": "b"}));
        let _c = enter("c", json!({"c": 3}));
        assert_eq!(current().to_value(), json!({"k": "b", "a": 1, "c": 3}));
        drop(_b);
        assert_eq!(current().to_value(), json!({"k": "a", "a": 1, "c": 3}));
        drop(_c);
        assert_eq!(current().to_value(), json!({"k": "a", "a": 1}));
        let _d = enter("d", json!({"k": "d"}));
        assert_eq!(current().to_value(), json!({"k": "d", "a": 1}));
    }

    #[test]
    fn snapshots_do_not_change_afterwards() {
        let _a = enter("a", json!({"x": 1}));
        let snapshot = current();
        let _b = enter("b", json!({"x": 2}));
        assert_eq!(snapshot.to_value(), json!({"x": 1}));
        assert_eq!(current().to_value(), json!({"x": 2}));
    }

    #[test]
    fn contexts_are_per_thread_and_carried_explicitly() {
        let _a = enter("a", json!({"x": 1}));
        let carried = current();
        std::thread::spawn(move || {
            assert!(current().is_empty(), "a new thread starts empty");
            carried.in_scope(|| {
                let _b = enter("b", json!({"y": 2}));
                assert_eq!(current().to_value(), json!({"x": 1, "y": 2}));
            });
            assert!(current().is_empty());
        })
        .join()
        .unwrap();
    }
}
