//! The Kapso port: what the use cases need from Kapso's API (sending, the message history that
//! settles a send whose outcome is unknown, the workflows a handover pauses), implemented by
//! `inbox-kapso`'s client. Kapso's JSON shapes stay behind it; only these facts cross.

use std::time::Duration;

use async_trait::async_trait;

use crate::message::MessageError;
use crate::phone::PhoneE164;
use crate::sending::OutboundContent;
use crate::timestamp::Timestamp;
use crate::workspace::{KapsoCredentials, Secret};

/// Meta's code for a free-form message sent outside the 24-hour customer-service window.
pub const WINDOW_CLOSED_CODE: &str = "131047";

/// A workspace's Kapso number with the key that may use it: what every call needs.
#[derive(Clone, Debug)]
pub struct KapsoAccount {
    /// Kapso's phone number id.
    pub phone_number_id: String,
    /// The workspace's Kapso API key.
    pub api_key: Secret,
}

impl KapsoAccount {
    /// The account of `credentials`, when both its number and its key are configured.
    #[must_use]
    pub fn of(credentials: Option<KapsoCredentials>) -> Option<Self> {
        let credentials = credentials?;
        Some(Self {
            phone_number_id: credentials.phone_number_id?,
            api_key: credentials.api_key?,
        })
    }
}

/// A message Kapso accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMessage {
    /// The WhatsApp message id (`messages[0].id`); webhooks refer to the message by it.
    pub wamid: String,
}

/// A send [`KapsoGateway::find_sent`] looks for in Kapso's message history.
#[derive(Clone, Copy, Debug)]
pub struct SoughtSend<'a> {
    /// The `biz_opaque_callback_data` it was sent with (our message id).
    pub callback_data: &'a str,
    /// Its recipient.
    pub to: &'a PhoneE164,
    /// What it says, for histories that do not keep callback data.
    pub content: SoughtContent<'a>,
    /// A moment before it was first sent.
    pub since: Timestamp,
}

/// The content of a [`SoughtSend`].
#[derive(Clone, Copy, Debug)]
pub enum SoughtContent<'a> {
    /// A text message with this body.
    Text(&'a str),
    /// A template message, as the API client gave it.
    Template(&'a serde_json::Value),
}

impl<'a> SoughtContent<'a> {
    /// What to look for of `content`.
    #[must_use]
    pub fn of(content: &'a OutboundContent) -> Self {
        match content {
            OutboundContent::Text { text, .. } => Self::Text(text.as_str()),
            OutboundContent::Template { template, .. } => Self::Template(template),
        }
    }
}

/// What a handover did to the business's Kapso workflows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkflowUpdate {
    /// How many executions changed status.
    pub executions_updated: u32,
    /// A sentence for people, e.g. `Paused 2 workflow executions`.
    pub message: String,
}

/// Why a Kapso call failed, in the three classes a caller branches on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KapsoError {
    /// Kapso or WhatsApp refused the request for good: retrying the same request fails the same
    /// way. A 4xx answer, a Meta code the reference says not to retry, an answer we cannot read,
    /// or a request we refused to send (`status` is `None` then).
    #[error("Kapso refused the request: {title}: {message}")]
    Permanent {
        /// The HTTP status Kapso answered with; `None` when the request was never sent.
        status: Option<u16>,
        /// Meta's error code (`"131026"`), or our own code for a request refused before
        /// sending (`"invalid_template"`); `None` for Kapso's plain `{"error"}` bodies.
        code: Option<String>,
        /// A short title, e.g. `Message undeliverable`.
        title: String,
        /// The explanation, e.g. Meta's `error_data.details`.
        message: String,
    },
    /// The outcome may differ later: a timeout, a connection failure, a 5xx, a 429 rate limit,
    /// Kapso's 409 "another message in flight for this conversation", or a Meta code the
    /// reference marks retryable (130429, 131056, 131000, 131016, ...).
    ///
    /// For a send, a timeout means the outcome is **unknown**: Kapso may have accepted the message.
    #[error("Kapso is unavailable for now: {reason}")]
    Transient {
        /// What happened, for logs and for the stored message error.
        reason: String,
        /// How long Kapso asked us to wait (`Retry-After`, in seconds), when it said.
        retry_after: Option<Duration>,
        /// Whether the request may have reached Kapso: it failed after the connection was made
        /// (a timeout waiting for the answer, an answer cut short), so Kapso may have acted on
        /// it. A send with an unknown outcome must not simply be repeated.
        outcome_unknown: bool,
    },
    /// Meta's 131047: the 24-hour customer-service window is closed, so only a template may be
    /// sent. Never retried.
    #[error("the 24-hour reply window is closed: {message}")]
    WindowClosed {
        /// Meta's explanation.
        message: String,
    },
}

