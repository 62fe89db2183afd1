//! `ConfigError`: what is wrong in a config file and where.

use std::fmt;

pub use tidings_toml::Location;

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
/// `backends.spade.processors[0].patterns`, and where it is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{}{}{message}",
    location.map(|l| format!("{l}: ")).unwrap_or_default(),
    if path.is_empty() { String::new() } else { format!("`{path}`: ") }
)]
pub struct ConfigError {
    /// Where: the path of the entry in the file (empty for the whole file).
    pub path: String,
    /// What kind of mistake.
    pub kind: ConfigErrorKind,
    /// What is wrong.
    pub message: String,
    /// The line and column of the entry in the file, when known.
    pub location: Option<Location>,
}

impl ConfigError {
    /// An error at `path` (print it with `ConfigPath`'s `Display`).
    pub fn new(path: impl fmt::Display, kind: ConfigErrorKind, message: impl Into<String>) -> Self {
        Self {
            path: path.to_string(),
            kind,
            message: message.into(),
            location: None,
        }
    }
}

impl From<tidings_toml::Mistake> for ConfigError {
    fn from(mistake: tidings_toml::Mistake) -> Self {
        let kind = match mistake.kind {
            tidings_toml::MistakeKind::Syntax => ConfigErrorKind::Syntax,
            tidings_toml::MistakeKind::UnknownKey => ConfigErrorKind::UnknownKey,
            tidings_toml::MistakeKind::Missing => ConfigErrorKind::Missing,
            _ => ConfigErrorKind::Invalid,
        };
        Self {
            path: mistake.path.to_string(),
            kind,
            message: mistake.message,
            location: mistake.location,
        }
    }
}

/// Every mistake found in a config, in the order of the file. Loading
/// reports them all at once, before anything starts.
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
        // Build errors are the machine's, not the file's: a sink that
        // cannot start, a log another process holds.
        let head = if self.0.iter().all(|e| e.kind == ConfigErrorKind::Build) {
            "cannot start"
        } else {
            "invalid config"
        };
        match self.0.as_slice() {
            [one] => write!(f, "{head}: {one}"),
            many => {
                write!(f, "{head} ({} problems):", many.len())?;
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
