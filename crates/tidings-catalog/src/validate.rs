//! Validation of an event's data against its declaration, streaming over
//! the JSON text when the event still holds it (no `Value` is built).

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use tidings_event::Event;

use crate::spec::{EventSpec, Property, PropertyType, Shape};

/// Why an event does not match the catalog: the event, the property (a
/// dotted path into the data; empty for the data as a whole) and what is
/// wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    event: String,
    path: String,
    kind: ViolationKind,
}

/// What is wrong, in a [`Violation`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ViolationKind {
    /// The name is not declared (strict mode; eventlib's `EventNotFound`).
    UnknownEvent,
    /// The data is not a JSON object.
    NotAnObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// A required property is absent or `null`.
    Missing,
    /// A property has the wrong type.
    WrongType {
        /// The declared type.
        expected: PropertyType,
        /// The JSON type found.
        found: &'static str,
    },
    /// A property's value is not one of the allowed values.
    NotAllowed {
        /// The value found, as JSON.
        value: String,
        /// The allowed values, as JSON, comma separated.
        allowed: String,
    },
    /// A string does not match the declared pattern.
    PatternMismatch {
        /// The value found, as JSON.
        value: String,
        /// The pattern.
        pattern: String,
    },
    /// A timestamp property is not an RFC 3339 date and time.
    NotTimestamp {
        /// The value found, as JSON.
        value: String,
    },
    /// A property that is not declared, where none are allowed.
    UnknownProperty,
    /// A check of the event's own code failed ([`TypedEvent::validate`](crate::TypedEvent::validate)).
    Custom(String),
    /// The data could not be read (not JSON).
    Malformed(String),
}

impl ViolationKind {
    /// A short label, used in metrics and counters: `unknown_event`,
    /// `not_an_object`, `missing`, `wrong_type`, `not_allowed`, `pattern`,
    /// `not_timestamp`, `unknown_property`, `custom`, `malformed`.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::UnknownEvent => "unknown_event",
            Self::NotAnObject { .. } => "not_an_object",
            Self::Missing => "missing",
            Self::WrongType { .. } => "wrong_type",
            Self::NotAllowed { .. } => "not_allowed",
            Self::PatternMismatch { .. } => "pattern",
            Self::NotTimestamp { .. } => "not_timestamp",
            Self::UnknownProperty => "unknown_property",
            Self::Custom(_) => "custom",
            Self::Malformed(_) => "malformed",
        }
    }

    /// Every code, in the order of [`ViolationKind::index`].
    pub const CODES: [&'static str; 10] = [
        "unknown_event",
        "not_an_object",
        "missing",
        "wrong_type",
        "not_allowed",
        "pattern",
        "not_timestamp",
        "unknown_property",
        "custom",
        "malformed",
    ];

    /// The position of this kind's code in [`ViolationKind::CODES`].
    #[must_use]
    pub fn index(&self) -> usize {
        Self::CODES
            .iter()
            .position(|c| *c == self.code())
            .unwrap_or(Self::CODES.len() - 1)
    }
}

impl Violation {
    /// A violation of `event` at `path` (dotted; empty for the whole data).
    #[must_use]
    pub fn new(event: impl Into<String>, path: impl Into<String>, kind: ViolationKind) -> Self {
        Self {
            event: event.into(),
            path: path.into(),
            kind,
        }
    }

    /// A failed check of an event's own code, at `path`.
    #[must_use]
    pub fn custom(
        event: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(event, path, ViolationKind::Custom(message.into()))
    }

    /// The event's name.
    #[must_use]
    pub fn event(&self) -> &str {
        &self.event
    }

    /// The property, as a dotted path into the data (empty: the data itself).
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong.
    #[must_use]
    pub fn kind(&self) -> &ViolationKind {
        &self.kind
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let event = &self.event;
        let path = &self.path;
        match &self.kind {
            ViolationKind::UnknownEvent => write!(f, "event {event:?} is not in the catalog"),
            ViolationKind::NotAnObject { found } => {
                write!(f, "event {event:?}: data must be an object, found {found}")
            }
            ViolationKind::Missing => write!(f, "event {event:?}: property {path:?} is required"),
            ViolationKind::WrongType { expected, found } => write!(
                f,
                "event {event:?}: property {path:?}: expected {expected}, found {found}"
            ),
            ViolationKind::NotAllowed { value, allowed } => write!(
                f,
                "event {event:?}: property {path:?}: {value} is not one of {allowed}"
            ),
            ViolationKind::PatternMismatch { value, pattern } => write!(
                f,
                "event {event:?}: property {path:?}: {value} does not match the pattern {pattern}"
            ),
            ViolationKind::NotTimestamp { value } => write!(
                f,
                "event {event:?}: property {path:?}: {value} is not an RFC 3339 timestamp"
            ),
            ViolationKind::UnknownProperty => write!(
                f,
                "event {event:?}: property {path:?} is not declared (no additional properties are allowed)"
            ),
            ViolationKind::Custom(message) if path.is_empty() => {
                write!(f, "event {event:?}: {message}")
            }
            ViolationKind::Custom(message) => {
                write!(f, "event {event:?}: property {path:?}: {message}")
            }
            ViolationKind::Malformed(message) => {
                write!(f, "event {event:?}: data is not valid JSON: {message}")
            }
        }
    }
}

