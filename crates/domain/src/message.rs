//! Messages and the delivery-status state machine.

use std::fmt;
use std::str::FromStr;

use crate::ids::{ConversationId, MessageId, UserId, WorkspaceId};
use crate::page::Limit;
use crate::timestamp::Timestamp;
use crate::validation::ValidationError;

/// Which way a message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the customer.
    Inbound,
    /// To the customer.
    Outbound,
}

impl Direction {
    /// The stored and wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

impl FromStr for Direction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "inbound" => Ok(Self::Inbound),
            "outbound" => Ok(Self::Outbound),
            other => Err(format!("`{other}` is not a direction")),
        }
    }
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SenderType {
    /// The customer.
    Contact,
    /// An agent, through this API.
    User,
    /// A bot, through this API.
    Bot,
    /// Someone outside this API: Kapso's inbox, a Kapso workflow, the WhatsApp Business app.
    External,
}

impl SenderType {
    /// The stored and wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Contact => "contact",
            Self::User => "user",
            Self::Bot => "bot",
            Self::External => "external",
        }
    }
}

impl FromStr for SenderType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "contact" => Ok(Self::Contact),
            "user" => Ok(Self::User),
            "bot" => Ok(Self::Bot),
            "external" => Ok(Self::External),
            other => Err(format!("`{other}` is not a sender type")),
        }
    }
}

/// A WhatsApp message type. An open set: kinds we do not know are kept by name, never dropped.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MessageKind(String);

impl MessageKind {
    /// A kind by its WhatsApp name (`text`, `image`, `reaction`, ...). Empty names become
    /// `unsupported`.
    #[must_use]
    pub fn new(name: &str) -> Self {
        let name = name.trim();
        if name.is_empty() {
            Self("unsupported".to_owned())
        } else {
            Self(name.chars().take(64).collect())
        }
    }

    /// `text`.
    #[must_use]
    pub fn text() -> Self {
        Self("text".to_owned())
    }

    /// The kind's name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The preview shown for a message of this kind without text, such as `[Image]`.
    #[must_use]
    pub fn placeholder(&self) -> String {
        let mut chars = self.0.chars();
        let title: String = chars
            .next()
            .map(|c| c.to_uppercase().chain(chars).collect())
            .unwrap_or_default();
        format!("[{}]", title.replace('_', " "))
    }
}

/// Text an agent sends: 1..=4096 characters, as WhatsApp allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    /// Validates outgoing text.
    ///
    /// # Errors
    /// When the text is empty (or only whitespace) or longer than 4096 characters.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.trim().is_empty() || raw.chars().count() > 4096 {
            return Err(ValidationError::new("text", "must be 1 to 4096 characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A message's attachment, as WhatsApp and Kapso describe it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Media {
    /// Where the file can be downloaded (Kapso's mirror), if known.
    pub url: Option<String>,
    /// MIME type.
    pub mime_type: Option<String>,
    /// File name.
    pub filename: Option<String>,
    /// Size in bytes.
    pub size_bytes: Option<i64>,
    /// WhatsApp's media id.
    pub provider_media_id: Option<String>,
}

/// Why WhatsApp or Kapso refused a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageError {
    /// Provider error code, e.g. `131047`.
    pub code: Option<String>,
    /// Short title.
    pub title: Option<String>,
    /// Longer explanation.
    pub message: Option<String>,
}

/// Delivery status. Inbound messages are `Received`; outbound go `Pending` -> `Sent` ->
/// `Delivered` -> `Read`, and `Failed` is terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Written locally, not yet accepted by WhatsApp.
    Pending,
    /// Accepted by WhatsApp.
    Sent,
    /// Delivered to the phone.
    Delivered,
    /// Read by the customer.
    Read,
    /// Refused for good.
    Failed,
    /// An inbound message.
    Received,
}

impl DeliveryStatus {
    /// The stored and wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Received => "received",
        }
    }

    /// Position on the outbound path; only higher ranks may replace lower ones.
    const fn rank(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Sent => 1,
            Self::Delivered => 2,
            Self::Read => 3,
            Self::Failed | Self::Received => 4,
        }
    }

    /// The status after `update` arrives for a message in this status, or `None` when the update
    /// changes nothing (a late or repeated status, anything after `failed`, anything for an
    /// inbound message). Statuses only move forward, so applying updates in any order ends in the
    /// same state.
    #[must_use]
    pub fn advance(self, update: Self) -> Option<Self> {
        match (self, update) {
            (Self::Failed | Self::Received, _) | (_, Self::Received | Self::Pending) => None,
            (_, Self::Failed) => Some(Self::Failed),
            (current, next) if next.rank() > current.rank() => Some(next),
            _ => None,
        }
    }

    /// Whether the message reached the phone (`read` implies `delivered`).
    #[must_use]
    pub const fn was_delivered(self) -> bool {
        matches!(self, Self::Delivered | Self::Read)
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "sent" => Ok(Self::Sent),
            "delivered" => Ok(Self::Delivered),
            "read" => Ok(Self::Read),
            "failed" => Ok(Self::Failed),
            "received" => Ok(Self::Received),
            other => Err(format!("`{other}` is not a delivery status")),
        }
    }
}

