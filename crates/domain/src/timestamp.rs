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
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.to_datetime();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            at.millisecond()
        )
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
    fn whatsapp_seconds_become_millis() {
        assert_eq!(Timestamp::from_unix_seconds(2).as_millis(), 2000);
        assert_eq!(
            Timestamp::from_millis(0).plus_hours(24).as_millis(),
            86_400_000
        );
    }
}
