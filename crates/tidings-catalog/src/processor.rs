//! The `catalog` and `pii_filter` processors.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tidings_event::Event;
use tidings_processors::{Processor, ProcessorError, PropertyAllowlist, Verdict};

use crate::spec::Shape;
use crate::{Catalog, ViolationKind};

/// The context key under which [`OnInvalid::Annotate`] notes a violation.
pub const VIOLATION_KEY: &str = "catalog_violation";

/// What the [`CatalogProcessor`] does with an event that does not match
/// the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnInvalid {
    /// Drop it (counted by reason in [`CatalogProcessor::stats`]).
    #[default]
    Drop,
    /// Pass it on with the violation noted in its context under
    /// [`VIOLATION_KEY`] (also counted).
    Annotate,
}

/// Validates each event against a [`Catalog`].
///
/// In strict mode an event whose name is not declared is a violation
/// (eventlib's `EventNotFound`); otherwise it passes unchecked. Violations
/// are counted by [`ViolationKind::code`].
#[derive(Debug)]
pub struct CatalogProcessor {
    catalog: Arc<Catalog>,
    strict: bool,
    on_invalid: OnInvalid,
    checked: AtomicU64,
    invalid: [AtomicU64; ViolationKind::CODES.len()],
}

/// What a [`CatalogProcessor`] has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogStats {
    /// Events checked.
    pub checked: u64,
    /// Events that did not match, by [`ViolationKind::code`] (only codes seen).
    pub invalid: BTreeMap<&'static str, u64>,
}

impl CatalogProcessor {
    /// A lenient processor (unknown names pass) that drops invalid events.
    #[must_use]
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self {
            catalog,
            strict: false,
            on_invalid: OnInvalid::Drop,
            checked: AtomicU64::new(0),
            invalid: Default::default(),
        }
    }

    /// Sets strict mode: names that are not declared are violations.
    #[must_use]
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Sets what happens to an invalid event.
    #[must_use]
    pub fn on_invalid(mut self, on_invalid: OnInvalid) -> Self {
        self.on_invalid = on_invalid;
        self
    }

    /// Counts so far.
    #[must_use]
    pub fn stats(&self) -> CatalogStats {
        CatalogStats {
            checked: self.checked.load(Ordering::Relaxed),
            invalid: ViolationKind::CODES
                .iter()
                .zip(&self.invalid)
                .map(|(code, n)| (*code, n.load(Ordering::Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }
}

impl Processor for CatalogProcessor {
    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessorError> {
        self.checked.fetch_add(1, Ordering::Relaxed);
        let Err(violation) = self.catalog.check(event, self.strict) else {
            return Ok(Verdict::Keep);
        };
        self.invalid[violation.kind().index()].fetch_add(1, Ordering::Relaxed);
        Ok(match self.on_invalid {
            OnInvalid::Drop => {
                tracing::debug!(target: "tidings::catalog", %violation, "dropped an invalid event");
                Verdict::Drop
            }
            OnInvalid::Annotate => {
                event
                    .context_mut()
                    .insert(VIOLATION_KEY.to_owned(), violation.to_string().into());
                Verdict::Keep
            }
        })
    }
}

/// Removes the properties the catalog marks `pii` from each event's data,
/// so that mirrors (flume, Spade) can be configured from the catalog
/// instead of a hand-kept allowlist.
///
/// With [`PiiFilter::drop_undeclared`], it keeps *only* declared, non-PII
/// properties (an allowlist made from the catalog) and drops events that
/// are not declared at all.
#[derive(Debug)]
pub struct PiiFilter {
    catalog: Arc<Catalog>,
    /// Per declaration (in catalog order): the allowlist of its declared,
    /// non-PII properties, when undeclared ones are dropped.
    allowlists: Option<Vec<PropertyAllowlist>>,
}

impl PiiFilter {
    /// Removes PII properties; everything else passes.
    #[must_use]
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self {
            catalog,
            allowlists: None,
        }
    }

    /// Also removes undeclared properties, and drops undeclared events.
    #[must_use]
    pub fn drop_undeclared(mut self) -> Self {
        let allowlists = self
            .catalog
            .events()
            .map(|spec| {
                let mut paths = Vec::new();
                safe_paths(spec.shape(), "", &mut paths);
                // Paths built from declared names are never empty or malformed
                // unless a name itself is empty; such a name keeps nothing.
                PropertyAllowlist::new(paths).unwrap_or_else(|_| empty_allowlist())
            })
            .collect();
        self.allowlists = Some(allowlists);
        self
    }
}

fn empty_allowlist() -> PropertyAllowlist {
    PropertyAllowlist::new(std::iter::empty::<String>()).unwrap_or_else(|_| unreachable!())
}

/// Dotted paths of the declared, non-PII leaves of `shape`.
fn safe_paths(shape: &Shape, prefix: &str, out: &mut Vec<String>) {
    for (name, property) in shape.properties() {
        if property.is_pii() {
            continue;
        }
        let path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        };
        if property.shape().properties().next().is_some() {
            safe_paths(property.shape(), &path, out);
        } else {
            out.push(path);
        }
    }
}

/// Removes the property at dotted `path` from `value`, if there.
fn remove_path(value: &mut serde_json::Value, path: &str) {
    let mut current = value;
    let mut segments = path.split('.').peekable();
    while let Some(segment) = segments.next() {
        let Some(object) = current.as_object_mut() else {
            return;
        };
        if segments.peek().is_none() {
            object.remove(segment);
            return;
        }
        match object.get_mut(segment) {
            Some(next) => current = next,
            None => return,
        }
    }
}

impl Processor for PiiFilter {
    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessorError> {
        let Some(index) = self.catalog.position(event.name().as_str()) else {
            return Ok(if self.allowlists.is_some() {
                Verdict::Drop
            } else {
                Verdict::Keep
            });
        };
        if let Some(allowlists) = &self.allowlists {
            allowlists[index].filter_value(event.data_mut());
            return Ok(Verdict::Keep);
        }
        let pii = self.catalog.events[index].pii_paths();
        if !pii.is_empty() {
            let data = event.data_mut();
            for path in pii {
                remove_path(data, path);
            }
        }
        Ok(Verdict::Keep)
    }
}
