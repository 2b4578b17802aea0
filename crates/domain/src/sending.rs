//! Sending: what an agent asks to send, the durable send job that carries it to Kapso, the
//! retry schedule, and the per-user rate limit.
//!
//! A send is written as a `pending` message together with its [`SendJob`] in one transaction,
//! before Kapso is called, so that neither a crash nor a slow Kapso can lose it: whoever holds
//! the job's lease (the request that created it, then the background worker) makes the attempt,
//! and the job is deleted when the message settles (`sent` or `failed`).

mod attempt;
mod start;

pub use attempt::{Attempt, AttemptOutcome, SendSettings, attempt, run_due_sends};
pub use start::{SendCommand, SendRefused, SendStart, StartedSend, start_send};

use std::time::Duration;

use crate::ids::{ConversationId, MessageId, UserId, WorkspaceId};
use crate::message::{Message, MessageKind, MessageText};
use crate::phone::PhoneE164;
use crate::timestamp::Timestamp;

/// How many messages one user may send per rolling minute, across every instance.
pub const DEFAULT_SENDS_PER_MINUTE: u32 = 30;

/// The rolling window the rate limit counts over.
pub const RATE_WINDOW_MILLIS: i64 = 60_000;

/// What to send.
#[derive(Clone, Debug, PartialEq)]
pub enum OutboundContent {
    /// Free-form text, allowed only inside the 24-hour window.
    Text {
        /// The body.
        text: MessageText,
        /// The wamid of the message it quotes (`context.message_id`).
        reply_to_wamid: Option<String>,
    },
    /// A template (`{name, language, components}`, passed through to Kapso as given), allowed
    /// outside the window.
    Template {
        /// The template's name, for the stored message's text.
        name: String,
        /// The template object as the client gave it.
        template: serde_json::Value,
    },
}

impl OutboundContent {
    /// The stored message's kind.
    #[must_use]
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::Text { .. } => MessageKind::text(),
            Self::Template { .. } => MessageKind::new("template"),
        }
    }

    /// The stored message's text: the body, or `Template: <name>` as ingest writes template
    /// echoes.
    #[must_use]
    pub fn text(&self) -> String {
        match self {
            Self::Text { text, .. } => text.as_str().to_owned(),
            Self::Template { name, .. } => format!("Template: {name}"),
        }
    }

    /// The quoted wamid, if any.
    #[must_use]
    pub fn reply_to_wamid(&self) -> Option<&str> {
        match self {
            Self::Text { reply_to_wamid, .. } => reply_to_wamid.as_deref(),
            Self::Template { .. } => None,
        }
    }

    /// Whether WhatsApp allows it only inside the 24-hour window.
    #[must_use]
    pub const fn needs_open_window(&self) -> bool {
        matches!(self, Self::Text { .. })
    }
}

/// What identifies a template message by content: its name, its language code and every
/// parameter of every component, in order. Two template messages with the same signature say
/// the same thing to the customer; a template a Kapso workflow sent (another name, or the same
/// one filled in differently) has another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateSignature {
    /// The template's name.
    pub name: String,
    /// The language code (`id`, `en_US`).
    pub language: String,
    /// Per component: its `type`, `sub_type` and `index` (as text, since Meta's examples write
    /// `"0"` where others write `0`) and its `parameters` as given.
    pub components: Vec<(String, String, String, serde_json::Value)>,
}

