//! `KeyPath`: where an entry is in a TOML document, as printed in messages.

use std::fmt;

/// One step of a [`KeyPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// The entry `key` of a table.
    Key(String),
    /// The element `index` of an array (or array of tables).
    Index(usize),
}

/// The path of an entry in a TOML document, such as
/// `backends.spade.processors[0].patterns`.
///
/// Printed as TOML would write it: bare keys dotted, other keys quoted
/// (`events."app.login".properties`), indices in brackets. [`KeyPath::parse`]
/// reads that form back.
///
/// ```
/// use tidings_toml::KeyPath;
///
/// let path = KeyPath::root().key("events").key("app.login").key("properties");
/// assert_eq!(path.to_string(), r#"events."app.login".properties"#);
/// assert_eq!(KeyPath::parse(&path.to_string()), Some(path));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeyPath(Vec<Segment>);

impl KeyPath {
    /// The root of the document.
    #[must_use]
    pub fn root() -> Self {
        Self::default()
    }

    /// The entry `key` of this table.
    #[must_use]
    pub fn key(&self, key: &str) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_owned()));
        path
    }

    /// The element `index` of this array.
    #[must_use]
    pub fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }

    /// This path followed by `inner`, a path relative to this entry.
    #[must_use]
    pub fn append(&self, inner: &KeyPath) -> Self {
        let mut path = self.clone();
        path.0.extend(inner.0.iter().cloned());
        path
    }

    /// This path followed by `inner`, written as [`KeyPath`] prints
    /// (`retry.max_attempts`, `patterns[2]`, or empty for this entry). An
    /// `inner` that does not parse is taken as one key.
    #[must_use]
    pub fn join(&self, inner: &str) -> Self {
        match inner {
            "" | "." => self.clone(),
            inner => match Self::parse(inner) {
                Some(inner) => self.append(&inner),
                None => self.key(inner),
            },
        }
    }

    /// The steps, from the root.
    #[must_use]
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// Whether this is the root.
    #[must_use]
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The last key of the path (`patterns` for `processors[0].patterns[2]`).
    #[must_use]
    pub fn last_key(&self) -> Option<&str> {
        self.0.iter().rev().find_map(|segment| match segment {
            Segment::Key(key) => Some(key.as_str()),
            Segment::Index(_) => None,
        })
    }

    /// This path without its last step; the root for the root.
    #[must_use]
    pub fn parent(&self) -> Self {
        let mut path = self.clone();
        path.0.pop();
        path
    }

    /// Reads a path written as [`KeyPath`] prints it; `None` when `text`
    /// is not such a path.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let mut segments = Vec::new();
        let mut chars = text.chars().peekable();
        let mut expect_key = true;
        while let Some(&c) = chars.peek() {
            match c {
                '[' => {
                    chars.next();
                    let mut digits = String::new();
                    for c in chars.by_ref() {
                        if c == ']' {
                            break;
                        }
                        digits.push(c);
                    }
                    segments.push(Segment::Index(digits.parse().ok()?));
                    expect_key = false;
                }
                '.' if !expect_key => {
                    chars.next();
                    expect_key = true;
                }
                '"' if expect_key => {
                    chars.next();
                    let mut key = String::new();
                    loop {
                        match chars.next()? {
                            '"' => break,
                            '\\' => key.push(match chars.next()? {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                other => other,
                            }),
                            other => key.push(other),
                        }
                    }
                    segments.push(Segment::Key(key));
                    expect_key = false;
                }
                _ if expect_key => {
                    let mut key = String::new();
                    while let Some(&c) = chars.peek() {
                        if c == '.' || c == '[' {
                            break;
                        }
                        key.push(c);
                        chars.next();
                    }
                    if !is_bare(&key) {
                        return None;
                    }
                    segments.push(Segment::Key(key));
                    expect_key = false;
                }
                _ => return None,
            }
        }
        (!expect_key || segments.is_empty()).then_some(Self(segments))
    }
}

fn is_bare(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    if is_bare(key) {
                        f.write_str(key)?;
                    } else {
                        write!(f, "{key:?}")?;
                    }
                }
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_keys_dotted_quoted_when_not_bare_and_indices_bracketed() {
        let path = KeyPath::root()
            .key("backends")
            .key("spade")
            .key("processors")
            .index(0)
            .key("patterns");
        assert_eq!(path.to_string(), "backends.spade.processors[0].patterns");
        assert_eq!(
            KeyPath::root().key("backends").key("my sink").to_string(),
            "backends.\"my sink\""
        );
        assert_eq!(
            KeyPath::root()
                .key("processors")
                .index(1)
                .join("patterns[2]")
                .to_string(),
            "processors[1].patterns[2]"
        );
        assert_eq!(
            KeyPath::root().key("collector").join("."),
            KeyPath::root().key("collector")
        );
        assert_eq!(KeyPath::root().to_string(), "");
    }

    #[test]
    fn parses_what_it_prints() {
        for path in [
            KeyPath::root(),
            KeyPath::root().key("a"),
            KeyPath::root().key("a.b").key("c d").index(3).key("e\"f"),
            KeyPath::root().key("x").index(0).index(1),
        ] {
            assert_eq!(
                KeyPath::parse(&path.to_string()),
                Some(path.clone()),
                "{path}"
            );
        }
        for bad in [
            "a..b",
            ".a",
            "a.",
            "a[x]",
            "\"open",
            "a b",
            "a\"b\"",
            "a[0]b",
            "\"a\"\"b\"",
        ] {
            assert_eq!(KeyPath::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn last_key_and_parent() {
        let path = KeyPath::root()
            .key("processors")
            .index(0)
            .key("patterns")
            .index(2);
        assert_eq!(path.last_key(), Some("patterns"));
        assert_eq!(path.parent().to_string(), "processors[0].patterns");
        assert_eq!(KeyPath::root().last_key(), None);
        assert!(KeyPath::root().parent().is_root());
        assert_eq!(
            KeyPath::root().join("odd key!"),
            KeyPath::root().key("odd key!")
        );
    }
}
