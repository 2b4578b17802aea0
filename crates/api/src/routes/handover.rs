//! `POST /api/conversations/{id}/handover` and `GET` on the same path: the AI/human switch.

use axum::Json;
use axum::extract::State;
use inbox_domain::ConversationId;
use inbox_domain::ports::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::handover::{KapsoOutcome, handover};
use crate::routes::views::ConversationView;

/// The switch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoverRequest {
    /// `true`: a human takes over and the bot stays silent; `false`: back to the bot.
    pub ai_paused: bool,
}

/// The conversation after the switch, and what Kapso did.
#[derive(Debug, Serialize, ToSchema)]
pub struct HandoverResponse {
    /// The conversation.
    pub conversation: ConversationView,
    /// Kapso's side: `ok: false` when its workflows could not be changed (the local flag
    /// stands anyway).
    pub kapso: KapsoOutcome,
}

/// The flag alone.
#[derive(Debug, Serialize, ToSchema)]
pub struct HandoverState {
    /// Whether a human has the conversation.
    pub ai_paused: bool,
}

/// Hands a conversation to a human (`ai_paused: true`, pausing the business's Kapso workflow
/// executions for the customer) or back to the bot (`false`, resuming them).
#[utoipa::path(
    post,
    path = "/api/conversations/{id}/handover",
    tag = "conversations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id")),
    request_body = HandoverRequest,
    responses(
        (status = 200, description = "Switched; `kapso` says what happened on Kapso's side", body = HandoverResponse),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such conversation for the caller", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
    )
)]
pub async fn set_handover(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(request): ApiJson<HandoverRequest>,
) -> Result<Json<HandoverResponse>, ApiError> {
    let id = ConversationId::from_uuid(id);
    let actor = crate::routes::messages::visible_actor(&state, &caller, id).await?;
    let (conversation, kapso) = handover(&state, actor, id, request.ai_paused)
        .await
        .map_err(not_found)?;
    Ok(Json(HandoverResponse {
        conversation: ConversationView::from(&conversation),
        kapso,
    }))
}

/// Whether a human has the conversation.
#[utoipa::path(
    get,
    path = "/api/conversations/{id}/handover",
    tag = "conversations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The flag", body = HandoverState),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such conversation for the caller", body = ErrorBody),
    )
)]
pub async fn get_handover(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<HandoverState>, ApiError> {
    let id = ConversationId::from_uuid(id);
    let actor = crate::routes::messages::visible_actor(&state, &caller, id).await?;
    let conversation = state
        .repo
        .conversation(actor, id)
        .await?
        .ok_or(ApiError::NotFound("Conversation"))?;
    Ok(Json(HandoverState {
        ai_paused: conversation.ai_paused,
    }))
}

fn not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound("Conversation"),
        other => other.into(),
    }
}
