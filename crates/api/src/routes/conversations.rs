//! The inbox: `GET /api/conversations` (filtered, keyset-paged), its counters, one
//! conversation, its thread, and the actions agents take on it (assign, handover, read,
//! status). Members see and work only what is assigned to them; anything else is a 404.

use axum::Json;
use axum::extract::State;
use inbox_domain::conversation::{
    AssigneeFilter, Conversation, ConversationCounts, ConversationFilter, ConversationQuery,
    ConversationStatus, LeadStatusFilter, ReplyWindow, SearchText, TagFilter, parse_status_filter,
};
use inbox_domain::handover::{self, KapsoHandover};
use inbox_domain::message::{ThreadPosition, ThreadQuery};
use inbox_domain::ports::{ActionError, StoreError};
use inbox_domain::user::Actor;
use inbox_domain::{ConversationId, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, nullable};
use crate::routes::paging;
use crate::routes::views::{ConversationView, MessageView};

/// Query of `GET /api/conversations`. Every filter is optional; they combine with AND.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Workspace slug or id.
    pub workspace: String,
    /// `open`, `closed` or `all` (the default).
    pub status: Option<String>,
    /// `me`, `unassigned` or a user id: the conversation's assignee.
    pub assigned_to: Option<String>,
    /// Comma-separated lead statuses of the contact, any of: `new`, `cold`, `hot`, `client`.
    pub lead_status: Option<String>,
    /// Comma-separated tags of the contact, any of, case-insensitive (at most 10).
    pub tags: Option<String>,
    /// `true`: only conversations with unread messages; `false`: only those without.
    pub unread: Option<bool>,
    /// `open` or `closed`: the 24-hour reply window now.
    pub window: Option<String>,
    /// The handover flag.
    pub ai_paused: Option<bool>,
    /// Case-insensitive substring of the contact's display name or phone (3..=100 characters). A search
    /// page examines at most 2,000 rows, so it may hold fewer than `limit` items (even none)
    /// and still carry a `next_cursor`: follow it to search further back.
    pub q: Option<String>,
    /// Page size, 1..=200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ListQuery {
    fn into_query(self, now: Timestamp) -> Result<ConversationQuery, ApiError> {
        let filter = ConversationFilter {
            status: self
                .status
                .as_deref()
                .map(parse_status_filter)
                .transpose()?
                .flatten(),
            assigned_to: self
                .assigned_to
                .as_deref()
                .map(str::parse::<AssigneeFilter>)
                .transpose()?,
            lead_status: self
                .lead_status
                .as_deref()
                .map(LeadStatusFilter::parse)
                .transpose()?,
            tags: self.tags.as_deref().map(TagFilter::parse).transpose()?,
            unread: self.unread,
            window: self
                .window
                .as_deref()
                .map(str::parse::<ReplyWindow>)
                .transpose()?,
            ai_paused: self.ai_paused,
            q: self.q.as_deref().map(SearchText::parse).transpose()?,
        };
        Ok(ConversationQuery {
            filter,
            now,
            limit: paging::limit(self.limit.as_deref())?,
            after: paging::decode(self.cursor.as_deref())?,
        })
    }
}

/// A page of conversations.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationList {
    /// Newest message first (never-messaged last), ties by id descending.
    pub conversations: Vec<ConversationView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The inbox, filtered and paged with a cursor (stable while messages arrive).
#[utoipa::path(
    get,
    path = "/api/conversations",
    tag = "conversations",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of the conversations the caller may see", body = ConversationList),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "Not a member of the workspace", body = ErrorBody),
        (status = 422, description = "Invalid or unknown parameter, bad cursor, `limit` out of 1..=200", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ConversationList>, ApiError> {
    let actor = caller.in_workspace(&query.workspace)?;
    let query = query.into_query(Timestamp::now())?;
    let page = state.repo.conversations(actor, query).await?;
    Ok(Json(ConversationList {
        conversations: page.items.iter().map(ConversationView::from).collect(),
        next_cursor: page.next.as_ref().map(paging::encode),
    }))
}

/// Query of `GET /api/conversations/counts`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CountsQuery {
    /// Workspace slug or id.
    pub workspace: String,
}

