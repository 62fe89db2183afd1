//! `ConfigError`: what is wrong in a config file and where.

use std::fmt;

/// The kind of a configuration mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The file is not valid TOML.
    Syntax,
    /// A `type` names no registered sink, processor or router type.
    UnknownType,
    /// A key that the entry does not take.
    UnknownKey,
    /// A required key is absent.
    Missing,
    /// A value has the wrong type or an invalid value (a bad regex, say).
    Invalid,
    /// Building a valid entry failed (a sink could not start).
    Build,
}

/// One mistake, with the dotted path of the offending entry, such as
/// `backends.spade.processors[0].patterns`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct ConfigError {
    /// Where: the path of the entry in the file (empty for the whole file).
    pub path: String,
    /// What kind of mistake.
    pub kind: ConfigErrorKind,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error at `path` (print it with `ConfigPath`'s `Display`).
    pub fn new(path: impl fmt::Display, kind: ConfigErrorKind, message: impl Into<String>) -> Self {
        Self {
            path: path.to_string(),
            kind,
            message: message.into(),
        }
    }
}

/// Every mistake found in a config, tables in key order. Loading reports them all
/// at once, before anything starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The mistakes.
    #[must_use]
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "invalid config: {one}"),
            many => {
                write!(f, "invalid config ({} errors):", many.len())?;
                for error in many {
                    write!(f, "\n  {error}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        Self(vec![error])
    }
}
