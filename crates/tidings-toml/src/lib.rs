//! TOML files read into serde types with every mistake found at once, each
//! with its line and column, its quoted path, and plain words: the keys a
//! table takes and the nearest one to a typo, "a whole number of seconds,
//! like 60" rather than `expected u64`.
//!
//! The config and the event catalog of tidings both read TOML this way.
//!
//! ```
//! use serde::Deserialize;
//! use tidings_toml::{Document, KeyPath};
//!
//! #[derive(Debug, Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Sink { path: String, roll_events: Option<u64> }
//!
//! let text = "[out]\npath = 'events'\nroll_evnts = 10\n";
//! let document = Document::parse(text).map_err(|m| m.to_string())?;
//! let out = document.table()["out"].clone();
//! let mut mistakes = tidings_toml::deserialize::<Sink>(out, &KeyPath::root().key("out"), &[])
//!     .unwrap_err();
//! document.locate_all(&mut mistakes);
//! assert_eq!(
//!     mistakes[0].to_string(),
//!     "line 3, column 1: `out.roll_evnts`: unknown key `roll_evnts`; did you mean \
//!      `roll_events`? The keys here are: path, roll_events"
//! );
//! # Ok::<(), String>(())
//! ```

mod de;
mod document;
mod path;
mod words;

use std::fmt;

pub use de::deserialize;
pub use document::{Document, Location};
pub use path::{KeyPath, Segment};
pub use words::{did_you_mean, nearest};

/// The kind of a mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MistakeKind {
    /// The text is not valid TOML.
    Syntax,
    /// A key the table does not take.
    UnknownKey,
    /// A required key is absent.
    Missing,
    /// A value of the wrong type, or a value not allowed.
    Invalid,
}

/// One mistake in a document: where, what kind, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mistake {
    /// The entry at fault (the table, for a missing key).
    pub path: KeyPath,
    /// What kind of mistake.
    pub kind: MistakeKind,
    /// What is wrong, in plain words.
    pub message: String,
    /// Where the entry is written, when known.
    pub location: Option<Location>,
}

impl fmt::Display for Mistake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = self.location {
            write!(f, "{location}: ")?;
        }
        if !self.path.is_root() {
            write!(f, "`{}`: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Mistake {}

/// How a TOML value is called in messages: "a string", "an integer", ...
#[must_use]
pub fn type_name(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "a whole number",
        toml::Value::Float(_) => "a number",
        toml::Value::Boolean(_) => "true or false",
        toml::Value::Datetime(_) => "a date and time",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Retry {
        max_attempts: u32,
        initial_backoff_ms: Option<u64>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sink {
        path: String,
        roll_seconds: Option<u64>,
        patterns: Option<Vec<String>>,
        retry: Option<Retry>,
    }

    fn mistakes(text: &str) -> Vec<String> {
        let document = Document::parse(text).unwrap();
        let value = toml::Value::Table(document.table().clone());
        let mut found =
            deserialize::<Sink>(value, &KeyPath::root(), &["type", "max_events"]).unwrap_err();
        document.locate_all(&mut found);
        found.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_mistake_of_a_table_in_file_order_with_its_line() {
        assert_eq!(
            mistakes(
                "roll_seconds = 'soon'\nmax_evnts = 5\npatterns = ['a', 3]\nretry = { max_attempts = -1, initial_backof_ms = 1 }\ncolour = 'red'\n"
            ),
            [
                "line 1, column 1: `roll_seconds`: expected a whole number of seconds, like 60, found the string \"soon\"",
                "line 2, column 1: `max_evnts`: unknown key `max_evnts`; did you mean `max_events`? The keys here are: path, roll_seconds, patterns, retry, type, max_events",
                "line 3, column 18: `patterns[1]`: expected a string in quotes, found the number 3",
                "line 4, column 11: `retry.max_attempts`: expected a whole number, like 100, found the number -1",
                "line 4, column 30: `retry.initial_backof_ms`: unknown key `initial_backof_ms`; did you mean `initial_backoff_ms`? The keys here are: max_attempts, initial_backoff_ms",
                "line 5, column 1: `colour`: unknown key `colour`. The keys here are: path, roll_seconds, patterns, retry, type, max_events",
                "the required key `path` is missing",
            ]
        );
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        name: String,
        size: Option<u64>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Items {
        items: Vec<Item>,
    }

    #[test]
    fn mistakes_in_several_elements_of_an_array_of_tables_are_all_found() {
        let text = "[[items]]\nname = 'a'\nsize = 'big'\n\n[[items]]\nname = 'b'\ncolor = 'red'\n";
        let document = Document::parse(text).unwrap();
        assert!(format!("{document:?}").starts_with("Document { table: "));
        let value = toml::Value::Table(document.into_table());
        let found = deserialize::<Items>(value, &KeyPath::root(), &[]).unwrap_err();
        let paths: Vec<String> = found.iter().map(|m| m.path.to_string()).collect();
        assert_eq!(paths, ["items[0].size", "items[1].color"]);
    }

    #[test]
    fn a_valid_table_reads() {
        let value: toml::Value =
            toml::from_str("path = 'x'\nretry = { max_attempts = 3 }").unwrap();
        let sink: Sink = deserialize(value, &KeyPath::root(), &[]).unwrap();
        assert_eq!(sink.path, "x");
        assert_eq!(sink.retry.unwrap().max_attempts, 3);
    }

    #[test]
    fn a_key_taken_out_for_its_mistake_is_not_also_called_missing() {
        let value: toml::Value = toml::from_str("path = 3").unwrap();
        let found = deserialize::<Sink>(value, &KeyPath::root().key("out"), &[]).unwrap_err();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path.to_string(), "out.path");
        assert_eq!(found[0].kind, MistakeKind::Invalid);
    }

    #[test]
    fn type_names_are_plain() {
        let names: Vec<&str> = [
            "a = 's'",
            "a = 1",
            "a = 1.5",
            "a = true",
            "a = 1979-05-27",
            "a = []",
            "a = {}",
        ]
        .iter()
        .map(|text| type_name(&toml::from_str::<toml::Table>(text).unwrap()["a"]))
        .collect();
        assert_eq!(
            names,
            [
                "a string",
                "a whole number",
                "a number",
                "true or false",
                "a date and time",
                "a list",
                "a table"
            ]
        );
    }
}
