//! Decoding the wire format: limits and the normalisation of foreign
//! shapes (the errors are in `wire_error.rs`).

use serde_json::Value;
use serde_json::value::RawValue;

use crate::event::Data;
use crate::{Event, EventError, EventId, EventName, Map, Timestamp, WireError};

/// Default for [`Limits::max_bytes`]: 1 MiB.
pub const DEFAULT_MAX_BYTES: usize = 1024 * 1024;
/// Default for [`Limits::max_depth`].
pub const DEFAULT_MAX_DEPTH: usize = 64;
/// Default for [`Limits::max_events`].
pub const DEFAULT_MAX_EVENTS: usize = 1000;

/// Bounds applied while decoding untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The largest body accepted, in bytes. Defaults to 1 MiB.
    pub max_bytes: usize,
    /// The deepest nesting of arrays and objects, counting the outermost
    /// one. Defaults to 64.
    pub max_depth: usize,
    /// The most events in one batch. Defaults to 1000.
    pub max_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            max_depth: DEFAULT_MAX_DEPTH,
            max_events: DEFAULT_MAX_EVENTS,
        }
    }
}

impl Limits {
    /// Sets [`Limits::max_bytes`].
    #[must_use]
    pub const fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Sets [`Limits::max_depth`].
    #[must_use]
    pub const fn with_max_depth(mut self, max_depth: usize) -> Self {
        self.max_depth = max_depth;
        self
    }

    /// Sets [`Limits::max_events`].
    #[must_use]
    pub const fn with_max_events(mut self, max_events: usize) -> Self {
        self.max_events = max_events;
        self
    }
}

