//! Building the list queries, whose shape depends on the filters, as one SQL text with numbered
//! parameters that both backends accept.
//!
//! Every list walks an index whose columns end in the list order, behind equality columns; the
//! builders here pick that index (the "driver") from the filters and turn the remaining filters
//! into conditions checked on the rows the walk visits. SQLite gets the chosen index named with
//! `INDEXED BY`, because without `ANALYZE` statistics its planner may prefer an index that does
//! not deliver the order and then sort the whole tenant; PostgreSQL plans from its statistics.

use sqlx::query::QueryAs;
use sqlx::{Database, Encode, Type};
use uuid::Uuid;

/// A parameter value.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    Uuid(Uuid),
    Int(i64),
    Text(String),
    Bool(bool),
}

/// SQL text and the values of its `$n` parameters, in order.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
}

impl Sql {
    /// Adds a parameter and returns its placeholder, for splicing into the text.
    pub fn arg(&mut self, value: Arg) -> String {
        self.args.push(value);
        format!("${}", self.args.len())
    }

    /// A comma-separated list of placeholders, one per value.
    pub fn list(&mut self, values: impl IntoIterator<Item = Arg>) -> String {
        values
            .into_iter()
            .map(|v| self.arg(v))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What differs between the backends in the list queries.
pub(crate) trait ListDialect {
    /// Whether to pin the driving index with SQLite's `INDEXED BY`.
    const INDEX_HINTS: bool;

    /// `INDEXED BY <index>` on SQLite, nothing on PostgreSQL.
    fn indexed_by(index: &str) -> String {
        if Self::INDEX_HINTS {
            format!(" INDEXED BY {index}")
        } else {
            String::new()
        }
    }
}

impl ListDialect for sqlx::Sqlite {
    const INDEX_HINTS: bool = true;
}

impl ListDialect for sqlx::Postgres {
    const INDEX_HINTS: bool = false;
}

/// Binds `args` to a query built from [`Sql::text`].
pub(crate) fn bind_all<'q, DB, O>(
    mut query: QueryAs<'q, DB, O, <DB as Database>::Arguments<'q>>,
    args: Vec<Arg>,
) -> QueryAs<'q, DB, O, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    Uuid: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    String: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
{
    for arg in args {
        query = match arg {
            Arg::Uuid(v) => query.bind(v),
            Arg::Int(v) => query.bind(v),
            Arg::Text(v) => query.bind(v),
            Arg::Bool(v) => query.bind(v),
        };
    }
    query
}

/// A `LIKE` pattern matching `text` anywhere, with `\` escaping the wildcards it contains.
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The contact's display name (`name`, else `whatsapp_name`, else `phone`, else `bsuid`,
/// skipping empty strings as `inbox_domain::contact::display_name` does), for a contacts table
/// aliased `k`.
pub(crate) const DISPLAY_NAME_SQL: &str =
    "COALESCE(NULLIF(k.name, ''), NULLIF(k.whatsapp_name, ''), NULLIF(k.phone, ''), k.bsuid, '')";

/// The `q` condition over a contacts table aliased `k`: the lower-cased display name or phone
/// contains the (already lower-cased) text. `LOWER` folds only ASCII on SQLite and all of
/// Unicode on PostgreSQL, so non-ASCII capitals match case-insensitively only on PostgreSQL.
pub(crate) fn search_condition(sql: &mut Sql, lowered: &str) -> String {
    let p = sql.arg(Arg::Text(contains_pattern(lowered)));
    format!(
        "(LOWER({DISPLAY_NAME_SQL}) LIKE {p} ESCAPE '\\' OR LOWER(COALESCE(k.phone, '')) LIKE {p} ESCAPE '\\')"
    )
}

/// How many rows of its index walk one page of a `q=` search examines at most. A rare term would
/// otherwise read the tenant's whole list in one request; with the bound, a page that has not
/// filled by then stops short and hands out a cursor to go on from.
pub const SEARCH_SCAN_ROWS: i64 = 2_000;

/// The cursor a first page starts after: beyond every real row, so first and later pages share
/// one SQL text (and one prepared statement).
pub(crate) const START_KEY: i64 = i64::MAX;
/// The id half of the starting cursor; no UUIDv4/v7 is all ones.
pub(crate) const START_ID: Uuid = Uuid::max();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_escaped() {
        assert_eq!(contains_pattern("budi"), "%budi%");
        assert_eq!(contains_pattern("50%_\\"), "%50\\%\\_\\\\%");
    }

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut sql = Sql::default();
        assert_eq!(sql.arg(Arg::Int(1)), "$1");
        assert_eq!(sql.list([Arg::Bool(true), Arg::Text("x".into())]), "$2, $3");
        assert_eq!(sql.args.len(), 3);
    }
}
