//! Wire types of the webhook bodies Kapso delivers: v2 single events, v2 batch envelopes and
//! raw Meta-format payloads.
//!
//! Every field is optional and lenient: a field of an unexpected type reads as absent rather
//! than refusing the delivery, and unknown fields are ignored here because the raw message JSON
//! travels on in `IncomingMessage::raw`. These types stay in this crate;
//! [`crate::parse_delivery`] turns them into the domain's `DeliveryFacts`.

use serde::Deserialize;
use serde_json::Value;

use crate::lenient;

/// The `X-Webhook-Event` header: the authoritative event name of a Kapso delivery.
pub const EVENT_HEADER: &str = "X-Webhook-Event";

/// The header naming one delivery, the same on each of Kapso's retries of it.
pub const IDEMPOTENCY_HEADER: &str = "X-Idempotency-Key";

/// The headers worth keeping with a stored delivery (lower case), for replay and operators:
/// what Kapso says about the body's event, version and batching. Never the signatures.
pub const DELIVERY_HEADERS: [&str; 6] = [
    "content-type",
    "x-webhook-event",
    "x-idempotency-key",
    "x-webhook-payload-version",
    "x-webhook-batch",
    "x-batch-size",
];

/// Inbound message from a customer.
pub const MESSAGE_RECEIVED: &str = "whatsapp.message.received";
/// Outbound message accepted by WhatsApp, whoever sent it (this API, Kapso, the Business app).
pub const MESSAGE_SENT: &str = "whatsapp.message.sent";
/// Outbound message delivered to the phone.
pub const MESSAGE_DELIVERED: &str = "whatsapp.message.delivered";
/// Outbound message read by the customer.
pub const MESSAGE_READ: &str = "whatsapp.message.read";
/// Outbound message refused by WhatsApp.
pub const MESSAGE_FAILED: &str = "whatsapp.message.failed";
/// Prefix of Kapso's conversation lifecycle events (`created`, `ended`, `inactive`).
pub const CONVERSATION_PREFIX: &str = "whatsapp.conversation.";

/// The event name of a delivery: the `X-Webhook-Event` header, then `body.event`, then
/// `body.type`. Blank values are skipped. `None` when none of them names an event.
#[must_use]
pub fn resolve_event(event_header: Option<&str>, body: &Value) -> Option<String> {
    let from_body = |key: &str| body.get(key).and_then(Value::as_str);
    [event_header, from_body("event"), from_body("type")]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|name| !name.is_empty())
        .map(str::to_owned)
}

/// A Kapso v2 event: a whole single-event body, or one element of a batch's `data`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct V2Event {
    /// Event name, when the body carries one (older and third-party samples do).
    #[serde(default, deserialize_with = "lenient::text")]
    pub event: Option<String>,
    /// Event name as batch envelopes spell it.
    #[serde(default, rename = "type", deserialize_with = "lenient::text")]
    pub event_type: Option<String>,
    /// The message, exactly as delivered; read it with [`WaMessage`].
    #[serde(default)]
    pub message: Option<Value>,
    /// Kapso's conversation record.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub conversation: Option<Conversation>,
    /// Whether the message opened a new Kapso conversation.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub is_new_conversation: bool,
    /// The business number's Meta id: the routing key.
    #[serde(default, deserialize_with = "lenient::text")]
    pub phone_number_id: Option<String>,
}

/// A Kapso v2 batch envelope: `{"type", "batch": true, "data": [...], "batch_info"}`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct V2Batch {
    /// Event name of every element.
    #[serde(default, rename = "type", deserialize_with = "lenient::text")]
    pub event_type: Option<String>,
    /// Event name, if a sender puts it here instead.
    #[serde(default, deserialize_with = "lenient::text")]
    pub event: Option<String>,
    /// The batch flag.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub batch: bool,
    /// The events, each with the single-event shape, as delivered.
    #[serde(default, deserialize_with = "lenient::list")]
    pub data: Vec<Value>,
    /// Buffering details.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub batch_info: Option<BatchInfo>,
}

/// Buffering details of a batch.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct BatchInfo {
    /// Number of events.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub size: Option<u64>,
    /// Buffer window.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub window_ms: Option<u64>,
    /// Sequence number of the first event.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub first_sequence: Option<i64>,
    /// Sequence number of the last event.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub last_sequence: Option<i64>,
    /// Kapso conversation the batch belongs to.
    #[serde(default, deserialize_with = "lenient::text")]
    pub conversation_id: Option<String>,
}

