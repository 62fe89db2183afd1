//! The declarations: events, their properties and property types.

use std::fmt;

use regex::Regex;
use serde_json::Value;

/// The most required properties one object may declare (they are tracked
/// in a bit set while validating).
pub const MAX_REQUIRED: usize = 128;

/// The type of a property's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PropertyType {
    /// A JSON string.
    String,
    /// A JSON number without a fraction or exponent.
    Integer,
    /// Any JSON number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A JSON object (with declared properties of its own, or any).
    Object,
    /// A JSON array.
    Array,
    /// A string holding an RFC 3339 date and time.
    Timestamp,
}

impl PropertyType {
    /// The name used in catalog files and messages.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Object => "object",
            Self::Array => "array",
            Self::Timestamp => "timestamp",
        }
    }
}

impl fmt::Display for PropertyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A regular expression a string property must match (anywhere in the
/// value, unless anchored with `^…$`).
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    regex: Regex,
}

impl Pattern {
    /// Compiles `source`.
    ///
    /// # Errors
    ///
    /// [`regex::Error`] when `source` is not a valid pattern.
    pub fn new(source: impl Into<String>) -> Result<Self, regex::Error> {
        let source = source.into();
        let regex = Regex::new(&source)?;
        Ok(Self { source, regex })
    }

    /// The pattern as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub(crate) fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }
}

/// One declared property.
#[derive(Debug, Clone)]
pub struct Property {
    /// `None`: any type.
    pub(crate) kind: Option<PropertyType>,
    pub(crate) description: Option<String>,
    pub(crate) required: bool,
    pub(crate) pii: bool,
    pub(crate) values: Vec<Value>,
    pub(crate) pattern: Option<Pattern>,
    /// For objects: their own declared properties (empty: any object).
    pub(crate) shape: Shape,
    /// Bit of this property in its object's required set (if required).
    pub(crate) slot: u32,
}

impl Property {
    /// A property of type `kind`, optional, not PII, with no constraints.
    #[must_use]
    pub fn new(kind: PropertyType) -> Self {
        Self {
            kind: Some(kind),
            ..Self::any()
        }
    }

    /// A property whose value may have any type.
    #[must_use]
    pub fn any() -> Self {
        Self {
            kind: None,
            description: None,
            required: false,
            pii: false,
            values: Vec::new(),
            pattern: None,
            shape: Shape::default(),
            slot: 0,
        }
    }

    /// Marks the property as required: an event without it (or with `null`)
    /// is invalid.
    #[must_use]
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Marks the property as personal data, removed by [`PiiFilter`](crate::PiiFilter).
    #[must_use]
    pub fn pii(mut self) -> Self {
        self.pii = true;
        self
    }

    /// Sets the description shown in the generated documentation.
    #[must_use]
    pub fn describe(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Restricts the value to one of `values` (scalars of the property's type).
    #[must_use]
    pub fn one_of(mut self, values: impl IntoIterator<Item = Value>) -> Self {
        self.values = values.into_iter().collect();
        self
    }

    /// Requires a string value to match `pattern`.
    #[must_use]
    pub fn matching(mut self, pattern: Pattern) -> Self {
        self.pattern = Some(pattern);
        self
    }

    /// Declares a property of this object property.
    #[must_use]
    pub fn with_property(mut self, name: impl Into<String>, property: Property) -> Self {
        self.shape.insert(name.into(), property);
        self
    }

    /// The type of the value (`None`: any).
    #[must_use]
    pub fn kind(&self) -> Option<PropertyType> {
        self.kind
    }

    /// The description, if any.
    #[must_use]
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Whether the property must be present (and not `null`).
    #[must_use]
    pub fn is_required(&self) -> bool {
        self.required
    }

    /// Whether the property holds personal data.
    #[must_use]
    pub fn is_pii(&self) -> bool {
        self.pii
    }

    /// The allowed values (empty: any value of the type).
    #[must_use]
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The pattern a string value must match, if any.
    #[must_use]
    pub fn pattern(&self) -> Option<&Pattern> {
        self.pattern.as_ref()
    }

    /// For objects, their declared properties.
    #[must_use]
    pub fn shape(&self) -> &Shape {
        &self.shape
    }
}

/// The declared properties of an object (an event's data, or an object
/// property), in name order.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Sorted by name.
    pub(crate) properties: Vec<(String, Property)>,
    /// The bits of every required property (see [`Property::slot`]).
    pub(crate) required_mask: u128,
    /// Whether every name is written the same in JSON text as it reads
    /// (no `"`, `\\` or control characters), so a key can be matched in
    /// the text without decoding it.
    pub(crate) verbatim_names: bool,
    pub(crate) additional_properties: bool,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            properties: Vec::new(),
            required_mask: 0,
            verbatim_names: true,
            additional_properties: true,
        }
    }
}