impl std::error::Error for Violation {}

/// The violation found so far: its kind and the path, innermost key first.
struct Found {
    path: Vec<String>,
    kind: ViolationKind,
}

type Slot = RefCell<Option<Found>>;

fn fail<E: de::Error>(slot: &Slot, kind: ViolationKind) -> E {
    *slot.borrow_mut() = Some(Found {
        path: Vec::new(),
        kind,
    });
    E::custom("catalog violation")
}

/// Adds `key` to the path of the violation on its way out.
fn within<E>(slot: &Slot, key: &str, error: E) -> E {
    if let Some(found) = slot.borrow_mut().as_mut() {
        found.path.push(key.to_owned());
    }
    error
}

fn finish(name: &str, slot: Slot, result: Result<(), serde_json::Error>) -> Result<(), Violation> {
    let Err(error) = result else { return Ok(()) };
    let Found { mut path, kind } = slot.into_inner().unwrap_or_else(|| Found {
        path: Vec::new(),
        kind: ViolationKind::Malformed(error.to_string()),
    });
    path.reverse();
    Err(Violation::new(name, path.join("."), kind))
}

/// Checks `event`'s data against `spec`.
pub(crate) fn validate_event(spec: &EventSpec, event: &Event) -> Result<(), Violation> {
    if spec.shape.is_open() {
        return Ok(());
    }
    let slot = Slot::default();
    let result = event.deserialize_data(DataSeed {
        shape: &spec.shape,
        slot: &slot,
    });
    finish(event.name().as_str(), slot, result)
}

/// Checks `data` (an example, say) against `spec`, as the data of an event named `name`.
pub(crate) fn validate_value(spec: &EventSpec, name: &str, data: &Value) -> Result<(), Violation> {
    let slot = Slot::default();
    let result = DataSeed {
        shape: &spec.shape,
        slot: &slot,
    }
    .deserialize(data);
    finish(name, slot, result)
}