/// A WhatsApp message: Meta's shape, plus Kapso's `kapso` extension in v2 payloads.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct WaMessage {
    /// The wamid.
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
    /// Unix seconds, as a string (sometimes a number). On status events, the status time.
    #[serde(default, deserialize_with = "lenient::text")]
    pub timestamp: Option<String>,
    /// Message type: an open set.
    #[serde(default, rename = "type", deserialize_with = "lenient::text")]
    pub kind: Option<String>,
    /// Customer's `wa_id` (digits, no `+`) on inbound messages; absent for username-only users.
    #[serde(default, deserialize_with = "lenient::text")]
    pub from: Option<String>,
    /// Recipient on outbound records.
    #[serde(default, deserialize_with = "lenient::text")]
    pub to: Option<String>,
    /// Customer's business-scoped user id (BSUID).
    #[serde(default, deserialize_with = "lenient::text")]
    pub from_user_id: Option<String>,
    /// Recipient's business-scoped user id on outbound records.
    #[serde(default, deserialize_with = "lenient::text")]
    pub to_user_id: Option<String>,
    /// Customer's `@username`: display only.
    #[serde(default, deserialize_with = "lenient::text")]
    pub username: Option<String>,
    /// What the message replies to.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub context: Option<Context>,
    /// `text` content.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub text: Option<TextBody>,
    /// `image` content.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub image: Option<MediaObject>,
    /// `video` content.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub video: Option<MediaObject>,
    /// `audio` content (voice notes have `voice: true`).
    #[serde(default, deserialize_with = "lenient::opt")]
    pub audio: Option<MediaObject>,
    /// `document` content.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub document: Option<MediaObject>,
    /// `sticker` content.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub sticker: Option<MediaObject>,
    /// `location` content.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub location: Option<Location>,
    /// `contacts` content: shared contact cards.
    #[serde(default, deserialize_with = "lenient::list")]
    pub contacts: Vec<SharedContact>,
    /// `interactive` content: a reply to buttons, a list or a flow (or, on echoes, what was sent).
    #[serde(default, deserialize_with = "lenient::opt")]
    pub interactive: Option<Interactive>,
    /// `button` content: a tap on a template's quick-reply button.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub button: Option<Button>,
    /// `reaction` content.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub reaction: Option<Reaction>,
    /// `order` content.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub order: Option<Order>,
    /// `system` content, such as a number change.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub system: Option<SystemNotice>,
    /// `template` content, on echoes of template sends.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub template: Option<Template>,
    /// Errors, on `unsupported` messages.
    #[serde(default, deserialize_with = "lenient::list")]
    pub errors: Vec<MetaError>,
    /// Kapso's extension (v2 only).
    #[serde(default, deserialize_with = "lenient::opt")]
    pub kapso: Option<KapsoExt>,
}

/// A message's `context`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Context {
    /// The wamid replied to.
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
    /// The wamid replied to, as some Kapso records spell it.
    #[serde(default, deserialize_with = "lenient::text")]
    pub message_id: Option<String>,
    /// Who sent the quoted message.
    #[serde(default, deserialize_with = "lenient::text")]
    pub from: Option<String>,
    /// Whether the message was forwarded.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub forwarded: bool,
}

/// `text` content.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct TextBody {
    /// The text.
    #[serde(default, deserialize_with = "lenient::text")]
    pub body: Option<String>,
}

/// Media content (`image`, `video`, `audio`, `document`, `sticker`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MediaObject {
    /// Meta's media id.
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
    /// Meta's download URL (needs the Meta token; a 2025 rollout, may be absent).
    #[serde(default, deserialize_with = "lenient::text")]
    pub url: Option<String>,
    /// A public link, on echoes of sends by link.
    #[serde(default, deserialize_with = "lenient::text")]
    pub link: Option<String>,
    /// Caption.
    #[serde(default, deserialize_with = "lenient::text")]
    pub caption: Option<String>,
    /// File name (documents).
    #[serde(default, deserialize_with = "lenient::text")]
    pub filename: Option<String>,
    /// MIME type.
    #[serde(default, deserialize_with = "lenient::text")]
    pub mime_type: Option<String>,
    /// Size in bytes, when given.
    #[serde(default, deserialize_with = "lenient::integer")]
    pub file_size: Option<i64>,
    /// Whether an audio is a voice note.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub voice: bool,
}

