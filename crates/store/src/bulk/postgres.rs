//! Bulk writes on PostgreSQL: `COPY ... FROM STDIN` in text format, one transaction per chunk
//! of about 100,000 messages. COPY skips per-statement parsing, planning and round trips, which
//! is most of the cost of row-at-a-time inserts.

use std::fmt::Write as _;

use async_trait::async_trait;
use inbox_domain::WorkspaceId;
use inbox_domain::ports::StoreError;
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

use super::generate::{Chunk, Generator};
use super::{BulkSeed, BulkUser, BulkWorkspace, BusyPlan, Seeded};
use crate::Store;
use crate::error::from_sqlx;

/// Messages per transaction.
const MESSAGES_PER_TX: usize = 100_000;

/// COPY data is sent in pieces of about this size.
const SEND_BYTES: usize = 1 << 20;

#[async_trait]
impl BulkSeed for Store<Postgres> {
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
        sqlx::query("VACUUM ANALYZE")
            .execute(&self.write)
            .await
            .map_err(from_sqlx)?;
        // CHECKPOINT needs a superuser or the pg_checkpoint role: without either, the server
        // writes the pages out later on its own, which only makes the next minutes slower.
        if let Err(e) = sqlx::query("CHECKPOINT").execute(&self.write).await {
            log::warn!("bulk load: no CHECKPOINT after it ({e})");
        }
        Ok(())
    }
}

/// COPY text-format rows for one table, built in memory (a chunk's worth, tens of MB at most).
#[derive(Default)]
struct Rows {
    buffer: String,
}

impl Rows {
    /// A text field, escaped as COPY's text format needs; `None` is `\N`.
    fn text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            None => self.buffer.push_str("\\N"),
            Some(text) => {
                for c in text.chars() {
                    match c {
                        '\\' => self.buffer.push_str("\\\\"),
                        '\t' => self.buffer.push_str("\\t"),
                        '\n' => self.buffer.push_str("\\n"),
                        '\r' => self.buffer.push_str("\\r"),
                        c => self.buffer.push(c),
                    }
                }
            }
        }
        self.buffer.push('\t');
        self
    }

    fn uuid(&mut self, value: Option<Uuid>) -> &mut Self {
        match value {
            None => self.buffer.push_str("\\N"),
            Some(id) => {
                let _ = write!(self.buffer, "{}", id.hyphenated());
            }
        }
        self.buffer.push('\t');
        self
    }

    fn int(&mut self, value: Option<i64>) -> &mut Self {
        match value {
            None => self.buffer.push_str("\\N"),
            Some(n) => {
                let _ = write!(self.buffer, "{n}");
            }
        }
        self.buffer.push('\t');
        self
    }

    fn boolean(&mut self, value: bool) -> &mut Self {
        self.buffer.push_str(if value { "t\t" } else { "f\t" });
        self
    }

    /// Ends a row, replacing the last field's tab.
    fn end(&mut self) {
        self.buffer.pop();
        self.buffer.push('\n');
    }

    /// Sends the rows with `statement` (a `COPY ... FROM STDIN`).
    async fn copy(self, conn: &mut PgConnection, statement: &str) -> Result<(), StoreError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut copy = conn.copy_in_raw(statement).await.map_err(from_sqlx)?;
        for piece in self.buffer.as_bytes().chunks(SEND_BYTES) {
            copy.send(piece).await.map_err(from_sqlx)?;
        }
        copy.finish().await.map(drop).map_err(from_sqlx)
    }
}

async fn write_chunk(
    conn: &mut PgConnection,
    workspace: Uuid,
    chunk: &Chunk,
    written: &mut u64,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<(), StoreError> {
    let mut rows = Rows::default();
    for c in &chunk.contacts {
        rows.uuid(Some(c.id))
            .uuid(Some(workspace))
            .text(Some(&c.phone))
            .text(c.name.as_deref())
            .text(c.whatsapp_name.as_deref())
            .text(Some(c.lead_status))
            .int(Some(i64::from(c.lead_score)))
            .text(Some(&c.tags))
            .uuid(c.assigned_to)
            .text(Some("whatsapp"))
            .int(Some(c.created_at))
            .int(Some(c.updated_at))
            .int(c.last_activity_at)
            .int(c.last_contact_at)
            .int(Some(c.activity_sort))
            .end();
    }
    rows.copy(
        conn,
        "COPY contacts (id, workspace_id, phone, name, whatsapp_name, lead_status, lead_score, \
         tags, assigned_to, source, created_at, updated_at, last_activity_at, last_contact_at, \
         activity_sort) FROM STDIN",
    )
    .await?;

    let mut rows = Rows::default();
    for c in &chunk.conversations {
        rows.uuid(Some(c.id))
            .uuid(Some(workspace))
            .uuid(Some(c.contact_id))
            .text(Some(c.status))
            .boolean(c.ai_paused)
            .uuid(c.assigned_to)
            .uuid(c.contact_assigned_to)
            .text(Some(c.lead_status))
            .int(Some(i64::from(c.unread_count)))
            .int(c.last_message_at)
            .text(c.last_message_preview.as_deref())
            .int(c.last_inbound_at)
            .int(Some(c.sort_at))
            .int(Some(c.last_seq))
            .text(Some(&c.kapso_conversation_id))
            .int(Some(c.created_at))
            .int(Some(c.updated_at))
            .end();
    }
    rows.copy(
        conn,
        "COPY conversations (id, workspace_id, contact_id, status, ai_paused, assigned_to, \
         contact_assigned_to, lead_status, unread_count, last_message_at, last_message_preview, \
         last_inbound_at, sort_at, last_seq, kapso_conversation_id, created_at, updated_at) \
         FROM STDIN",
    )
    .await?;

    let mut rows = Rows::default();
    for t in &chunk.tags {
        rows.uuid(Some(t.conversation_id))
            .uuid(Some(workspace))
            .text(Some(t.tag))
            .int(Some(t.sort_at))
            .end();
    }
    rows.copy(
        conn,
        "COPY conversation_tags (conversation_id, workspace_id, tag, sort_at) FROM STDIN",
    )
    .await?;

    // Messages go in slices so the progress bar moves within a chunk.
    for slice in chunk.messages.chunks(10_000) {
        let mut rows = Rows::default();
        for m in slice {
            rows.uuid(Some(m.id))
                .uuid(Some(workspace))
                .uuid(Some(m.conversation_id))
                .int(Some(m.seq))
                .text(Some(m.direction))
                .text(Some(m.sender_type))
                .uuid(m.sender_user_id)
                .text(Some(m.kind))
                .text(m.text.as_deref())
                .text(m.media.as_deref())
                .text(m.reply_to_wamid.as_deref())
                .text(Some(&m.wamid))
                .text(Some(m.status))
                .text(m.error.as_deref())
                .text(m.raw.as_deref())
                .int(Some(m.sent_at))
                .int(Some(m.created_at))
                .end();
        }
        rows.copy(
            conn,
            "COPY messages (id, workspace_id, conversation_id, seq, direction, sender_type, \
             sender_user_id, kind, text, media, reply_to_wamid, wamid, status, error, raw, \
             sent_at, created_at) FROM STDIN",
        )
        .await?;
        *written += slice.len() as u64;
        progress(*written);
    }
    Ok(())
}
