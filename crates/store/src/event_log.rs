//! The event-log port: reading the log in settled order, and pruning it.

use async_trait::async_trait;
use inbox_domain::event::{ChangeToken, Event, EventKind, LogPosition, LoggedEvent};
use inbox_domain::ports::{EventLog, StoreError};
use inbox_domain::{ContactId, ConversationId, EventId, MessageId, Timestamp, UserId, WorkspaceId};
use sqlx::{Postgres, Sqlite};
use uuid::Uuid;

use crate::Store;
use crate::error::from_sqlx;
use crate::events::Dialect;
use crate::rows::corrupt;

/// An event joined with the current assignees of what it concerns.
#[derive(sqlx::FromRow)]
struct LoggedRow {
    id: i64,
    tx: i64,
    workspace_id: Uuid,
    kind: String,
    conversation_id: Option<Uuid>,
    contact_id: Option<Uuid>,
    message_id: Option<Uuid>,
    created_at: i64,
    conversation_assignee: Option<Uuid>,
    contact_assignee: Option<Uuid>,
}

impl TryFrom<LoggedRow> for LoggedEvent {
    type Error = StoreError;

    fn try_from(row: LoggedRow) -> Result<Self, StoreError> {
        let kind: EventKind = row
            .kind
            .parse()
            .map_err(|e: String| corrupt("event kind", e))?;
        Ok(Self {
            position: LogPosition {
                tx: row.tx,
                id: EventId(row.id),
            },
            event: Event {
                id: EventId(row.id),
                workspace_id: WorkspaceId::from_uuid(row.workspace_id),
                kind,
                conversation_id: row.conversation_id.map(ConversationId::from_uuid),
                contact_id: row.contact_id.map(ContactId::from_uuid),
                message_id: row.message_id.map(MessageId::from_uuid),
                created_at: Timestamp::from_millis(row.created_at),
            },
            conversation_assignee: row.conversation_assignee.map(UserId::from_uuid),
            contact_assignee: row.contact_assignee.map(UserId::from_uuid),
        })
    }
}

/// The select list and joins shared by the log queries.
const LOGGED_FROM: &str = "SELECT e.id, e.tx, e.workspace_id, e.kind, e.conversation_id, \
     e.contact_id, e.message_id, e.created_at, \
     c.assigned_to AS conversation_assignee, \
     COALESCE(k.assigned_to, c.contact_assigned_to) AS contact_assignee \
     FROM events e \
     LEFT JOIN conversations c ON c.id = e.conversation_id \
     LEFT JOIN contacts k ON k.id = e.contact_id";

/// The events of `rows` this version can read. A row it cannot (a kind written by a newer
/// version, a damaged id) is logged and skipped rather than failing the page: one such row
/// would otherwise stop the live pump, and every stream of the process, for good.
fn readable(rows: Vec<LoggedRow>) -> Vec<LoggedEvent> {
    rows.into_iter()
        .filter_map(|row| {
            let id = row.id;
            match LoggedEvent::try_from(row) {
                Ok(event) => Some(event),
                Err(e) => {
                    tracing::error!(event.id = id, error = %e, "skipping an event that cannot be read");
                    None
                }
            }
        })
        .collect()
}

macro_rules! impl_event_log {
    ($db:ty) => {
        #[async_trait]
        impl EventLog for Store<$db> {
            async fn events_after(
                &self,
                after: LogPosition,
                workspace_id: Option<WorkspaceId>,
                limit: u32,
            ) -> Result<Vec<LoggedEvent>, StoreError> {
                let settled = <$db as Dialect>::SETTLED_EVENTS;
                let after_position = <$db as Dialect>::AFTER_POSITION;
                let order = <$db as Dialect>::LOG_ORDER;
                let rows: Vec<LoggedRow> = match workspace_id {
                    Some(workspace_id) => {
                        sqlx::query_as(&format!(
                            "{LOGGED_FROM} WHERE e.workspace_id = $4 AND {after_position} \
                         AND {settled} ORDER BY {order} LIMIT $3"
                        ))
                        .bind(after.tx)
                        .bind(after.id.0)
                        .bind(i64::from(limit))
                        .bind(workspace_id.as_uuid())
                        .fetch_all(&self.read)
                        .await
                    }
                    None => {
                        sqlx::query_as(&format!(
                            "{LOGGED_FROM} WHERE {after_position} \
                         AND {settled} ORDER BY {order} LIMIT $3"
                        ))
                        .bind(after.tx)
                        .bind(after.id.0)
                        .bind(i64::from(limit))
                        .fetch_all(&self.read)
                        .await
                    }
                }
                .map_err(from_sqlx)?;
                Ok(readable(rows))
            }

            async fn position_of(
                &self,
                workspace_id: WorkspaceId,
                id: EventId,
            ) -> Result<Option<LogPosition>, StoreError> {
                let row: Option<(i64, i64)> =
                    sqlx::query_as("SELECT tx, id FROM events WHERE id = $1 AND workspace_id = $2")
                        .bind(id.0)
                        .bind(workspace_id.as_uuid())
                        .fetch_optional(&self.read)
                        .await
                        .map_err(from_sqlx)?;
                Ok(row.map(|(tx, id)| LogPosition {
                    tx,
                    id: EventId(id),
                }))
            }

            async fn log_head(&self) -> Result<LogPosition, StoreError> {
                let settled = <$db as Dialect>::SETTLED_EVENTS;
                let newest_first: Vec<String> = <$db as Dialect>::LOG_ORDER
                    .split(", ")
                    .map(|column| format!("{column} DESC"))
                    .collect();
                let newest_first = newest_first.join(", ");
                let row: Option<(i64, i64)> = sqlx::query_as(&format!(
                    "SELECT e.tx, e.id FROM events e WHERE {settled} \
                     ORDER BY {newest_first} LIMIT 1"
                ))
                .fetch_optional(&self.read)
                .await
                .map_err(from_sqlx)?;
                Ok(row.map_or(LogPosition::START, |(tx, id)| LogPosition {
                    tx,
                    id: EventId(id),
                }))
            }

            async fn wait_for_change(&self, seen: ChangeToken) -> ChangeToken {
                self.changes.wait(seen).await
            }

            async fn prune_events(&self, before: Timestamp) -> Result<u64, StoreError> {
                let done = sqlx::query("DELETE FROM events WHERE created_at < $1")
                    .bind(before.as_millis())
                    .execute(&self.write)
                    .await
                    .map_err(from_sqlx)?;
                Ok(done.rows_affected())
            }
        }
    };
}

impl_event_log!(Sqlite);
impl_event_log!(Postgres);