/// `location` content.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Location {
    /// Latitude.
    #[serde(default, deserialize_with = "lenient::number")]
    pub latitude: Option<f64>,
    /// Longitude.
    #[serde(default, deserialize_with = "lenient::number")]
    pub longitude: Option<f64>,
    /// Place name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
    /// Address.
    #[serde(default, deserialize_with = "lenient::text")]
    pub address: Option<String>,
}

/// One shared contact card.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SharedContact {
    /// Name parts.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub name: Option<ContactName>,
    /// Phones.
    #[serde(default, deserialize_with = "lenient::list")]
    pub phones: Vec<ContactPhone>,
}

/// A shared contact's name.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ContactName {
    /// Full name as displayed.
    #[serde(default, deserialize_with = "lenient::text")]
    pub formatted_name: Option<String>,
    /// First name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub last_name: Option<String>,
}

/// A shared contact's phone.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ContactPhone {
    /// The number as written.
    #[serde(default, deserialize_with = "lenient::text")]
    pub phone: Option<String>,
    /// The WhatsApp id, when the number is on WhatsApp.
    #[serde(default, deserialize_with = "lenient::text")]
    pub wa_id: Option<String>,
}

/// `interactive` content.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Interactive {
    /// `button_reply`, `list_reply`, `nfm_reply`, ... (or the sent type on echoes).
    #[serde(default, rename = "type", deserialize_with = "lenient::text")]
    pub kind: Option<String>,
    /// A tap on a reply button.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub button_reply: Option<ChoiceReply>,
    /// A choice from a list.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub list_reply: Option<ChoiceReply>,
    /// A WhatsApp Flow response.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub nfm_reply: Option<FlowReply>,
    /// The body of a sent interactive message (echoes).
    #[serde(default, deserialize_with = "lenient::opt")]
    pub body: Option<InteractiveBody>,
}

/// A button or list choice.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ChoiceReply {
    /// The choice's id.
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
    /// What the customer saw and tapped.
    #[serde(default, deserialize_with = "lenient::text")]
    pub title: Option<String>,
    /// A list row's description.
    #[serde(default, deserialize_with = "lenient::text")]
    pub description: Option<String>,
}

/// A Flow response.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct FlowReply {
    /// The flow's name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
    /// The text shown in the chat.
    #[serde(default, deserialize_with = "lenient::text")]
    pub body: Option<String>,
}

/// The body of a sent interactive message.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct InteractiveBody {
    /// Its text.
    #[serde(default, deserialize_with = "lenient::text")]
    pub text: Option<String>,
}

/// `button` content: a template quick-reply tap.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Button {
    /// The button's label.
    #[serde(default, deserialize_with = "lenient::text")]
    pub text: Option<String>,
    /// The payload set on the template.
    #[serde(default, deserialize_with = "lenient::text")]
    pub payload: Option<String>,
}

/// `reaction` content. An empty or absent emoji means the reaction was removed.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Reaction {
    /// The wamid reacted to.
    #[serde(default, deserialize_with = "lenient::text")]
    pub message_id: Option<String>,
    /// The emoji.
    #[serde(default, deserialize_with = "lenient::text")]
    pub emoji: Option<String>,
}

/// `order` content.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Order {
    /// The customer's note.
    #[serde(default, deserialize_with = "lenient::text")]
    pub text: Option<String>,
    /// The items, as delivered.
    #[serde(default, deserialize_with = "lenient::list")]
    pub product_items: Vec<Value>,
}

/// `system` content.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SystemNotice {
    /// The notice's text.
    #[serde(default, deserialize_with = "lenient::text")]
    pub body: Option<String>,
    /// `user_changed_number`, `user_changed_user_id`, ...
    #[serde(default, rename = "type", deserialize_with = "lenient::text")]
    pub kind: Option<String>,
    /// The customer's new WhatsApp id.
    #[serde(default, deserialize_with = "lenient::text")]
    pub wa_id: Option<String>,
}

