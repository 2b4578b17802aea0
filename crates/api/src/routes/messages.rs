//! `POST /api/messages/send`: reply to a customer through Kapso.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use inbox_domain::message::MessageText;
use inbox_domain::ports::KapsoError;
use inbox_domain::sending::{
    Attempt, AttemptOutcome, IdempotencyClaim, IdempotentSend, OutboundContent, SendCommand,
    SendStart, StartedSend, attempt, start_send,
};
use inbox_domain::{ConversationId, MessageId, Timestamp, UserId, WorkspaceId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::routes::conversations::locate;
use crate::routes::views::MessageView;

/// The header that makes a send safe to retry.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// How often a repeat of a send still under way looks for its answer.
/// How often a waiting repeat re-reads its key when no answer was announced in this process
/// (the first request runs in another one).
const ANSWER_RECHECK: Duration = Duration::from_millis(250);

/// A send: free-form `text` (inside the 24-hour window) or a `template` (any time).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The conversation to reply in.
    pub conversation_id: Uuid,
    /// 1..=4096 characters of free-form text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A message of the same conversation to quote (it must have a wamid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_message_id: Option<Uuid>,
    /// A WhatsApp template, passed through to Kapso.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateRequest>,
}

/// A WhatsApp template message.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRequest {
    /// The approved template's name.
    #[schema(example = "order_update")]
    pub name: String,
    /// Its language: a code such as `"id"` or Meta's `{"code": "id"}`.
    #[schema(value_type = Object, example = "id")]
    pub language: serde_json::Value,
    /// Meta's template components (header, body and button parameters), as Meta documents them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub components: Option<Vec<serde_json::Value>>,
}

/// A stored message.
#[derive(Debug, Serialize, ToSchema)]
pub struct SendResponse {
    /// `sent` when Kapso accepted it, `pending` when it is being retried.
    pub message: MessageView,
}

/// Sends a text or template message to the conversation's contact through Kapso.
///
/// The message is stored `pending` (and announced as `message.created`) before Kapso is
/// called, then becomes `sent` with its wamid or `failed` with Kapso's error
/// (`message.updated`). A transient Kapso failure answers 201 with the `pending` message and is
/// retried in the background with backoff; its outcome arrives as one `message.updated`. A send
/// goes out at most once: when Kapso may have accepted it without answering (a timeout), Kapso's
/// history is asked before it is tried again, and a client hanging up does not stop it.
///
/// `Idempotency-Key` (1..=255 characters, per user, kept 24 h): a repeat with the same body
/// returns the original status and body and sends nothing, also while the first is still
/// sending (it waits); another body under the same key is a 409 `idempotency_key_reused`.
#[utoipa::path(
    post,
    path = "/api/messages/send",
    tag = "messages",
    security(("bearer" = [])),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "1..=255 characters; makes retries safe"),
    ),
    request_body = SendRequest,
    responses(
        (status = 201, description = "Stored and sent (`sent`), or stored and being retried (`pending`)", body = SendResponse),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such conversation for the caller", body = ErrorBody),
        (status = 409, description = "`idempotency_key_reused`: the key came with another body; `request_in_progress`: the first request with this key is still being processed and another repeat already waits for it; `conflict`: the first request died mid-send and left no message", body = ErrorBody),
        (status = 422, description = "`validation_failed` (text empty or over 4096 characters, quoted message unusable, no Kapso credentials or contact phone) or `reply_window_closed` (free-form text outside the 24-hour window)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: over 30 sends per minute; see `Retry-After`", body = ErrorBody),
        (status = 502, description = "`kapso_error`: Kapso refused the message for good; `message` is the stored `failed` message", body = ErrorBody),
    )
)]
pub async fn send_message(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(request): ApiJson<SendRequest>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let user_id = caller.user().id;
    let request_hash = request_hash(&request)?;
    let conversation_id = ConversationId::from_uuid(request.conversation_id);
    // A repeat is answered as the first request was, whatever has changed since (the window may
    // have closed, the limit may be reached).
    if let Some(key) = &key {
        if let Some(record) = state.repo.idempotent_send(user_id, key).await? {
            return repeat(&state, conversation_id, user_id, key, &request_hash, record).await;
        }
    }

    let content = content(&request)?;
    let (actor, conversation) = locate(&state, &caller, conversation_id).await?;
    let command = SendCommand {
        actor,
        conversation,
        content,
        reply_to: request.reply_to_message_id.map(MessageId::from_uuid),
        idempotency: key.clone().map(|key| IdempotencyClaim {
            key,
            request_hash: request_hash.clone(),
        }),
        now: Timestamp::now(),
    };
    let started = match start_send(&*state.repo, &state.sending, command).await? {
        SendStart::Started(started) => *started,
        SendStart::Repeat(record) => {
            let key = key.as_deref().unwrap_or_default();
            return repeat(&state, conversation_id, user_id, key, &request_hash, record).await;
        }
    };

    // The first attempt runs in a task of its own: a client that hangs up drops this future,
    // and must not cut the attempt short between Kapso's answer and its record (the worker
    // would then send again once the lease ran out). The answer for the key is stored there too.
    let first = FirstAttempt {
        workspace_id: actor.workspace_id,
        started,
        answer_key: key.map(|key| (user_id, key)),
    };
    let (status, body) = tokio::spawn(first.run(state))
        .await
        .map_err(|e| ApiError::Internal(format!("the first send attempt panicked: {e}")))??;
    Ok(json_response(status, body))
}

