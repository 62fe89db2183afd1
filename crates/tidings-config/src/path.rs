//! `ConfigPath`: the dotted path of an entry, as printed in errors.

use std::fmt;

#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Index(usize),
}

/// The path of an entry in a config file: `backends.spade.processors[0]`.
#[derive(Debug, Clone, Default)]
pub struct ConfigPath(Vec<Segment>);

impl ConfigPath {
    /// The root of the file.
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

    /// This path followed by a path inside the entry, as serde reports it
    /// (`retry.max_attempts`, `patterns[2]`).
    #[must_use]
    pub(crate) fn join(&self, inner: &str) -> String {
        match (self.to_string(), inner) {
            (outer, "" | ".") => outer,
            (outer, inner) if outer.is_empty() => inner.to_owned(),
            (outer, inner) if inner.starts_with('[') => format!("{outer}{inner}"),
            (outer, inner) => format!("{outer}.{inner}"),
        }
    }
}

fn is_bare(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl fmt::Display for ConfigPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    if is_bare(key) {
                        f.write_str(key)?
                    } else {
                        write!(f, "{key:?}")?
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
    fn prints_keys_dotted_and_indices_bracketed() {
        let path = ConfigPath::root()
            .key("backends")
            .key("spade")
            .key("processors")
            .index(0)
            .key("patterns");
        assert_eq!(path.to_string(), "backends.spade.processors[0].patterns");
        assert_eq!(
            ConfigPath::root()
                .key("backends")
                .key("my sink")
                .to_string(),
            "backends.\"my sink\""
        );
        assert_eq!(
            ConfigPath::root()
                .key("processors")
                .index(1)
                .join("patterns[2]"),
            "processors[1].patterns[2]"
        );
        assert_eq!(ConfigPath::root().key("collector").join("."), "collector");
    }
}