/// `template` content on echoes of template sends.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Template {
    /// The template's name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
}

/// Kapso's `message.kapso` extension.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct KapsoExt {
    /// `inbound` or `outbound`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub direction: Option<String>,
    /// `received`, or `sent`/`delivered`/`read`/`failed` for outbound.
    #[serde(default, deserialize_with = "lenient::text")]
    pub status: Option<String>,
    /// Kapso workflow processing state.
    #[serde(default, deserialize_with = "lenient::text")]
    pub processing_status: Option<String>,
    /// `cloud_api`, `business_app` (an echo typed on the phone) or `history_sync`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub origin: Option<String>,
    /// Whether the message has an attachment.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub has_media: bool,
    /// Kapso's rendering of the message: a string or an object. Kept as JSON, never parsed.
    #[serde(default)]
    pub content: Option<Value>,
    /// Kapso's transcript of an audio.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub transcript: Option<Transcript>,
    /// Kapso's copy of the attachment.
    #[serde(default, deserialize_with = "lenient::text")]
    pub media_url: Option<String>,
    /// Details of Kapso's copy of the attachment.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub media_data: Option<MediaData>,
    /// Type-specific details, such as the caption.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub message_type_data: Option<MessageTypeData>,
    /// Meta's status history of an outbound message, oldest first.
    #[serde(default, deserialize_with = "lenient::list")]
    pub statuses: Vec<MetaStatus>,
    /// The customer's phone, in some records.
    #[serde(default, deserialize_with = "lenient::text")]
    pub phone_number: Option<String>,
    /// The business number, in some records.
    #[serde(default, deserialize_with = "lenient::text")]
    pub phone_number_id: Option<String>,
    /// The customer's WhatsApp name, in some records.
    #[serde(default, deserialize_with = "lenient::text")]
    pub contact_name: Option<String>,
}

/// Kapso's transcript of an audio.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Transcript {
    /// The transcript.
    #[serde(default, deserialize_with = "lenient::text")]
    pub text: Option<String>,
}

/// Details of Kapso's copy of an attachment.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MediaData {
    /// Download URL.
    #[serde(default, deserialize_with = "lenient::text")]
    pub url: Option<String>,
    /// File name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub filename: Option<String>,
    /// MIME type.
    #[serde(default, deserialize_with = "lenient::text")]
    pub content_type: Option<String>,
    /// Size in bytes.
    #[serde(default, deserialize_with = "lenient::integer")]
    pub byte_size: Option<i64>,
}

/// Type-specific details of a Kapso message.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MessageTypeData {
    /// Caption of a media message.
    #[serde(default, deserialize_with = "lenient::text")]
    pub caption: Option<String>,
}

/// Kapso's conversation record.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Conversation {
    /// Kapso's conversation id.
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
    /// The customer's phone, with or without `+`; absent for username-only users.
    #[serde(default, deserialize_with = "lenient::text")]
    pub phone_number: Option<String>,
    /// The customer's business-scoped user id.
    #[serde(default, deserialize_with = "lenient::text")]
    pub business_scoped_user_id: Option<String>,
    /// The parent business-scoped user id, for linked portfolios.
    #[serde(default, deserialize_with = "lenient::text")]
    pub parent_business_scoped_user_id: Option<String>,
    /// The customer's `@username`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub username: Option<String>,
    /// `active` or `ended`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub status: Option<String>,
    /// RFC 3339.
    #[serde(default, deserialize_with = "lenient::text")]
    pub last_active_at: Option<String>,
    /// RFC 3339.
    #[serde(default, deserialize_with = "lenient::text")]
    pub created_at: Option<String>,
    /// RFC 3339.
    #[serde(default, deserialize_with = "lenient::text")]
    pub updated_at: Option<String>,
    /// The business number.
    #[serde(default, deserialize_with = "lenient::text")]
    pub phone_number_id: Option<String>,
    /// Kapso's summary of the conversation.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub kapso: Option<ConversationSummary>,
}

/// Kapso's summary of a conversation.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ConversationSummary {
    /// The customer's WhatsApp name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub contact_name: Option<String>,
    /// RFC 3339, or null.
    #[serde(default, deserialize_with = "lenient::text")]
    pub last_inbound_at: Option<String>,
    /// RFC 3339, or null.
    #[serde(default, deserialize_with = "lenient::text")]
    pub last_outbound_at: Option<String>,
}

