//! Appending to the event log, inside the caller's transaction, and the other pieces of SQL
//! that differ between the backends.

use inbox_domain::EventId;
use inbox_domain::Timestamp;
use inbox_domain::event::NewEvent;
use inbox_domain::ports::StoreError;
use sqlx::{Postgres, QueryBuilder, Sqlite};

use crate::error::from_sqlx;

/// Backend-specific pieces every port's SQL shares.
pub(crate) trait Dialect: sqlx::Database {
    /// A condition on `events e` that holds only for events no later commit can be ordered
    /// before (see the `events` table in the migrations).
    const SETTLED_EVENTS: &'static str;

    /// A condition on `events e` for "after position ($1, $2)", and the log order, written so
    /// that the database seeks to the position instead of walking the log from its start.
    const AFTER_POSITION: &'static str;

    /// The log order (`ORDER BY` list) matching [`Dialect::AFTER_POSITION`].
    const LOG_ORDER: &'static str;

    /// How a write transaction begins. On SQLite `BEGIN IMMEDIATE`, which takes the write lock
    /// at once: a deferred transaction that has read cannot take it later if another process
    /// (the webhook binary beside the API) committed in between, and fails
    /// (`SQLITE_BUSY_SNAPSHOT`) instead of waiting.
    const BEGIN_WRITE: &'static str;

    /// Appends `event` on `conn`, which must be inside the transaction that made the change the
    /// event records, so that the log never shows a change that did not commit.
    async fn append_event(
        conn: &mut Self::Connection,
        event: &NewEvent,
    ) -> Result<EventId, StoreError>;

    /// Appends `events` in order with one statement, inside the caller's transaction.
    async fn append_events(
        conn: &mut Self::Connection,
        events: &[NewEvent],
    ) -> Result<(), StoreError>;

    /// Whether [`Dialect::combine`] runs its statements one after the other, each seeing the
    /// writes of those before it (SQLite), rather than as parts of one statement (PostgreSQL).
    const SEQUENTIAL_TEXT: bool;

    /// One statement text that runs `statements` in order, returning the last one's rows.
    /// None but the last may return rows or depend on another's writes (on PostgreSQL, where
    /// they become data-modifying `WITH` parts, they all see the same snapshot).
    fn combine(statements: &[String]) -> String;

    /// The clause that locks the selected rows of `alias` until commit: `FOR UPDATE OF alias` on
    /// PostgreSQL; nothing on SQLite, whose single writer connection already serialises every
    /// write transaction.
    fn for_update_of(alias: &str) -> String;

    /// The clause that locks the selected rows of `alias` and skips rows another transaction
    /// holds (`FOR UPDATE OF alias SKIP LOCKED`), so that several workers claiming jobs never
    /// take the same one nor wait for each other; nothing on SQLite (single writer).
    fn for_update_skip_locked(alias: &str) -> String;

    /// Takes a transaction-scoped lock on an arbitrary key, for serialising work on something
    /// that may not have a row yet (a wamid whose message has not arrived). An advisory lock on
    /// PostgreSQL; nothing on SQLite, for the same reason as [`Dialect::for_update_of`].
    async fn lock_key(conn: &mut Self::Connection, key: &str) -> Result<(), StoreError>;
}

