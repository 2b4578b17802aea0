//! The event log: every change an agent's screen must reflect, in commit order.

use std::fmt;
use std::str::FromStr;

use crate::ids::{ContactId, ConversationId, EventId, MessageId, WorkspaceId};
use crate::timestamp::Timestamp;

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A conversation appeared.
    ConversationCreated,
    /// A conversation's state changed.
    ConversationUpdated,
    /// A message was stored.
    MessageCreated,
    /// A message's status changed.
    MessageUpdated,
    /// A contact changed.
    ContactUpdated,
}

impl EventKind {
    /// The wire name (`conversation.created`, ...).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ConversationCreated => "conversation.created",
            Self::ConversationUpdated => "conversation.updated",
            Self::MessageCreated => "message.created",
            Self::MessageUpdated => "message.updated",
            Self::ContactUpdated => "contact.updated",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::ConversationCreated,
            Self::ConversationUpdated,
            Self::MessageCreated,
            Self::MessageUpdated,
            Self::ContactUpdated,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| format!("`{s}` is not an event kind"))
    }
}

/// An event to append, in the same transaction as the change it records.
///
/// Events carry references, not copies: the stream renders the current state of what they
/// name when it sends them, so the write path stays lean and no wire format lives in storage.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// Workspace.
    pub workspace_id: WorkspaceId,
    /// What changed.
    pub kind: EventKind,
    /// The conversation concerned, for visibility filtering.
    pub conversation_id: Option<ConversationId>,
    /// The contact concerned, for visibility filtering.
    pub contact_id: Option<ContactId>,
    /// The message concerned, for `message.*` events.
    pub message_id: Option<MessageId>,
}

/// A stored event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Position in the log.
    pub id: EventId,
    /// Workspace.
    pub workspace_id: WorkspaceId,
    /// What changed.
    pub kind: EventKind,
    /// The conversation concerned.
    pub conversation_id: Option<ConversationId>,
    /// The contact concerned.
    pub contact_id: Option<ContactId>,
    /// The message concerned.
    pub message_id: Option<MessageId>,
    /// When it was written.
    pub created_at: Timestamp,
}