/// The inbox counters, within the caller's visibility.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountsView {
    /// Every visible conversation.
    pub all: i64,
    /// Open ones.
    pub open: i64,
    /// With unread messages.
    pub unread: i64,
    /// Assigned to nobody.
    pub unassigned: i64,
    /// Assigned to the caller.
    pub mine: i64,
    /// Whose 24-hour reply window is open now.
    pub window_open: i64,
    /// By the contact's lead status.
    pub by_lead_status: LeadStatusCountsView,
}

/// Conversations by the contact's lead status.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeadStatusCountsView {
    /// `new`.
    pub new: i64,
    /// `cold`.
    pub cold: i64,
    /// `hot`.
    pub hot: i64,
    /// `client`.
    pub client: i64,
}

impl From<ConversationCounts> for CountsView {
    fn from(c: ConversationCounts) -> Self {
        Self {
            all: c.all,
            open: c.open,
            unread: c.unread,
            unassigned: c.unassigned,
            mine: c.mine,
            window_open: c.window_open,
            by_lead_status: LeadStatusCountsView {
                new: c.by_lead_status.new,
                cold: c.by_lead_status.cold,
                hot: c.by_lead_status.hot,
                client: c.by_lead_status.client,
            },
        }
    }
}

/// The inbox counters.
#[utoipa::path(
    get,
    path = "/api/conversations/counts",
    tag = "conversations",
    security(("bearer" = [])),
    params(CountsQuery),
    responses(
        (status = 200, description = "Counters over the conversations the caller may see", body = CountsView),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "Not a member of the workspace", body = ErrorBody),
        (status = 422, description = "Missing or unknown parameter", body = ErrorBody),
    )
)]
pub async fn counts(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<CountsQuery>,
) -> Result<Json<CountsView>, ApiError> {
    let actor = caller.in_workspace(&query.workspace)?;
    let counts = state
        .repo
        .conversation_counts(actor, Timestamp::now())
        .await?;
    Ok(Json(CountsView::from(counts)))
}

/// The caller as an actor in the workspace of a conversation they may see.
///
/// # Errors
/// `NotFound` when no workspace of the caller holds a conversation with this id that they see.
pub(crate) async fn locate(
    state: &AppState,
    caller: &Caller,
    id: ConversationId,
) -> Result<(Actor, Conversation), ApiError> {
    let actor = conversation_actor(state, caller, id).await?;
    let conversation = state
        .repo
        .conversation(actor, id)
        .await?
        .ok_or(ApiError::NotFound("Conversation"))?;
    Ok((actor, conversation))
}

/// The caller as an actor in the workspace that holds a conversation, for routes whose port
/// call checks the conversation's existence and visibility itself (and answers `NotFound`).
///
/// A conversation in a workspace the caller is not in is answered like one that does not
/// exist: ids must not reveal what other tenants hold. Most callers belong to one workspace,
/// and every conversation read is scoped to the actor's workspace, so only callers of several
/// workspaces need to look up which one holds the conversation first.
///
/// # Errors
/// `NotFound` when the conversation is in none of the caller's workspaces.
async fn conversation_actor(
    state: &AppState,
    caller: &Caller,
    id: ConversationId,
) -> Result<Actor, ApiError> {
    let not_found = || ApiError::NotFound("Conversation");
    if let [only] = caller.0.memberships.as_slice() {
        return Ok(caller.0.actor(only));
    }
    let workspace_id = state
        .repo
        .conversation_workspace(id)
        .await?
        .ok_or_else(not_found)?;
    caller.actor(workspace_id).map_err(|_| not_found())
}

/// Storage's "not found" on a conversation action, named for the client.
fn action_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound("Conversation"),
        other => other.into(),
    }
}

/// One conversation.
#[utoipa::path(
    get,
    path = "/api/conversations/{id}",
    tag = "conversations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation", body = ConversationView),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such conversation the caller may see", body = ErrorBody),
        (status = 422, description = "`id` is not a UUID", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<ConversationView>, ApiError> {
    let (_, conversation) = locate(&state, &caller, ConversationId::from_uuid(id)).await?;
    Ok(Json(ConversationView::from(&conversation)))
}

/// Query of `GET /api/conversations/{id}/messages`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ThreadParams {
    /// Page size, 1..=200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// The newest messages with a `seq` below this one (scrolling back).
    #[param(minimum = 0)]
    pub before: Option<i64>,
    /// The oldest messages with a `seq` above this one (catching up); not with `before`.
    #[param(minimum = 0)]
    pub after: Option<i64>,
}