/// The request's attempt at a send it created, with what is needed to answer it.
struct FirstAttempt {
    workspace_id: WorkspaceId,
    started: StartedSend,
    answer_key: Option<(UserId, String)>,
}

impl FirstAttempt {
    async fn run(self, state: AppState) -> Result<(StatusCode, String), ApiError> {
        let Self {
            workspace_id,
            started:
                StartedSend {
                    pending,
                    to,
                    content,
                },
            answer_key,
        } = self;
        let first = Attempt {
            workspace_id,
            message_id: pending.id,
            to: &to,
            content: &content,
            attempts: 1,
        };
        let outcome = attempt(&*state.repo, &*state.kapso, &state.sending, first).await?;
        let (status, body) = match outcome {
            AttemptOutcome::Sent(message) => (StatusCode::CREATED, created_body(&message)?),
            AttemptOutcome::Retrying => {
                // Re-read: Kapso's echo may have settled it meanwhile.
                let current = state
                    .repo
                    .message(workspace_id, pending.id)
                    .await?
                    .unwrap_or(pending);
                (StatusCode::CREATED, created_body(&current)?)
            }
            AttemptOutcome::Failed(message, error) => {
                let error = ApiError::Kapso {
                    reason: kapso_reason(&error),
                    message: Some(Box::new(MessageView::from(&message))),
                };
                (error.status_and_code().0, to_json(&error.body())?)
            }
        };
        if let Some((user_id, key)) = &answer_key {
            state
                .repo
                .store_send_answer(*user_id, key, status.as_u16(), &body)
                .await?;
            state.send_answers.answered(*user_id, key);
        }
        Ok((status, body))
    }
}

