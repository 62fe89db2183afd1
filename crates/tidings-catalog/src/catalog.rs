//! `Catalog`: the declared events, loaded from TOML or built in code.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use tidings_event::Event;

use crate::spec::{EventSpec, MAX_REQUIRED, NamePattern, Pattern, Property, PropertyType, Shape};
use crate::validate::{validate_event, validate_value};
use crate::violation::{Violation, ViolationKind};

/// A set of declared events, looked up by name: an exact declaration wins,
/// then the family with the longest prefix.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    title: Option<String>,
    description: Option<String>,
    /// In name order.
    pub(crate) events: Vec<EventSpec>,
    exact: HashMap<String, usize, BuildNameHasher>,
    /// Indexes of the families, longest prefix first.
    families: Vec<usize>,
}

/// A word-at-a-time multiplicative hash for event names (the Fx hash of
/// rustc). Clients choose the names they look up but never insert any: the
/// table is fixed when the catalog loads, so a keyed hash buys no
/// protection, and SipHash cost a tenth of a validation.
#[derive(Debug, Clone, Copy, Default)]
struct BuildNameHasher;

#[derive(Debug)]
struct NameHasher(u64);

impl std::hash::BuildHasher for BuildNameHasher {
    type Hasher = NameHasher;
    fn build_hasher(&self) -> NameHasher {
        NameHasher(0)
    }
}

impl NameHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }
}

/// One thing wrong in a catalog, at a path such as
/// `events."navigation.request".properties.url.pattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where in the catalog.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// The line and column in the file, when it came from one.
    pub location: Option<tidings_toml::Location>,
}

impl Problem {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            location: None,
        }
    }
}

