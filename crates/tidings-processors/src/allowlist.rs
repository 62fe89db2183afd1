//! `PropertyAllowlist`: keep only listed data properties (dotted paths).

use std::collections::BTreeMap;

use serde_json::Value;
use tidings_event::{Event, Map};

use crate::{Processor, ProcessorError, Verdict};

/// An allowlist entry that is not a usable dotted path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid property path {path:?} (entry {index}): segments must not be empty")]
pub struct AllowlistError {
    /// Position of the entry in the list.
    pub index: usize,
    /// The entry.
    pub path: String,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// The whole value at this path is allowed.
    whole: bool,
    children: BTreeMap<String, Node>,
}

/// Keeps only the listed properties of an event's data, so that no PII
/// leaks (tachyon flume's `allowedProperties`).
///
/// A path is a property name, or a dotted path reaching into nested
/// objects: `page.title` keeps `data.page.title` and nothing else of
/// `data.page`. A listed path whose parent is not an object keeps nothing.
/// Data that is not an object has no properties and becomes `{}`. Property
/// names that contain a dot cannot be listed.
#[derive(Debug, Clone)]
pub struct PropertyAllowlist {
    paths: Vec<String>,
    root: Node,
}

impl PropertyAllowlist {
    /// An allowlist of `paths`.
    ///
    /// # Errors
    ///
    /// [`AllowlistError`] for the first path with an empty segment (`""`,
    /// `"a..b"`, `".a"`).
    pub fn new<I>(paths: I) -> Result<Self, AllowlistError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let paths: Vec<String> = paths.into_iter().map(Into::into).collect();
        let mut root = Node::default();
        for (index, path) in paths.iter().enumerate() {
            if path.split('.').any(str::is_empty) {
                return Err(AllowlistError {
                    index,
                    path: path.clone(),
                });
            }
            let node = path.split('.').fold(&mut root, |node, segment| {
                node.children.entry(segment.to_owned()).or_default()
            });
            node.whole = true;
        }
        Ok(Self { paths, root })
    }

    /// The paths, as given.
    #[must_use]
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    /// Filters an object in place, keeping only allowed paths.
    pub fn filter_map(&self, map: &mut Map) {
        filter_object(map, &self.root);
    }

    /// Filters a value in place: an object keeps only allowed paths, any
    /// other value becomes `{}`.
    pub fn filter_value(&self, value: &mut Value) {
        match value {
            Value::Object(map) => self.filter_map(map),
            other => *other = Value::Object(Map::new()),
        }
    }
}

fn filter_object(map: &mut Map, node: &Node) {
    map.retain(|key, value| match node.children.get(key) {
        None => false,
        Some(child) if child.whole => true,
        Some(child) => match value {
            Value::Object(inner) => {
                filter_object(inner, child);
                true
            }
            _ => false,
        },
    });
}

impl Processor for PropertyAllowlist {
    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessorError> {
        self.filter_value(event.data_mut());
        Ok(Verdict::Keep)
    }

    /// `property_allowlist allowed ["url", "page.title"]`.
    fn describe(&self) -> String {
        format!("property_allowlist allowed {:?}", self.paths)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tidings_event::EventName;

    use super::*;

    fn filtered(paths: &[&str], data: Value) -> Value {
        let allow = PropertyAllowlist::new(paths.iter().copied()).unwrap();
        let mut event = Event::new(EventName::new("a").unwrap(), data);
        assert_eq!(allow.process(&mut event).unwrap(), Verdict::Keep);
        event.data().clone()
    }

    #[test]
    fn keeps_only_listed_top_level_properties() {
        assert_eq!(
            filtered(
                &["url", "button"],
                json!({"url": "/", "button": "ok", "email": "a@b.c"})
            ),
            json!({"url": "/", "button": "ok"})
        );
    }

    #[test]
    fn dotted_paths_reach_into_nested_objects() {
        let data = json!({"user": {"id": 1, "email": "a@b.c", "prefs": {"lang": "fr", "phone": "1"}}, "ip": "1.2.3.4"});
        assert_eq!(
            filtered(&["user.id", "user.prefs.lang"], data),
            json!({"user": {"id": 1, "prefs": {"lang": "fr"}}})
        );
    }

    #[test]
    fn a_parent_path_keeps_the_whole_subtree() {
        let data = json!({"user": {"id": 1, "email": "a@b.c"}});
        assert_eq!(filtered(&["user", "user.id"], data.clone()), data);
    }

    #[test]
    fn paths_through_non_objects_keep_nothing() {
        assert_eq!(filtered(&["user.id"], json!({"user": "bob"})), json!({}));
    }

    #[test]
    fn non_object_data_becomes_empty() {
        assert_eq!(filtered(&["a"], json!([1, 2])), json!({}));
        assert_eq!(filtered(&["a"], json!("text")), json!({}));
    }

    #[test]
    fn empty_segments_are_rejected_with_their_index() {
        let err = PropertyAllowlist::new(["ok", "a..b"]).unwrap_err();
        assert_eq!(
            err,
            AllowlistError {
                index: 1,
                path: "a..b".into()
            }
        );
        assert!(PropertyAllowlist::new([""]).is_err());
        assert!(PropertyAllowlist::new([".a"]).is_err());
    }
}
