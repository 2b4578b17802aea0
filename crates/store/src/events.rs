//! Appending to the event log, inside the caller's transaction.

use inbox_domain::EventId;
use inbox_domain::Timestamp;
use inbox_domain::event::NewEvent;
use inbox_domain::ports::StoreError;
use sqlx::{Postgres, Sqlite};

use crate::error::from_sqlx;

/// Backend-specific pieces every port's SQL shares.
// Used by the ingest and inbox ports, which are being written on their own branches.
#[allow(dead_code)]
pub(crate) trait Dialect: sqlx::Database {
    /// Appends `event` on `conn`, which must be inside the transaction that made the change the
    /// event records, so that the log never shows a change that did not commit.
    async fn append_event(
        conn: &mut Self::Connection,
        event: &NewEvent,
    ) -> Result<EventId, StoreError>;
}

macro_rules! impl_dialect {
    ($db:ty) => {
        impl Dialect for $db {
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

impl_dialect!(Sqlite);
impl_dialect!(Postgres);
