//! Fast test data through the store, for the contract suite and the benchmark: conversations in
//! bulk with their state given outright, and messages that move a conversation the way ingest
//! does. Not a port: production code writes through the ingest and contacts ports, which also
//! append events; seeding appends none.

use async_trait::async_trait;
use inbox_domain::contact::{ContactSource, NewContact};
use inbox_domain::conversation::ConversationStatus;
use inbox_domain::message::{Direction, Message, MessageKind, preview};
use inbox_domain::ports::StoreError;
use inbox_domain::{ContactId, ConversationId, MessageId, Timestamp, UserId, WorkspaceId};
use sqlx::{Postgres, Sqlite};
use uuid::Uuid;

use crate::Store;
use crate::conversations::{MESSAGE_COLUMNS, MessageRow, tags_to_json};
use crate::error::from_sqlx;

/// A conversation to seed, with its contact and its state as if messages had been exchanged.
#[derive(Clone, Debug)]
pub struct SeedConversation {
    /// The contact (phone or bsuid required).
    pub contact: NewContact,
    /// The conversation's assignee.
    pub assigned_to: Option<UserId>,
    /// Open or closed.
    pub status: ConversationStatus,
    /// Handover flag.
    pub ai_paused: bool,
    /// Unread inbound messages.
    pub unread_count: i64,
    /// The newest message's time (also the contact's last activity).
    pub last_message_at: Option<Timestamp>,
    /// The newest inbound message's time; must not be after `last_message_at`.
    pub last_inbound_at: Option<Timestamp>,
}

impl SeedConversation {
    /// An open, unassigned, never-messaged conversation with this contact.
    #[must_use]
    pub fn new(contact: NewContact) -> Self {
        Self {
            contact,
            assigned_to: None,
            status: ConversationStatus::Open,
            ai_paused: false,
            unread_count: 0,
            last_message_at: None,
            last_inbound_at: None,
        }
    }
}

/// The ids a seeded conversation got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seeded {
    /// The contact.
    pub contact_id: ContactId,
    /// Its conversation.
    pub conversation_id: ConversationId,
}

/// A text message to seed.
#[derive(Clone, Debug)]
pub struct SeedMessage {
    /// Inbound (from the contact) or outbound (from an agent).
    pub direction: Direction,
    /// The text.
    pub text: String,
    /// WhatsApp time.
    pub sent_at: Timestamp,
}

/// Seeding, implemented by both stores.
#[async_trait]
pub trait Seed: Send + Sync {
    /// Writes contacts and their conversations in one transaction, keeping the conversation's
    /// copies of the contact (assignee, lead status, tag rows) as the contacts port does.
    ///
    /// # Errors
    /// `Duplicate("phone")` for a phone already in the workspace; storage failures.
    async fn seed_conversations(
        &self,
        workspace_id: WorkspaceId,
        specs: Vec<SeedConversation>,
    ) -> Result<Vec<Seeded>, StoreError>;

    /// Appends a message the way ingest does: next `seq`; `last_message_*`, `sort_at` (and the
    /// tag rows' copy) follow the newest `sent_at`; inbound messages reopen the conversation,
    /// add one unread and move `last_inbound_at`; the contact's activity follows.
    ///
    /// # Errors
    /// `NotFound` for an unknown conversation; storage failures.
    async fn seed_message(
        &self,
        conversation_id: ConversationId,
        message: SeedMessage,
    ) -> Result<Message, StoreError>;
}

