//! Appending to the event log, inside the caller's transaction.

use inbox_domain::EventId;
use inbox_domain::Timestamp;
use inbox_domain::event::NewEvent;
use inbox_domain::ports::StoreError;
use sqlx::{Postgres, Sqlite};

use crate::error::from_sqlx;

/// Backend-specific pieces every port's SQL shares.
pub(crate) trait Dialect: sqlx::Database {
    /// A condition on `events e` that holds only for events no later commit can be ordered
    /// before (see the `events` table in the migrations).
    const SETTLED_EVENTS: &'static str;

    /// Appends `event` on `conn`, which must be inside the transaction that made the change the
    /// event records, so that the log never shows a change that did not commit.
    #[allow(dead_code)] // Called by the ingest and inbox ports, which land on their own branches.
    async fn append_event(
        conn: &mut Self::Connection,
        event: &NewEvent,
    ) -> Result<EventId, StoreError>;
}

macro_rules! impl_dialect {
    ($db:ty, $settled:expr) => {
        impl Dialect for $db {
            const SETTLED_EVENTS: &'static str = $settled;

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
        }
    };
}

// SQLite has one writer, and readers see only committed rows: every visible event is settled.
impl_dialect!(Sqlite, "TRUE");
// Every transaction older than the oldest one still running has ended.
impl_dialect!(
    Postgres,
    "e.tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
);