impl TemplateSignature {
    /// The signature of a template object in Meta's send shape (`{name, language,
    /// components?}`, `language` as a code or `{"code": ...}`). `None` without a name or
    /// language.
    #[must_use]
    pub fn from_meta(template: &serde_json::Value) -> Option<Self> {
        use serde_json::Value;
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let name = template.get("name").and_then(Value::as_str)?.trim();
        let language = match template.get("language")? {
            Value::String(code) => code.trim(),
            other => other.get("code").and_then(Value::as_str)?.trim(),
        };
        if name.is_empty() || language.is_empty() {
            return None;
        }
        let components = template
            .get("components")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    text(c.get("type")).to_ascii_lowercase(),
                    text(c.get("sub_type")).to_ascii_lowercase(),
                    text(c.get("index")),
                    c.get("parameters")
                        .cloned()
                        .unwrap_or(Value::Array(Vec::new())),
                )
            })
            // A component without parameters says nothing the template itself does not.
            .filter(|(_, _, _, parameters)| parameters.as_array().is_none_or(|p| !p.is_empty()))
            .collect();
        Some(Self {
            name: name.to_owned(),
            language: language.to_owned(),
            components,
        })
    }
}

/// How an outbound message Kapso reports (the echo of a send, a status) may be one of ours
/// that has no wamid yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnSendMatch {
    /// The `biz_opaque_callback_data` it carries: every send since callback data was introduced
    /// carries its message id there, and then only that id decides.
    pub callback_data: Option<String>,
    /// For echoes without callback data (sends made before), the content to compare with:
    /// the kind, the text of a text message, and the signature of a template.
    pub content: Option<EchoContent>,
}

/// What an echo says, for matching a pending send by content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoContent {
    /// The message kind.
    pub kind: MessageKind,
    /// The body of a text message.
    pub text: Option<String>,
    /// The template, for a template message.
    pub template: Option<TemplateSignature>,
}

impl OwnSendMatch {
    /// The message id the callback data names, when it is one of ours.
    #[must_use]
    pub fn message_id(&self) -> Option<MessageId> {
        self.callback_data
            .as_deref()
            .and_then(|c| c.trim().parse::<uuid::Uuid>().ok())
            .map(MessageId::from_uuid)
    }

    /// Whether a pending send that carried no callback data (made before callback data was
    /// introduced) says what this echo says: same kind; the same text for text; for a template
    /// the same name, language and parameters. Anything else, and any echo that carries
    /// callback data, never matches by content.
    #[must_use]
    pub fn same_content(&self, pending: &OutboundContent) -> bool {
        if self.callback_data.is_some() {
            return false;
        }
        let Some(echo) = &self.content else {
            return false;
        };
        if echo.kind != pending.kind() {
            return false;
        }
        match pending {
            OutboundContent::Text { text, .. } => echo.text.as_deref() == Some(text.as_str()),
            OutboundContent::Template { template, .. } => {
                let ours = TemplateSignature::from_meta(template);
                ours.is_some() && echo.template == ours
            }
        }
    }
}

/// A client's `Idempotency-Key` with the hash of the request it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyClaim {
    /// The key, 1..=255 characters, scoped to the sending user.
    pub key: String,
    /// A hash of the normalised request body: the same key with another body is refused.
    pub request_hash: String,
}

/// A send to write: the pending message, its job and (optionally) its idempotency claim.
#[derive(Clone, Debug, PartialEq)]
pub struct NewSend {
    /// The new message's id.
    pub message_id: MessageId,
    /// Workspace.
    pub workspace_id: WorkspaceId,
    /// Conversation (visibility already checked by the caller).
    pub conversation_id: ConversationId,
    /// The sending user.
    pub sender_user_id: UserId,
    /// The customer's number.
    pub to: PhoneE164,
    /// What to send.
    pub content: OutboundContent,
    /// The client's idempotency key, when it sent one.
    pub idempotency: Option<IdempotencyClaim>,
    /// At most this many sends per user in the last minute, this one included.
    pub sends_per_minute: u32,
    /// How long the creator owns the first attempt before the worker may take the job over.
    pub lease: Duration,
    /// Now.
    pub now: Timestamp,
}

/// A stored idempotency record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotentSend {
    /// The hash of the request that first used the key.
    pub request_hash: String,
    /// The message that request created, once committed.
    pub message_id: Option<MessageId>,
    /// The answer given to it, once there is one: HTTP status and JSON body.
    pub answer: Option<(u16, String)>,
}

