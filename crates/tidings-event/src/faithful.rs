//! What every sink can store as it was sent: refusing, at decode, the JSON
//! values that some sink would refuse or silently change. Two kinds exist:
//!
//! - a `\u` escape of a lone UTF-16 surrogate (`"\ud800"`): valid JSON
//!   text, but no Unicode string; PostgreSQL refuses it, other readers
//!   replace it;
//! - a number outside what an IEEE 754 double holds (`1e400`, or a nonzero
//!   `1e-400` that would read as 0): RFC 8259's limit for interoperable
//!   numbers; PostgreSQL refuses the largest, JavaScript, Python and Go
//!   readers turn them into infinity, null or 0.
//!
//! The walk runs only when a quick look finds a `\u` escape, an exponent
//! of three digits or more, or a run of 300 digits: ordinary bodies pay a
//! single pass over their bytes.

use std::fmt::Write;

/// A value no sink can store faithfully, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unfaithful {
    /// Index of the event in the batch (0 for a single event).
    pub(crate) index: usize,
    /// Path of the value inside the event, as sent (`data.user.ids[3]`).
    pub(crate) path: String,
    /// What is wrong with it.
    pub(crate) what: String,
}

/// A digit run this long (or longer) may be a number out of a double's
/// range, so the body is walked.
const SUSPICIOUS_DIGITS: usize = 300;

/// Whether `bytes` may hold a lone surrogate or an out-of-range number.
fn suspicious(bytes: &[u8]) -> bool {
    if memchr::memmem::find(bytes, b"\\u").is_some() {
        return true;
    }
    let mut digits = 0usize;
    for (at, &b) in bytes.iter().enumerate() {
        if b.is_ascii_digit() {
            digits += 1;
            if digits >= SUSPICIOUS_DIGITS {
                return true;
            }
            continue;
        }
        digits = 0;
        if matches!(b, b'e' | b'E') {
            let rest = &bytes[at + 1..];
            let rest = rest
                .strip_prefix(b"-")
                .or_else(|| rest.strip_prefix(b"+"))
                .unwrap_or(rest);
            if rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit) {
                return true;
            }
        }
    }
    false
}

/// One level of the path being walked.
enum Level {
    /// In an object: the last key read, and whether a key is expected next.
    Object { key: String, expect_key: bool },
    /// In an array: the index of the current element.
    Array(usize),
}

/// Checks JSON text (already valid UTF-8; its syntax is left to the
/// parser) for values no sink can store faithfully.
///
/// # Errors
///
/// [`Unfaithful`] for the first such value, with its event's index and
/// its path.
pub(crate) fn check(bytes: &[u8]) -> Result<(), Unfaithful> {
    if !suspicious(bytes) {
        return Ok(());
    }
    let mut stack: Vec<Level> = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                let (end, text) = string(bytes, at).map_err(|what| fail(&stack, what))?;
                if let Some(Level::Object { key, expect_key }) = stack.last_mut()
                    && *expect_key
                {
                    *key = text;
                    *expect_key = false;
                }
                at = end;
                continue;
            }
            b'{' => stack.push(Level::Object {
                key: String::new(),
                expect_key: true,
            }),
            b'[' => stack.push(Level::Array(0)),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Level::Object { expect_key, .. }) => *expect_key = true,
                Some(Level::Array(index)) => *index += 1,
                None => {}
            },
            b'-' | b'0'..=b'9' => {
                let end = bytes[at..]
                    .iter()
                    .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .map_or(bytes.len(), |n| at + n);
                number(&bytes[at..end]).map_err(|what| fail(&stack, what))?;
                at = end;
                continue;
            }
            _ => {}
        }
        at += 1;
    }
    Ok(())
}

/// Reads the string starting at the quote at `start`: where it ends (past
/// its closing quote) and, for a short one, its text (for a key).
fn string(bytes: &[u8], start: usize) -> Result<(usize, String), String> {
    let mut at = start + 1;
    loop {
        let Some(i) = memchr::memchr2(b'"', b'\\', &bytes[at.min(bytes.len())..]) else {
            // Unterminated: the parser reports it.
            return Ok((bytes.len(), String::new()));
        };
        at += i;
        if bytes[at] == b'"' {
            let raw = &bytes[start + 1..at];
            let key = if raw.len() <= 256 {
                String::from_utf8_lossy(raw).into_owned()
            } else {
                String::new()
            };
            return Ok((at + 1, key));
        }
        // An escape: only `\u` needs a look.
        if bytes.get(at + 1) == Some(&b'u') {
            let unit = hex4(bytes, at + 2);
            match unit {
                Some(0xD800..=0xDBFF) => {
                    let low = (bytes.get(at + 6..at + 8) == Some(b"\\u"))
                        .then(|| hex4(bytes, at + 8))
                        .flatten();
                    if !matches!(low, Some(0xDC00..=0xDFFF)) {
                        return Err(format!(
                            "the string holds a lone surrogate \\u{:04x} (not followed by a low surrogate)",
                            unit.unwrap_or_default()
                        ));
                    }
                    at += 12;
                }
                Some(0xDC00..=0xDFFF) => {
                    return Err(format!(
                        "the string holds a lone surrogate \\u{:04x} (no high surrogate before it)",
                        unit.unwrap_or_default()
                    ));
                }
                _ => at += 6,
            }
        } else {
            at += 2;
        }
    }
}

fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = std::str::from_utf8(bytes.get(at..at + 4)?).ok()?;
    u32::from_str_radix(digits, 16).ok()
}

