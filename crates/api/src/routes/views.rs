//! Wire shapes shared by several routes.

use inbox_domain::Timestamp;
use inbox_domain::contact::{Contact, Tags};
use inbox_domain::conversation::Conversation;
use inbox_domain::message::Message;
use inbox_domain::user::User;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// A user as the API shows them.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Email, if any.
    pub email: Option<String>,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.as_uuid(),
            name: user.name.clone(),
            email: user.email.clone(),
        }
    }
}

/// A workspace's public identity.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceRef {
    /// Id.
    pub id: Uuid,
    /// Slug.
    pub slug: String,
    /// Name.
    pub name: String,
}

/// A timestamp as the API writes it: RFC 3339 UTC with milliseconds.
pub(crate) fn at(t: Timestamp) -> String {
    t.to_string()
}

/// The contact summary inside a [`ConversationView`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationContactView {
    /// Contact id.
    pub id: Uuid,
    /// `name`, else `whatsapp_name`, else `phone`, else `bsuid`.
    pub display_name: String,
    /// Name set by people.
    pub name: Option<String>,
    /// WhatsApp profile name.
    pub whatsapp_name: Option<String>,
    /// E.164 phone.
    #[schema(example = "+6281234567890")]
    pub phone: Option<String>,
    /// WhatsApp business-scoped user id.
    pub bsuid: Option<String>,
    /// `new`, `cold`, `hot` or `client`.
    pub lead_status: String,
    /// 0..=100.
    pub lead_score: u8,
    /// Tags.
    pub tags: Vec<String>,
    /// Assigned member.
    pub assigned_to: Option<Uuid>,
}

/// A conversation as every conversation route and event shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationView {
    /// Id.
    pub id: Uuid,
    /// Workspace.
    pub workspace_id: Uuid,
    /// `open` or `closed`.
    pub status: String,
    /// Handover flag: a human has the conversation and the bot stays silent.
    pub ai_paused: bool,
    /// Assigned member.
    pub assigned_to: Option<Uuid>,
    /// Inbound messages since last marked read.
    pub unread_count: i64,
    /// WhatsApp time of the newest message.
    pub last_message_at: Option<String>,
    /// First 100 characters of the newest message, or a placeholder such as `[Image]`.
    pub last_message_preview: Option<String>,
    /// WhatsApp time of the newest inbound message.
    pub last_inbound_at: Option<String>,
    /// `last_inbound_at` + 24 h; free-form replies are allowed until then.
    pub reply_window_expires_at: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// The contact.
    pub contact: ConversationContactView,
}

impl From<&Conversation> for ConversationView {
    fn from(c: &Conversation) -> Self {
        Self {
            id: c.id.as_uuid(),
            workspace_id: c.workspace_id.as_uuid(),
            status: c.status.as_str().to_owned(),
            ai_paused: c.ai_paused,
            assigned_to: c.assigned_to.map(|u| u.as_uuid()),
            unread_count: c.unread_count,
            last_message_at: c.last_message_at.map(at),
            last_message_preview: c.last_message_preview.clone(),
            last_inbound_at: c.last_inbound_at.map(at),
            reply_window_expires_at: c.reply_window_expires_at().map(at),
            created_at: at(c.created_at),
            updated_at: at(c.updated_at),
            contact: ConversationContactView {
                id: c.contact.id.as_uuid(),
                display_name: c.contact.display_name(),
                name: c.contact.name.clone(),
                whatsapp_name: c.contact.whatsapp_name.clone(),
                phone: c.contact.phone.as_ref().map(|p| p.as_str().to_owned()),
                bsuid: c.contact.bsuid.clone(),
                lead_status: c.contact.lead_status.as_str().to_owned(),
                lead_score: c.contact.lead_score,
                tags: tag_names(&c.contact.tags),
                assigned_to: c.contact.assigned_to.map(|u| u.as_uuid()),
            },
        }
    }
}

fn tag_names(tags: &Tags) -> Vec<String> {
    tags.as_slice()
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect()
}

/// A message's attachment.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MediaView {
    /// Download URL (Kapso's mirror), if known.
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

/// Why a message failed.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MessageErrorView {
    /// Provider code, e.g. `131047`.
    pub code: Option<String>,
    /// Short title.
    pub title: Option<String>,
    /// Explanation.
    pub message: Option<String>,
}

