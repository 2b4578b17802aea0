//! Bulk writes on SQLite: multi-row `INSERT`s, one transaction per chunk of about 100,000
//! messages, so the single writer pays one WAL sync per chunk instead of one per row.

use async_trait::async_trait;
use inbox_domain::WorkspaceId;
use inbox_domain::ports::StoreError;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::generate::{Chunk, Generator};
use super::{BulkSeed, BulkUser, BulkWorkspace, BusyPlan, Seeded};
use crate::Store;
use crate::error::from_sqlx;

/// Rows per statement: SQLite allows 32,766 bound values, and the widest row has 17.
const ROWS_PER_INSERT: usize = 1_000;

/// Messages per transaction.
const MESSAGES_PER_TX: usize = 100_000;

#[async_trait]
impl BulkSeed for Store<Sqlite> {
    async fn bulk_workspaces(&self, workspaces: &[BulkWorkspace]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        super::insert_workspaces!(&mut *tx, workspaces);
        tx.commit().await.map_err(from_sqlx)
    }

    async fn bulk_users(
        &self,
        workspace_id: WorkspaceId,
        users: &[BulkUser],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        super::insert_users!(&mut *tx, workspace_id, users);
        tx.commit().await.map_err(from_sqlx)
    }

    async fn bulk_conversations(
        &self,
        plan: &BusyPlan,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Seeded, StoreError> {
        let mut generator = Generator::new(plan);
        let workspace = plan.workspace_id.as_uuid();
        let mut written = 0_u64;
        while let Some(chunk) = generator.next_chunk(MESSAGES_PER_TX) {
            let mut tx = self.begin_write().await?;
            write_chunk(&mut tx, workspace, &chunk, &mut written, progress).await?;
            tx.commit().await.map_err(from_sqlx)?;
        }
        Ok(generator.seeded)
    }

    async fn bulk_finish(&self) -> Result<(), StoreError> {
        sqlx::query("ANALYZE")
            .execute(&self.write)
            .await
            .map(drop)
            .map_err(from_sqlx)
    }
}

async fn write_chunk(
    conn: &mut SqliteConnection,
    workspace: uuid::Uuid,
    chunk: &Chunk,
    written: &mut u64,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<(), StoreError> {
    for rows in chunk.contacts.chunks(ROWS_PER_INSERT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO contacts (id, workspace_id, phone, name, whatsapp_name, lead_status, \
             lead_score, tags, assigned_to, source, created_at, updated_at, last_activity_at, \
             last_contact_at, activity_sort) ",
        );
        insert.push_values(rows, |mut row, c| {
            row.push_bind(c.id)
                .push_bind(workspace)
                .push_bind(c.phone.as_str())
                .push_bind(c.name.as_deref())
                .push_bind(c.whatsapp_name.as_deref())
                .push_bind(c.lead_status)
                .push_bind(c.lead_score)
                .push_bind(c.tags.as_str())
                .push_bind(c.assigned_to)
                .push_bind("whatsapp")
                .push_bind(c.created_at)
                .push_bind(c.updated_at)
                .push_bind(c.last_activity_at)
                .push_bind(c.last_contact_at)
                .push_bind(c.activity_sort);
        });
        insert
            .build()
            .execute(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    }
    for rows in chunk.conversations.chunks(ROWS_PER_INSERT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO conversations (id, workspace_id, contact_id, status, ai_paused, \
             assigned_to, contact_assigned_to, lead_status, unread_count, last_message_at, \
             last_message_preview, last_inbound_at, sort_at, last_seq, kapso_conversation_id, \
             created_at, updated_at) ",
        );
        insert.push_values(rows, |mut row, c| {
            row.push_bind(c.id)
                .push_bind(workspace)
                .push_bind(c.contact_id)
                .push_bind(c.status)
                .push_bind(c.ai_paused)
                .push_bind(c.assigned_to)
                .push_bind(c.contact_assigned_to)
                .push_bind(c.lead_status)
                .push_bind(c.unread_count)
                .push_bind(c.last_message_at)
                .push_bind(c.last_message_preview.as_deref())
                .push_bind(c.last_inbound_at)
                .push_bind(c.sort_at)
                .push_bind(c.last_seq)
                .push_bind(c.kapso_conversation_id.as_str())
                .push_bind(c.created_at)
                .push_bind(c.updated_at);
        });
        insert
            .build()
            .execute(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    }
    for rows in chunk.tags.chunks(ROWS_PER_INSERT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO conversation_tags (conversation_id, workspace_id, tag, sort_at) ",
        );
        insert.push_values(rows, |mut row, t| {
            row.push_bind(t.conversation_id)
                .push_bind(workspace)
                .push_bind(t.tag)
                .push_bind(t.sort_at);
        });
        insert
            .build()
            .execute(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    }
    for rows in chunk.messages.chunks(ROWS_PER_INSERT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO messages (id, workspace_id, conversation_id, seq, direction, \
             sender_type, sender_user_id, kind, text, media, reply_to_wamid, wamid, status, \
             error, raw, sent_at, created_at) ",
        );
        insert.push_values(rows, |mut row, m| {
            row.push_bind(m.id)
                .push_bind(workspace)
                .push_bind(m.conversation_id)
                .push_bind(m.seq)
                .push_bind(m.direction)
                .push_bind(m.sender_type)
                .push_bind(m.sender_user_id)
                .push_bind(m.kind)
                .push_bind(m.text.as_deref())
                .push_bind(m.media.as_deref())
                .push_bind(m.reply_to_wamid.as_deref())
                .push_bind(m.wamid.as_str())
                .push_bind(m.status)
                .push_bind(m.error.as_deref())
                .push_bind(m.raw.as_deref())
                .push_bind(m.sent_at)
                .push_bind(m.created_at);
        });
        insert
            .build()
            .execute(&mut *conn)
            .await
            .map_err(from_sqlx)?;
        *written += rows.len() as u64;
        progress(*written);
    }
    Ok(())
}