impl Shape {
    pub(crate) fn insert(&mut self, name: String, property: Property) {
        match self
            .properties
            .binary_search_by(|(k, _)| k.as_str().cmp(&name))
        {
            Ok(i) => self.properties[i].1 = property,
            Err(i) => self.properties.insert(i, (name, property)),
        }
        self.verbatim_names = self
            .properties
            .iter()
            .all(|(name, _)| name.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\'));
        self.required_mask = 0;
        let required = self
            .properties
            .iter_mut()
            .map(|(_, p)| p)
            .filter(|p| p.required);
        // The loader refuses more than MAX_REQUIRED; past it, the extra
        // properties share the last bit (checked by name when missing).
        for (slot, property) in required.enumerate() {
            property.slot = slot.min(MAX_REQUIRED - 1) as u32;
            self.required_mask |= 1 << property.slot;
        }
    }

    /// The declared properties, in name order.
    pub fn properties(&self) -> impl Iterator<Item = (&str, &Property)> {
        self.properties.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The declared property `name`.
    #[must_use]
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.find(name).map(|(_, p)| p)
    }

    /// The property `name` with its name as stored. Small objects (the
    /// usual case) are scanned: comparing lengths first beats a binary
    /// search's string comparisons.
    pub(crate) fn find(&self, name: &str) -> Option<(&str, &Property)> {
        let index = if self.properties.len() <= 16 {
            self.properties.iter().position(|(k, _)| k.as_str() == name)
        } else {
            self.properties
                .binary_search_by(|(k, _)| k.as_str().cmp(name))
                .ok()
        };
        index.map(|i| {
            let (k, p) = &self.properties[i];
            (k.as_str(), p)
        })
    }

    /// Removes the property `name`, if declared.
    pub(crate) fn remove(&mut self, name: &str) -> Option<Property> {
        let i = self
            .properties
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()?;
        Some(self.properties.remove(i).1)
    }

    /// Whether properties that are not declared are allowed (the default).
    #[must_use]
    pub fn allows_additional(&self) -> bool {
        self.additional_properties
    }

    /// Whether nothing is checked: no declared property and anything else allowed.
    pub(crate) fn is_open(&self) -> bool {
        self.properties.is_empty() && self.additional_properties
    }

    /// Dotted paths of the properties marked PII, at any depth.
    pub(crate) fn pii_paths(&self, prefix: &str, out: &mut Vec<String>) {
        for (name, property) in &self.properties {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            if property.pii {
                out.push(path);
            } else {
                property.shape.pii_paths(&path, out);
            }
        }
    }
}

/// What an event name in the catalog matches: one name, or a family of
/// names sharing a prefix (`edx.video.*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NamePattern {
    /// Exactly this name.
    Exact(String),
    /// Every name starting with this prefix (the part before the trailing `*`).
    Family(String),
}

impl NamePattern {
    /// Parses `edx.video.*` as a family and anything else as an exact name.
    /// A `*` anywhere but at the end is refused.
    ///
    /// # Errors
    ///
    /// A message saying what is wrong with `name`.
    pub fn parse(name: &str) -> Result<Self, String> {
        let (body, family) = match name.strip_suffix('*') {
            Some(prefix) => (prefix, true),
            None => (name, false),
        };
        if body.contains('*') {
            return Err(format!(
                "event name {name:?}: `*` is allowed only at the end (a family of names)"
            ));
        }
        if family {
            return Ok(Self::Family(body.to_owned()));
        }
        tidings_event::EventName::new(name.to_owned())
            .map_err(|e| format!("event name {name:?}: {e}"))?;
        Ok(Self::Exact(name.to_owned()))
    }

    /// Whether `name` is this name or belongs to this family.
    #[must_use]
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::Exact(exact) => exact == name,
            Self::Family(prefix) => name.starts_with(prefix.as_str()),
        }
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => f.write_str(name),
            Self::Family(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// One declared event (or family of events).
#[derive(Debug, Clone)]
pub struct EventSpec {
    pub(crate) name: NamePattern,
    pub(crate) description: Option<String>,
    pub(crate) owner: Option<String>,
    pub(crate) version: u32,
    pub(crate) shape: Shape,
    pub(crate) examples: Vec<Value>,
    /// Dotted paths of the PII properties, computed once.
    pub(crate) pii_paths: Vec<String>,
}

impl EventSpec {
    /// An event named `name` (a trailing `*` declares a family), version 1,
    /// with no declared properties.
    ///
    /// # Errors
    ///
    /// A message when the name is not a valid event name or family.
    pub fn new(name: &str) -> Result<Self, String> {
        Ok(Self {
            name: NamePattern::parse(name)?,
            description: None,
            owner: None,
            version: 1,
            shape: Shape::default(),
            examples: Vec::new(),
            pii_paths: Vec::new(),
        })
    }

    /// eventlib's `require_data_keys`: each key must be present in the data
    /// (with any value but `null`).
    #[must_use]
    pub fn require_data_keys<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        for key in keys {
            let key = key.into();
            let property = match self.shape.remove(&key) {
                Some(property) => property.required(),
                None => Property::any().required(),
            };
            self.shape.insert(key, property);
        }
        self
    }

    /// Declares a property of the data.
    #[must_use]
    pub fn property(mut self, name: impl Into<String>, property: Property) -> Self {
        self.shape.insert(name.into(), property);
        self.pii_paths.clear();
        self.shape.pii_paths("", &mut self.pii_paths);
        self
    }

    /// Refuses properties that are not declared.
    #[must_use]
    pub fn deny_additional_properties(mut self) -> Self {
        self.shape.additional_properties = false;
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn describe(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets the owner (a team, a person).
    #[must_use]
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// The name or family.
    #[must_use]
    pub fn name(&self) -> &NamePattern {
        &self.name
    }

    /// The description, if any.
    #[must_use]
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The owner, if any.
    #[must_use]
    pub fn owner_name(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// The version of the declaration (starts at 1).
    #[must_use]
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The declared properties of the data.
    #[must_use]
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Example data, as declared.
    #[must_use]
    pub fn examples(&self) -> &[Value] {
        &self.examples
    }

    /// Dotted paths of the properties marked PII.
    #[must_use]
    pub fn pii_paths(&self) -> &[String] {
        &self.pii_paths
    }
}