/// What [`crate::ports::SendRepository::create_send`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum CreatedSend {
    /// The pending message and its job were written; the caller holds the job's lease.
    Created(Box<Message>),
    /// The idempotency key was already used; nothing was written.
    Existing(IdempotentSend),
    /// The user is over the limit; nothing was written. Retry after this many seconds.
    RateLimited {
        /// Seconds until a send would be allowed (at least 1).
        retry_after_secs: u64,
    },
}

/// A due job, leased to the worker that claimed it.
#[derive(Clone, Debug, PartialEq)]
pub struct SendJob {
    /// The message it sends.
    pub message_id: MessageId,
    /// Workspace.
    pub workspace_id: WorkspaceId,
    /// The customer's number.
    pub to: PhoneE164,
    /// What to send.
    pub content: OutboundContent,
    /// Attempts made so far, this one included.
    pub attempts: u32,
}

/// The retry schedule of transient failures: exponential from `base`, capped at `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The delay after the first failed attempt.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
    /// Attempts after which a message is failed for good.
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            max: Duration::from_secs(300),
            max_attempts: 12,
        }
    }
}

impl Backoff {
    /// The delay before the attempt after `attempts` failed ones: `base * 2^(attempts-1)`,
    /// capped at `max`, and never shorter than what Kapso asked for (`Retry-After`).
    #[must_use]
    pub fn delay(&self, attempts: u32, retry_after: Option<Duration>) -> Duration {
        let exponent = attempts.saturating_sub(1).min(20);
        let delay = self.base.saturating_mul(1_u32 << exponent).min(self.max);
        retry_after.map_or(delay, |asked| delay.max(asked))
    }

    /// Whether a job that has made `attempts` attempts should give up instead of retrying.
    #[must_use]
    pub const fn exhausted(&self, attempts: u32) -> bool {
        attempts >= self.max_attempts
    }
}

