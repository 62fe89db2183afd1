//! `tidings catalog check`: what is wrong or missing in a catalog.

use std::fmt;

use crate::Catalog;

/// How serious a [`Lint`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something that makes the catalog wrong (an example that does not
    /// match its own declaration).
    Error,
    /// Something missing that the documentation needs.
    Warning,
}

/// One finding of [`lint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lint {
    /// How serious it is.
    pub level: Level,
    /// Where, as a path in the catalog file.
    pub path: String,
    /// What.
    pub message: String,
}

impl fmt::Display for Lint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(f, "{level}: {}: {}", self.path, self.message)
    }
}

/// Checks what loading cannot: examples against their declaration, and
/// missing descriptions, owners and examples. Errors come first.
#[must_use]
pub fn lint(catalog: &Catalog) -> Vec<Lint> {
    let mut lints = Vec::new();
    for spec in catalog.events() {
        let path = format!("events.{:?}", spec.name().to_string());
        let mut warn = |path: String, message: &str| {
            lints.push(Lint {
                level: Level::Warning,
                path,
                message: message.to_owned(),
            });
        };
        if spec.description().is_none() {
            warn(path.clone(), "no description");
        }
        if spec.owner_name().is_none() {
            warn(path.clone(), "no owner");
        }
        if spec.examples().is_empty() {
            warn(path.clone(), "no examples");
        }
        for (name, property) in spec.shape().properties() {
            if property.description().is_none() {
                warn(format!("{path}.properties.{name}"), "no description");
            }
        }
        // An example of a family is checked as if named by the family's prefix.
        let name = spec.name().to_string();
        let name = name.trim_end_matches('*');
        for (i, example) in spec.examples().iter().enumerate() {
            if let Err(violation) = crate::validate::validate_value(spec, name, example) {
                lints.push(Lint {
                    level: Level::Error,
                    path: format!("{path}.examples[{i}]"),
                    message: violation.to_string(),
                });
            }
        }
    }
    lints.sort_by_key(|l| l.level);
    lints
}