/// Answers a repeat of a keyed send: the first request's answer, once it has one.
async fn repeat(
    state: &AppState,
    conversation_id: ConversationId,
    user_id: UserId,
    key: &str,
    request_hash: &str,
    mut record: IdempotentSend,
) -> Result<Response, ApiError> {
    // The first request answers within one attempt's lease; after that it has died mid-send.
    let deadline = Instant::now() + state.sending.lease;
    // Woken at once when the first request is in this process; a first request elsewhere is
    // noticed by a slow re-read on the read pool. One waiter per key: the writer is never
    // polled, and a storm of repeats costs one wait.
    let mut wait = None;
    loop {
        if record.request_hash != request_hash {
            return Err(ApiError::IdempotencyKeyReused);
        }
        if let Some((status, body)) = record.answer {
            let status = StatusCode::from_u16(status)
                .map_err(|_| ApiError::Internal(format!("stored answer status {status}")))?;
            return Ok(json_response(status, body));
        }
        if Instant::now() >= deadline {
            // Its job carries the message on; answer with the message as it stands, and keep
            // that as the key's answer so every later repeat agrees.
            let workspace = state.repo.conversation_workspace(conversation_id).await?;
            let message = match (workspace, record.message_id) {
                (Some(workspace_id), Some(id)) => state.repo.message(workspace_id, id).await?,
                _ => None,
            };
            let Some(message) = message else {
                return Err(ApiError::Conflict {
                    message: "A request with this Idempotency-Key is still being processed; retry shortly.".to_owned(),
                    existing_id: None,
                });
            };
            let body = created_body(&message)?;
            state
                .repo
                .store_send_answer(user_id, key, StatusCode::CREATED.as_u16(), &body)
                .await?;
            return Ok(json_response(StatusCode::CREATED, body));
        }
        if wait.is_none() {
            wait = Some(
                state
                    .send_answers
                    .wait(user_id, key)
                    .ok_or(ApiError::RequestInProgress)?,
            );
        }
        if let Some(wait) = &wait {
            let _ = tokio::time::timeout(ANSWER_RECHECK, wait.answered.notified()).await;
        }
        record = state
            .repo
            .idempotent_send(user_id, key)
            .await?
            .ok_or_else(|| ApiError::Internal("idempotency record vanished".to_owned()))?;
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|key| (1..=255).contains(&key.chars().count()) && !key.trim().is_empty())
        .ok_or_else(|| {
            ApiError::invalid(IDEMPOTENCY_KEY, "must be 1 to 255 visible ASCII characters")
        })?;
    Ok(Some(key.to_owned()))
}

/// SHA-256 of the request as parsed and re-serialised: key order and whitespace do not make two
/// requests different.
fn request_hash(request: &SendRequest) -> Result<String, ApiError> {
    let canonical = serde_json::to_value(request)
        .and_then(|value| serde_json::to_vec(&value))
        .map_err(|e| ApiError::Internal(format!("serialising a send request: {e}")))?;
    Ok(hex::encode(Sha256::digest(canonical)))
}

fn content(request: &SendRequest) -> Result<OutboundContent, ApiError> {
    match (&request.text, &request.template) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "template",
            "send either `text` or a `template`, not both",
        )),
        (None, None) => Err(ApiError::invalid(
            "text",
            "must be 1 to 4096 characters (or send a `template`)",
        )),
        (Some(text), None) => Ok(OutboundContent::Text {
            text: MessageText::parse(text)?,
            reply_to_wamid: None,
        }),
        (None, Some(template)) => {
            if request.reply_to_message_id.is_some() {
                return Err(ApiError::invalid(
                    "reply_to_message_id",
                    "only a text message can quote another message",
                ));
            }
            if template.name.trim().is_empty() {
                return Err(ApiError::invalid("template.name", "must not be empty"));
            }
            let language_ok = match &template.language {
                serde_json::Value::String(code) => !code.trim().is_empty(),
                serde_json::Value::Object(fields) => fields
                    .get("code")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|code| !code.trim().is_empty()),
                _ => false,
            };
            if !language_ok {
                return Err(ApiError::invalid(
                    "template.language",
                    "must be a language code such as \"id\" or {\"code\": \"id\"}",
                ));
            }
            let template_json = serde_json::to_value(template)
                .map_err(|e| ApiError::Internal(format!("serialising a template: {e}")))?;
            Ok(OutboundContent::Template {
                name: template.name.clone(),
                template: template_json,
            })
        }
    }
}

fn kapso_reason(error: &KapsoError) -> String {
    match error {
        KapsoError::WindowClosed { .. } => {
            "WhatsApp refused the message because the 24-hour reply window is closed (131047); send a template instead.".to_owned()
        }
        other => {
            let error = other.as_message_error();
            let code = error.code.map(|c| format!(" ({c})")).unwrap_or_default();
            format!(
                "Kapso refused the message{code}: {}.",
                error
                    .message
                    .or(error.title)
                    .unwrap_or_default()
                    .trim_end_matches('.')
            )
        }
    }
}

fn created_body(message: &inbox_domain::message::Message) -> Result<String, ApiError> {
    to_json(&SendResponse {
        message: MessageView::from(message),
    })
}

fn to_json(value: &impl Serialize) -> Result<String, ApiError> {
    serde_json::to_string(value)
        .map_err(|e| ApiError::Internal(format!("serialising an answer: {e}")))
}

/// A JSON answer from an already serialised body, so a repeat gets the very same bytes.
fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, Body::from(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
