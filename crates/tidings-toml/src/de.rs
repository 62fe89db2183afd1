//! Reading a TOML value into a serde type, reporting every mistake.

use serde::de::DeserializeOwned;

use crate::words::{Explained, explain};
use crate::{KeyPath, Mistake, MistakeKind, Segment};

/// Reads `value`, the entry at `at`, into `T`, finding every mistake in it
/// rather than the first.
///
/// serde stops at the first mistake; this reads again without the entry at
/// fault until the rest reads (a bounded loop: each round removes an
/// entry). Each mistake is in plain words: an unknown key lists every key
/// the table takes (its fields and `also_allowed`, keys of the table that
/// the caller reads itself) and names the nearest one; a wrong type says
/// what was expected the way a config's author writes it ("a whole number
/// of seconds, like 60").
///
/// ```
/// use serde::Deserialize;
/// use tidings_toml::{KeyPath, MistakeKind};
///
/// #[derive(Debug, Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct File { path: String, roll_seconds: u64, roll_events: Option<u64> }
///
/// let value: toml::Value = toml::from_str("roll_evnts = 10\nroll_seconds = 'x'\n")?;
/// let mistakes = tidings_toml::deserialize::<File>(value, &KeyPath::root().key("out"), &["type"])
///     .unwrap_err();
/// let messages: Vec<String> = mistakes.iter().map(|m| format!("{}: {}", m.path, m.message)).collect();
/// assert_eq!(messages, [
///     "out.roll_evnts: unknown key `roll_evnts`; did you mean `roll_events`? \
///      The keys here are: path, roll_seconds, roll_events, type",
///     "out.roll_seconds: expected a whole number of seconds, like 60, found the string \"x\"",
///     "out: the required key `path` is missing",
/// ]);
/// # Ok::<(), toml::de::Error>(())
/// ```
///
/// # Errors
///
/// Every mistake found, each with its path (from `at`); their locations
/// are left for [`crate::Document::locate_all`].
pub fn deserialize<T: DeserializeOwned>(
    mut value: toml::Value,
    at: &KeyPath,
    also_allowed: &[&str],
) -> Result<T, Vec<Mistake>> {
    let mut mistakes = Vec::new();
    let mut removed: Vec<KeyPath> = Vec::new();
    loop {
        let error = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(read) if mistakes.is_empty() => return Ok(read),
            Ok(_) => return Err(mistakes),
            Err(error) => error,
        };
        let inner = relative_path(error.path());
        let message = error.into_inner().to_string();
        let allowed = if inner.segments().len() <= 1 {
            also_allowed
        } else {
            &[]
        };
        let explained = explain(&message, inner.last_key(), allowed);
        // Where the mistake is, and which entry to take out to read on.
        let (path, kind, remove) = match &explained {
            Explained::UnknownKey { key, .. } => {
                let path = if inner.last_key() == Some(key.as_str()) {
                    inner.clone()
                } else {
                    inner.key(key)
                };
                (path.clone(), MistakeKind::UnknownKey, path)
            }
            Explained::Missing { .. } => (inner.clone(), MistakeKind::Missing, inner.clone()),
            Explained::Other(_) => (inner.clone(), MistakeKind::Invalid, inner.clone()),
        };
        // A key taken out for its own mistake is missing now: said already.
        let said =
            matches!(&explained, Explained::Missing { key } if removed.contains(&inner.key(key)));
        if !said {
            mistakes.push(Mistake {
                path: at.append(&path),
                kind,
                message: explained.message(),
                location: None,
            });
        }
        let remove = entry_of(&remove);
        if remove.is_root() || !take(&mut value, &remove) {
            return Err(mistakes);
        }
        removed.push(remove);
    }
}

/// serde's path of a mistake, relative to the value read.
fn relative_path(path: &serde_path_to_error::Path) -> KeyPath {
    let mut out = KeyPath::root();
    for segment in path.iter() {
        out = match segment {
            serde_path_to_error::Segment::Seq { index } => out.index(*index),
            serde_path_to_error::Segment::Map { key } => out.key(key),
            serde_path_to_error::Segment::Enum { .. } => continue,
            serde_path_to_error::Segment::Unknown => break,
        };
    }
    out
}

/// The table entry holding `path`: an array element's mistake takes its
/// whole array out (taking one element would renumber the others).
fn entry_of(path: &KeyPath) -> KeyPath {
    let mut entry = path.clone();
    while matches!(entry.segments().last(), Some(Segment::Index(_))) {
        entry = entry.parent();
    }
    entry
}

/// Removes the entry at `path` (which ends with a key); `false` when there
/// is none.
fn take(value: &mut toml::Value, path: &KeyPath) -> bool {
    let Some((Segment::Key(last), parents)) = path.segments().split_last() else {
        return false;
    };
    let mut node = value;
    for segment in parents {
        node = match (segment, node) {
            (Segment::Key(key), toml::Value::Table(table)) => match table.get_mut(key) {
                Some(next) => next,
                None => return false,
            },
            (Segment::Index(index), toml::Value::Array(array)) => match array.get_mut(*index) {
                Some(next) => next,
                None => return false,
            },
            _ => return false,
        };
    }
    match node {
        toml::Value::Table(table) => table.remove(last).is_some(),
        _ => false,
    }
}
