//! `Timestamp`: a UTC instant with microsecond precision, written as RFC 3339.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::{SystemTime, UNIX_EPOCH};
use time::format_description::well_known::Rfc3339;

use time::OffsetDateTime;

/// A UTC instant with microsecond precision.
///
/// It is written as RFC 3339 with exactly six fractional digits and a `Z`
/// suffix (`2026-11-24T19:09:08.123456Z`), and read from any RFC 3339 string,
/// whatever its offset (converted to UTC) or precision (truncated to
/// microseconds). Instants are kept within the years 0000 to 9999, the range
/// RFC 3339 can write.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp {
    /// Microseconds since 1970-01-01T00:00:00Z.
    micros: i64,
}

/// A string that is not an RFC 3339 timestamp.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "invalid timestamp {input:?}, expected RFC 3339 such as \"2026-11-24T19:09:08.123456Z\": {source}"
)]
pub struct TimestampError {
    input: String,
    #[source]
    source: time::error::Parse,
}

/// 0000-01-01T00:00:00Z, in microseconds since the epoch.
const MIN_MICROS: i64 = -62_167_219_200_000_000;
/// 9999-12-31T23:59:59.999999Z, in microseconds since the epoch.
const MAX_MICROS: i64 = 253_402_300_799_999_999;
const MICROS_PER_DAY: i64 = 86_400_000_000;

impl Timestamp {
    /// The current time from the system clock.
    #[must_use]
    pub fn now() -> Self {
        let micros = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_micros()).unwrap_or(MAX_MICROS),
            Err(before) => i64::try_from(before.duration().as_micros()).map_or(MIN_MICROS, |m| -m),
        };
        Self::from_unix_micros(micros)
    }

    /// The instant `micros` microseconds after the Unix epoch (before it when
    /// negative), clamped to the years 0000 to 9999.
    #[must_use]
    pub const fn from_unix_micros(micros: i64) -> Self {
        let micros = if micros < MIN_MICROS {
            MIN_MICROS
        } else if micros > MAX_MICROS {
            MAX_MICROS
        } else {
            micros
        };
        Self { micros }
    }

    /// The instant a numeric client timestamp names: seconds since the Unix
    /// epoch, or milliseconds when its magnitude is 10^11 or more (a count
    /// of seconds that large is past the year 5000; one of milliseconds,
    /// past March 1973), fractions kept to the microsecond, clamped to the
    /// years 0000 to 9999.
    ///
    /// ```
    /// use tidings_event::Timestamp;
    ///
    /// let seconds = Timestamp::from_epoch_number(1_764_739_200.5);
    /// let millis = Timestamp::from_epoch_number(1_764_739_200_500.0);
    /// assert_eq!(seconds, millis);
    /// assert_eq!(seconds.to_string(), "2025-12-03T05:20:00.500000Z");
    /// ```
    #[must_use]
    pub fn from_epoch_number(value: f64) -> Self {
        let micros = if value.abs() >= 1e11 {
            value * 1e3
        } else {
            value * 1e6
        };
        // `as` saturates, and the result is clamped to the years 0000..=9999.
        Self::from_unix_micros(micros.round() as i64)
    }

    /// Converts any `OffsetDateTime` to UTC and truncates it to microseconds.
    #[must_use]
    pub fn from_datetime(at: OffsetDateTime) -> Self {
        let micros = at.unix_timestamp_nanos().div_euclid(1_000);
        Self::from_unix_micros(i64::try_from(micros).unwrap_or(if micros < 0 {
            MIN_MICROS
        } else {
            MAX_MICROS
        }))
    }

    /// The instant as an `OffsetDateTime` in UTC.
    #[must_use]
    pub fn as_datetime(&self) -> OffsetDateTime {
        // Every instant of years 0000..=9999 is representable.
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.micros) * 1_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Microseconds since the Unix epoch.
    #[must_use]
    pub const fn unix_micros(&self) -> i64 {
        self.micros
    }

    /// Appends the RFC 3339 form (27 ASCII bytes) to `out`.
    pub(crate) fn write_ascii(&self, out: &mut Vec<u8>) {
        let mut buf = [0u8; 27];
        self.write_rfc3339(&mut buf);
        out.extend_from_slice(&buf);
    }

    /// Writes the timestamp as `YYYY-MM-DDTHH:MM:SS.ffffffZ` into `buf`.
    fn write_rfc3339(&self, buf: &mut [u8; 27]) {
        fn put(buf: &mut [u8], mut value: u32) {
            for slot in buf.iter_mut().rev() {
                *slot = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        let days = self.micros.div_euclid(MICROS_PER_DAY);
        let in_day = self.micros.rem_euclid(MICROS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let seconds = (in_day / 1_000_000) as u32;
        // `from_unix_micros` keeps the year within 0..=9999.
        put(&mut buf[0..4], year as u32);
        buf[4] = b'-';
        put(&mut buf[5..7], month);
        buf[7] = b'-';
        put(&mut buf[8..10], day);
        buf[10] = b'T';
        put(&mut buf[11..13], seconds / 3600);
        buf[13] = b':';
        put(&mut buf[14..16], seconds / 60 % 60);
        buf[16] = b':';
        put(&mut buf[17..19], seconds % 60);
        buf[19] = b'.';
        put(&mut buf[20..26], (in_day % 1_000_000) as u32);
        buf[26] = b'Z';
    }
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
    fn formatting_agrees_with_the_time_crate_across_the_whole_range() {
        let format = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        );
        let mut micros = MIN_MICROS;
        // 100 000 steps of about 36.5 days plus odd hours, seconds and
        // microseconds visit every month, leap years and times of day.
        while micros <= MAX_MICROS {
            let t = Timestamp::from_unix_micros(micros);
            assert_eq!(
                t.to_string(),
                t.as_datetime().format(&format).unwrap(),
                "{micros}"
            );
            assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
            micros += 3_155_692_597_121;
        }
        assert_eq!(
            Timestamp::from_unix_micros(MAX_MICROS).to_string(),
            "9999-12-31T23:59:59.999999Z"
        );
        assert_eq!(
            Timestamp::from_unix_micros(MIN_MICROS).to_string(),
            "0000-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            Timestamp::from_unix_micros(-1).to_string(),
            "1969-12-31T23:59:59.999999Z"
        );
    }

    #[test]
    fn out_of_range_instants_are_clamped() {
        assert_eq!(
            Timestamp::from_unix_micros(i64::MAX),
            Timestamp::from_unix_micros(MAX_MICROS)
        );
        assert_eq!(
            Timestamp::from_unix_micros(i64::MIN),
            Timestamp::from_unix_micros(MIN_MICROS)
        );
    }

    #[test]
    fn rejects_non_rfc3339() {
        let err = "yesterday".parse::<Timestamp>().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid timestamp \"yesterday\""),
            "{err}"
        );
        assert!("2026-11-24 19:09:08".parse::<Timestamp>().is_err());
    }
}
