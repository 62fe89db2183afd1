//! `Context`: an immutable, cheaply cloned snapshot of merged context values.

use std::sync::Arc;

use serde_json::Value;
use tidings_event::Map;

/// A merged context snapshot: the JSON object attached to events.
///
/// Cloning is an `Arc` clone. A `Context` taken with [`current`](crate::current)
/// does not change when contexts are later entered or exited.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context(Arc<Map>);

impl Context {
    /// A context holding `values`.
    #[must_use]
    pub fn new(values: Map) -> Self {
        Self(Arc::new(values))
    }

    /// The empty context.
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// The merged values.
    #[must_use]
    pub fn as_map(&self) -> &Map {
        &self.0
    }

    /// The merged values, cloned only if this snapshot is shared.
    #[must_use]
    pub fn into_map(self) -> Map {
        Arc::try_unwrap(self.0).unwrap_or_else(|shared| (*shared).clone())
    }

    /// The merged values as a shared map, without copying them: what
    /// [`Event::with_context`](tidings_event::Event::with_context) takes.
    #[must_use]
    pub fn into_shared(self) -> Arc<Map> {
        self.0
    }

    /// The value of one key.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// Whether no values are set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The merged values as a JSON object value.
    #[must_use]
    pub fn to_value(&self) -> Value {
        Value::Object((*self.0).clone())
    }

    /// Runs `f` on this thread with this snapshot as the whole context (the
    /// thread's own stack is set aside and restored afterwards, even on
    /// panic). Use it to carry a context into a thread you spawn.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let mut stack = crate::stack::Stack::with_base(self.clone());
        let _swapped = crate::stack::Swap::new(&mut stack);
        f()
    }
}

impl From<Context> for Arc<Map> {
    fn from(context: Context) -> Self {
        context.0
    }
}

impl From<Map> for Context {
    fn from(values: Map) -> Self {
        Self::new(values)
    }
}

/// Values that can be entered as a named context.
///
/// Implemented for a JSON [`Map`] and a JSON [`Value`]: an object contributes
/// its keys; `null` contributes nothing; any other value is stored under the
/// context's own name, so `enter("user_id", json!(7))` sets `user_id = 7`.
pub trait IntoContextMap {
    /// Converts `self` into the values of the context named `name`.
    fn into_context_map(self, name: &str) -> Map;
}

impl IntoContextMap for Map {
    fn into_context_map(self, _name: &str) -> Map {
        self
    }
}

impl IntoContextMap for Value {
    fn into_context_map(self, name: &str) -> Map {
        match self {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => Map::from_iter([(name.to_owned(), other)]),
        }
    }
}
