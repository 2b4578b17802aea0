//! Bulk seeding for benchmarks and large fixtures: millions of rows straight into the tables,
//! multi-row `INSERT`s in big transactions on SQLite and `COPY` on PostgreSQL.
//!
//! Not a port: production writes go through the ingest and inbox ports, one delivery or action
//! at a time, and append events; bulk seeding appends none (nobody is listening yet). What it
//! must keep are the schema's invariants, because the queries under test rely on them:
//! - `conversations.sort_at = COALESCE(last_message_at, 0)` and `last_seq` is the `seq` of the
//!   newest message, with `seq` running 1..=n in each conversation;
//! - `conversations.contact_assigned_to` and `lead_status` copy the contact's;
//! - one `conversation_tags` row per tag key of the contact, carrying the conversation's
//!   `sort_at`;
//! - `contacts.activity_sort = COALESCE(last_activity_at, 0)`.
//!
//! The data is generated from a seed, so two runs with the same [`BusyPlan`] produce the same
//! shape (ids and wall-clock times aside), and [`Seeded`] tells the caller what it got: which
//! conversations have an open reply window, how many carry each tag, and so on.

mod generate;
mod postgres;
mod sqlite;

use std::collections::BTreeMap;

use async_trait::async_trait;
use inbox_domain::ports::StoreError;
use inbox_domain::user::Role;
use inbox_domain::{ContactId, ConversationId, Timestamp, UserId, WorkspaceId};

pub use generate::{RARE_TAG, TAGS};

/// A workspace to create in bulk, without Kapso credentials.
#[derive(Clone, Debug)]
pub struct BulkWorkspace {
    /// Its id.
    pub id: WorkspaceId,
    /// Unique slug.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// The Kapso business number it receives, if any.
    pub kapso_phone_number_id: Option<String>,
}

/// A user to create in bulk, with their membership of one workspace and one API token.
#[derive(Clone, Debug)]
pub struct BulkUser {
    /// Its id.
    pub id: UserId,
    /// Display name.
    pub name: String,
    /// Unique email.
    pub email: String,
    /// Role in the workspace.
    pub role: Role,
    /// The bearer token to accept for this user (stored hashed, as the identity port does).
    pub token: String,
}

/// Who conversations of a busy workspace are assigned to.
#[derive(Clone, Debug)]
pub struct Agents {
    /// The owner: takes a share of the assignments.
    pub owner: UserId,
    /// The member whose `assigned_to=me` view the benchmark measures: about 10% of the
    /// conversations.
    pub member: UserId,
    /// Further agents sharing the rest of the assigned conversations.
    pub others: Vec<UserId>,
}

/// The shape of one workspace's conversations and messages.
#[derive(Clone, Debug)]
pub struct BusyPlan {
    /// The workspace (already created).
    pub workspace_id: WorkspaceId,
    /// Contacts, one conversation each.
    pub conversations: u32,
    /// Messages in all, spread over the conversations with a long tail (a few busy threads,
    /// many short ones, about 1% never messaged).
    pub messages: u64,
    /// Assignees.
    pub agents: Agents,
    /// Phones are this prefix followed by the conversation's index on 7 digits (`+62811` gives
    /// `+628110000042`), so a replay script can name a contact without a lookup table.
    pub phone_prefix: String,
    /// Wamids are `wamid.<wamid_prefix>.<n>`; distinct per workspace.
    pub wamid_prefix: String,
    /// "Now": the newest message is just before it, and about 10% of the conversations have an
    /// inbound message within the 24 hours before it (an open reply window).
    pub now: Timestamp,
    /// Seed of the generator.
    pub seed: u64,
}

/// What one seeded conversation looks like, for callers choosing request targets.
#[derive(Clone, Debug)]
pub struct SeededConversation {
    /// Its id.
    pub id: ConversationId,
    /// Its contact.
    pub contact_id: ContactId,
    /// Index `i` within the plan: the contact's phone is the plan's prefix and `i` on 7 digits.
    pub index: u32,
    /// Messages stored (`last_seq`).
    pub messages: u32,
    /// Whether the newest inbound message is less than 24 hours before the plan's `now`.
    pub window_open: bool,
    /// Its assignee.
    pub assigned_to: Option<UserId>,
    /// Whether `unread_count > 0`.
    pub unread: bool,
}