/// The JSON type of `value`, as used in error messages.
#[must_use]
pub fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Decodes a body holding one event object or an array of them.
///
/// The body is checked against `limits` (size, then UTF-8, then nesting
/// depth, before anything is allocated for it), parsed, and each object is
/// normalised:
///
/// - `name` is required; when absent, `event` (tachyon/Spade) is used.
/// - `data` is the payload; when absent, `properties` is used, else `{}`.
/// - `context` must be an object when present.
/// - `id` and `timestamp` are kept when present and valid, assigned (UUID v7,
///   now) when absent or null. `received_at` is kept when present. A
///   timestamp is an RFC 3339 string or, as browser code sends `Date.now()`,
///   a number: seconds since the Unix epoch, milliseconds from 10^11 up
///   ([`Timestamp::from_epoch_number`]); it is written back as RFC 3339.
/// - Any other top-level field moves into `context`; a key already in
///   `context` wins over a stray field of the same name.
///
/// # Errors
///
/// [`WireError`] describing the first problem found; the batch is rejected as
/// a whole.
pub fn decode(body: &[u8], limits: &Limits) -> Result<Vec<Event>, WireError> {
    if body.len() > limits.max_bytes {
        return Err(WireError::TooLarge {
            len: body.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| WireError::InvalidUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    check_depth(text.as_bytes(), limits.max_depth)?;
    crate::faithful::check(text.as_bytes()).map_err(|u| WireError::Event {
        index: u.index,
        source: EventError::Unstorable {
            path: u.path,
            what: u.what,
        },
    })?;
    // Fields are parsed one by one from the raw text, so that `data` stays
    // JSON text: sinks copy it verbatim and no value tree is built for it.
    match text.trim_start().as_bytes().first() {
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text)?;
            if items.len() > limits.max_events {
                return Err(WireError::TooManyEvents {
                    count: items.len(),
                    limit: limits.max_events,
                });
            }
            items
                .into_iter()
                .enumerate()
                .map(|(index, item)| {
                    event_from_raw(item).map_err(|source| WireError::Event { index, source })
                })
                .collect()
        }
        Some(b'{') => {
            let item: &RawValue = serde_json::from_str(text)?;
            Ok(vec![
                event_from_raw(item).map_err(|source| WireError::Event { index: 0, source })?,
            ])
        }
        _ => {
            let value: Value = serde_json::from_str(text)?;
            Err(WireError::NotAnEventOrBatch {
                found: json_type_name(&value),
            })
        }
    }
}

/// Normalises an already parsed JSON value (one event object or an array of
/// them) into events. See [`decode`] for the rules.
///
/// # Errors
///
/// [`WireError`] when the value is not an event or batch, the batch is over
/// [`Limits::max_events`], or an event is malformed.
pub fn decode_value(value: Value, limits: &Limits) -> Result<Vec<Event>, WireError> {
    match value {
        Value::Object(object) => {
            let event = event_from_object(object)
                .map_err(|source| WireError::Event { index: 0, source })?;
            Ok(vec![event])
        }
        Value::Array(items) => {
            if items.len() > limits.max_events {
                return Err(WireError::TooManyEvents {
                    count: items.len(),
                    limit: limits.max_events,
                });
            }
            items
                .into_iter()
                .enumerate()
                .map(|(index, item)| match item {
                    Value::Object(object) => event_from_object(object)
                        .map_err(|source| WireError::Event { index, source }),
                    other => Err(WireError::Event {
                        index,
                        source: EventError::NotAnObject {
                            found: json_type_name(&other),
                        },
                    }),
                })
                .collect()
        }
        other => Err(WireError::NotAnEventOrBatch {
            found: json_type_name(&other),
        }),
    }
}

/// Rejects input whose brackets nest deeper than `limit`, without parsing it.
pub(crate) fn check_depth(bytes: &[u8], limit: usize) -> Result<(), WireError> {
    // Fast paths: nesting deeper than `limit` needs more than `limit`
    // openers and as many closers; and with at most `limit` openers in total
    // (counted branch-free, so it vectorises) no nesting can exceed it.
    if bytes.len() <= 2 * limit
        || bytes
            .iter()
            .map(|&b| usize::from(b == b'[') + usize::from(b == b'{'))
            .sum::<usize>()
            <= limit
    {
        return Ok(());
    }
    let mut depth = 0usize;
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                // Jump over the string: to its closing quote, skipping escapes.
                at += 1;
                loop {
                    let Some(rest) = bytes.get(at..) else {
                        return Ok(());
                    };
                    match memchr::memchr2(b'"', b'\\', rest) {
                        Some(i) if bytes[at + i] == b'\\' => at += i + 2,
                        Some(i) => {
                            at += i;
                            break;
                        }
                        // An unterminated string is left for the parser to report.
                        None => return Ok(()),
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Err(WireError::TooDeep { limit, offset: at });
                }
            }
            // Unbalanced closers are left for the parser to report.
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    Ok(())
}

/// One field of an event object: parsed, or still JSON text.
enum Field<'a> {
    Value(Value),
    Raw(&'a RawValue),
}

/// The JSON type of raw JSON text, from its first character.
fn raw_type_name(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

impl Field<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Self::Value(value) => json_type_name(value),
            Self::Raw(raw) => raw_type_name(raw),
        }
    }

    fn is_null(&self) -> bool {
        match self {
            Self::Value(value) => value.is_null(),
            Self::Raw(raw) => raw.get() == "null",
        }
    }

    fn into_value(self) -> Value {
        match self {
            Self::Value(value) => value,
            // Raw text comes from a successful parse within the depth limit.
            Self::Raw(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
        }
    }

    fn into_data(self) -> Data {
        match self {
            Self::Value(value) => Data::from_value(value),
            Self::Raw(raw) => Data::from_valid_json(raw.get()),
        }
    }
}

/// The fields of one event object, taken out one by one.
trait Fields<'a> {
    fn take(&mut self, key: &str) -> Option<Field<'a>>;
    fn into_rest(self) -> Vec<(String, Value)>;
}

impl<'a> Fields<'a> for Map {
    fn take(&mut self, key: &str) -> Option<Field<'a>> {
        self.remove(key).map(Field::Value)
    }
    fn into_rest(self) -> Vec<(String, Value)> {
        self.into_iter().collect()
    }
}

/// An object's fields as raw JSON text; a repeated key keeps its last value
/// (as `serde_json::Map` does).
struct RawFields<'a>(Vec<(String, &'a RawValue)>);