fn json_type_of_unexpected(unexpected: &de::Unexpected<'_>) -> &'static str {
    match unexpected {
        de::Unexpected::Bool(_) => "boolean",
        de::Unexpected::Unsigned(_) | de::Unexpected::Signed(_) => "integer",
        de::Unexpected::Float(_) => "number",
        de::Unexpected::Str(_) | de::Unexpected::Char(_) => "string",
        de::Unexpected::Unit | de::Unexpected::Option => "null",
        de::Unexpected::Seq => "array",
        de::Unexpected::Map => "object",
        _ => "value",
    }
}

/// The event's data: must be an object of `shape`.
struct DataSeed<'a> {
    shape: &'a Shape,
    slot: &'a Slot,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl DataSeed<'_> {
    fn not_object<E: de::Error>(&self, unexpected: de::Unexpected<'_>) -> Result<(), E> {
        Err(fail(
            self.slot,
            ViolationKind::NotAnObject {
                found: json_type_of_unexpected(&unexpected),
            },
        ))
    }
}

impl<'de> Visitor<'de> for DataSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        visit_shape(self.shape, self.slot, map)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.not_object(de::Unexpected::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.not_object(de::Unexpected::Signed(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.not_object(de::Unexpected::Unsigned(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.not_object(de::Unexpected::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.not_object(de::Unexpected::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.not_object(de::Unexpected::Unit)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<(), A::Error> {
        self.not_object(de::Unexpected::Seq)
    }
}

/// A key of an object: a declared property, or not.
enum Key<'a> {
    Declared(&'a str, &'a Property),
    Undeclared(Option<String>),
}

struct KeySeed<'a> {
    shape: &'a Shape,
}

impl<'de, 'a> DeserializeSeed<'de> for KeySeed<'a> {
    type Value = Key<'a>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Key<'a>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, 'a> Visitor<'de> for KeySeed<'a> {
    type Value = Key<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a property name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'a>, E> {
        Ok(match self.shape.properties.get_key_value(v) {
            Some((name, property)) => Key::Declared(name, property),
            // The name is kept only when it is about to be reported.
            None if self.shape.additional_properties => Key::Undeclared(None),
            None => Key::Undeclared(Some(v.to_owned())),
        })
    }
}

fn visit_shape<'de, A: MapAccess<'de>>(
    shape: &Shape,
    slot: &Slot,
    mut map: A,
) -> Result<(), A::Error> {
    let mut present: u128 = 0;
    while let Some(key) = map.next_key_seed(KeySeed { shape })? {
        match key {
            Key::Declared(name, property) => {
                let non_null = map
                    .next_value_seed(ValueSeed { property, slot })
                    .map_err(|e| within(slot, name, e))?;
                if non_null && property.required {
                    present |= 1 << property.slot;
                }
            }
            Key::Undeclared(None) => {
                map.next_value::<IgnoredAny>()?;
            }
            Key::Undeclared(Some(name)) => {
                let error = fail(slot, ViolationKind::UnknownProperty);
                return Err(within(slot, &name, error));
            }
        }
    }
    if present != shape.required_mask {
        let missing = shape
            .properties
            .iter()
            .find(|(_, p)| p.required && present & (1 << p.slot) == 0);
        if let Some((name, _)) = missing {
            let error = fail(slot, ViolationKind::Missing);
            return Err(within(slot, name, error));
        }
    }
    Ok(())
}

/// One property's value; yields whether it was present (not `null`).
struct ValueSeed<'a> {
    property: &'a Property,
    slot: &'a Slot,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl ValueSeed<'_> {
    /// Checks the type; `accepts` are the declared types this JSON type satisfies.
    fn check_type<E: de::Error>(
        &self,
        found: &'static str,
        accepts: &[PropertyType],
    ) -> Result<(), E> {
        match self.property.kind {
            Some(kind) if !accepts.contains(&kind) => Err(fail(
                self.slot,
                ViolationKind::WrongType {
                    expected: kind,
                    found,
                },
            )),
            _ => Ok(()),
        }
    }

    fn check_values<E: de::Error>(
        &self,
        matches: impl Fn(&Value) -> bool,
        shown: impl FnOnce() -> String,
    ) -> Result<(), E> {
        let values = &self.property.values;
        if values.is_empty() || values.iter().any(matches) {
            return Ok(());
        }
        let allowed = values
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        Err(fail(
            self.slot,
            ViolationKind::NotAllowed {
                value: shown(),
                allowed,
            },
        ))
    }

    fn number<E: de::Error>(&self, value: Value, accepts: &[PropertyType]) -> Result<bool, E> {
        let found = if value.is_f64() { "number" } else { "integer" };
        self.check_type(found, accepts)?;
        self.check_values(|v| *v == value, || value.to_string())?;
        Ok(true)
    }

    fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

const NUMERIC: [PropertyType; 2] = [PropertyType::Integer, PropertyType::Number];

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        self.check_type("boolean", &[PropertyType::Boolean])?;
        self.check_values(|value| value.as_bool() == Some(v), || v.to_string())?;
        Ok(true)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.number(Value::from(v), &NUMERIC)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.number(Value::from(v), &NUMERIC)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        self.number(Value::from(v), &[PropertyType::Number])
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        self.check_type("string", &[PropertyType::String, PropertyType::Timestamp])?;
        let shown = || Value::from(v).to_string();
        if self.property.kind == Some(PropertyType::Timestamp)
            && time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .is_err()
        {
            return Err(fail(
                self.slot,
                ViolationKind::NotTimestamp { value: shown() },
            ));
        }
        if let Some(pattern) = &self.property.pattern {
            if !pattern.is_match(v) {
                return Err(fail(
                    self.slot,
                    ViolationKind::PatternMismatch {
                        value: shown(),
                        pattern: pattern.as_str().to_owned(),
                    },
                ));
            }
        }
        self.check_values(|value| value.as_str() == Some(v), shown)?;
        Ok(true)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        self.check_type("object", &[PropertyType::Object])?;
        let shape = &self.property.shape;
        if shape.is_open() {
            Self::drain_map(map)?;
        } else {
            visit_shape(shape, self.slot, map)?;
        }
        Ok(true)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        self.check_type("array", &[PropertyType::Array])?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(true)
    }
}
