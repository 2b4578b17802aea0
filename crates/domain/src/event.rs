//! The event log: every change an agent's screen must reflect, in commit order.

use std::fmt;
use std::str::FromStr;

use crate::ids::{ContactId, ConversationId, EventId, MessageId, UserId, WorkspaceId};
use crate::timestamp::Timestamp;
use crate::user::Actor;

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
    /// Someone's access to the workspace changed: a token was revoked, a role changed or a
    /// membership was removed. Never sent to clients: it tells every process to re-check the
    /// rights of that workspace's open streams before it sends anything written after it.
    AccessChanged,
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
            Self::AccessChanged => "access.changed",
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
            Self::AccessChanged,
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

/// What a waiter on the log has seen of its changes: an opaque counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ChangeToken(pub u64);

/// A reader's place in the log. Events are read in `(tx, id)` order: on SQLite `tx` is always 0
/// and ids alone give commit order; on PostgreSQL `tx` is the writing transaction's id, because
/// sequence ids are handed out before commit and so are not in commit order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPosition {
    /// The writing transaction's order (0 on SQLite).
    pub tx: i64,
    /// The event id.
    pub id: EventId,
}

impl LogPosition {
    /// Before every event.
    pub const START: Self = Self {
        tx: i64::MIN,
        id: EventId(0),
    };
}

/// An event as read back, with its position and the current assignments of what it concerns,
/// so that visibility can be decided without another query.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedEvent {
    /// Where it sits in the log.
    pub position: LogPosition,
    /// The event.
    pub event: Event,
    /// The assignee of the conversation concerned, now.
    pub conversation_assignee: Option<UserId>,
    /// The assignee of the contact concerned (or of the conversation's contact), now.
    pub contact_assignee: Option<UserId>,
}

impl Actor {
    /// Whether this actor may see an event: contact events follow the contact's visibility,
    /// conversation and message events the conversation's.
    #[must_use]
    pub fn sees_event(&self, logged: &LoggedEvent) -> bool {
        if logged.event.workspace_id != self.workspace_id {
            return false;
        }
        match logged.event.kind {
            EventKind::ContactUpdated => self.sees_contact(logged.contact_assignee),
            EventKind::ConversationCreated
            | EventKind::ConversationUpdated
            | EventKind::MessageCreated
            | EventKind::MessageUpdated => {
                self.sees_conversation(logged.conversation_assignee, logged.contact_assignee)
            }
            EventKind::AccessChanged => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::Timestamp;
    use crate::user::Role;

    fn logged(
        kind: EventKind,
        workspace_id: WorkspaceId,
        conv: Option<UserId>,
        contact: Option<UserId>,
    ) -> LoggedEvent {
        LoggedEvent {
            position: LogPosition {
                tx: 0,
                id: EventId(1),
            },
            event: Event {
                id: EventId(1),
                workspace_id,
                kind,
                conversation_id: Some(ConversationId::new()),
                contact_id: Some(ContactId::new()),
                message_id: None,
                created_at: Timestamp::from_millis(0),
            },
            conversation_assignee: conv,
            contact_assignee: contact,
        }
    }

    #[test]
    fn members_see_events_of_what_is_assigned_to_them() {
        let ws = WorkspaceId::new();
        let me = Actor {
            user_id: UserId::new(),
            workspace_id: ws,
            role: Role::Member,
        };
        let other = UserId::new();
        assert!(me.sees_event(&logged(
            EventKind::MessageCreated,
            ws,
            Some(me.user_id),
            None
        )));
        assert!(me.sees_event(&logged(
            EventKind::ConversationUpdated,
            ws,
            None,
            Some(me.user_id)
        )));
        assert!(!me.sees_event(&logged(EventKind::MessageCreated, ws, Some(other), None)));
        assert!(!me.sees_event(&logged(
            EventKind::ContactUpdated,
            ws,
            Some(me.user_id),
            Some(other)
        )));
        assert!(me.sees_event(&logged(
            EventKind::ContactUpdated,
            ws,
            None,
            Some(me.user_id)
        )));
    }

    #[test]
    fn nobody_sees_another_workspace() {
        let admin = Actor {
            user_id: UserId::new(),
            workspace_id: WorkspaceId::new(),
            role: Role::Owner,
        };
        assert!(admin.sees_event(&logged(
            EventKind::MessageCreated,
            admin.workspace_id,
            None,
            None
        )));
        assert!(!admin.sees_event(&logged(
            EventKind::MessageCreated,
            WorkspaceId::new(),
            None,
            None
        )));
    }

    #[test]
    fn positions_order_by_transaction_then_id() {
        let a = LogPosition {
            tx: 5,
            id: EventId(9),
        };
        let b = LogPosition {
            tx: 6,
            id: EventId(2),
        };
        assert!(LogPosition::START < a && a < b);
    }
}
