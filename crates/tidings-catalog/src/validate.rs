//! Validation of an event's data against its declaration: over the parsed
//! value when there is one, else by scanning the JSON text the event holds
//! (typed emits, decoded events), which builds nothing.

use std::borrow::Cow;

use serde_json::{Map, Number, Value};
use tidings_event::Event;

use crate::spec::{EventSpec, Property, PropertyType, Shape};
use crate::violation::{Violation, ViolationKind};

/// A violation on its way out: its kind, and its path innermost key first.
struct Found {
    path: Vec<String>,
    kind: ViolationKind,
}

impl Found {
    fn new(kind: ViolationKind) -> Self {
        Self {
            path: Vec::new(),
            kind,
        }
    }

    fn within(mut self, key: &str) -> Self {
        self.path.push(key.to_owned());
        self
    }

    fn into_violation(self, event: &str) -> Violation {
        let mut path = self.path;
        path.reverse();
        Violation::new(event, path.join("."), self.kind)
    }
}

fn malformed(what: &str) -> Found {
    Found::new(ViolationKind::Malformed(what.to_owned()))
}

/// Checks `event`'s data against `spec`.
pub(crate) fn validate_event(spec: &EventSpec, event: &Event) -> Result<(), Violation> {
    if spec.shape.is_open() {
        return Ok(());
    }
    let result = match event.data_text() {
        Some(text) => Scanner::new(text).data(&spec.shape),
        None => walk_data(&spec.shape, event.data()),
    };
    result.map_err(|found| found.into_violation(event.name().as_str()))
}

/// Checks `data` (an example, say) against `spec`, as the data of an event named `name`.
pub(crate) fn validate_value(spec: &EventSpec, name: &str, data: &Value) -> Result<(), Violation> {
    walk_data(&spec.shape, data).map_err(|found| found.into_violation(name))
}

/// A value that is not an object or array, as the checks see it.
enum Scalar<'a> {
    Bool(bool),
    /// A number, as text or parsed; `float` when it has a fraction or exponent.
    Number {
        float: bool,
        number: NumberRef<'a>,
    },
    Str(Cow<'a, str>),
}

enum NumberRef<'a> {
    Text(&'a str),
    Parsed(&'a Number),
}

impl NumberRef<'_> {
    fn to_value(&self) -> Value {
        match self {
            Self::Parsed(n) => Value::Number((*n).clone()),
            Self::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        }
    }
}

/// Whether a value of JSON type `found` may stand for `property`.
fn check_type(
    property: &Property,
    found: &'static str,
    accepts: &[PropertyType],
) -> Result<(), Found> {
    match property.kind {
        Some(kind) if !accepts.contains(&kind) => Err(Found::new(ViolationKind::WrongType {
            expected: kind,
            found,
        })),
        _ => Ok(()),
    }
}

const NUMERIC: [PropertyType; 2] = [PropertyType::Integer, PropertyType::Number];
const STRINGS: [PropertyType; 2] = [PropertyType::String, PropertyType::Timestamp];

/// Checks a scalar against its property: type, timestamp, pattern, values.
fn check_scalar(property: &Property, scalar: &Scalar<'_>) -> Result<(), Found> {
    let values = &property.values;
    let (allowed, shown) = match scalar {
        Scalar::Bool(b) => {
            check_type(property, "boolean", &[PropertyType::Boolean])?;
            (
                values.iter().any(|v| v.as_bool() == Some(*b)),
                Value::Bool(*b),
            )
        }
        Scalar::Number { float, number } => {
            if *float {
                check_type(property, "number", &[PropertyType::Number])?;
            } else {
                check_type(property, "integer", &NUMERIC)?;
            }
            if values.is_empty() {
                return Ok(());
            }
            let value = number.to_value();
            (values.contains(&value), value)
        }
        Scalar::Str(text) => {
            check_type(property, "string", &STRINGS)?;
            let shown = || Value::from(text.as_ref()).to_string();
            if property.kind == Some(PropertyType::Timestamp)
                && time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .is_err()
            {
                return Err(Found::new(ViolationKind::NotTimestamp { value: shown() }));
            }
            if let Some(pattern) = &property.pattern
                && !pattern.is_match(text)
            {
                return Err(Found::new(ViolationKind::PatternMismatch {
                    value: shown(),
                    pattern: pattern.as_str().to_owned(),
                }));
            }
            if values.is_empty() {
                return Ok(());
            }
            (
                values.iter().any(|v| v.as_str() == Some(text.as_ref())),
                Value::from(text.as_ref()),
            )
        }
    };
    if values.is_empty() || allowed {
        return Ok(());
    }
    let allowed = values
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Err(Found::new(ViolationKind::NotAllowed {
        value: shown.to_string(),
        allowed,
    }))
}