macro_rules! impl_seed {
    ($db:ty) => {
        #[async_trait]
        impl Seed for Store<$db> {
            async fn seed_conversations(
                &self,
                workspace_id: WorkspaceId,
                specs: Vec<SeedConversation>,
            ) -> Result<Vec<Seeded>, StoreError> {
                let mut tx = self.begin_write().await?;
                let now = Timestamp::now().as_millis();
                let mut seeded = Vec::with_capacity(specs.len());
                for spec in specs {
                    let contact_id = ContactId::new();
                    let conversation_id = ConversationId::new();
                    let last = spec.last_message_at.map(Timestamp::as_millis);
                    sqlx::query(
                        "INSERT INTO contacts (id, workspace_id, phone, bsuid, name, whatsapp_name, \
                           lead_status, lead_score, tags, assigned_to, source, created_at, updated_at, \
                           last_activity_at, activity_sort) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14)",
                    )
                    .bind(contact_id.as_uuid())
                    .bind(workspace_id.as_uuid())
                    .bind(spec.contact.phone.as_ref().map(|p| p.as_str().to_owned()))
                    .bind(&spec.contact.bsuid)
                    .bind(&spec.contact.name)
                    .bind(&spec.contact.whatsapp_name)
                    .bind(spec.contact.lead_status.as_str())
                    .bind(i32::from(spec.contact.lead_score.value()))
                    .bind(tags_to_json(&spec.contact.tags))
                    .bind(spec.contact.assigned_to.map(|u| u.as_uuid()))
                    .bind(spec.contact.source.unwrap_or(ContactSource::Whatsapp).as_str())
                    .bind(now)
                    .bind(last)
                    .bind(last.unwrap_or(0))
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                    sqlx::query(
                        "INSERT INTO conversations (id, workspace_id, contact_id, status, ai_paused, \
                           assigned_to, contact_assigned_to, lead_status, unread_count, \
                           last_message_at, last_message_preview, last_inbound_at, sort_at, \
                           created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
                    )
                    .bind(conversation_id.as_uuid())
                    .bind(workspace_id.as_uuid())
                    .bind(contact_id.as_uuid())
                    .bind(spec.status.as_str())
                    .bind(spec.ai_paused)
                    .bind(spec.assigned_to.map(|u| u.as_uuid()))
                    .bind(spec.contact.assigned_to.map(|u| u.as_uuid()))
                    .bind(spec.contact.lead_status.as_str())
                    .bind(i32::try_from(spec.unread_count).unwrap_or(i32::MAX))
                    .bind(last)
                    .bind(last.map(|_| "seeded".to_owned()))
                    .bind(spec.last_inbound_at.map(Timestamp::as_millis))
                    .bind(last.unwrap_or(0))
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                    for key in spec.contact.tags.keys() {
                        sqlx::query(
                            "INSERT INTO conversation_tags (conversation_id, workspace_id, tag, sort_at) \
                             VALUES ($1, $2, $3, $4)",
                        )
                        .bind(conversation_id.as_uuid())
                        .bind(workspace_id.as_uuid())
                        .bind(key)
                        .bind(last.unwrap_or(0))
                        .execute(&mut *tx)
                        .await
                        .map_err(from_sqlx)?;
                    }
                    seeded.push(Seeded {
                        contact_id,
                        conversation_id,
                    });
                }
                tx.commit().await.map_err(from_sqlx)?;
                Ok(seeded)
            }

            async fn seed_message(
                &self,
                conversation_id: ConversationId,
                message: SeedMessage,
            ) -> Result<Message, StoreError> {
                let inbound = message.direction == Direction::Inbound;
                let at = message.sent_at.as_millis();
                let now = Timestamp::now().as_millis();
                let mut tx = self.begin_write().await?;
                // Every SET expression sees the row as it was, on both backends.
                let moved: Option<(i64, Uuid, Uuid, i64)> = sqlx::query_as(
                    "UPDATE conversations SET last_seq = last_seq + 1, \
                       last_message_preview = CASE WHEN COALESCE(last_message_at, 0) <= $2 \
                         THEN $3 ELSE last_message_preview END, \
                       last_message_at = CASE WHEN COALESCE(last_message_at, 0) <= $2 \
                         THEN $2 ELSE last_message_at END, \
                       sort_at = CASE WHEN sort_at < $2 THEN $2 ELSE sort_at END, \
                       last_inbound_at = CASE WHEN $4 AND COALESCE(last_inbound_at, 0) < $2 \
                         THEN $2 ELSE last_inbound_at END, \
                       unread_count = unread_count + CASE WHEN $4 THEN 1 ELSE 0 END, \
                       status = CASE WHEN $4 THEN 'open' ELSE status END, \
                       updated_at = $5 \
                     WHERE id = $1 RETURNING last_seq, contact_id, workspace_id, sort_at",
                )
                .bind(conversation_id.as_uuid())
                .bind(at)
                .bind(preview(&MessageKind::text(), Some(&message.text)))
                .bind(inbound)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                let Some((seq, contact_id, workspace_id, sort_at)) = moved else {
                    return Err(StoreError::NotFound);
                };
                let row: MessageRow = sqlx::query_as(&format!(
                    "INSERT INTO messages (id, workspace_id, conversation_id, seq, direction, \
                       sender_type, kind, text, wamid, status, sent_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'text', $7, $8, $9, $10, $11) \
                     RETURNING {MESSAGE_COLUMNS}"
                ))
                .bind(MessageId::new().as_uuid())
                .bind(workspace_id)
                .bind(conversation_id.as_uuid())
                .bind(seq)
                .bind(message.direction.as_str())
                .bind(if inbound { "contact" } else { "user" })
                .bind(&message.text)
                .bind(format!("wamid.seed.{}", Uuid::now_v7().simple()))
                .bind(if inbound { "received" } else { "sent" })
                .bind(at)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                sqlx::query("UPDATE conversation_tags SET sort_at = $2 WHERE conversation_id = $1")
                    .bind(conversation_id.as_uuid())
                    .bind(sort_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                sqlx::query(
                    "UPDATE contacts SET \
                       last_activity_at = CASE WHEN COALESCE(last_activity_at, 0) < $2 \
                         THEN $2 ELSE last_activity_at END, \
                       activity_sort = CASE WHEN activity_sort < $2 THEN $2 ELSE activity_sort END, \
                       last_contact_at = CASE WHEN $3 AND COALESCE(last_contact_at, 0) < $2 \
                         THEN $2 ELSE last_contact_at END \
                     WHERE id = $1",
                )
                .bind(contact_id)
                .bind(at)
                .bind(!inbound)
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                tx.commit().await.map_err(from_sqlx)?;
                Message::try_from(row)
            }
        }
    };
}

impl_seed!(Sqlite);
impl_seed!(Postgres);
