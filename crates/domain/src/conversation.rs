//! Conversations: one per contact, the unit agents work.

use std::str::FromStr;

use crate::contact::{LeadStatus, Tags};
use crate::ids::{ContactId, ConversationId, UserId, WorkspaceId};
use crate::phone::PhoneE164;
use crate::timestamp::Timestamp;
use crate::validation::ValidationError;

/// How long after the customer's last message free-form replies are allowed.
pub const REPLY_WINDOW_HOURS: i64 = 24;

/// Whether a conversation needs work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConversationStatus {
    /// Needs attention; inbound messages reopen.
    Open,
    /// Done for now.
    Closed,
}

impl ConversationStatus {
    /// The stored and wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

impl FromStr for ConversationStatus {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(Self::Open),
            "closed" => Ok(Self::Closed),
            _ => Err(ValidationError::new("status", "must be open or closed")),
        }
    }
}

/// The contact fields a conversation view carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactSummary {
    /// Id.
    pub id: ContactId,
    /// Name set by people.
    pub name: Option<String>,
    /// WhatsApp profile name.
    pub whatsapp_name: Option<String>,
    /// E.164 phone.
    pub phone: Option<PhoneE164>,
    /// Business-scoped user id.
    pub bsuid: Option<String>,
    /// Lead status.
    pub lead_status: LeadStatus,
    /// Lead score.
    pub lead_score: u8,
    /// Tags.
    pub tags: Tags,
    /// Assigned member.
    pub assigned_to: Option<UserId>,
}

impl ContactSummary {
    /// The display-name rule of [`crate::contact::display_name`].
    #[must_use]
    pub fn display_name(&self) -> String {
        crate::contact::display_name(
            self.name.as_deref(),
            self.whatsapp_name.as_deref(),
            self.phone.as_ref().map(PhoneE164::as_str),
            self.bsuid.as_deref(),
        )
    }
}

/// A stored conversation with its contact's summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversation {
    /// Id.
    pub id: ConversationId,
    /// Workspace.
    pub workspace_id: WorkspaceId,
    /// Open or closed.
    pub status: ConversationStatus,
    /// Handover flag: a human has the conversation and the bot stays silent.
    pub ai_paused: bool,
    /// Assigned member.
    pub assigned_to: Option<UserId>,
    /// Inbound messages since last marked read.
    pub unread_count: i64,
    /// WhatsApp time of the newest message.
    pub last_message_at: Option<Timestamp>,
    /// Preview of the newest message.
    pub last_message_preview: Option<String>,
    /// WhatsApp time of the newest inbound message.
    pub last_inbound_at: Option<Timestamp>,
    /// Kapso's latest conversation id for this contact.
    pub kapso_conversation_id: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// The contact.
    pub contact: ContactSummary,
}

impl Conversation {
    /// `last_inbound_at` + 24 h; `None` when nothing was ever received.
    #[must_use]
    pub fn reply_window_expires_at(&self) -> Option<Timestamp> {
        self.last_inbound_at
            .map(|at| at.plus_hours(REPLY_WINDOW_HOURS))
    }

    /// Whether a free-form message may be sent at `now`.
    #[must_use]
    pub fn reply_window_open(&self, now: Timestamp) -> bool {
        self.reply_window_expires_at().is_some_and(|end| now < end)
    }
}