impl TryFrom<ThreadParams> for ThreadQuery {
    type Error = ApiError;

    fn try_from(p: ThreadParams) -> Result<Self, ApiError> {
        let position = match (p.before, p.after) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid("after", "cannot be combined with before"));
            }
            (Some(seq), None) if seq < 0 => {
                return Err(ApiError::invalid("before", "must be a seq, 0 or more"));
            }
            (None, Some(seq)) if seq < 0 => {
                return Err(ApiError::invalid("after", "must be a seq, 0 or more"));
            }
            (Some(seq), None) => ThreadPosition::Before(seq),
            (None, Some(seq)) => ThreadPosition::After(seq),
            (None, None) => ThreadPosition::Newest,
        };
        Ok(Self {
            position,
            limit: paging::limit(p.limit.as_deref())?,
        })
    }
}

/// A page of a thread.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    /// Ascending `seq`.
    pub messages: Vec<MessageView>,
    /// Whether more messages lie beyond the page in the direction read: older ones without
    /// `after`, newer ones with it.
    pub has_more: bool,
}

/// A conversation's messages: the newest `limit` (before `before`), or those after `after`.
#[utoipa::path(
    get,
    path = "/api/conversations/{id}/messages",
    tag = "conversations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id"), ThreadParams),
    responses(
        (status = 200, description = "Messages in ascending `seq` order", body = MessageList),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such conversation the caller may see", body = ErrorBody),
        (status = 422, description = "Invalid or unknown parameter, or `id` not a UUID", body = ErrorBody),
    )
)]
pub async fn messages(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<ThreadParams>,
) -> Result<Json<MessageList>, ApiError> {
    let id = ConversationId::from_uuid(id);
    let query = ThreadQuery::try_from(params)?;
    let actor = conversation_actor(&state, &caller, id).await?;
    let page = state
        .repo
        .messages(actor, id, query)
        .await?
        .ok_or(ApiError::NotFound("Conversation"))?;
    Ok(Json(MessageList {
        messages: page.messages.iter().map(MessageView::from).collect(),
        has_more: page.has_more,
    }))
}

/// Body of `POST /api/conversations/{id}/assign`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// A member's user id, or `null` to unassign. Required: members may name only themselves.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Uuid>, required = true)]
    pub assigned_to: Option<Option<Uuid>>,
}

/// Assigns the conversation to a member, or to nobody.
#[utoipa::path(
    post,
    path = "/api/conversations/{id}/assign",
    tag = "conversations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id")),
    request_body = AssignBody,
    responses(
        (status = 200, description = "The updated conversation", body = ConversationView),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "A member assigning someone other than themselves", body = ErrorBody),
        (status = 404, description = "No such conversation the caller may see", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 422, description = "The assignee is not a member, or an invalid body", body = ErrorBody),
    )
)]
pub async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<AssignBody>,
) -> Result<Json<ConversationView>, ApiError> {
    let id = ConversationId::from_uuid(id);
    let assignee = body
        .assigned_to
        .ok_or_else(|| ApiError::invalid("assigned_to", "missing field `assigned_to`"))?
        .map(UserId::from_uuid);
    let actor = conversation_actor(&state, &caller, id).await?;
    match state.repo.assign_conversation(actor, id, assignee).await {
        Ok(conversation) => Ok(Json(ConversationView::from(&conversation))),
        Err(ActionError::Forbidden) => Err(ApiError::Forbidden(
            "Members may assign a conversation only to themselves or to nobody.".to_owned(),
        )),
        Err(ActionError::AssigneeNotMember) => Err(ApiError::invalid(
            "assigned_to",
            "is not a member of this workspace",
        )),
        Err(ActionError::Store(e)) => Err(action_error(e)),
    }
}

