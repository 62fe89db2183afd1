//! `Timestamp`: a UTC instant with microsecond precision, written as RFC 3339.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// A UTC instant with microsecond precision.
///
/// It is written as RFC 3339 with exactly six fractional digits and a `Z`
/// suffix (`2026-11-24T19:09:08.123456Z`), and read from any RFC 3339 string,
/// whatever its offset (converted to UTC) or precision (truncated to
/// microseconds).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(OffsetDateTime);

/// A string that is not an RFC 3339 timestamp.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid timestamp {input:?}, expected RFC 3339 such as \"2026-11-24T19:09:08.123456Z\": {source}")]
pub struct TimestampError {
    input: String,
    #[source]
    source: time::error::Parse,
}

impl Timestamp {
    /// The current time from the system clock.
    #[must_use]
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    /// Converts any `OffsetDateTime` to UTC and truncates it to microseconds.
    #[must_use]
    pub fn from_datetime(at: OffsetDateTime) -> Self {
        let at = at.to_offset(UtcOffset::UTC);
        let micros = at.nanosecond() / 1_000;
        // Truncating the nanoseconds of a valid time always yields a valid time.
        Self(at.replace_nanosecond(micros * 1_000).unwrap_or(at))
    }

    /// The instant as an `OffsetDateTime` in UTC.
    #[must_use]
    pub const fn as_datetime(&self) -> OffsetDateTime {
        self.0
    }

    /// Microseconds since the Unix epoch.
    #[must_use]
    pub fn unix_micros(&self) -> i64 {
        // Fits: the RFC 3339 year range (0..=9999) is well within i64 micros.
        (self.0.unix_timestamp_nanos() / 1_000) as i64
    }

    /// Writes the timestamp as `YYYY-MM-DDTHH:MM:SS.ffffffZ` into `buf`.
    fn write_rfc3339(&self, buf: &mut [u8; 27]) {
        fn put(buf: &mut [u8], mut value: u32) {
            for slot in buf.iter_mut().rev() {
                *slot = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        let t = self.0;
        // Years outside 0..=9999 cannot be written as RFC 3339; they can only
        // come from `from_datetime` with an extreme value, so clamp them.
        put(&mut buf[0..4], t.year().clamp(0, 9999) as u32);
        buf[4] = b'-';
        put(&mut buf[5..7], u32::from(u8::from(t.month())));
        buf[7] = b'-';
        put(&mut buf[8..10], u32::from(t.day()));
        buf[10] = b'T';
        put(&mut buf[11..13], u32::from(t.hour()));
        buf[13] = b':';
        put(&mut buf[14..16], u32::from(t.minute()));
        buf[16] = b':';
        put(&mut buf[17..19], u32::from(t.second()));
        buf[19] = b'.';
        put(&mut buf[20..26], t.microsecond());
        buf[26] = b'Z';
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(at: OffsetDateTime) -> Self {
        Self::from_datetime(at)
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OffsetDateTime::parse(s, &Rfc3339)
            .map(Self::from_datetime)
            .map_err(|source| TimestampError {
                input: s.chars().take(64).collect(),
                source,
            })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 27];
        self.write_rfc3339(&mut buf);
        // Only ASCII digits and separators were written.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 27];
        self.write_rfc3339(&mut buf);
        serializer.serialize_str(std::str::from_utf8(&buf).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_six_fraction_digits_and_z() {
        let t: Timestamp = "2026-11-24T19:09:08.123456Z".parse().unwrap();
        assert_eq!(t.to_string(), "2026-11-24T19:09:08.123456Z");
        let t: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(t.to_string(), "2026-01-02T03:04:05.000000Z");
    }

    #[test]
    fn converts_offsets_to_utc_and_truncates_to_micros() {
        let t: Timestamp = "2026-11-24T20:09:08.123456789+01:00".parse().unwrap();
        assert_eq!(t.to_string(), "2026-11-24T19:09:08.123456Z");
    }

    #[test]
    fn now_round_trips_through_text() {
        let t = Timestamp::now();
        assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
    }

    #[test]
    fn rejects_non_rfc3339() {
        let err = "yesterday".parse::<Timestamp>().unwrap_err();
        assert!(err.to_string().starts_with("invalid timestamp \"yesterday\""), "{err}");
        assert!("2026-11-24 19:09:08".parse::<Timestamp>().is_err());
    }
}
