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

/// Values that can be entered as a named context: anything that
/// serializes to JSON (as `emit` takes any `Serialize` for its data).
///
/// An object contributes its keys; `null` (or `()`) contributes nothing;
/// any other value is stored under the context's own name, so
/// `enter("user_id", 7)` sets `user_id = 7`. A value that cannot be
/// represented as JSON (a map with non-string keys) is stored under the
/// context's name as the error's text, so the mistake shows in every event
/// instead of vanishing.
pub trait IntoContextMap {
    /// Converts `self` into the values of the context named `name`.
    fn into_context_map(self, name: &str) -> Map;
}

impl<T: serde::Serialize> IntoContextMap for T {
    fn into_context_map(self, name: &str) -> Map {
        match serde_json::to_value(&self) {
            Ok(Value::Object(map)) => map,
            Ok(Value::Null) => Map::new(),
            Ok(other) => Map::from_iter([(name.to_owned(), other)]),
            Err(error) => Map::from_iter([(
                name.to_owned(),
                Value::String(format!(
                    "context {name:?} is not representable as JSON: {error}"
                )),
            )]),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    #[test]
    fn anything_serializable_enters_as_a_context() {
        #[derive(serde::Serialize)]
        struct User {
            user_id: u64,
        }
        assert_eq!(
            Value::Object(User { user_id: 7 }.into_context_map("user")),
            json!({"user_id": 7})
        );
        assert_eq!(
            Value::Object(42.into_context_map("course")),
            json!({"course": 42})
        );
        assert_eq!(
            Value::Object("x".into_context_map("org")),
            json!({"org": "x"})
        );
        assert!(().into_context_map("nothing").is_empty());
        assert_eq!(
            Value::Object(json!({"a": 1}).into_context_map("ignored")),
            json!({"a": 1})
        );
        let map: Map = json!({"b": 2}).as_object().unwrap().clone();
        assert_eq!(
            Value::Object(map.into_context_map("ignored")),
            json!({"b": 2})
        );
    }

    #[test]
    fn a_value_json_cannot_hold_says_so_under_the_contexts_name() {
        let bad = BTreeMap::from([((1, 2), "pair keys")]);
        let map = bad.into_context_map("odd");
        let text = map["odd"].as_str().unwrap();
        assert!(
            text.starts_with("context \"odd\" is not representable as JSON: "),
            "{text}"
        );
    }
}