/// What a [`BulkSeed::bulk_conversations`] call wrote.
#[derive(Clone, Debug, Default)]
pub struct Seeded {
    /// Every conversation, in plan order.
    pub conversations: Vec<SeededConversation>,
    /// Contacts written (one per conversation).
    pub contacts: u64,
    /// Messages written.
    pub messages: u64,
    /// `conversation_tags` rows written.
    pub tag_rows: u64,
    /// Conversations carrying each tag key.
    pub tag_counts: BTreeMap<String, u64>,
}

/// Bulk writes, implemented by both stores.
#[async_trait]
pub trait BulkSeed: Send + Sync {
    /// Creates workspaces in one transaction.
    ///
    /// # Errors
    /// `Duplicate` for a taken slug or phone number id; `Unavailable` when the database is down.
    async fn bulk_workspaces(&self, workspaces: &[BulkWorkspace]) -> Result<(), StoreError>;

    /// Creates users, their memberships of `workspace_id` and one token each, in one
    /// transaction.
    ///
    /// # Errors
    /// `Duplicate` for a taken email; `Unavailable` when the database is down.
    async fn bulk_users(
        &self,
        workspace_id: WorkspaceId,
        users: &[BulkUser],
    ) -> Result<(), StoreError>;

    /// Writes a plan's contacts, conversations, tag rows and messages, in transactions of about
    /// 100,000 messages, calling `progress` with the number of messages written so far.
    ///
    /// # Errors
    /// `Duplicate` when phones or wamids clash with existing rows (seed an empty workspace);
    /// `Unavailable` when the database is down.
    async fn bulk_conversations(
        &self,
        plan: &BusyPlan,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Seeded, StoreError>;

    /// Refreshes the planner's statistics after a bulk load (`ANALYZE`; on PostgreSQL also
    /// `VACUUM`, so index-only scans see an up-to-date visibility map, and a `CHECKPOINT`, so
    /// the load's dirty pages are not written out in the middle of whatever runs next), as a
    /// database that grew to this size one write at a time would have by then.
    ///
    /// # Errors
    /// `Unavailable` when the database is down.
    async fn bulk_finish(&self) -> Result<(), StoreError>;
}

/// Inserts [`BulkWorkspace`]s on a connection; the same SQL on both backends.
macro_rules! insert_workspaces {
    ($conn:expr, $workspaces:expr) => {{
        let now = inbox_domain::Timestamp::now().as_millis();
        for ws in $workspaces {
            sqlx::query(
                "INSERT INTO workspaces (id, slug, name, kapso_phone_number_id, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
            )
            .bind(ws.id.as_uuid())
            .bind(ws.slug.as_str())
            .bind(ws.name.as_str())
            .bind(ws.kapso_phone_number_id.as_deref())
            .bind(now)
            .execute($conn)
            .await
            .map_err(crate::error::from_sqlx)?;
        }
    }};
}
pub(crate) use insert_workspaces;

/// Inserts [`BulkUser`]s with their memberships and tokens; the same SQL on both backends.
macro_rules! insert_users {
    ($conn:expr, $workspace_id:expr, $users:expr) => {{
        let now = inbox_domain::Timestamp::now().as_millis();
        for user in $users {
            sqlx::query("INSERT INTO users (id, name, email, created_at) VALUES ($1, $2, $3, $4)")
                .bind(user.id.as_uuid())
                .bind(user.name.as_str())
                .bind(user.email.as_str())
                .bind(now)
                .execute($conn)
                .await
                .map_err(crate::error::from_sqlx)?;
            sqlx::query(
                "INSERT INTO memberships (workspace_id, user_id, role, created_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind($workspace_id.as_uuid())
            .bind(user.id.as_uuid())
            .bind(user.role.as_str())
            .bind(now)
            .execute($conn)
            .await
            .map_err(crate::error::from_sqlx)?;
            let hash = inbox_domain::token::TokenHash::of(&user.token);
            sqlx::query(
                "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at) \
                 VALUES ($1, $2, 'bench', $3, $4)",
            )
            .bind(inbox_domain::TokenId::new().as_uuid())
            .bind(user.id.as_uuid())
            .bind(hash.as_bytes().as_slice())
            .bind(now)
            .execute($conn)
            .await
            .map_err(crate::error::from_sqlx)?;
        }
    }};
}
pub(crate) use insert_users;