/// A raw Meta webhook: `{"object": "whatsapp_business_account", "entry": [...]}`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MetaPayload {
    /// `whatsapp_business_account`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub object: Option<String>,
    /// Entries, one per business account.
    #[serde(default, deserialize_with = "lenient::list")]
    pub entry: Vec<MetaEntry>,
}

/// One entry of a Meta webhook.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MetaEntry {
    /// The WhatsApp business account id.
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
    /// The changes.
    #[serde(default, deserialize_with = "lenient::list")]
    pub changes: Vec<MetaChange>,
}

/// One change of a Meta entry.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MetaChange {
    /// `messages`, `smb_message_echoes`, `message_template_status_update`, ...
    #[serde(default, deserialize_with = "lenient::text")]
    pub field: Option<String>,
    /// What changed.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub value: Option<MetaValue>,
}

/// The value of a Meta change.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MetaValue {
    /// `whatsapp`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub messaging_product: Option<String>,
    /// The business number.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub metadata: Option<MetaMetadata>,
    /// The customers who sent `messages`.
    #[serde(default, deserialize_with = "lenient::list")]
    pub contacts: Vec<MetaContact>,
    /// Inbound messages, as delivered; read each with [`WaMessage`].
    #[serde(default, deserialize_with = "lenient::list")]
    pub messages: Vec<Value>,
    /// Messages typed in the WhatsApp Business app (coexistence numbers), as delivered.
    #[serde(default, deserialize_with = "lenient::list")]
    pub message_echoes: Vec<Value>,
    /// Status changes of outbound messages.
    #[serde(default, deserialize_with = "lenient::list")]
    pub statuses: Vec<MetaStatus>,
    /// Account- or app-level errors.
    #[serde(default, deserialize_with = "lenient::list")]
    pub errors: Vec<MetaError>,
}

/// The business number of a Meta change.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MetaMetadata {
    /// The number as displayed.
    #[serde(default, deserialize_with = "lenient::text")]
    pub display_phone_number: Option<String>,
    /// Meta's id of the number: the routing key.
    #[serde(default, deserialize_with = "lenient::text")]
    pub phone_number_id: Option<String>,
}

/// A customer named in a Meta change.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MetaContact {
    /// WhatsApp id (digits, no `+`).
    #[serde(default, deserialize_with = "lenient::text")]
    pub wa_id: Option<String>,
    /// Business-scoped user id.
    #[serde(default, deserialize_with = "lenient::text")]
    pub user_id: Option<String>,
    /// Profile.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub profile: Option<MetaProfile>,
}

/// A customer's WhatsApp profile.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MetaProfile {
    /// Profile name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
}

/// A Meta status object (also found in Kapso's `message.kapso.statuses`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MetaStatus {
    /// The message's wamid.
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
    /// `sent`, `delivered`, `read`, `failed` or `played`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub status: Option<String>,
    /// Unix seconds, as a string.
    #[serde(default, deserialize_with = "lenient::text")]
    pub timestamp: Option<String>,
    /// The customer's WhatsApp id.
    #[serde(default, deserialize_with = "lenient::text")]
    pub recipient_id: Option<String>,
    /// The customer's business-scoped user id.
    #[serde(default, deserialize_with = "lenient::text")]
    pub recipient_user_id: Option<String>,
    /// Echo of the `biz_opaque_callback_data` set on send.
    #[serde(default, deserialize_with = "lenient::text")]
    pub biz_opaque_callback_data: Option<String>,
    /// Why it failed.
    #[serde(default, deserialize_with = "lenient::list")]
    pub errors: Vec<MetaError>,
}

/// A Meta error object.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MetaError {
    /// Error code, e.g. `131047`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub code: Option<String>,
    /// Short title.
    #[serde(default, deserialize_with = "lenient::text")]
    pub title: Option<String>,
    /// Explanation.
    #[serde(default, deserialize_with = "lenient::text")]
    pub message: Option<String>,
    /// More details.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub error_data: Option<MetaErrorData>,
}

/// Details of a Meta error.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MetaErrorData {
    /// Explanation.
    #[serde(default, deserialize_with = "lenient::text")]
    pub details: Option<String>,
}