impl From<tidings_toml::Mistake> for Problem {
    fn from(mistake: tidings_toml::Mistake) -> Self {
        Self {
            path: mistake.path.to_string(),
            message: mistake.message,
            location: mistake.location,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = self.location {
            write!(f, "{location}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "`{}`: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Why a catalog could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The file could not be read.
    #[error("cannot read catalog {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The catalog is not valid; every problem found is listed.
    #[error("catalog {origin} is invalid:\n{}", list(problems))]
    Invalid {
        /// The file, or `<string>`.
        origin: String,
        /// Each problem, with its path.
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl CatalogError {
    /// The problems of an invalid catalog (empty for a read error).
    #[must_use]
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid { problems, .. } => problems,
            Self::Read { .. } => &[],
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    title: Option<String>,
    description: Option<String>,
    #[serde(default)]
    events: BTreeMap<String, RawEvent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    description: Option<String>,
    owner: Option<String>,
    version: Option<u32>,
    #[serde(default)]
    properties: BTreeMap<String, RawProperty>,
    additional_properties: Option<bool>,
    #[serde(default)]
    examples: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProperty {
    #[serde(rename = "type")]
    kind: Option<PropertyType>,
    description: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    pii: bool,
    #[serde(default)]
    values: Vec<Value>,
    pattern: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, RawProperty>,
    additional_properties: Option<bool>,
}

/// A TOML key as it appears in a path: bare when it can be.
fn key(name: &str) -> String {
    tidings_toml::KeyPath::root().key(name).to_string()
}

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    fn event(&mut self, name: &str, raw: RawEvent) -> Option<EventSpec> {
        let path = format!("events.{}", key(name));
        let mut spec = match EventSpec::new(name) {
            Ok(spec) => spec,
            Err(message) => {
                self.problem(&path, message);
                return None;
            }
        };
        spec.description = raw.description;
        spec.owner = raw.owner;
        match raw.version {
            Some(0) => self.problem(&format!("{path}.version"), "versions start at 1"),
            Some(version) => spec.version = version,
            None => {}
        }
        spec.shape = self.shape(
            &format!("{path}.properties"),
            raw.properties,
            raw.additional_properties,
        );
        spec.shape.pii_paths("", &mut spec.pii_paths);
        spec.examples = raw.examples;
        Some(spec)
    }

    fn shape(
        &mut self,
        path: &str,
        properties: BTreeMap<String, RawProperty>,
        additional: Option<bool>,
    ) -> Shape {
        let mut shape = Shape {
            additional_properties: additional.unwrap_or(true),
            ..Shape::default()
        };
        let required = properties.values().filter(|p| p.required).count();
        if required > MAX_REQUIRED {
            self.problem(
                path,
                format!("{required} required properties; at most {MAX_REQUIRED} are supported"),
            );
        }
        for (name, raw) in properties {
            let property = self.property(&format!("{path}.{}", key(&name)), raw);
            shape.insert(name, property);
        }
        shape
    }

    fn property(&mut self, path: &str, raw: RawProperty) -> Property {
        let mut property = match raw.kind {
            Some(kind) => Property::new(kind),
            None => Property::any(),
        };
        property.description = raw.description;
        property.required = raw.required;
        property.pii = raw.pii;
        if let Some(source) = raw.pattern {
            if !matches!(raw.kind, Some(PropertyType::String)) {
                self.problem(
                    &format!("{path}.pattern"),
                    "a pattern applies only to properties of type \"string\"",
                );
            }
            match Pattern::new(source) {
                Ok(pattern) => property.pattern = Some(pattern),
                Err(e) => self.problem(&format!("{path}.pattern"), e.to_string()),
            }
        }
        for (i, value) in raw.values.iter().enumerate() {
            let fits = match (raw.kind, value) {
                (_, Value::Array(_) | Value::Object(_) | Value::Null) => false,
                (None, _) => true,
                (Some(PropertyType::String | PropertyType::Timestamp), Value::String(_))
                | (Some(PropertyType::Boolean), Value::Bool(_))
                | (Some(PropertyType::Number), Value::Number(_)) => true,
                (Some(PropertyType::Integer), Value::Number(n)) => !n.is_f64(),
                _ => false,
            };
            if !fits {
                let expected = match raw.kind {
                    None => "a scalar".to_owned(),
                    Some(PropertyType::Integer) => "an integer".to_owned(),
                    Some(PropertyType::Object) => "an object".to_owned(),
                    Some(PropertyType::Array) => "an array".to_owned(),
                    Some(kind) => format!("a {}", kind.as_str()),
                };
                self.problem(
                    &format!("{path}.values[{i}]"),
                    format!("{value} is not {expected} value"),
                );
            }
        }
        property.values = raw.values;
        let is_object = matches!(raw.kind, Some(PropertyType::Object));
        if !is_object && (!raw.properties.is_empty() || raw.additional_properties.is_some()) {
            self.problem(
                path,
                "`properties` and `additional_properties` apply only to properties of type \"object\"",
            );
        }
        if is_object {
            property.shape = self.shape(
                &format!("{path}.properties"),
                raw.properties,
                raw.additional_properties,
            );
        }
        property
    }
}

/// The problems with their lines and columns, in the order of the file.
fn located(
    document: &tidings_toml::Document,
    problems: impl IntoIterator<Item = Problem>,
) -> Vec<Problem> {
    let mut problems: Vec<Problem> = problems
        .into_iter()
        .map(|mut problem| {
            if problem.location.is_none() {
                problem.location = tidings_toml::KeyPath::parse(&problem.path)
                    .and_then(|path| document.locate(&path));
            }
            problem
        })
        .collect();
    problems.sort_by_key(|p| p.location.map_or((1, None), |l| (0, Some(l))));
    problems
}

impl Catalog {
    /// Loads a catalog from TOML text; `origin` names it in errors (a file
    /// name, say).
    ///
    /// # Errors
    ///
    /// [`CatalogError::Invalid`] listing every problem found, each with its path.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, CatalogError> {
        let invalid = |problems| CatalogError::Invalid {
            origin: origin.to_owned(),
            problems,
        };
        let document = tidings_toml::Document::parse(text)
            .map_err(|mistake| invalid(vec![Problem::from(mistake)]))?;
        let raw: RawCatalog = tidings_toml::deserialize(
            toml::Value::Table(document.table().clone()),
            &tidings_toml::KeyPath::root(),
            &[],
        )
        .map_err(|mistakes| invalid(located(&document, mistakes.into_iter().map(Problem::from))))?;
        let mut checker = Checker {
            problems: Vec::new(),
        };
        let events: Vec<EventSpec> = raw
            .events
            .into_iter()
            .filter_map(|(name, event)| checker.event(&name, event))
            .collect();
        if !checker.problems.is_empty() {
            return Err(invalid(located(&document, checker.problems)));
        }
        let mut catalog = Self::from_events(events).map_err(|e| match e {
            CatalogError::Invalid { problems, .. } => invalid(problems),
            other => other,
        })?;
        catalog.title = raw.title;
        catalog.description = raw.description;
        Ok(catalog)
    }

    /// Loads a catalog file.
    ///
    /// # Errors
    ///
    /// [`CatalogError::Read`] when the file cannot be read,
    /// [`CatalogError::Invalid`] when it is not a valid catalog.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, CatalogError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// A catalog of events declared in code.
    ///
    /// # Errors
    ///
    /// [`CatalogError::Invalid`] when two declarations have the same name.
    pub fn from_events(events: impl IntoIterator<Item = EventSpec>) -> Result<Self, CatalogError> {
        let mut events: Vec<EventSpec> = events.into_iter().collect();
        events.sort_by_key(|e| e.name.to_string());
        let mut catalog = Self::default();
        let mut problems = Vec::new();
        for (index, spec) in events.iter().enumerate() {
            match &spec.name {
                NamePattern::Exact(name) => {
                    if catalog.exact.insert(name.clone(), index).is_some() {
                        problems.push(Problem::new(
                            format!("events.{}", key(name)),
                            "declared twice",
                        ));
                    }
                }
                NamePattern::Family(prefix) => {
                    if catalog
                        .families
                        .iter()
                        .any(|&i| matches!(&events[i].name, NamePattern::Family(p) if p == prefix))
                    {
                        problems.push(Problem::new(
                            format!("events.{}", key(&spec.name.to_string())),
                            "declared twice",
                        ));
                    }
                    catalog.families.push(index);
                }
            }
        }
        if !problems.is_empty() {
            return Err(CatalogError::Invalid {
                origin: "<code>".into(),
                problems,
            });
        }
        let prefix_len = |i: &usize| match &events[*i].name {
            NamePattern::Family(prefix) => prefix.len(),
            NamePattern::Exact(_) => 0,
        };
        catalog
            .families
            .sort_by_key(|i| std::cmp::Reverse(prefix_len(i)));
        catalog.events = events;
        Ok(catalog)
    }

    /// The declaration for `name`: its own, else the family with the
    /// longest matching prefix.
    #[must_use]
    pub fn lookup(&self, name: &str) -> Option<&EventSpec> {
        self.position(name).map(|i| &self.events[i])
    }

    /// The index in [`Catalog::events`] of the declaration for `name`.
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        if let Some(&i) = self.exact.get(name) {
            return Some(i);
        }
        self.families
            .iter()
            .copied()
            .find(|&i| self.events[i].name.matches(name))
    }

    /// Checks `event` against its declaration. With `strict`, an event that
    /// is not declared is a violation ([`ViolationKind::UnknownEvent`]);
    /// without, it passes unchecked.
    ///
    /// # Errors
    ///
    /// The first [`Violation`] found.
    pub fn check(&self, event: &Event, strict: bool) -> Result<(), Violation> {
        match self.lookup(event.name().as_str()) {
            Some(spec) => validate_event(spec, event),
            None if strict => Err(Violation::new(
                event.name().as_str(),
                "",
                ViolationKind::UnknownEvent,
            )),
            None => Ok(()),
        }
    }

    /// [`Catalog::check`] for data that is not in an event yet (examples, tests).
    ///
    /// # Errors
    ///
    /// The first [`Violation`] found.
    pub fn check_data(&self, name: &str, data: &Value, strict: bool) -> Result<(), Violation> {
        match self.lookup(name) {
            Some(spec) => validate_value(spec, name, data),
            None if strict => Err(Violation::new(name, "", ViolationKind::UnknownEvent)),
            None => Ok(()),
        }
    }

    /// Every declaration, in name order.
    pub fn events(&self) -> impl ExactSizeIterator<Item = &EventSpec> {
        self.events.iter()
    }

    /// The catalog's title, if it has one.
    #[must_use]
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    /// The catalog's description, if it has one.
    #[must_use]
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
}