/// Body of `POST /api/conversations/{id}/handover`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoverBody {
    /// `true`: a human takes over and the bot stays silent; `false`: back to the bot.
    pub ai_paused: bool,
}

/// The handover flag.
#[derive(Debug, Serialize, ToSchema)]
pub struct HandoverState {
    /// Whether a human has the conversation.
    pub ai_paused: bool,
}

/// What happened on Kapso's side of a handover.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct KapsoOutcome {
    /// Whether Kapso's workflows now match the flag (also true when there was nothing to change).
    pub ok: bool,
    /// How many workflow executions changed status.
    pub executions_updated: u32,
    /// A sentence for people: what was done, or why it could not be.
    pub message: String,
}

impl From<KapsoHandover> for KapsoOutcome {
    fn from(outcome: KapsoHandover) -> Self {
        Self {
            ok: outcome.ok,
            executions_updated: outcome.executions_updated,
            message: outcome.message,
        }
    }
}

/// Answer of `POST /api/conversations/{id}/handover`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HandoverResponse {
    /// The updated conversation.
    pub conversation: ConversationView,
    /// Kapso's side; a Kapso failure does not undo the local change.
    pub kapso: KapsoOutcome,
}

/// Sets the handover flag, then tells Kapso's workflows.
#[utoipa::path(
    post,
    path = "/api/conversations/{id}/handover",
    tag = "conversations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id")),
    request_body = HandoverBody,
    responses(
        (status = 200, description = "The updated conversation and what Kapso did", body = HandoverResponse),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such conversation the caller may see", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
    )
)]
pub async fn handover(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<HandoverBody>,
) -> Result<Json<HandoverResponse>, ApiError> {
    let id = ConversationId::from_uuid(id);
    let actor = conversation_actor(&state, &caller, id).await?;
    let (conversation, kapso) =
        handover::handover(&*state.repo, &*state.kapso, actor, id, body.ai_paused)
            .await
            .map_err(action_error)?;
    Ok(Json(HandoverResponse {
        conversation: ConversationView::from(&conversation),
        kapso: kapso.into(),
    }))
}

/// The handover flag alone, for bots deciding whether to answer.
#[utoipa::path(
    get,
    path = "/api/conversations/{id}/handover",
    tag = "conversations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The handover flag", body = HandoverState),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such conversation the caller may see", body = ErrorBody),
        (status = 422, description = "`id` is not a UUID", body = ErrorBody),
    )
)]
pub async fn handover_state(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<HandoverState>, ApiError> {
    let (_, conversation) = locate(&state, &caller, ConversationId::from_uuid(id)).await?;
    Ok(Json(HandoverState {
        ai_paused: conversation.ai_paused,
    }))
}

/// Marks the conversation read: `unread_count` becomes 0.
#[utoipa::path(
    post,
    path = "/api/conversations/{id}/read",
    tag = "conversations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The updated conversation", body = ConversationView),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such conversation the caller may see", body = ErrorBody),
        (status = 422, description = "`id` is not a UUID", body = ErrorBody),
    )
)]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<ConversationView>, ApiError> {
    let id = ConversationId::from_uuid(id);
    let actor = conversation_actor(&state, &caller, id).await?;
    let conversation = state
        .repo
        .mark_read(actor, id)
        .await
        .map_err(action_error)?;
    Ok(Json(ConversationView::from(&conversation)))
}

/// Body of `POST /api/conversations/{id}/status`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    /// `open` or `closed`.
    #[schema(example = "closed")]
    pub status: String,
}

/// Opens or closes the conversation.
#[utoipa::path(
    post,
    path = "/api/conversations/{id}/status",
    tag = "conversations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id")),
    request_body = StatusBody,
    responses(
        (status = 200, description = "The updated conversation", body = ConversationView),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such conversation the caller may see", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
    )
)]
pub async fn set_status(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<StatusBody>,
) -> Result<Json<ConversationView>, ApiError> {
    let id = ConversationId::from_uuid(id);
    let status: ConversationStatus = body.status.parse()?;
    let actor = conversation_actor(&state, &caller, id).await?;
    let conversation = state
        .repo
        .set_status(actor, id, status)
        .await
        .map_err(action_error)?;
    Ok(Json(ConversationView::from(&conversation)))
}
