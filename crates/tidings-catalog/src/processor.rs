//! The `catalog` and `pii_filter` processors.

use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tidings_core::{BoxError, EmitCheck};
use tidings_event::Event;
use tidings_processors::{Processor, ProcessorError, PropertyAllowlist, Verdict};

use crate::spec::Shape;
use crate::{Catalog, Violation, ViolationKind};

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

/// How many event names a lenient [`CatalogProcessor`] remembers having
/// warned about at the call; violations of further names are logged at
/// debug level only.
const MAX_WARNED_NAMES: usize = 1024;

thread_local! {
    /// The last event this thread's [`EmitCheck`] passed, so that the same
    /// processor, further down the same emit, does not validate it again:
    /// (processor address, event id, address and length of the data text).
    /// The text is only ever replaced by parsing it (`Event::data_mut`,
    /// after which there is no text) or by copying the event (a new
    /// buffer), so a match means the data has not changed since.
    static PASSED: Cell<Mark> = const { Cell::new(NO_MARK) };
}

/// An entry of [`PASSED`]; every event's differs from [`NO_MARK`].
type Mark = (usize, u128, usize, usize);

/// [`PASSED`] when no event is marked.
const NO_MARK: Mark = (0, 0, 0, 0);

/// Validates each event against a [`Catalog`].
///
/// In strict mode an event whose name is not declared is a violation
/// (eventlib's `EventNotFound`); otherwise it passes unchecked. Violations
/// are counted by [`ViolationKind::code`].
///
/// It is also an [`EmitCheck`]: a tracker built with a catalog (or from a
/// config whose root chain has a `catalog` processor) checks each emit
/// with it before routing. Strict, a violation fails the emit with the
/// [`Violation`] (counted here as the processor would have); lenient, it
/// is logged as a warning the first time an event name violates, and the
/// event goes on to this processor, which drops or annotates it as
/// always. An event that passed at the call is not validated again when
/// it reaches this processor in the same emit.
#[derive(Debug)]
pub struct CatalogProcessor {
    catalog: Arc<Catalog>,
    strict: bool,
    on_invalid: OnInvalid,
    checked: AtomicU64,
    invalid: [AtomicU64; ViolationKind::CODES.len()],
    /// The names a lenient check at the call has warned about.
    warned: Mutex<HashSet<String>>,
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
            warned: Mutex::default(),
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