impl<'a> Fields<'a> for RawFields<'a> {
    fn take(&mut self, key: &str) -> Option<Field<'a>> {
        let mut found = None;
        self.0.retain(|(k, v)| {
            let hit = k == key;
            if hit {
                found = Some(*v);
            }
            !hit
        });
        found.map(Field::Raw)
    }
    fn into_rest(self) -> Vec<(String, Value)> {
        self.0
            .into_iter()
            .map(|(k, v)| (k, Field::Raw(v).into_value()))
            .collect()
    }
}

impl<'de> serde::Deserialize<'de> for RawFields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> serde::de::Visitor<'de> for FieldsVisitor {
            type Value = RawFields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an event object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(6));
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    fields.push(entry);
                }
                Ok(RawFields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

fn take_string_field<'a>(
    fields: &mut impl Fields<'a>,
    field: &'static str,
) -> Result<Option<String>, EventError> {
    string_field(fields.take(field), field)
}

/// The string a field `found` holds (`None` when absent or null).
fn string_field(
    found: Option<Field<'_>>,
    field: &'static str,
) -> Result<Option<String>, EventError> {
    match found {
        None => Ok(None),
        Some(found) if found.is_null() => Ok(None),
        Some(Field::Value(Value::String(s))) => Ok(Some(s)),
        Some(Field::Raw(raw)) if raw.get().starts_with('"') => {
            Ok(serde_json::from_str(raw.get()).ok())
        }
        Some(other) => Err(EventError::FieldType {
            field,
            expected: "a string",
            found: other.type_name(),
        }),
    }
}

/// A timestamp field: an RFC 3339 string, or a number of seconds or
/// milliseconds since the Unix epoch ([`Timestamp::from_epoch_number`]),
/// as browser code sends `Date.now()`.
fn take_timestamp<'a>(
    fields: &mut impl Fields<'a>,
    field: &'static str,
) -> Result<Option<Timestamp>, EventError> {
    let found = fields.take(field);
    let number = match &found {
        Some(Field::Value(Value::Number(number))) => number.as_f64(),
        Some(Field::Raw(raw))
            if raw
                .get()
                .starts_with(|c: char| c == '-' || c.is_ascii_digit()) =>
        {
            raw.get().parse::<f64>().ok()
        }
        _ => None,
    };
    if let Some(number) = number {
        return Ok(Some(Timestamp::from_epoch_number(number)));
    }
    string_field(found, field)?
        .map(|s| {
            s.parse()
                .map_err(|source| EventError::Timestamp { field, source })
        })
        .transpose()
}

/// An event from one element of a body, keeping its `data` as JSON text.
fn event_from_raw(item: &RawValue) -> Result<Event, EventError> {
    if !item.get().starts_with('{') {
        return Err(EventError::NotAnObject {
            found: raw_type_name(item),
        });
    }
    // The element was parsed once already, so it is a valid object.
    let fields: RawFields<'_> =
        serde_json::from_str(item.get()).map_err(|_| EventError::NotAnObject {
            found: "an invalid object",
        })?;
    event_from_fields(fields)
}

pub(crate) fn event_from_object(object: Map) -> Result<Event, EventError> {
    event_from_fields(object)
}