/// Checks one number token against a double's range.
fn number(token: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(token).unwrap_or_default();
    let Ok(value) = text.parse::<f64>() else {
        // Not a number after all (bad syntax): the parser reports it.
        return Ok(());
    };
    let shown = if text.len() > 40 {
        format!("{}… ({} characters)", &text[..40], text.len())
    } else {
        text.to_owned()
    };
    if value.is_infinite() {
        return Err(format!(
            "the number {shown} is too large for a double (at most about 1.8e308)"
        ));
    }
    let mantissa = text.split(['e', 'E']).next().unwrap_or_default();
    if value == 0.0 && mantissa.bytes().any(|b| matches!(b, b'1'..=b'9')) {
        return Err(format!(
            "the number {shown} is too small for a double and would read as 0"
        ));
    }
    Ok(())
}

/// The error for the value at the top of `stack`.
fn fail(stack: &[Level], what: String) -> Unfaithful {
    // A batch's first level is the event's index; a single event is 0.
    let (index, inner) = match stack.first() {
        Some(Level::Array(index)) => (*index, &stack[1..]),
        _ => (0, stack),
    };
    let mut path = String::new();
    for level in inner {
        match level {
            // At a key not read yet: the path ends at the object.
            Level::Object {
                expect_key: true, ..
            } => {}
            Level::Object { key, .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Level::Array(i) => {
                let _ = write!(path, "[{i}]");
            }
        }
    }
    Unfaithful { index, path, what }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> Unfaithful {
        check(text.as_bytes()).unwrap_err()
    }

    #[test]
    fn ordinary_json_passes_without_a_walk() {
        let text = r#"[{"name": "a.b", "data": {"n": 1.5e10, "s": "caf\u00e9 \ud83d\ude00", "big": 18446744073709551615}}]"#;
        assert!(check(text.as_bytes()).is_ok());
        assert!(!suspicious(br#"{"name": "x", "data": {"n": 12.5e-7}}"#));
        assert!(suspicious(br#"{"n": 1e400}"#));
        assert!(suspicious(br#"{"s": "\u0041"}"#));
        assert!(suspicious("1".repeat(300).as_bytes()));
        assert!(!suspicious("1".repeat(299).as_bytes()));
    }

    #[test]
    fn lone_surrogates_are_refused_with_their_event_and_path() {
        let e = refused(r#"{"name": "evil", "data": {"x": "\ud800"}}"#);
        assert_eq!((e.index, e.path.as_str()), (0, "data.x"));
        assert!(e.what.contains("lone surrogate \\ud800"), "{}", e.what);
        let e =
            refused(r#"[{"name": "ok"}, {"name": "evil", "data": {"list": ["a", "\udc00x"]}}]"#);
        assert_eq!((e.index, e.path.as_str()), (1, "data.list[1]"));
        let e = refused(r#"[{"name": "e", "data": {"x": "\uD800\u0041"}}]"#);
        assert_eq!(e.path, "data.x");
        // A pair is fine; an escaped backslash before `u` is no escape.
        assert!(check(br#"{"s": "\uD83D\uDE00", "t": "\\ud800"}"#).is_ok());
        // What follows a pair or another escape in the same string is read.
        for text in [
            r#"{"s": "\uD83D\uDE00\ud800"}"#,
            r#"{"s": "\u0041\udc00"}"#,
            r#"{"s": "\u0041\u0042\u0043\ud800"}"#,
        ] {
            assert_eq!(refused(text).path, "s", "{text}");
        }
        // In a key too.
        let e = refused(r#"{"name": "e", "data": {"\ud800": 1}}"#);
        assert_eq!(e.path, "data");
    }

    #[test]
    fn numbers_out_of_a_doubles_range_are_refused_with_their_path() {
        let e = refused(r#"{"name": "a.b", "x": 1e400}"#);
        assert_eq!((e.index, e.path.as_str()), (0, "x"));
        assert!(e.what.contains("1e400 is too large"), "{}", e.what);
        let e = refused(r#"[{"name": "a"}, {"name": "b", "data": {"v": [1, 2, -1e1000000]}}]"#);
        assert_eq!((e.index, e.path.as_str()), (1, "data.v[2]"));
        let e = refused(r#"{"data": {"tiny": 1e-400}}"#);
        assert!(e.what.contains("would read as 0"), "{}", e.what);
        let long = format!(r#"{{"data": {{"n": {}}}}}"#, "9".repeat(400));
        let e = refused(&long);
        assert!(e.what.contains("(400 characters)"), "{}", e.what);
        // Up to 40 characters a number is shown whole.
        let forty = format!("1{}e400", "0".repeat(35));
        let e = refused(&format!(r#"{{"n": {forty}}}"#));
        assert!(
            e.what.contains(&format!("the number {forty} is")),
            "{}",
            e.what
        );
        let e = refused(&format!(r#"{{"n": 1{forty}}}"#));
        assert!(e.what.contains("(41 characters)"), "{}", e.what);
        // Within range, zero, and numbers inside strings pass.
        for ok in [
            r#"{"a": 1.7976931348623157e308, "b": 0e999, "c": 0.0e-500, "d": 2.2250738585072014e-308}"#,
            r#"{"s": "1e400", "t": "-1e99999"}"#,
            r#"{"n": 123456789012345678901234567890}"#,
        ] {
            assert!(check(ok.as_bytes()).is_ok(), "{ok}");
        }
    }

    #[test]
    fn truncated_or_broken_text_is_left_to_the_parser() {
        // No panic, and nothing refused that is not a whole bad value.
        for text in [
            r#"{"s": "\ud8"#,
            r#"{"s": "\u"#,
            r#"{"n": 1e4"#,
            r#""\"#,
            r#"{"s": "\u12"#,
            "[1e2e400",
            "--1e400",
        ] {
            assert!(check(text.as_bytes()).is_ok(), "{text}");
        }
        assert_eq!(refused("[1e400").index, 0);
    }
}
