//! What the webhook hands to the ingest use case: provider-neutral facts about one delivery.
//!
//! `inbox-kapso` turns Kapso v2 and Meta-format payloads into these; the ingest use case applies
//! them to storage in one transaction. The rules are in [`rules`] (pure, unit-tested); the use
//! case over the [`crate::ports::IngestUnit`] port is [`ingest`] (and [`replay`]).

mod apply;
mod rules;

pub use apply::{IngestOutcome, MAX_ATTEMPTS, ingest, replay};
pub use rules::{
    ContactState, ConversationState, EARLIEST_MILLIS, IngestRoute, IngestWorkspace,
    MAX_FUTURE_SKEW_MILLIS, MessageStatusState, NewIngestedMessage, PendingStatus,
    clean_profile_name, effective_sent_at, fold_statuses,
};

use crate::message::{DeliveryStatus, Direction, Media, MessageError, MessageKind, SenderType};
use crate::phone::PhoneE164;
use crate::timestamp::Timestamp;

/// Everything one verified webhook delivery says, in the order the payload lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryFacts {
    /// Kapso's id of the business phone number the delivery is for: routes it to a workspace.
    /// `None` when the payload does not say (the delivery is then recorded as ignored).
    pub phone_number_id: Option<String>,
    /// The facts, in payload order: every element of a batch, every message and status of a
    /// Meta payload.
    pub items: Vec<Fact>,
}

/// One fact of a delivery.
#[derive(Clone, Debug, PartialEq)]
pub enum Fact {
    /// A message from the customer, or an outbound echo of one sent outside this API.
    Message(IncomingMessage),
    /// A delivery-status change of an outbound message.
    Status(StatusUpdate),
    /// Kapso opened, closed or changed its own conversation record for a contact.
    Conversation(ConversationNotice),
    /// An event we do not act on; recorded by name so nothing is silently dropped.
    Unhandled {
        /// The event name as delivered.
        event: String,
    },
}

/// Who the customer is, as far as the payload says. At least one of `phone` and `bsuid` is set
/// on anything the ingest use case acts on.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CustomerRef {
    /// E.164 phone.
    pub phone: Option<PhoneE164>,
    /// WhatsApp business-scoped user id.
    pub bsuid: Option<String>,
    /// WhatsApp profile name.
    pub profile_name: Option<String>,
}

/// A message to store once per (workspace, wamid).
#[derive(Clone, Debug, PartialEq)]
pub struct IncomingMessage {
    /// WhatsApp message id.
    pub wamid: String,
    /// Inbound (from the customer) or outbound (an echo).
    pub direction: Direction,
    /// `Contact` for inbound; `External` for echoes of messages sent outside this API.
    pub sender_type: SenderType,
    /// The customer.
    pub customer: CustomerRef,
    /// WhatsApp type; unknown types are kept by name.
    pub kind: MessageKind,
    /// Body, caption, or a description of the content.
    pub text: Option<String>,
    /// Attachment.
    pub media: Option<Media>,
    /// The wamid this message replies to or reacts to.
    pub reply_to_wamid: Option<String>,
    /// WhatsApp timestamp.
    pub sent_at: Timestamp,
    /// Delivery status the payload reports (an echo may already be `delivered`).
    pub status: DeliveryStatus,
    /// Kapso's conversation id, when given.
    pub kapso_conversation_id: Option<String>,
    /// The `biz_opaque_callback_data` its send carried (echoes of outbound messages): for our
    /// own sends, the message's id.
    pub callback_data: Option<String>,
    /// The template, for an echo of a template message.
    pub template: Option<Box<crate::sending::TemplateSignature>>,
    /// The message object as delivered, unknown fields included.
    pub raw: serde_json::Value,
}

/// A status change for an outbound message.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusUpdate {
    /// The message's wamid.
    pub wamid: String,
    /// The new status (`sent`, `delivered`, `read` or `failed`).
    pub status: DeliveryStatus,
    /// When WhatsApp recorded it.
    pub at: Timestamp,
    /// Why it failed, for `failed`.
    pub error: Option<MessageError>,
    /// The customer the message went to.
    pub customer: CustomerRef,
    /// Kapso's conversation id, when given.
    pub kapso_conversation_id: Option<String>,
    /// The `biz_opaque_callback_data` of the send, when the status carries it: for our own
    /// sends, the message's id, which finds the message before its wamid is known.
    pub callback_data: Option<String>,
}

/// Kapso's own conversation lifecycle (`whatsapp.conversation.created`, `.ended`, `.inactive`).
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationNotice {
    /// The event name as delivered.
    pub event: String,
    /// The customer.
    pub customer: CustomerRef,
    /// Kapso's conversation id.
    pub kapso_conversation_id: Option<String>,
    /// When it happened.
    pub at: Timestamp,
}
