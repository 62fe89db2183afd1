//! `EventName`: 1..=255 bytes of UTF-8 without control characters.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest event name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// A validated event name such as `navigation.request`.
///
/// Names are 1 to [`MAX_NAME_LEN`] bytes of UTF-8 and contain no control
/// characters. By convention they are dotted, `namespace.object.action`.
///
/// An empty name is refused, where edX's tracker emits the event as
/// `unknown`: a renamed event passes name filters and catalogs it was
/// never meant for, and hides the caller's mistake; refused, the caller
/// (or the collector's client, with a 400) is told.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventName(Cow<'static, str>);

/// Why a string is not a valid [`EventName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is the empty string.
    #[error("event name is empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("event name is {len} bytes long, the limit is {MAX_NAME_LEN}")]
    TooLong {
        /// The length of the rejected name, in bytes.
        len: usize,
    },
    /// The name contains a control character.
    #[error("event name {name:?} contains control character {ch:?} at byte {at}")]
    ControlCharacter {
        /// The rejected name.
        name: String,
        /// The offending character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
}

impl EventName {
    /// Validates `name`.
    ///
    /// # Errors
    ///
    /// [`NameError`] when the name is empty, longer than [`MAX_NAME_LEN`]
    /// bytes, or contains a control character.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Result<Self, NameError> {
        let name = name.into();
        validate(&name)?;
        Ok(Self(name))
    }

    /// The name as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn validate(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { len: name.len() });
    }
    // Fast path: ASCII names have no control characters outside 0x00..0x20 and 0x7f.
    if name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Ok(());
    }
    if let Some((at, ch)) = name.char_indices().find(|(_, c)| c.is_control()) {
        return Err(NameError::ControlCharacter {
            name: name.to_owned(),
            ch,
            at,
        });
    }
    Ok(())
}

impl TryFrom<String> for EventName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl TryFrom<&'static str> for EventName {
    type Error = NameError;
    fn try_from(value: &'static str) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl Deref for EventName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for EventName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for EventName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for EventName {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for EventName {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for EventName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EventName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dotted_and_unicode_names() {
        assert_eq!(
            EventName::new("edx.course.enrollment.activated").unwrap(),
            "edx.course.enrollment.activated"
        );
        assert!(EventName::new("café.ouvert").is_ok());
        assert!(EventName::new("x".repeat(MAX_NAME_LEN)).is_ok());
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(EventName::new("").unwrap_err(), NameError::Empty);
    }

    #[test]
    fn rejects_names_over_255_bytes_counting_bytes_not_chars() {
        // 128 two-byte characters = 256 bytes.
        let err = EventName::new("é".repeat(128)).unwrap_err();
        assert_eq!(err, NameError::TooLong { len: 256 });
        assert_eq!(
            err.to_string(),
            "event name is 256 bytes long, the limit is 255"
        );
    }

    #[test]
    fn rejects_control_characters_naming_the_position() {
        let err = EventName::new("a.b\nc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "event name \"a.b\\nc\" contains control character '\\n' at byte 3"
        );
        assert!(EventName::new("tab\there").is_err());
        assert!(EventName::new("del\u{7f}").is_err());
    }
}