impl KapsoError {
    /// Whether the same request may succeed later.
    #[must_use]
    pub const fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    /// Whether the request may have reached Kapso although no answer came back (see
    /// [`KapsoError::Transient::outcome_unknown`]).
    #[must_use]
    pub const fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            Self::Transient {
                outcome_unknown: true,
                ..
            }
        )
    }

    /// How long Kapso asked us to wait before trying again, when it said.
    #[must_use]
    pub const fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Transient { retry_after, .. } => *retry_after,
            Self::Permanent { .. } | Self::WindowClosed { .. } => None,
        }
    }

    /// The error as a stored message's `error` (`{code, title, message}`).
    #[must_use]
    pub fn as_message_error(&self) -> MessageError {
        match self {
            Self::Permanent {
                code,
                title,
                message,
                ..
            } => MessageError {
                code: code.clone(),
                title: Some(title.clone()),
                message: Some(message.clone()),
            },
            Self::Transient { reason, .. } => MessageError {
                code: None,
                title: Some("Kapso temporarily unavailable".to_owned()),
                message: Some(reason.clone()),
            },
            Self::WindowClosed { message } => MessageError {
                code: Some(WINDOW_CLOSED_CODE.to_owned()),
                title: Some("Re-engagement message".to_owned()),
                message: Some(message.clone()),
            },
        }
    }

    /// The workspace has no Kapso number or key: a send cannot go out until an owner sets them.
    #[must_use]
    pub fn not_configured() -> Self {
        Self::Permanent {
            status: None,
            code: Some("kapso_not_configured".to_owned()),
            title: "Kapso is not configured".to_owned(),
            message: "The workspace has no Kapso phone number id or API key.".to_owned(),
        }
    }
}

/// Kapso's API, as the use cases call it.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait KapsoGateway: Send + Sync {
    /// Sends `content` to `to`, with `callback_data` (our message id) as
    /// `biz_opaque_callback_data`, so its echo and statuses find our message.
    ///
    /// # Errors
    /// [`KapsoError`]: a transient one with `outcome_unknown` may have been sent.
    async fn send(
        &self,
        account: &KapsoAccount,
        to: &PhoneE164,
        content: &OutboundContent,
        callback_data: &str,
    ) -> Result<SentMessage, KapsoError>;

    /// Looks a send whose outcome is unknown up in Kapso's message history: by its callback
    /// data, or (only for a history that keeps none) by exactly one record of the same recipient
    /// and content.
    ///
    /// # Errors
    /// [`KapsoError`]: the outcome stays unknown, and nothing may be sent yet.
    async fn find_sent<'a>(
        &self,
        account: &KapsoAccount,
        sought: &SoughtSend<'a>,
    ) -> Result<Option<SentMessage>, KapsoError>;

    /// Pauses (`handoff`) or resumes (`waiting`) the workflow executions of the customer's
    /// active Kapso conversation.
    ///
    /// # Errors
    /// [`KapsoError`] when Kapso cannot be asked or refuses.
    async fn set_workflows_paused(
        &self,
        account: &KapsoAccount,
        customer: &PhoneE164,
        paused: bool,
    ) -> Result<WorkflowUpdate, KapsoError>;

    /// Whether the project of `api_key` has the phone number `phone_number_id`.
    ///
    /// # Errors
    /// [`KapsoError`] when Kapso cannot be asked or refuses the key.
    async fn project_has_phone_number(
        &self,
        api_key: &Secret,
        phone_number_id: &str,
    ) -> Result<bool, KapsoError>;
}