/// A stored message.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Id.
    pub id: MessageId,
    /// Workspace.
    pub workspace_id: WorkspaceId,
    /// Conversation.
    pub conversation_id: ConversationId,
    /// Position in the thread: 1, 2, 3, ... per conversation.
    pub seq: i64,
    /// Direction.
    pub direction: Direction,
    /// Author kind.
    pub sender_type: SenderType,
    /// Author, when a user of this API.
    pub sender_user_id: Option<UserId>,
    /// WhatsApp type.
    pub kind: MessageKind,
    /// Body, caption or placeholder.
    pub text: Option<String>,
    /// Attachment.
    pub media: Option<Media>,
    /// The wamid this message quotes.
    pub reply_to_wamid: Option<String>,
    /// WhatsApp id; unique per workspace; `None` only while pending.
    pub wamid: Option<String>,
    /// Delivery status.
    pub status: DeliveryStatus,
    /// Failure details.
    pub error: Option<MessageError>,
    /// WhatsApp timestamp.
    pub sent_at: Timestamp,
    /// When we stored it.
    pub created_at: Timestamp,
}

/// Maximum length of a conversation's `last_message_preview`, in characters.
pub const PREVIEW_CHARS: usize = 100;

/// The preview of a message: its first 100 characters, or a placeholder such as `[Image]`.
#[must_use]
pub fn preview(kind: &MessageKind, text: Option<&str>) -> String {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => t.chars().take(PREVIEW_CHARS).collect(),
        None => kind.placeholder(),
    }
}

/// Which part of a thread to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadPosition {
    /// The newest messages.
    Newest,
    /// The newest messages with a `seq` below this one (scrolling back).
    Before(i64),
    /// The oldest messages with a `seq` above this one (catching up).
    After(i64),
}

/// One request for a page of a conversation's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadQuery {
    /// Where to read.
    pub position: ThreadPosition,
    /// How many messages at most.
    pub limit: Limit,
}

/// A page of a thread, always in ascending `seq` order.
#[derive(Clone, Debug, PartialEq)]
pub struct MessagePage {
    /// The messages, oldest first.
    pub messages: Vec<Message>,
    /// Whether more messages lie beyond the page in the direction read: older ones for
    /// `Newest` and `Before`, newer ones for `After`.
    pub has_more: bool,
}

#[cfg(test)]
mod tests {
    use super::DeliveryStatus::{self, *};
    use super::*;

    const ALL: [DeliveryStatus; 6] = [Pending, Sent, Delivered, Read, Failed, Received];

    #[test]
    fn statuses_only_move_forward() {
        assert_eq!(Pending.advance(Sent), Some(Sent));
        assert_eq!(Sent.advance(Delivered), Some(Delivered));
        assert_eq!(Sent.advance(Read), Some(Read));
        assert_eq!(Delivered.advance(Read), Some(Read));
        assert_eq!(Read.advance(Delivered), None);
        assert_eq!(Read.advance(Sent), None);
        assert_eq!(Delivered.advance(Delivered), None);
    }

    #[test]
    fn failed_is_terminal_and_reachable_from_any_outbound_state() {
        for s in [Pending, Sent, Delivered, Read] {
            assert_eq!(s.advance(Failed), Some(Failed));
        }
        for update in ALL {
            assert_eq!(Failed.advance(update), None);
        }
    }

    #[test]
    fn inbound_messages_never_change_and_nothing_goes_back_to_pending() {
        for update in ALL {
            assert_eq!(Received.advance(update), None);
            assert!(ALL.iter().all(|s| s.advance(Pending).is_none()));
            assert_ne!(update.advance(Received), Some(Received));
        }
    }

    #[test]
    fn any_order_of_updates_converges() {
        let updates = [Sent, Delivered, Read];
        let orders = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        for order in orders {
            let end = order
                .iter()
                .fold(Pending, |s, &i| s.advance(updates[i]).unwrap_or(s));
            assert_eq!(end, Read, "{order:?}");
        }
    }

    #[test]
    fn read_implies_delivered() {
        assert!(Read.was_delivered());
        assert!(Delivered.was_delivered());
        assert!(!Sent.was_delivered());
    }

    #[test]
    fn names_round_trip() {
        for s in ALL {
            assert_eq!(s.as_str().parse::<DeliveryStatus>(), Ok(s));
        }
    }

    #[test]
    fn previews() {
        assert_eq!(preview(&MessageKind::new("image"), None), "[Image]");
        assert_eq!(preview(&MessageKind::new("image"), Some("  ")), "[Image]");
        assert_eq!(
            preview(&MessageKind::text(), Some(&"é".repeat(150)))
                .chars()
                .count(),
            100
        );
        assert_eq!(preview(&MessageKind::new(""), None), "[Unsupported]");
    }

    #[test]
    fn outgoing_text_limits() {
        assert!(MessageText::parse("hi").is_ok());
        assert!(MessageText::parse(" ").is_err());
        assert!(MessageText::parse(&"a".repeat(4096)).is_ok());
        assert!(MessageText::parse(&"a".repeat(4097)).is_err());
    }
}