/// The keys of one object being checked: which required ones were seen.
struct Keys<'s> {
    shape: &'s Shape,
    present: u128,
}

/// What to do with a key's value.
enum KeyAction<'s> {
    Check(&'s str, &'s Property),
    Skip,
}

impl<'s> Keys<'s> {
    fn new(shape: &'s Shape) -> Self {
        Self { shape, present: 0 }
    }

    fn key(&self, key: &str) -> Result<KeyAction<'s>, Found> {
        match self.shape.find(key) {
            Some((name, property)) => Ok(KeyAction::Check(name, property)),
            None if self.shape.additional_properties => Ok(KeyAction::Skip),
            None => Err(Found::new(ViolationKind::UnknownProperty).within(key)),
        }
    }

    /// Records that `property` had a value (`present`: not null).
    fn seen(&mut self, property: &Property, present: bool) {
        if present && property.required {
            self.present |= 1 << property.slot;
        }
    }

    fn finish(self) -> Result<(), Found> {
        if self.present == self.shape.required_mask {
            return Ok(());
        }
        let missing = self
            .shape
            .properties
            .iter()
            .find(|(_, p)| p.required && self.present & (1 << p.slot) == 0);
        match missing {
            Some((name, _)) => Err(Found::new(ViolationKind::Missing).within(name)),
            None => Ok(()),
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn walk_data(shape: &Shape, data: &Value) -> Result<(), Found> {
    match data {
        Value::Object(map) => walk_shape(shape, map),
        other => Err(Found::new(ViolationKind::NotAnObject {
            found: type_name(other),
        })),
    }
}

fn walk_shape(shape: &Shape, map: &Map<String, Value>) -> Result<(), Found> {
    let mut keys = Keys::new(shape);
    for (key, value) in map {
        if let KeyAction::Check(name, property) = keys.key(key)? {
            let present = walk_value(property, value).map_err(|f| f.within(name))?;
            keys.seen(property, present);
        }
    }
    keys.finish()
}

/// Checks one value; yields whether it was present (not null).
fn walk_value(property: &Property, value: &Value) -> Result<bool, Found> {
    let scalar = match value {
        Value::Null => return Ok(false),
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => Scalar::Number {
            float: n.is_f64(),
            number: NumberRef::Parsed(n),
        },
        Value::String(s) => Scalar::Str(Cow::Borrowed(s)),
        Value::Array(_) => {
            check_type(property, "array", &[PropertyType::Array])?;
            return Ok(true);
        }
        Value::Object(map) => {
            check_type(property, "object", &[PropertyType::Object])?;
            if !property.shape.is_open() {
                walk_shape(&property.shape, map)?;
            }
            return Ok(true);
        }
    };
    check_scalar(property, &scalar)?;
    Ok(true)
}

/// Reads JSON text that is known to be valid (serde_json's own output, or
/// wire text it has parsed), checking as it goes. Anything unexpected is
/// reported as malformed, never a panic.
struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    fn peek(&mut self) -> Option<u8> {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            if !b.is_ascii_whitespace() {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    fn expect(&mut self, byte: u8) -> Result<(), Found> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(malformed("unexpected character"))
        }
    }

    fn data(mut self, shape: &Shape) -> Result<(), Found> {
        let found = match self.peek() {
            Some(b'{') => return self.object(shape),
            Some(b'[') => "array",
            Some(b'"') => "string",
            Some(b't' | b'f') => "boolean",
            Some(b'n') => "null",
            Some(b'-' | b'0'..=b'9') => match self.number()? {
                (_, true) => "number",
                (_, false) => "integer",
            },
            _ => return Err(malformed("empty")),
        };
        Err(Found::new(ViolationKind::NotAnObject { found }))
    }

    fn object(&mut self, shape: &Shape) -> Result<(), Found> {
        self.expect(b'{')?;
        let mut keys = Keys::new(shape);
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return keys.finish();
        }
        loop {
            let action = match self.declared_key(shape) {
                Some((name, property)) => KeyAction::Check(name, property),
                None => keys.key(&self.string()?)?,
            };
            self.expect(b':')?;
            match action {
                KeyAction::Check(name, property) => {
                    let present = self.value(property).map_err(|f| f.within(name))?;
                    keys.seen(property, present);
                }
                KeyAction::Skip => self.skip()?,
            }
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return keys.finish();
                }
                _ => return Err(malformed("unterminated object")),
            }
        }
    }

    /// Checks one value; yields whether it was present (not null).
    fn value(&mut self, property: &Property) -> Result<bool, Found> {
        let scalar = match self.peek() {
            Some(b'n') => {
                self.literal("null")?;
                return Ok(false);
            }
            Some(b't') => {
                self.literal("true")?;
                Scalar::Bool(true)
            }
            Some(b'f') => {
                self.literal("false")?;
                Scalar::Bool(false)
            }
            Some(b'"') => Scalar::Str(self.string()?),
            Some(b'{') => {
                check_type(property, "object", &[PropertyType::Object])?;
                if property.shape.is_open() {
                    self.skip()?;
                } else {
                    self.object(&property.shape)?;
                }
                return Ok(true);
            }
            Some(b'[') => {
                check_type(property, "array", &[PropertyType::Array])?;
                self.skip()?;
                return Ok(true);
            }
            _ => {
                let (text, float) = self.number()?;
                Scalar::Number {
                    float,
                    number: NumberRef::Text(text),
                }
            }
        };
        check_scalar(property, &scalar)?;
        Ok(true)
    }

    /// The declared property whose name is the key at the current
    /// position, matched in the text itself (most keys are declared ones;
    /// this skips scanning and decoding them). Moves past the key if found.
    fn declared_key<'s>(&mut self, shape: &'s Shape) -> Option<(&'s str, &'s Property)> {
        if !shape.verbatim_names || self.peek() != Some(b'"') {
            return None;
        }
        let rest = self.text.as_bytes().get(self.pos + 1..)?;
        let (name, property) = shape.properties.iter().find(|(name, _)| {
            rest.get(name.len()) == Some(&b'"') && rest.starts_with(name.as_bytes())
        })?;
        self.pos += name.len() + 2;
        Some((name.as_str(), property))
    }

    fn literal(&mut self, word: &str) -> Result<(), Found> {
        if self
            .text
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(word))
        {
            self.pos += word.len();
            Ok(())
        } else {
            Err(malformed("bad literal"))
        }
    }

    fn number(&mut self) -> Result<(&'a str, bool), Found> {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let mut float = false;
        while let Some(&b) = bytes.get(self.pos) {
            match b {
                b'0'..=b'9' | b'-' | b'+' => {}
                b'.' | b'e' | b'E' => float = true,
                _ => break,
            }
            self.pos += 1;
        }
        match self.text.get(start..self.pos) {
            // Integers past 64 bits read as floats, as serde_json reads them.
            Some(text) if !text.is_empty() => Ok((
                text,
                float || (text.parse::<i64>().is_err() && text.parse::<u64>().is_err()),
            )),
            _ => Err(malformed("expected a value")),
        }
    }

    /// A string at the current position, unescaped only if it has escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, Found> {
        self.expect(b'"')?;
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let mut escaped = false;
        loop {
            let rest = bytes.get(self.pos..).unwrap_or_default();
            match memchr::memchr2(b'"', b'\\', rest) {
                Some(i) if rest[i] == b'\\' => {
                    escaped = true;
                    self.pos += i + 2;
                }
                Some(i) => {
                    let end = self.pos + i;
                    self.pos = end + 1;
                    return if escaped {
                        let quoted = self.text.get(start - 1..=end).unwrap_or_default();
                        serde_json::from_str(quoted)
                            .map(Cow::Owned)
                            .map_err(|_| malformed("bad string"))
                    } else {
                        self.text
                            .get(start..end)
                            .map(Cow::Borrowed)
                            .ok_or_else(|| malformed("bad string"))
                    };
                }
                None => return Err(malformed("unterminated string")),
            }
        }
    }

    /// Skips any value. Depth is bounded: event data is refused past 64
    /// levels before it is ever stored.
    fn skip(&mut self) -> Result<(), Found> {
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(open @ (b'{' | b'[')) => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.pos += 1;
                if self.peek() == Some(close) {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    if open == b'{' {
                        self.string()?;
                        self.expect(b':')?;
                    }
                    self.skip()?;
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b) if b == close => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return Err(malformed("unterminated container")),
                    }
                }
            }
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.literal("null"),
            _ => self.number().map(drop),
        }
    }
}
