//! Page sizes and opaque cursors as the list routes take and hand them out.
//!
//! A cursor on the wire is the base64url (unpadded) text of the store's keyset position
//! (`<sort_key>.<id>`): opaque to clients, so its inside can change without breaking them, and
//! checked on the way back in, so a forged or mangled cursor is a 422 rather than a wrong page.

use std::fmt::Display;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use inbox_domain::page::{Cursor, Limit};

use crate::error::ApiError;

/// The `limit` parameter: 1..=200, 50 when absent.
///
/// # Errors
/// A 422 naming `limit` when it is not an integer in range.
pub fn limit(raw: Option<&str>) -> Result<Limit, ApiError> {
    match raw {
        None => Ok(Limit::DEFAULT),
        Some(text) => {
            let n = text.trim().parse::<i64>().unwrap_or(0);
            Ok(Limit::new(n)?)
        }
    }
}

/// The wire form of a cursor.
#[must_use]
pub fn encode<Id: Display>(cursor: &Cursor<Id>) -> String {
    URL_SAFE_NO_PAD.encode(cursor.to_string())
}

/// A cursor a list handed out, read back.
///
/// # Errors
/// A 422 naming `cursor` when it is not one.
pub fn decode<Id: FromStr>(raw: Option<&str>) -> Result<Option<Cursor<Id>>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let invalid = || ApiError::invalid("cursor", "is not a cursor this list handed out");
    let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    text.parse().map(Some).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use inbox_domain::ConversationId;

    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let cursor = Cursor::new(1_795_600_800_123, ConversationId::new());
        let wire = encode(&cursor);
        assert_eq!(decode(Some(&wire)).ok().flatten(), Some(cursor));
        for bad in ["", "!!", "bm9wZQ", "MTIz"] {
            assert!(decode::<ConversationId>(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits() {
        assert!(matches!(limit(None), Ok(l) if l == Limit::DEFAULT));
        assert!(matches!(limit(Some("200")), Ok(l) if l.get() == 200));
        for bad in ["0", "201", "-1", "ten", ""] {
            assert!(limit(Some(bad)).is_err(), "{bad}");
        }
    }
}
