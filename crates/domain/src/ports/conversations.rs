//! The conversations port: the inbox list, its counters, one conversation, its thread, and the
//! actions agents take on it.

use async_trait::async_trait;

use super::StoreError;
use crate::conversation::{
    Conversation, ConversationCounts, ConversationQuery, ConversationStatus,
};
use crate::ids::{ConversationId, MessageId, UserId, WorkspaceId};
use crate::message::{Message, MessagePage, ThreadQuery};
use crate::page::Page;
use crate::timestamp::Timestamp;
use crate::user::Actor;

/// Why a write that names an assignee (or needs a role) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The actor's role does not allow it: a member assigning someone other than themselves, a
    /// non-owner deleting a contact. The target is visible to the actor (else `NotFound`).
    #[error("your role does not allow this")]
    Forbidden,
    /// The named assignee is not a member of the workspace.
    #[error("the assignee is not a member of this workspace")]
    AssigneeNotMember,
    /// Everything else, including `NotFound` (missing, in another workspace, or not visible to
    /// the actor) and `Duplicate("phone")`.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Conversations as agents see and work them. Every method is scoped to the actor's workspace
/// and visibility ([`Actor::visibility`]): what the actor may not see behaves as if it did not
/// exist.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ConversationRepository: Send + Sync {
    /// One conversation with its contact's summary; `None` when it does not exist, belongs to
    /// another workspace, or is not visible to the actor.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn conversation(
        &self,
        actor: Actor,
        id: ConversationId,
    ) -> Result<Option<Conversation>, StoreError>;

    /// A page of the conversations the actor sees that match every filter, ordered by
    /// `last_message_at` descending (never-messaged last), ties by id descending; `next` is the
    /// cursor of the following page. One query per page; its cost does not grow with depth.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn conversations(
        &self,
        actor: Actor,
        query: ConversationQuery,
    ) -> Result<Page<Conversation, ConversationId>, StoreError>;

    /// The inbox counters within the actor's visibility; `window_open` is judged at `now`.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn conversation_counts(
        &self,
        actor: Actor,
        now: Timestamp,
    ) -> Result<ConversationCounts, StoreError>;

    /// A page of a conversation's messages; `None` when the conversation is not there for the
    /// actor (as [`ConversationRepository::conversation`]).
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn messages(
        &self,
        actor: Actor,
        conversation_id: ConversationId,
        query: ThreadQuery,
    ) -> Result<Option<MessagePage>, StoreError>;

    /// One message of a workspace by id, whoever may see it: for rendering an event whose
    /// visibility the caller has already decided. `None` when there is no such message there.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn message(
        &self,
        workspace_id: WorkspaceId,
        id: MessageId,
    ) -> Result<Option<Message>, StoreError>;

    /// Assigns the conversation to a member (`None`: to nobody) and appends
    /// `conversation.updated`, in one transaction.
    ///
    /// # Errors
    /// `Store(NotFound)` when the conversation is not there for the actor; `Forbidden` when a
    /// member assigns someone else ([`Actor::may_assign_to`]); `AssigneeNotMember` when the
    /// assignee is not a member of the workspace.
    async fn assign_conversation(
        &self,
        actor: Actor,
        id: ConversationId,
        assignee: Option<UserId>,
    ) -> Result<Conversation, ActionError>;

    /// Sets the handover flag and appends `conversation.updated`, in one transaction. Pausing
    /// Kapso's workflows is the use case's business, not storage's.
    ///
    /// # Errors
    /// `NotFound` when the conversation is not there for the actor.
    async fn set_ai_paused(
        &self,
        actor: Actor,
        id: ConversationId,
        paused: bool,
    ) -> Result<Conversation, StoreError>;

    /// Sets `unread_count` to 0 and appends `conversation.updated`, in one transaction.
    ///
    /// # Errors
    /// `NotFound` when the conversation is not there for the actor.
    async fn mark_read(&self, actor: Actor, id: ConversationId)
    -> Result<Conversation, StoreError>;

    /// Opens or closes the conversation and appends `conversation.updated`, in one transaction.
    ///
    /// # Errors
    /// `NotFound` when the conversation is not there for the actor.
    async fn set_status(
        &self,
        actor: Actor,
        id: ConversationId,
        status: ConversationStatus,
    ) -> Result<Conversation, StoreError>;
}