fn event_from_fields<'a>(mut object: impl Fields<'a>) -> Result<Event, EventError> {
    let (field, name) = match take_string_field(&mut object, "name")? {
        Some(name) => ("name", name),
        None => match take_string_field(&mut object, "event")? {
            Some(name) => ("event", name),
            None => return Err(EventError::MissingName),
        },
    };
    let name = EventName::new(name).map_err(|source| EventError::Name { field, source })?;
    let id = take_string_field(&mut object, "id")?
        .map(|s| s.parse::<EventId>().map_err(EventError::Id))
        .transpose()?
        .unwrap_or_default();
    let timestamp = take_timestamp(&mut object, "timestamp")?.unwrap_or_else(Timestamp::now);
    let received_at = take_timestamp(&mut object, "received_at")?;
    let mut context = match object.take("context") {
        None => Map::new(),
        Some(found) if found.is_null() => Map::new(),
        Some(found) => match found.into_value() {
            Value::Object(context) => context,
            other => {
                return Err(EventError::FieldType {
                    field: "context",
                    expected: "an object",
                    found: json_type_name(&other),
                });
            }
        },
    };
    let data = match object.take("data") {
        Some(data) => data.into_data(),
        None => object.take("properties").map_or_else(
            || Data::from_value(Value::Object(Map::new())),
            Field::into_data,
        ),
    };
    for (key, value) in object.into_rest() {
        context.entry(key).or_insert(value);
    }
    Ok(Event::from_parts(
        id,
        name,
        timestamp,
        context,
        data,
        received_at,
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn decode_one(body: &str) -> Result<Event, WireError> {
        decode(body.as_bytes(), &Limits::default()).map(|mut v| {
            assert_eq!(v.len(), 1);
            v.remove(0)
        })
    }

    #[test]
    fn data_is_any_json_and_a_repeated_key_keeps_its_last_value() {
        assert_eq!(
            decode_one(r#"{"name": "a.b", "data": [1, 2]}"#)
                .unwrap()
                .data(),
            &json!([1, 2])
        );
        assert_eq!(
            decode_one(r#"{"name": "a.b", "data": 7}"#).unwrap().data(),
            &json!(7)
        );
        assert_eq!(
            decode_one(r#"{"name": "a.b", "data": null}"#)
                .unwrap()
                .data(),
            &json!(null)
        );
        assert_eq!(decode_one(r#"{"name": "a.b"}"#).unwrap().data(), &json!({}));
        let twice = decode_one(r#"{"name": "a.b", "data": {"k": 1, "k": 2}}"#).unwrap();
        assert_eq!(twice.data(), &json!({"k": 2}));
        let written: Value = serde_json::from_slice(&twice.to_json_bytes()).unwrap();
        assert_eq!(written["data"], json!({"k": 2}));
    }

    #[test]
    fn decodes_the_design_example_exactly() {
        let body = r#"{"id": "01936f0e-0b1c-7def-8abc-0123456789ab", "name": "navigation.request",
            "timestamp": "2026-11-24T19:09:08.123456Z",
            "context": {"user_id": 10938}, "data": {"url": "http://www.edx.org/some/path/1"},
            "received_at": "2026-11-24T19:09:08.200001Z"}"#;
        let event = decode_one(body).unwrap();
        assert_eq!(
            event.id().to_string(),
            "01936f0e-0b1c-7def-8abc-0123456789ab"
        );
        assert_eq!(event.name(), "navigation.request");
        assert_eq!(event.timestamp().to_string(), "2026-11-24T19:09:08.123456Z");
        assert_eq!(
            event.context(),
            json!({"user_id": 10938}).as_object().unwrap()
        );
        assert_eq!(
            event.data(),
            &json!({"url": "http://www.edx.org/some/path/1"})
        );
        assert_eq!(
            event.received_at().unwrap().to_string(),
            "2026-11-24T19:09:08.200001Z"
        );
        let reencoded: Value = serde_json::from_slice(&event.to_json_bytes()).unwrap();
        let original: Value = serde_json::from_str(body).unwrap();
        assert_eq!(reencoded, original);
    }

    #[test]
    fn assigns_id_and_timestamp_when_absent_and_leaves_received_at_unset() {
        let before = Timestamp::now();
        let event = decode_one(r#"{"name": "a.b"}"#).unwrap();
        assert_eq!(event.id().as_uuid().get_version_num(), 7);
        assert!(event.timestamp() >= before);
        assert_eq!(event.data(), &json!({}));
        assert!(event.context().is_empty());
        assert_eq!(event.received_at(), None);
        let encoded = String::from_utf8(event.to_json_bytes()).unwrap();
        assert!(!encoded.contains("received_at"), "{encoded}");
    }

    #[test]
    fn normalises_tachyon_shape_and_moves_unknown_fields_into_context() {
        let event = decode_one(
            r#"{"event": "page.view", "properties": {"path": "/x"}, "url": "http://a/",
                "context": {"url": "kept", "app": "web"}, "extra": [1]}"#,
        )
        .unwrap();
        assert_eq!(event.name(), "page.view");
        assert_eq!(event.data(), &json!({"path": "/x"}));
        assert_eq!(
            event.context(),
            json!({"url": "kept", "app": "web", "extra": [1]})
                .as_object()
                .unwrap()
        );
    }

    #[test]
    fn name_wins_over_event_and_data_over_properties() {
        let event =
            decode_one(r#"{"name": "a", "event": "b", "data": 1, "properties": 2}"#).unwrap();
        assert_eq!(event.name(), "a");
        assert_eq!(event.data(), &json!(1));
        assert_eq!(
            event.context(),
            json!({"event": "b", "properties": 2}).as_object().unwrap()
        );
    }

    #[test]
    fn decodes_batches_and_reports_the_failing_index() {
        let batch = decode(br#"[{"name": "a"}, {"name": "b"}]"#, &Limits::default()).unwrap();
        assert_eq!(
            batch.iter().map(|e| e.name().as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );

        let err = decode(br#"[{"name": "a"}, {"name": ""}]"#, &Limits::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "event 1: field `name`: event name is empty"
        );
        let err = decode(br#"[{"name": "a"}, 3]"#, &Limits::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "event 1: expected an object, found a number"
        );
    }

    #[test]
    fn empty_batch_decodes_to_no_events() {
        assert!(decode(b"[]", &Limits::default()).unwrap().is_empty());
    }

    #[test]
    fn shape_errors_name_the_field() {
        let cases = [
            (r#"{}"#, "event 0: missing field `name` (or `event`)"),
            (
                r#"{"name": 5}"#,
                "event 0: field `name` must be a string, found a number",
            ),
            (
                r#"{"name": "a", "context": []}"#,
                "event 0: field `context` must be an object, found an array",
            ),
            (
                r#"{"name": "a", "id": "nope"}"#,
                "event 0: field `id`: invalid event id \"nope\"",
            ),
            (
                r#"{"name": "a", "timestamp": "soon"}"#,
                "event 0: field `timestamp`: invalid timestamp \"soon\"",
            ),
            (
                r#""a""#,
                "expected an event object or an array of events, found a string",
            ),
        ];
        for (body, expected) in cases {
            let err = decode(body.as_bytes(), &Limits::default()).unwrap_err();
            assert!(err.to_string().starts_with(expected), "{body}: {err}");
        }
    }

    #[test]
    fn rejects_bodies_over_the_byte_limit() {
        let limits = Limits::default().with_max_bytes(10);
        let err = decode(br#"{"name": "abcdef"}"#, &limits).unwrap_err();
        assert!(
            matches!(err, WireError::TooLarge { len: 18, limit: 10 }),
            "{err}"
        );
    }

    #[test]
    fn rejects_batches_over_the_event_limit() {
        let limits = Limits::default().with_max_events(2);
        let err = decode(br#"[{"name": "a"}, {"name": "a"}, {"name": "a"}]"#, &limits).unwrap_err();
        assert_eq!(err.to_string(), "batch holds 3 events, the limit is 2");
    }

    #[test]
    fn rejects_nesting_deeper_than_64_but_accepts_64() {
        let nested = |levels: usize| {
            // The event object is level 1; `data` adds levels - 1 arrays.
            format!(
                r#"{{"name": "a", "data": {}{}}}"#,
                "[".repeat(levels - 1),
                "]".repeat(levels - 1)
            )
        };
        assert!(decode(nested(64).as_bytes(), &Limits::default()).is_ok());
        let err = decode(nested(65).as_bytes(), &Limits::default()).unwrap_err();
        assert!(matches!(err, WireError::TooDeep { limit: 64, .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("JSON nests deeper than 64 levels"),
            "{err}"
        );
    }

    #[test]
    fn the_depth_scan_survives_truncated_strings_and_escapes() {
        let limits = Limits::default().with_max_bytes(usize::MAX);
        for tail in ["\"\\", "\"abc\\", "\"", "\"\\\"[[[["] {
            // Over 64 openers (so the precise scan runs) but shallow nesting.
            let body = format!("[{}{tail}", "[],".repeat(70));
            assert!(decode(body.as_bytes(), &limits).is_err(), "{tail:?}");
        }
        // Escaped quotes do not end a string: these brackets are text.
        let body = format!(r#"{{"name": "a", "data": "\"{}\""}}"#, "[".repeat(200));
        assert!(decode(body.as_bytes(), &limits).is_ok());
    }

    #[test]
    fn brackets_inside_strings_do_not_count_towards_depth() {
        let body = format!(
            r#"{{"name": "a", "data": "{}\"{}"}}"#,
            "[".repeat(100),
            "{".repeat(100)
        );
        assert!(decode(body.as_bytes(), &Limits::default()).is_ok());
    }

    #[test]
    fn refuses_values_no_sink_can_store_naming_the_event_and_path() {
        let body =
            r#"[{"name": "ok", "data": {"n": 1}}, {"name": "evil", "data": {"x": "\ud800"}}]"#;
        let err = decode(body.as_bytes(), &Limits::default()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("event 1: `data.x`: the string holds a lone surrogate \\ud800"),
            "{err}"
        );
        let err = decode(br#"{"name": "a.b", "x": 1e400}"#, &Limits::default()).unwrap_err();
        assert!(
            matches!(&err, WireError::Event { index: 0, source: EventError::Unstorable { path, .. } } if path == "x"),
            "{err}"
        );
        assert!(
            err.to_string().ends_with("no sink could store it as sent"),
            "{err}"
        );
    }

    #[test]
    fn numeric_timestamps_are_epoch_seconds_or_milliseconds_by_magnitude() {
        let expected = "2025-12-03T05:20:00.250000Z";
        for body in [
            r#"{"name": "a", "timestamp": 1764739200.25}"#,
            r#"{"name": "a", "timestamp": 1764739200250}"#,
            r#"{"name": "a", "timestamp": 1764739200250.0, "received_at": 1764739200.25}"#,
        ] {
            let event = decode_one(body).unwrap();
            assert_eq!(event.timestamp().to_string(), expected, "{body}");
        }
        let event = decode_one(r#"{"name": "a", "received_at": 1764739200}"#).unwrap();
        assert_eq!(
            event.received_at().unwrap().to_string(),
            "2025-12-03T05:20:00.000000Z"
        );
        // The same through a parsed value (`decode_value`).
        let parsed = decode_value(
            json!({"name": "a", "timestamp": 1_764_739_200_250_u64}),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(parsed[0].timestamp().to_string(), expected);
        // Just under 10^11 is seconds (year 5138), at it milliseconds (1973).
        let far = decode_one(r#"{"name": "a", "timestamp": 99999999999}"#).unwrap();
        assert!(
            far.timestamp().to_string().starts_with("5138-"),
            "{}",
            far.timestamp()
        );
        let early = decode_one(r#"{"name": "a", "timestamp": 100000000000}"#).unwrap();
        assert!(
            early.timestamp().to_string().starts_with("1973-03-03"),
            "{}",
            early.timestamp()
        );
        // Beyond what RFC 3339 writes: clamped, never refused.
        let clamped = decode_one(r#"{"name": "a", "timestamp": 1e300}"#).unwrap();
        assert_eq!(
            clamped.timestamp().to_string(),
            "9999-12-31T23:59:59.999999Z"
        );
        let negative = decode_one(r#"{"name": "a", "timestamp": -1.5}"#).unwrap();
        assert_eq!(
            negative.timestamp().to_string(),
            "1969-12-31T23:59:58.500000Z"
        );
        // Other types are still refused, naming the field.
        let wrong = decode_one(r#"{"name": "a", "timestamp": true}"#).unwrap_err();
        assert!(wrong.to_string().contains("timestamp"), "{wrong}");
    }

    #[test]
    fn rejects_invalid_utf8_with_its_offset() {
        let err = decode(b"{\"name\": \"a\xff\"}", &Limits::default()).unwrap_err();
        assert!(
            matches!(err, WireError::InvalidUtf8 { valid_up_to: 11 }),
            "{err}"
        );
    }

    #[test]
    fn rejects_invalid_json_with_position() {
        let err = decode(b"{\"name\": ", &Limits::default()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid JSON: EOF while parsing"),
            "{err}"
        );
    }

    #[test]
    fn serde_deserialize_applies_the_same_rules() {
        let event: Event =
            serde_json::from_str(r#"{"event": "x", "properties": {"a": 1}}"#).unwrap();
        assert_eq!(event.name(), "x");
        assert!(serde_json::from_str::<Event>(r#"{"name": ""}"#).is_err());
    }
}
