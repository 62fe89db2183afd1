//! Events as rows of binary COPY: the id as `uuid`, timestamps as
//! `timestamptz` microseconds, and context and data as `jsonb` copied from
//! the event's wire-format JSON without parsing it.
//!
//! The format (PostgreSQL's "Binary Format" of COPY): a header, then per
//! row the number of fields (`i16`) and each field as its length (`i32`,
//! -1 for NULL) followed by its value in the type's binary form, then an
//! `i16` of -1. Everything is big-endian.

use bytes::{BufMut, BytesMut};
use tidings_event::{Event, Timestamp};

/// The signature, the flags (no OIDs) and the length of the header
/// extension (none).
pub(crate) const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Ends the data.
pub(crate) const COPY_TRAILER: &[u8] = &(-1i16).to_be_bytes();

/// Fields per row: id, name, timestamp, received_at, context, data.
const FIELDS: i16 = 6;

/// The largest field PostgreSQL accepts (1 GiB - 1 byte).
const MAX_FIELD: usize = (1 << 30) - 1;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01T00:00:00Z).
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// An event's context or data is larger than a PostgreSQL field can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldTooLarge {
    /// `context` or `data`.
    pub(crate) field: &'static str,
    /// Its size in bytes.
    pub(crate) bytes: usize,
}

/// A `timestamptz` in its binary form: microseconds since 2000-01-01.
fn postgres_micros(at: Timestamp) -> i64 {
    at.unix_micros() - POSTGRES_EPOCH_MICROS
}

/// Appends a `jsonb` field: its length, the format's version (1) and the
/// JSON text.
///
/// PostgreSQL cannot store the character U+0000 in `jsonb`; its escape
/// `\u0000` is written as `\ufffd` (U+FFFD, the replacement character), so
/// that one such event does not make its whole batch fail.
fn put_jsonb(out: &mut BytesMut, json: &[u8], field: &'static str) -> Result<(), FieldTooLarge> {
    put_jsonb_within(out, json, field, MAX_FIELD)
}

/// [`put_jsonb`] with a limit of `max` bytes per field.
fn put_jsonb_within(
    out: &mut BytesMut,
    json: &[u8],
    field: &'static str,
    max: usize,
) -> Result<(), FieldTooLarge> {
    let len = json.len() + 1;
    let too_large = FieldTooLarge { field, bytes: len };
    if len > max {
        return Err(too_large);
    }
    out.put_i32(i32::try_from(len).map_err(|_| too_large)?);
    out.put_u8(1);
    let start = out.len();
    out.extend_from_slice(json);
    replace_nul_escapes(&mut out[start..]);
    Ok(())
}

/// Rewrites every `\u0000` escape of `json` into `\ufffd`, in place.
/// Backslashes occur in JSON only inside strings, each starting an escape of
/// two or six bytes, so skipping two bytes after each one never mistakes an
/// escaped backslash followed by `u0000` for the escape.
pub(crate) fn replace_nul_escapes(json: &mut [u8]) {
    let mut at = 0;
    while let Some(found) = json[at..].iter().position(|&b| b == b'\\') {
        let escape = at + found;
        if json.get(escape + 1..escape + 6) == Some(b"u0000") {
            json[escape + 2..escape + 6].copy_from_slice(b"fffd");
        }
        at = escape + 2;
        if at >= json.len() {
            break;
        }
    }
}

/// Encodes events' context and data as JSON text, reusing one buffer.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    buf: Vec<u8>,
}

impl Scratch {
    /// Appends `event` to `out` as one row of binary COPY.
    pub(crate) fn encode_row(
        &mut self,
        event: &Event,
        out: &mut BytesMut,
    ) -> Result<(), FieldTooLarge> {
        let name = event.name().as_str().as_bytes(); // at most 255 bytes
        out.reserve(2 + 20 + 4 + name.len() + 12 + 12 + 10 + 2 * self.buf.len());
        out.put_i16(FIELDS);
        out.put_i32(16);
        out.put_slice(event.id().as_uuid().as_bytes());
        out.put_i32(name.len() as i32);
        out.put_slice(name);
        out.put_i32(8);
        out.put_i64(postgres_micros(event.timestamp()));
        match event.received_at() {
            Some(at) => {
                out.put_i32(8);
                out.put_i64(postgres_micros(at));
            }
            None => out.put_i32(-1),
        }
        let (context, data) = self.context_and_data(event);
        put_jsonb(out, context, "context")?;
        put_jsonb(out, data, "data")
    }