    /// The catalog.
    #[must_use]
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Whether names that are not declared are violations.
    #[must_use]
    pub fn is_strict(&self) -> bool {
        self.strict
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

    /// This processor's mark for `event` in [`PASSED`]: `None` when the
    /// event's data is not text (it is then validated again).
    fn mark(&self, event: &Event) -> Option<Mark> {
        let text = event.data_text()?;
        Some((
            std::ptr::from_ref(self) as usize,
            event.id().as_uuid().as_u128(),
            text.as_ptr() as usize,
            text.len(),
        ))
    }

    /// Whether this thread's check at the call passed `event` unchanged
    /// (once: the mark is cleared).
    fn passed_at_call(&self, event: &Event) -> bool {
        let Some(mark) = self.mark(event) else {
            return false;
        };
        PASSED.with(|passed| {
            let matches = passed.get() == mark;
            if matches {
                passed.set(NO_MARK);
            }
            matches
        })
    }

    /// Logs a lenient violation at the call: a warning the first time its
    /// event name violates, debug afterwards.
    fn warn_once(&self, violation: &Violation) {
        let first = {
            let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
            warned.len() < MAX_WARNED_NAMES
                && !warned.contains(violation.event())
                && warned.insert(violation.event().to_owned())
        };
        let outcome = match self.on_invalid {
            OnInvalid::Drop => "the catalog processor drops it",
            OnInvalid::Annotate => "the catalog processor passes it annotated",
        };
        if first {
            tracing::warn!(
                target: "tidings::catalog",
                event = violation.event(),
                %violation,
                "an emitted event does not match the catalog; {outcome} (warned once per event name)"
            );
        } else {
            tracing::debug!(target: "tidings::catalog", %violation, "an emitted event does not match the catalog");
        }
    }
}

impl EmitCheck for CatalogProcessor {
    /// Validates `event` at the call. Strict, a violation refuses it
    /// (counted in [`CatalogProcessor::stats`], as the processor would have
    /// counted it); lenient, it passes, with a warning the first time its
    /// name violates.
    fn check(&self, event: &Event) -> Result<(), BoxError> {
        let result = self.catalog.check(event, self.strict);
        let mark = match &result {
            Ok(()) => self.mark(event).unwrap_or(NO_MARK),
            Err(_) => NO_MARK,
        };
        PASSED.with(|passed| passed.set(mark));
        match result {
            Ok(()) => Ok(()),
            Err(violation) if self.strict => {
                self.checked.fetch_add(1, Ordering::Relaxed);
                self.invalid[violation.kind().index()].fetch_add(1, Ordering::Relaxed);
                Err(Box::new(violation))
            }
            Err(violation) => {
                self.warn_once(&violation);
                Ok(())
            }
        }
    }
}

impl Processor for CatalogProcessor {
    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessorError> {
        self.checked.fetch_add(1, Ordering::Relaxed);
        if self.passed_at_call(event) {
            return Ok(Verdict::Keep);
        }
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

    /// `catalog (12 events, strict, invalid events dropped)`.
    fn describe(&self) -> String {
        format!(
            "catalog ({} events, {}, invalid events {})",
            self.catalog.events().len(),
            if self.strict { "strict" } else { "lenient" },
            match self.on_invalid {
                OnInvalid::Drop => "dropped",
                OnInvalid::Annotate => "annotated and kept",
            }
        )
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

    /// `pii_filter (a catalog of 12 events)`, with `, and undeclared
    /// properties` when it drops those too.
    fn describe(&self) -> String {
        format!(
            "pii_filter (a catalog of {} events{})",
            self.catalog.events().len(),
            if self.allowlists.is_some() {
                ", and undeclared properties"
            } else {
                ""
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tidings_event::EventName;

    use super::*;

    fn strict() -> CatalogProcessor {
        let catalog = Catalog::from_toml_str(
            r#"
            [events."page.view"]
            properties.path = { type = "string", required = true }
            "#,
            "test",
        )
        .unwrap();
        CatalogProcessor::new(Arc::new(catalog)).strict(true)
    }

    fn event(name: &str, data: &serde_json::Value) -> Event {
        Event::from_serializable(EventName::new(name.to_owned()).unwrap(), data).unwrap()
    }

    #[test]
    fn an_event_passed_at_the_call_is_recognised_once_and_unchanged_only() {
        let processor = strict();
        let event = event("page.view", &json!({"path": "/"}));
        processor.check(&event).unwrap();
        let copy = event.clone();
        assert!(!processor.passed_at_call(&copy), "a copy has its own text");
        assert!(processor.passed_at_call(&event));
        assert!(!processor.passed_at_call(&event), "once");

        // Another processor over the same catalog does not take the mark.
        let other = strict();
        processor.check(&event).unwrap();
        assert!(!other.passed_at_call(&event));

        // Changed data (parsed, its text dropped) is validated again.
        let mut changed = event;
        processor.check(&changed).unwrap();
        changed.data_mut()["path"] = json!(7);
        assert!(!processor.passed_at_call(&changed));
        assert_eq!(processor.process(&mut changed).unwrap(), Verdict::Drop);
    }

    #[test]
    fn a_refusal_at_the_call_clears_the_mark_and_is_counted() {
        let processor = strict();
        let valid = event("page.view", &json!({"path": "/"}));
        processor.check(&valid).unwrap();
        let refused = processor
            .check(&event("page.typo", &json!({})))
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            r#"event "page.typo" is not in the catalog"#
        );
        assert!(!processor.passed_at_call(&valid));
        let stats = processor.stats();
        assert_eq!((stats.checked, stats.invalid["unknown_event"]), (1, 1));
    }
}
