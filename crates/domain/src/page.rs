//! Keyset pagination: page sizes, cursors and pages, shared by every list.
//!
//! Lists are ordered by a sort key (Unix milliseconds, 0 for "never") descending, ties broken by
//! id descending. A cursor is the `(sort_key, id)` of the last row a page returned; the next page
//! holds the rows strictly after it in that order. Because the position is a key and not an
//! offset, rows that move or appear while a client pages never make it skip or repeat a row
//! that stayed where it was, and every page costs the same however deep it is.

use std::fmt;
use std::str::FromStr;

use crate::validation::ValidationError;

/// How many rows a page may hold: 1..=200, 50 unless asked otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Limit(u16);

impl Limit {
    /// The largest page.
    pub const MAX: u16 = 200;
    /// The page size when the client names none.
    pub const DEFAULT: Self = Self(50);

    /// Validates a page size.
    ///
    /// # Errors
    /// When `n` is outside 1..=200.
    pub fn new(n: i64) -> Result<Self, ValidationError> {
        u16::try_from(n)
            .ok()
            .filter(|n| (1..=Self::MAX).contains(n))
            .map(Self)
            .ok_or_else(|| ValidationError::new("limit", "must be an integer from 1 to 200"))
    }

    /// The size.
    #[must_use]
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl Default for Limit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A position in a keyset-ordered list: the sort key and id of the last row already returned.
///
/// Its text form (`<sort_key>.<id>`) is what clients get back as `next_cursor`; the HTTP layer
/// may wrap it further, and clients must treat it as opaque either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cursor<Id> {
    /// The row's sort key (Unix milliseconds, 0 for never).
    pub sort_key: i64,
    /// The row's id.
    pub id: Id,
}

impl<Id> Cursor<Id> {
    /// A cursor at `(sort_key, id)`.
    pub const fn new(sort_key: i64, id: Id) -> Self {
        Self { sort_key, id }
    }
}

impl<Id: fmt::Display> fmt::Display for Cursor<Id> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.sort_key, self.id)
    }
}

impl<Id: FromStr> FromStr for Cursor<Id> {
    type Err = ValidationError;

    /// Parses the text form a page handed out.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ValidationError::new("cursor", "is not a cursor this list handed out");
        let (key, id) = s.split_once('.').ok_or_else(invalid)?;
        let sort_key: i64 = key.parse().map_err(|_| invalid())?;
        if sort_key < 0 {
            return Err(invalid());
        }
        let id = id.parse().map_err(|_| invalid())?;
        Ok(Self { sort_key, id })
    }
}

/// One page of a list, and where the next one starts (`None` on the last page).
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T, Id> {
    /// The rows, in list order.
    pub items: Vec<T>,
    /// The cursor of the next page, `None` when there are no more rows.
    pub next: Option<Cursor<Id>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ConversationId;

    #[test]
    fn limits_are_one_to_two_hundred() {
        assert!(Limit::new(0).is_err());
        assert!(Limit::new(201).is_err());
        assert!(Limit::new(-1).is_err());
        assert_eq!(Limit::new(200).map(Limit::get), Ok(200));
        assert_eq!(Limit::default().get(), 50);
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let cursor = Cursor::new(1_795_600_800_123, ConversationId::new());
        let parsed: Cursor<ConversationId> = cursor.to_string().parse().expect("round trip");
        assert_eq!(parsed, cursor);
        for bad in [
            "",
            "12",
            "x.y",
            "-1.0190f5c4-7d2a-7c1e-9a4b-2f1d3c4b5a69",
            "12.nope",
        ] {
            assert!(bad.parse::<Cursor<ConversationId>>().is_err(), "{bad}");
        }
    }
}