macro_rules! impl_dialect {
    ($db:ty, begin_write: $begin:expr, settled: $settled:expr, after: $after:expr, order: $order:expr, sequential: $sequential:expr, combine: $combine:expr, for_update_of: $lock:expr, skip_locked: $skip:expr, lock_key: $lock_key:expr) => {
        impl Dialect for $db {
            const SETTLED_EVENTS: &'static str = $settled;
            const AFTER_POSITION: &'static str = $after;
            const LOG_ORDER: &'static str = $order;
            const BEGIN_WRITE: &'static str = $begin;
            const SEQUENTIAL_TEXT: bool = $sequential;

            async fn append_event(
                conn: &mut <$db as sqlx::Database>::Connection,
                event: &NewEvent,
            ) -> Result<EventId, StoreError> {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO events (workspace_id, kind, conversation_id, contact_id, message_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(event.workspace_id.as_uuid())
                .bind(event.kind.as_str())
                .bind(event.conversation_id.map(|id| id.as_uuid()))
                .bind(event.contact_id.map(|id| id.as_uuid()))
                .bind(event.message_id.map(|id| id.as_uuid()))
                .bind(Timestamp::now().as_millis())
                .fetch_one(conn)
                .await
                .map_err(from_sqlx)?;
                Ok(EventId(id))
            }

            async fn append_events(
                conn: &mut <$db as sqlx::Database>::Connection,
                events: &[NewEvent],
            ) -> Result<(), StoreError> {
                if events.is_empty() {
                    return Ok(());
                }
                let now = Timestamp::now().as_millis();
                let mut insert = QueryBuilder::<$db>::new(
                    "INSERT INTO events \
                     (workspace_id, kind, conversation_id, contact_id, message_id, created_at) ",
                );
                insert.push_values(events, |mut row, event| {
                    row.push_bind(event.workspace_id.as_uuid())
                        .push_bind(event.kind.as_str())
                        .push_bind(event.conversation_id.map(|id| id.as_uuid()))
                        .push_bind(event.contact_id.map(|id| id.as_uuid()))
                        .push_bind(event.message_id.map(|id| id.as_uuid()))
                        .push_bind(now);
                });
                insert
                    .build()
                    .execute(conn)
                    .await
                    .map(drop)
                    .map_err(from_sqlx)
            }

            fn combine(statements: &[String]) -> String {
                $combine(statements)
            }

            fn for_update_of(alias: &str) -> String {
                $lock(alias)
            }

            fn for_update_skip_locked(alias: &str) -> String {
                $skip(alias)
            }

            async fn lock_key(
                conn: &mut <$db as sqlx::Database>::Connection,
                key: &str,
            ) -> Result<(), StoreError> {
                match $lock_key {
                    Some(sql) => sqlx::query(sql)
                        .bind(key)
                        .execute(conn)
                        .await
                        .map(drop)
                        .map_err(from_sqlx),
                    None => Ok(()),
                }
            }
        }
    };
}

/// PostgreSQL runs one statement per round trip with parameters, so every statement but the last
/// becomes a data-modifying `WITH` part, which runs once and to completion whether read or not.
fn combine_with(statements: &[String]) -> String {
    let Some((last, parts)) = statements.split_last() else {
        return String::new();
    };
    if parts.is_empty() {
        return last.clone();
    }
    let mut text = String::from("WITH ");
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        text.push_str(&format!("w{i} AS ({part})"));
    }
    text.push(' ');
    text.push_str(last);
    text
}

// SQLite has one writer, and readers see only committed rows: every visible event is settled.
impl_dialect!(
    Sqlite,
    begin_write: "BEGIN IMMEDIATE",
    settled: "TRUE",
    // `tx` is always 0 here: ids alone are the order, and the rowid seeks straight to them.
    after: "e.id > $2 AND e.tx >= $1",
    order: "e.id",
    // The driver runs a text of several statements in order, in one call to its worker thread,
    // numbering parameters across the whole text.
    sequential: true,
    combine: |statements: &[String]| statements.join(";\n"),
    for_update_of: |_: &str| String::new(),
    skip_locked: |_: &str| String::new(),
    lock_key: None::<&str>
);
impl_dialect!(
    Postgres,
    begin_write: "BEGIN",
    // Every transaction of this database older than the oldest one of it still running (in
    // this statement's snapshot) has ended. Transactions of other databases on the server
    // cannot have written our events, so they do not hold ours back: they are left out when
    // pg_stat_activity places them elsewhere. A transaction it does not place (it ended in the
    // meantime, or its row is hidden) is kept, which can only delay an event, never skip one.
    settled: "e.tx < (SELECT COALESCE(min(x::text::bigint), \
        pg_snapshot_xmax(pg_current_snapshot())::text::bigint) \
        FROM pg_snapshot_xip(pg_current_snapshot()) AS x \
        WHERE x NOT IN (SELECT a.backend_xid::text::xid8 FROM pg_stat_activity a \
        WHERE a.backend_xid IS NOT NULL AND a.datname IS DISTINCT FROM current_database()))",
    after: "(e.tx, e.id) > ($1, $2)",
    order: "e.tx, e.id",
    sequential: false,
    combine: combine_with,
    for_update_of: |alias: &str| format!(" FOR UPDATE OF {alias}"),
    skip_locked: |alias: &str| format!(" FOR UPDATE OF {alias} SKIP LOCKED"),
    // 64-bit hash of the key; a collision only makes two unrelated wamids wait for each other.
    lock_key: Some("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
);