/// Seconds until the oldest of the sends counted in the window leaves it (at least 1).
#[must_use]
pub fn retry_after_secs(oldest_in_window: Timestamp, now: Timestamp) -> u64 {
    let wait = oldest_in_window.as_millis() + RATE_WINDOW_MILLIS - now.as_millis();
    u64::try_from(wait.max(1)).map_or(1, |ms| ms.div_ceil(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_honours_retry_after() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            max_attempts: 5,
        };
        assert_eq!(b.delay(1, None), Duration::from_millis(100));
        assert_eq!(b.delay(2, None), Duration::from_millis(200));
        assert_eq!(b.delay(4, None), Duration::from_millis(800));
        assert_eq!(b.delay(5, None), Duration::from_millis(1000));
        assert_eq!(b.delay(60, None), Duration::from_millis(1000));
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            b.delay(5, Some(Duration::from_millis(10))),
            Duration::from_millis(1000)
        );
        assert!(!b.exhausted(4));
        assert!(b.exhausted(5));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let now = Timestamp::from_millis(100_000);
        assert_eq!(retry_after_secs(Timestamp::from_millis(40_001), now), 1);
        assert_eq!(retry_after_secs(Timestamp::from_millis(99_000), now), 59);
        assert_eq!(retry_after_secs(Timestamp::from_millis(40_000), now), 1);
        assert_eq!(retry_after_secs(Timestamp::from_millis(10_000), now), 1);
    }

    #[test]
    fn content_kinds_and_texts() {
        let text = OutboundContent::Text {
            text: MessageText::parse("hi").expect("valid"),
            reply_to_wamid: Some("wamid.X".into()),
        };
        assert_eq!(text.kind().as_str(), "text");
        assert_eq!(text.text(), "hi");
        assert_eq!(text.reply_to_wamid(), Some("wamid.X"));
        assert!(text.needs_open_window());
        let template = OutboundContent::Template {
            name: "order_update".into(),
            template: serde_json::json!({"name": "order_update", "language": "id"}),
        };
        assert_eq!(template.kind().as_str(), "template");
        assert_eq!(template.text(), "Template: order_update");
        assert!(!template.needs_open_window());
    }

    fn template(value: serde_json::Value) -> OutboundContent {
        OutboundContent::Template {
            name: value["name"].as_str().unwrap_or_default().to_owned(),
            template: value,
        }
    }

    fn echo(
        kind: &str,
        text: Option<&str>,
        template: Option<serde_json::Value>,
        callback: Option<&str>,
    ) -> OwnSendMatch {
        OwnSendMatch {
            callback_data: callback.map(str::to_owned),
            content: Some(EchoContent {
                kind: MessageKind::new(kind),
                text: text.map(str::to_owned),
                template: template.as_ref().and_then(TemplateSignature::from_meta),
            }),
        }
    }

    #[test]
    fn callback_data_names_our_message_by_id_only() {
        let id = MessageId::new();
        assert_eq!(
            echo("text", None, None, Some(&id.to_string())).message_id(),
            Some(id)
        );
        assert_eq!(
            echo("text", None, None, Some(&format!(" {id} "))).message_id(),
            Some(id)
        );
        assert_eq!(
            echo("text", None, None, Some("crm-msg-7f3a")).message_id(),
            None
        );
        assert_eq!(echo("text", None, None, None).message_id(), None);
        // An echo with callback data never matches by content, even when the content is ours.
        let ours = OutboundContent::Text {
            text: MessageText::parse("Halo").expect("valid"),
            reply_to_wamid: None,
        };
        assert!(echo("text", Some("Halo"), None, None).same_content(&ours));
        assert!(!echo("text", Some("Halo"), None, Some("crm-msg-7f3a")).same_content(&ours));
        assert!(!echo("text", Some("Halo!"), None, None).same_content(&ours));
        assert!(!echo("image", Some("Halo"), None, None).same_content(&ours));
    }

    #[test]
    fn templates_match_by_name_language_and_every_parameter() {
        let body = |order: &str| {
            serde_json::json!([{"type": "BODY", "parameters": [{"type": "text", "text": order}]},
                               {"type": "button", "sub_type": "url", "index": 0,
                                "parameters": [{"type": "text", "text": "track"}]}])
        };
        let ours = template(
            serde_json::json!({"name": "order_update", "language": "id", "components": body("ORD-1")}),
        );
        let as_echoed = serde_json::json!({"name": "order_update", "language": {"code": "id"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "ORD-1"}]},
                           {"type": "button", "sub_type": "url", "index": "0",
                            "parameters": [{"type": "text", "text": "track"}]}]});
        assert!(echo("template", None, Some(as_echoed), None).same_content(&ours));
        for other in [
            serde_json::json!({"name": "welcome", "language": "id", "components": body("ORD-1")}),
            serde_json::json!({"name": "order_update", "language": "en", "components": body("ORD-1")}),
            serde_json::json!({"name": "order_update", "language": "id", "components": body("ORD-2")}),
            serde_json::json!({"name": "order_update", "language": "id"}),
        ] {
            assert!(
                !echo("template", None, Some(other.clone()), None).same_content(&ours),
                "{other}"
            );
        }
        // An echo whose template we cannot read matches nothing.
        assert!(!echo("template", None, None, None).same_content(&ours));
        // Components without parameters add nothing.
        let bare = template(serde_json::json!({"name": "hello_world", "language": "en_US"}));
        let echoed = serde_json::json!({"name": "hello_world", "language": {"code": "en_US"},
            "components": [{"type": "body", "parameters": []}]});
        assert!(echo("template", None, Some(echoed), None).same_content(&bare));
        assert_eq!(
            TemplateSignature::from_meta(&serde_json::json!({"name": "x"})),
            None
        );
        assert_eq!(
            TemplateSignature::from_meta(&serde_json::json!({"language": "id"})),
            None
        );
    }
}
