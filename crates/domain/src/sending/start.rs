//! "Reply to this customer": the checks a send passes before anything is stored, and the
//! stored `pending` message with its durable job. The first attempt follows
//! ([`super::attempt`]); the caller runs it where a hang-up cannot cut it short.

use super::{
    CreatedSend, IdempotencyClaim, IdempotentSend, NewSend, OutboundContent, SendSettings,
};
use crate::conversation::Conversation;
use crate::ids::MessageId;
use crate::message::Message;
use crate::phone::PhoneE164;
use crate::ports::{
    ConversationRepository, KapsoAccount, SendRepository, StoreError, WorkspaceRepository,
};
use crate::timestamp::Timestamp;
use crate::user::Actor;

/// A reply an agent asked for, parsed at the edge.
#[derive(Clone, Debug)]
pub struct SendCommand {
    /// Who sends: the caller in the conversation's workspace.
    pub actor: Actor,
    /// The conversation, as the actor may see it.
    pub conversation: Conversation,
    /// What to send; a text's quote is resolved from `reply_to`.
    pub content: OutboundContent,
    /// A message of the same conversation to quote.
    pub reply_to: Option<MessageId>,
    /// The caller's `Idempotency-Key` and the hash of the request it came with.
    pub idempotency: Option<IdempotencyClaim>,
    /// The moment the window is judged at.
    pub now: Timestamp,
}

/// A send that was stored.
#[derive(Clone, Debug)]
pub struct StartedSend {
    /// The `pending` message; its job is leased to the caller for the first attempt.
    pub pending: Message,
    /// The customer.
    pub to: PhoneE164,
    /// What goes out, the quote resolved.
    pub content: OutboundContent,
}

/// What [`start_send`] did.
#[derive(Clone, Debug)]
pub enum SendStart {
    /// Stored: make the first attempt.
    Started(Box<StartedSend>),
    /// The idempotency key was used already: nothing was stored; answer as that request was.
    Repeat(IdempotentSend),
}

/// Why a send was refused; nothing was stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendRefused {
    /// Free-form text outside the 24-hour window.
    #[error("the 24-hour reply window is closed")]
    ReplyWindowClosed {
        /// When it closed; `None` when the customer never wrote.
        closed_at: Option<Timestamp>,
    },
    /// The request cannot be sent as it is: names the request field and says why.
    #[error("{field}: {message}")]
    Invalid {
        /// The request field at fault.
        field: &'static str,
        /// Why, for people.
        message: &'static str,
    },
    /// The sender is over the per-minute limit.
    #[error("rate limited")]
    RateLimited {
        /// Seconds until a send would be allowed.
        retry_after_secs: u64,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a reply and stores it: the window (free-form text only inside it), the quoted message
/// (of this conversation, with a wamid), the customer's phone and the workspace's Kapso account,
/// then in one transaction the idempotency key, the sender's rate limit, the `pending` message
/// and its job leased to the caller until `now + lease`.
///
/// # Errors
/// [`SendRefused`]; nothing was stored.
#[tracing::instrument(skip_all, fields(workspace.id = %command.actor.workspace_id, conversation.id = %command.conversation.id))]
pub async fn start_send<R>(
    repo: &R,
    settings: &SendSettings,
    command: SendCommand,
) -> Result<SendStart, SendRefused>
where
    R: ConversationRepository + SendRepository + WorkspaceRepository + ?Sized,
{
    let SendCommand {
        actor,
        conversation,
        content,
        reply_to,
        idempotency,
        now,
    } = command;
    if content.needs_open_window() && !conversation.reply_window_open(now) {
        return Err(SendRefused::ReplyWindowClosed {
            closed_at: conversation.reply_window_expires_at(),
        });
    }
    let content = quote(repo, &actor, &conversation, content, reply_to).await?;
    let to = conversation
        .contact
        .phone
        .clone()
        .ok_or(SendRefused::Invalid {
            field: "conversation_id",
            message: "the contact has no phone number, and WhatsApp needs one to send to",
        })?;
    if KapsoAccount::of(repo.kapso_credentials(actor.workspace_id).await?).is_none() {
        return Err(SendRefused::Invalid {
            field: "conversation_id",
            message: "the workspace has no Kapso phone number id and API key; an owner sets them first",
        });
    }
    let new = NewSend {
        message_id: MessageId::new(),
        workspace_id: actor.workspace_id,
        conversation_id: conversation.id,
        sender_user_id: actor.user_id,
        to: to.clone(),
        content: content.clone(),
        idempotency,
        sends_per_minute: settings.sends_per_minute,
        lease: settings.lease,
        now,
    };
    match repo.create_send(&new).await? {
        CreatedSend::Created(pending) => Ok(SendStart::Started(Box::new(StartedSend {
            pending: *pending,
            to,
            content,
        }))),
        CreatedSend::Existing(record) => Ok(SendStart::Repeat(record)),
        CreatedSend::RateLimited { retry_after_secs } => {
            Err(SendRefused::RateLimited { retry_after_secs })
        }
    }
}

/// Resolves the quoted message of a text into its wamid.
async fn quote<R>(
    repo: &R,
    actor: &Actor,
    conversation: &Conversation,
    content: OutboundContent,
    reply_to: Option<MessageId>,
) -> Result<OutboundContent, SendRefused>
where
    R: ConversationRepository + ?Sized,
{
    let (Some(reply_to), OutboundContent::Text { text, .. }) = (reply_to, &content) else {
        return Ok(content);
    };
    let quoted = repo
        .message(actor.workspace_id, reply_to)
        .await?
        .filter(|m| m.conversation_id == conversation.id)
        .ok_or(SendRefused::Invalid {
            field: "reply_to_message_id",
            message: "must be a message of this conversation",
        })?;
    let wamid = quoted.wamid.ok_or(SendRefused::Invalid {
        field: "reply_to_message_id",
        message: "the message has no WhatsApp id yet, so it cannot be quoted",
    })?;
    Ok(OutboundContent::Text {
        text: text.clone(),
        reply_to_wamid: Some(wamid),
    })
}