/// A message as the thread and the event stream show it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MessageView {
    /// Id.
    pub id: Uuid,
    /// Conversation.
    pub conversation_id: Uuid,
    /// Position in the thread: 1, 2, 3, ...
    pub seq: i64,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// `contact`, `user`, `bot` or `external`.
    pub sender_type: String,
    /// The user who sent it through this API.
    pub sender_user_id: Option<Uuid>,
    /// WhatsApp type: `text`, `image`, ... (an open set).
    pub kind: String,
    /// Body, caption or placeholder.
    pub text: Option<String>,
    /// Attachment.
    pub media: Option<MediaView>,
    /// The wamid this message quotes.
    pub reply_to_wamid: Option<String>,
    /// WhatsApp message id; null only while pending.
    pub wamid: Option<String>,
    /// `pending`, `sent`, `delivered`, `read`, `failed` or `received`.
    pub status: String,
    /// Failure details.
    pub error: Option<MessageErrorView>,
    /// WhatsApp timestamp.
    pub sent_at: String,
    /// When it was stored.
    pub created_at: String,
}

impl From<&Message> for MessageView {
    fn from(m: &Message) -> Self {
        Self {
            id: m.id.as_uuid(),
            conversation_id: m.conversation_id.as_uuid(),
            seq: m.seq,
            direction: m.direction.as_str().to_owned(),
            sender_type: m.sender_type.as_str().to_owned(),
            sender_user_id: m.sender_user_id.map(|u| u.as_uuid()),
            kind: m.kind.as_str().to_owned(),
            text: m.text.clone(),
            media: m.media.as_ref().map(|media| MediaView {
                url: media.url.clone(),
                mime_type: media.mime_type.clone(),
                filename: media.filename.clone(),
                size_bytes: media.size_bytes,
                provider_media_id: media.provider_media_id.clone(),
            }),
            reply_to_wamid: m.reply_to_wamid.clone(),
            wamid: m.wamid.clone(),
            status: m.status.as_str().to_owned(),
            error: m.error.as_ref().map(|e| MessageErrorView {
                code: e.code.clone(),
                title: e.title.clone(),
                message: e.message.clone(),
            }),
            sent_at: at(m.sent_at),
            created_at: at(m.created_at),
        }
    }
}

/// A contact as the contact routes and `contact.updated` events show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactView {
    /// Id.
    pub id: Uuid,
    /// Workspace.
    pub workspace_id: Uuid,
    /// `name`, else `whatsapp_name`, else `phone`, else `bsuid`.
    pub display_name: String,
    /// E.164 phone.
    pub phone: Option<String>,
    /// WhatsApp business-scoped user id.
    pub bsuid: Option<String>,
    /// Name set by people.
    pub name: Option<String>,
    /// WhatsApp profile name.
    pub whatsapp_name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// `new`, `cold`, `hot` or `client`.
    pub lead_status: String,
    /// 0..=100.
    pub lead_score: u8,
    /// Tags.
    pub tags: Vec<String>,
    /// Assigned member.
    pub assigned_to: Option<Uuid>,
    /// `whatsapp`, `manual`, `import` or `api`.
    pub source: String,
    /// Free-form JSON object (at most 16 KiB).
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Last message either way.
    pub last_activity_at: Option<String>,
    /// Last outbound message.
    pub last_contact_at: Option<String>,
}

impl From<&Contact> for ContactView {
    fn from(c: &Contact) -> Self {
        Self {
            id: c.id.as_uuid(),
            workspace_id: c.workspace_id.as_uuid(),
            display_name: c.display_name(),
            phone: c.phone.as_ref().map(|p| p.as_str().to_owned()),
            bsuid: c.bsuid.clone(),
            name: c.name.clone(),
            whatsapp_name: c.whatsapp_name.clone(),
            email: c.email.clone(),
            lead_status: c.lead_status.as_str().to_owned(),
            lead_score: c.lead_score.value(),
            tags: tag_names(&c.tags),
            assigned_to: c.assigned_to.map(|u| u.as_uuid()),
            source: c.source.as_str().to_owned(),
            metadata: c.metadata.as_map().clone(),
            created_at: at(c.created_at),
            updated_at: at(c.updated_at),
            last_activity_at: c.last_activity_at.map(at),
            last_contact_at: c.last_contact_at.map(at),
        }
    }
}
