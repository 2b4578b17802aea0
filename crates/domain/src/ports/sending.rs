//! The sending port: pending messages with their durable send jobs, the outcome of each Kapso
//! attempt, idempotency records and the per-user rate limit.

use async_trait::async_trait;

use super::StoreError;
use crate::ids::{ConversationId, MessageId, UserId, WorkspaceId};
use crate::message::{Message, MessageError};
use crate::sending::{CreatedSend, IdempotentSend, NewSend, SendJob};
use crate::timestamp::Timestamp;

/// Outbound sends. Every write that changes a message appends its event in the same
/// transaction.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SendRepository: Send + Sync {
    /// The workspace a conversation belongs to, so a route on one conversation can find the
    /// caller's role there. `None` when there is no such conversation.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn conversation_workspace(
        &self,
        id: ConversationId,
    ) -> Result<Option<WorkspaceId>, StoreError>;

    /// In one transaction: claims the idempotency key (if any), checks the sender's rate
    /// limit (counted in the database, so every instance shares it), inserts the `pending`
    /// message with the conversation's next seq, updates the conversation's `last_message_*`
    /// and the contact's `last_contact_at`/`last_activity_at` (never unread), writes the send
    /// job leased to the caller until `now + lease`, and appends `message.created`,
    /// `conversation.updated` and `contact.updated`.
    ///
    /// A concurrent request with the same key waits for this one's commit, then gets
    /// [`CreatedSend::Existing`].
    ///
    /// # Errors
    /// `NotFound` when the conversation is not in the workspace.
    async fn create_send(&self, new: &NewSend) -> Result<CreatedSend, StoreError>;

    /// The idempotency record of `(user, key)`, if any.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn idempotent_send(
        &self,
        user_id: UserId,
        key: &str,
    ) -> Result<Option<IdempotentSend>, StoreError>;

    /// Keeps the answer given to the request that used `(user, key)`, for its repeats.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn store_send_answer(
        &self,
        user_id: UserId,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError>;

    /// Kapso accepted the message as `wamid`: stores the wamid, applies the statuses that
    /// arrived for it first (`pending_statuses`), moves the message to `sent` (or beyond),
    /// deletes the job and appends one `message.updated`. When Kapso's echo of the send got
    /// there first and already gave the message its wamid, only the job is deleted; an echo
    /// stored as a message of its own with this wamid is merged into it. Returns the message as
    /// stored.
    ///
    /// # Errors
    /// `NotFound` when the message does not exist; `Duplicate` when another message this API
    /// sent already has `wamid` (it keeps it).
    async fn record_send_accepted(
        &self,
        workspace_id: WorkspaceId,
        message_id: MessageId,
        wamid: &str,
    ) -> Result<Message, StoreError>;

    /// Kapso refused the message for good: a still-pending message becomes `failed` with
    /// `error` and one `message.updated`; the job is deleted. Returns the message as stored.
    ///
    /// # Errors
    /// `NotFound` when the message does not exist.
    async fn record_send_failed(
        &self,
        workspace_id: WorkspaceId,
        message_id: MessageId,
        error: &MessageError,
    ) -> Result<Message, StoreError>;

    /// A transient failure: the job becomes due again at `retry_at`, keeping `last_error` for
    /// operators. The message stays `pending` and no event is appended.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn reschedule_send(
        &self,
        message_id: MessageId,
        retry_at: Timestamp,
        last_error: &str,
    ) -> Result<(), StoreError>;

    /// Leases up to `limit` due jobs (due at or before `now`) until `lease_until`, counting an
    /// attempt on each. Jobs whose message is no longer pending (Kapso's echo settled it) are
    /// deleted instead of returned. Concurrent callers, in this process or another, never get
    /// the same job while its lease runs.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn claim_due_sends(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<SendJob>, StoreError>;

    /// Deletes idempotency records created before `before`; returns how many.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn prune_send_requests(&self, before: Timestamp) -> Result<u64, StoreError>;
}
