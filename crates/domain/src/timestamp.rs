//! Instants, kept as Unix milliseconds: cheap to compare, store and index on both databases.

use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An instant in UTC with millisecond precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time.
    #[must_use]
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        Self(i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
    }

    /// From Unix milliseconds, as stored.
    #[must_use]
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// From Unix seconds, as WhatsApp timestamps come.
    #[must_use]
    pub const fn from_unix_seconds(seconds: i64) -> Self {
        Self(seconds.saturating_mul(1000))
    }

    /// Unix milliseconds.
    #[must_use]
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// This instant moved by `hours` (negative moves back).
    #[must_use]
    pub const fn plus_hours(self, hours: i64) -> Self {
        Self(self.0.saturating_add(hours.saturating_mul(3_600_000)))
    }

    /// This instant moved by `millis` (negative moves back).
    #[must_use]
    pub const fn plus_millis(self, millis: i64) -> Self {
        Self(self.0.saturating_add(millis))
    }

    /// Parses an RFC 3339 string.
    ///
    /// # Errors
    /// When `s` is not RFC 3339.
    pub fn parse_rfc3339(s: &str) -> Result<Self, time::error::Parse> {
        let at = OffsetDateTime::parse(s, &Rfc3339)?;
        Ok(Self(
            i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX),
        ))
    }

    fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// RFC 3339 in UTC with milliseconds: `2026-11-25T10:00:00.123Z`.
///
/// Every conversation and message the API renders carries several timestamps, so this writes
/// the digits into a fixed buffer instead of going through `write!` field by field (which was
/// about 9% of a list request's CPU).
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.to_datetime();
        let Ok(year) = u16::try_from(at.year()) else {
            return write!(f, "{at:?}");
        };
        if year > 9999 {
            return write!(f, "{at:?}");
        }
        let mut text = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut value: u16| {
            for slot in text[at..at + width].iter_mut().rev() {
                *slot = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, u16::from(u8::from(at.month())));
        put(8, 2, u16::from(at.day()));
        put(11, 2, u16::from(at.hour()));
        put(14, 2, u16::from(at.minute()));
        put(17, 2, u16::from(at.second()));
        put(20, 3, at.millisecond());
        // Only ASCII digits and separators were written.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_rfc3339_utc_with_millis_and_parses_back() {
        let at = Timestamp::from_millis(1_795_600_800_123);
        let text = at.to_string();
        assert_eq!(text, "2026-11-25T10:00:00.123Z");
        assert_eq!(Timestamp::parse_rfc3339(&text).ok(), Some(at));
    }

    #[test]
    fn formats_every_field_with_its_zero_padding() {
        // Compared with a field-by-field `write!` over the whole range callers meet, in steps
        // that move every field (a prime number of milliseconds).
        let mut millis = 0_i64;
        while millis < 4_102_444_800_000 {
            let at = Timestamp::from_millis(millis).to_datetime();
            let expected = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                at.year(),
                u8::from(at.month()),
                at.day(),
                at.hour(),
                at.minute(),
                at.second(),
                at.millisecond()
            );
            assert_eq!(Timestamp::from_millis(millis).to_string(), expected);
            millis += 7_919_999_983;
        }
        assert_eq!(
            Timestamp::from_millis(0).to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_millis(951_782_400_009).to_string(),
            "2000-02-29T00:00:00.009Z"
        );
    }

    #[test]
    fn whatsapp_seconds_become_millis() {
        assert_eq!(Timestamp::from_unix_seconds(2).as_millis(), 2000);
        assert_eq!(
            Timestamp::from_millis(0).plus_hours(24).as_millis(),
            86_400_000
        );
    }
}