    /// The JSON text of `event`'s context and data, as the event writes
    /// them (typed data copied as the text it was serialized to at emit).
    pub(crate) fn context_and_data(&mut self, event: &Event) -> (&[u8], &[u8]) {
        self.buf.clear();
        event.write_context_json(&mut self.buf);
        let context_end = self.buf.len();
        event.write_data_json(&mut self.buf);
        self.buf.split_at(context_end)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use tidings_event::{EventName, Timestamp};

    use super::*;

    fn check(event: &Event) {
        let mut scratch = Scratch::default();
        let mut wire = Vec::new();
        event.write_json(&mut wire);
        let (context, data) = scratch.context_and_data(event);
        // What the other sinks write, byte for byte.
        let members = [&b",\"context\":"[..], context, b",\"data\":", data].concat();
        assert!(
            wire.windows(members.len()).any(|w| w == members),
            "{}",
            String::from_utf8_lossy(&wire)
        );
        let context: Value = serde_json::from_slice(context).unwrap();
        let data: Value = serde_json::from_slice(data).unwrap();
        assert_eq!(context, Value::Object(event.context().clone()));
        assert_eq!(&data, event.data());
    }

    #[test]
    fn context_and_data_are_found_in_the_wire_format_whatever_they_hold() {
        let tricky = [
            json!({}),
            json!({"data": 1, "context": {"x": "}"}}),
            json!({"s": "a \"quoted\" \\ back\\slash }{ ][", "nested": [[{"a": [1, {}]}]]}),
            json!({",\"data\":": ",\"data\":{}"}),
            json!({"u": "\u{0}\u{1f}\u{e9}\u{1F600}"}),
        ];
        let data = [
            json!({}),
            json!([1, 2, {"a": "}"}]),
            json!("a string \" }"),
            json!(12.5),
            json!(null),
            json!(true),
            json!({"k": "v", "received_at": "x"}),
        ];
        let names = ["a", "with \"quotes\" and \\ slash", "\u{e9}v\u{e9}nement"];
        for context in &tricky {
            for data in &data {
                for name in names {
                    let mut event = Event::new(EventName::new(name).unwrap(), data.clone())
                        .with_context(context.as_object().unwrap().clone());
                    check(&event);
                    event.set_received_at(Timestamp::now());
                    check(&event);
                }
            }
        }
    }

    #[test]
    fn typed_data_is_copied_as_the_text_it_was_serialized_to() {
        #[derive(serde::Serialize)]
        struct Click<'a> {
            url: &'a str,
            depth: u32,
        }
        let event = Event::from_serializable(
            EventName::new("click").unwrap(),
            &Click {
                url: "/a",
                depth: 2,
            },
        )
        .unwrap();
        let mut scratch = Scratch::default();
        let (context, data) = scratch.context_and_data(&event);
        assert_eq!(context, b"{}");
        assert_eq!(data, br#"{"url":"/a","depth":2}"#);
    }

    #[test]
    fn a_row_has_six_length_prefixed_fields_in_postgres_binary_form() {
        let event = Event::new(EventName::new("ab").unwrap(), json!([1]))
            .with_timestamp(Timestamp::from_unix_micros(POSTGRES_EPOCH_MICROS + 5))
            .with_context(serde_json::Map::new());
        let mut out = BytesMut::new();
        Scratch::default().encode_row(&event, &mut out).unwrap();
        let mut expected = vec![0, 6, 0, 0, 0, 16];
        expected.extend_from_slice(event.id().as_uuid().as_bytes());
        expected.extend_from_slice(&[0, 0, 0, 2, b'a', b'b']);
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 5]);
        expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // received_at: NULL
        expected.extend_from_slice(&[0, 0, 0, 3, 1, b'{', b'}']);
        expected.extend_from_slice(&[0, 0, 0, 4, 1, b'[', b'1', b']']);
        assert_eq!(&out[..], &expected[..]);

        let received =
            event.with_received_at(Timestamp::from_unix_micros(POSTGRES_EPOCH_MICROS - 1));
        let mut out = BytesMut::new();
        Scratch::default().encode_row(&received, &mut out).unwrap();
        assert_eq!(
            &out[40..52],
            &[0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(COPY_HEADER.len(), 19);
    }

    #[test]
    fn a_field_over_the_limit_is_refused_before_anything_is_written() {
        let mut out = BytesMut::new();
        assert_eq!(
            put_jsonb_within(&mut out, b"[1,2]", "data", 5),
            Err(FieldTooLarge {
                field: "data",
                bytes: 6
            })
        );
        assert!(out.is_empty());
        put_jsonb_within(&mut out, b"[1,2]", "data", 6).unwrap();
        assert_eq!(&out[..], b"\0\0\0\x06\x01[1,2]");
    }

    #[test]
    fn nul_escapes_become_replacement_characters_and_nothing_else_changes() {
        for (input, output) in [
            (r#""\u0000""#, r#""\ufffd""#),
            (r#""a\u0000b\u0000""#, r#""a\ufffdb\ufffd""#),
            (r#""\\u0000""#, r#""\\u0000""#),
            (r#""\\\u0000""#, r#""\\\ufffd""#),
            (r#""\u00001""#, r#""\ufffd1""#),
            (r#""\u0001\n\\""#, r#""\u0001\n\\""#),
            (r#""\"#, r#""\"#),
        ] {
            let mut bytes = input.as_bytes().to_vec();
            replace_nul_escapes(&mut bytes);
            assert_eq!(String::from_utf8(bytes).unwrap(), output, "{input}");
        }
    }
}
