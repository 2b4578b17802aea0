//! Phone numbers, normalised once at the edge to E.164 with libphonenumber's metadata.

use std::fmt;
use std::str::FromStr;

use phonenumber::Mode;
use phonenumber::country::Id;

/// Why a phone number or country was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Not a number that can be dialled.
    #[error("`{0}` is not a valid phone number")]
    Invalid(String),
    /// Not an ISO 3166 alpha-2 region known to the phone metadata.
    #[error("`{0}` is not an ISO 3166 alpha-2 country code")]
    UnknownCountry(String),
}

/// An ISO 3166 alpha-2 country, used to read local phone numbers (`0812...` in `ID`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CountryCode(Id);

impl CountryCode {
    /// Parses an alpha-2 code, in any case.
    ///
    /// # Errors
    /// [`PhoneError::UnknownCountry`] when the phone metadata has no such region.
    pub fn parse(code: &str) -> Result<Self, PhoneError> {
        let upper = code.trim().to_ascii_uppercase();
        if upper.len() != 2 {
            return Err(PhoneError::UnknownCountry(code.to_owned()));
        }
        Id::from_str(&upper)
            .map(Self)
            .map_err(|_| PhoneError::UnknownCountry(code.to_owned()))
    }

    /// The alpha-2 code, upper case.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }
}

impl Default for CountryCode {
    /// Indonesia: the market the product was built for.
    fn default() -> Self {
        Self(Id::ID)
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A valid phone number in E.164 form, e.g. `+6281234567890`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneE164(String);

impl PhoneE164 {
    /// Normalises what a person typed: international (`+62 812...`) or local to `default_country`
    /// (`0812-3456-7890`). Digits without `+` that are not a valid local number are read as
    /// international, the way WhatsApp writes them.
    ///
    /// # Errors
    /// [`PhoneError::Invalid`] when no valid number can be read.
    pub fn parse(raw: &str, default_country: CountryCode) -> Result<Self, PhoneError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.len() > 32 {
            return Err(PhoneError::Invalid(raw.to_owned()));
        }
        if let Some(number) = Self::valid(Some(default_country.0), trimmed) {
            return Ok(number);
        }
        if !trimmed.starts_with('+') {
            if let Some(number) = Self::valid(None, &format!("+{trimmed}")) {
                return Ok(number);
            }
        }
        Err(PhoneError::Invalid(raw.to_owned()))
    }

    /// Reads a WhatsApp `wa_id` or `from` (international digits without `+`; a leading `+` is
    /// tolerated, as Kapso's `conversation.phone_number` sometimes has it).
    ///
    /// WhatsApp has already verified that this number exists, so it is authoritative even where
    /// the phone metadata disagrees (test numbers such as `+1 555 ...`, ranges newer than the
    /// metadata): a valid number is formatted by the library, anything else E.164-shaped
    /// (8 to 15 digits, no leading zero) is kept as `+digits` rather than dropped.
    ///
    /// # Errors
    /// [`PhoneError::Invalid`] when the text is not E.164-shaped digits.
    pub fn from_wa_id(wa_id: &str) -> Result<Self, PhoneError> {
        let digits = wa_id.trim().trim_start_matches('+');
        let shaped = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !shaped {
            return Err(PhoneError::Invalid(wa_id.to_owned()));
        }
        let international = format!("+{digits}");
        Ok(Self::valid(None, &international).unwrap_or(Self(international)))
    }

    /// Wraps a value that storage wrote after validating it.
    #[must_use]
    pub fn from_trusted(e164: String) -> Self {
        Self(e164)
    }

    /// The E.164 text, with `+`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without `+`, as WhatsApp's `to` field wants them.
    #[must_use]
    pub fn digits(&self) -> &str {
        self.0.trim_start_matches('+')
    }

    fn valid(country: Option<Id>, text: &str) -> Option<Self> {
        let number = phonenumber::parse(country, text).ok()?;
        phonenumber::is_valid(&number).then(|| Self(number.format().mode(Mode::E164).to_string()))
    }
}

impl fmt::Display for PhoneE164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> CountryCode {
        CountryCode::parse("id").expect("ID is a country")
    }

    #[test]
    fn local_indonesian_numbers_become_e164() {
        for raw in [
            "0812-3456-7890",
            "081234567890",
            "+62 812 3456 7890",
            "6281234567890",
        ] {
            assert_eq!(
                PhoneE164::parse(raw, id()).map(|p| p.0),
                Ok("+6281234567890".to_owned()),
                "{raw}"
            );
        }
    }

    #[test]
    fn wa_ids_are_international_digits() {
        assert_eq!(
            PhoneE164::from_wa_id("6281234567890").map(|p| p.0),
            Ok("+6281234567890".to_owned())
        );
        assert_eq!(
            PhoneE164::from_wa_id("+14155552671").map(|p| p.0),
            Ok("+14155552671".to_owned())
        );
        // WhatsApp's own ids are kept even where the metadata has no such range.
        assert_eq!(
            PhoneE164::from_wa_id("15551234567").map(|p| p.0),
            Ok("+15551234567".to_owned())
        );
        assert!(PhoneE164::from_wa_id("62abc").is_err());
        assert!(PhoneE164::from_wa_id("").is_err());
        assert!(PhoneE164::from_wa_id("0812345678").is_err());
        assert!(PhoneE164::from_wa_id("1234567").is_err());
        assert!(PhoneE164::from_wa_id(&"9".repeat(16)).is_err());
    }

    #[test]
    fn other_countries_use_their_own_rules() {
        let us = CountryCode::parse("US").expect("US is a country");
        assert_eq!(
            PhoneE164::parse("(415) 555-2671", us).map(|p| p.0),
            Ok("+14155552671".to_owned())
        );
    }

    #[test]
    fn garbage_is_refused_not_guessed() {
        for raw in ["", "hello", "123", "+0000", "08", &"9".repeat(40)] {
            assert!(PhoneE164::parse(raw, id()).is_err(), "{raw}");
        }
    }

    #[test]
    fn countries_are_alpha2() {
        assert_eq!(id().as_str(), "ID");
        assert!(CountryCode::parse("XX").is_err());
        assert!(CountryCode::parse("IDN").is_err());
    }
}
