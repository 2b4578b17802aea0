//! Contacts: the list, create (phone normalised with the workspace's country), read, patch,
//! delete (owners), and the by-phone lookup bots use. Members see only contacts assigned to
//! them; anything else is a 404.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use inbox_domain::contact::{
    Contact, ContactFilter, ContactPatch, ContactQuery, LeadScore, LeadStatus, Metadata,
    NewContact, Tags,
};
use inbox_domain::conversation::{AssigneeFilter, LeadStatusFilter, SearchText, TagFilter};
use inbox_domain::phone::{CountryCode, PhoneE164};
use inbox_domain::ports::{ActionError, StoreError};
use inbox_domain::user::Actor;
use inbox_domain::validation::text_len;
use inbox_domain::{ContactId, UserId};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, nullable};
use crate::routes::paging;
use crate::routes::views::{ContactView, at};

/// Query of `GET /api/contacts`. Every filter is optional; they combine with AND.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Workspace slug or id.
    pub workspace: String,
    /// Case-insensitive substring of the display name or phone (3..=100 characters). A search
    /// page examines at most 2,000 rows, so it may hold fewer than `limit` items (even none)
    /// and still carry a `next_cursor`: follow it to search further back.
    pub q: Option<String>,
    /// Comma-separated lead statuses, any of: `new`, `cold`, `hot`, `client`.
    pub lead_status: Option<String>,
    /// Comma-separated tags, any of, case-insensitive (at most 10).
    pub tags: Option<String>,
    /// `me`, `unassigned` or a user id: the contact's assignee.
    pub assigned_to: Option<String>,
    /// Page size, 1..=200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl TryFrom<ListQuery> for ContactQuery {
    type Error = ApiError;

    fn try_from(q: ListQuery) -> Result<Self, ApiError> {
        Ok(Self {
            filter: ContactFilter {
                q: q.q.as_deref().map(SearchText::parse).transpose()?,
                lead_status: q
                    .lead_status
                    .as_deref()
                    .map(LeadStatusFilter::parse)
                    .transpose()?,
                tags: q.tags.as_deref().map(TagFilter::parse).transpose()?,
                assigned_to: q
                    .assigned_to
                    .as_deref()
                    .map(str::parse::<AssigneeFilter>)
                    .transpose()?,
            },
            limit: paging::limit(q.limit.as_deref())?,
            after: paging::decode(q.cursor.as_deref())?,
        })
    }
}

/// A page of contacts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactList {
    /// Newest activity first (never-active last), ties by id descending.
    pub contacts: Vec<ContactView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The contacts the caller may see, filtered and paged with a cursor.
#[utoipa::path(
    get,
    path = "/api/contacts",
    tag = "contacts",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of contacts", body = ContactList),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "Not a member of the workspace", body = ErrorBody),
        (status = 422, description = "Invalid or unknown parameter, bad cursor, `limit` out of 1..=200", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ContactList>, ApiError> {
    let actor = caller.in_workspace(&query.workspace)?;
    let query = ContactQuery::try_from(query)?;
    let page = state.repo.contacts(actor, query).await?;
    Ok(Json(ContactList {
        contacts: page.items.iter().map(ContactView::from).collect(),
        next_cursor: page.next.as_ref().map(paging::encode),
    }))
}

/// Body of `POST /api/contacts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContactBody {
    /// Workspace slug or id.
    pub workspace: String,
    /// International (`+62 812...`) or local to the workspace's default country (`0812...`).
    #[schema(example = "0812-3456-7890")]
    pub phone: String,
    /// Name, 1..=200 characters.
    pub name: Option<String>,
    /// Email, at most 254 characters.
    pub email: Option<String>,
    /// Tags, 1..=32 characters each, at most 50, unique case-insensitively.
    pub tags: Option<Vec<String>>,
    /// `new` (default), `cold`, `hot` or `client`.
    pub lead_status: Option<String>,
    /// 0..=100 (default 0).
    pub lead_score: Option<i64>,
    /// A member's user id; members may name only themselves.
    pub assigned_to: Option<Uuid>,
    /// A JSON object of at most 16 KiB.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

impl NewContactBody {
    fn into_new(self, country: CountryCode) -> Result<NewContact, ApiError> {
        Ok(NewContact {
            phone: Some(phone(&self.phone, country)?),
            name: self.name.map(name).transpose()?,
            email: self.email.map(email).transpose()?,
            tags: self
                .tags
                .map(|t| Tags::parse(&t))
                .transpose()?
                .unwrap_or_default(),
            lead_status: self
                .lead_status
                .as_deref()
                .map(str::parse::<LeadStatus>)
                .transpose()?
                .unwrap_or_default(),
            lead_score: self
                .lead_score
                .map(LeadScore::new)
                .transpose()?
                .unwrap_or_default(),
            assigned_to: self.assigned_to.map(UserId::from_uuid),
            metadata: self
                .metadata
                .map(Metadata::parse)
                .transpose()?
                .unwrap_or_default(),
            ..NewContact::default()
        })
    }
}

fn phone(raw: &str, country: CountryCode) -> Result<PhoneE164, ApiError> {
    PhoneE164::parse(raw, country).map_err(|_| {
        ApiError::invalid(
            "phone",
            format!("is not a valid phone number (international with +, or local to {country})"),
        )
    })
}

fn name(raw: String) -> Result<String, ApiError> {
    let trimmed = raw.trim();
    text_len("name", trimmed, 1, 200)?;
    Ok(trimmed.to_owned())
}

fn email(raw: String) -> Result<String, ApiError> {
    let trimmed = raw.trim();
    text_len("email", trimmed, 3, 254)?;
    match trimmed.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => Ok(trimmed.to_owned()),
        _ => Err(ApiError::invalid("email", "must be an email address")),
    }
}

/// Why a contact write failed, for the client.
fn write_error(e: ActionError) -> ApiError {
    match e {
        ActionError::Forbidden => ApiError::Forbidden(
            "Members may assign a contact only to themselves or to nobody.".to_owned(),
        ),
        ActionError::AssigneeNotMember => {
            ApiError::invalid("assigned_to", "is not a member of this workspace")
        }
        ActionError::Store(StoreError::NotFound) => ApiError::NotFound("Contact"),
        ActionError::Store(e) => e.into(),
    }
}

/// Creates a contact (and its conversation, closed until the first message).
#[utoipa::path(
    post,
    path = "/api/contacts",
    tag = "contacts",
    security(("bearer" = [])),
    request_body = NewContactBody,
    responses(
        (status = 201, description = "The new contact", body = ContactView),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "Not a member, or a member assigning someone else", body = ErrorBody),
        (status = 409, description = "The workspace has a contact with this phone; `existing_id` names it", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 422, description = "Invalid phone or field, unknown field, malformed JSON", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewContactBody>,
) -> Result<(StatusCode, Json<ContactView>), ApiError> {
    let (workspace, actor) = caller.workspace(&state, &body.workspace).await?;
    let new = body.into_new(workspace.default_country)?;
    let phone = new.phone.clone();
    match state.repo.create_contact(actor, new).await {
        Ok(contact) => Ok((StatusCode::CREATED, Json(ContactView::from(&contact)))),
        Err(ActionError::Store(StoreError::Duplicate(field))) => {
            Err(conflict(&state, actor, phone.as_ref(), &field).await)
        }
        Err(e) => Err(write_error(e)),
    }
}

/// The 409 for a phone the workspace already has, naming the existing contact when the caller
/// may see it (a member learns that the number is taken, not by whom).
async fn conflict(
    state: &AppState,
    actor: Actor,
    phone: Option<&PhoneE164>,
    field: &str,
) -> ApiError {
    let existing = match phone {
        Some(phone) => state
            .repo
            .contact_id_by_phone(actor.workspace_id, phone)
            .await
            .ok()
            .flatten(),
        None => None,
    };
    let existing = match existing {
        Some(id) => match state.repo.contact(actor, id).await {
            Ok(Some(_)) => Some(id),
            _ => None,
        },
        None => None,
    };
    match existing {
        Some(id) => ApiError::Conflict {
            message: format!("A contact with this phone already exists: {id}."),
            existing_id: Some(id.to_string()),
        },
        None => ApiError::Conflict {
            message: format!("A contact with this `{field}` already exists."),
            existing_id: None,
        },
    }
}

/// The caller as an actor in the workspace of a contact they may see.
///
/// # Errors
/// `NotFound` when no workspace of the caller holds a contact with this id that they see.
async fn locate(
    state: &AppState,
    caller: &Caller,
    id: ContactId,
) -> Result<(Actor, Contact), ApiError> {
    for actor in caller.actors() {
        if let Some(contact) = state.repo.contact(actor, id).await? {
            return Ok((actor, contact));
        }
    }
    Err(ApiError::NotFound("Contact"))
}

/// One contact.
#[utoipa::path(
    get,
    path = "/api/contacts/{id}",
    tag = "contacts",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Contact id")),
    responses(
        (status = 200, description = "The contact", body = ContactView),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such contact the caller may see", body = ErrorBody),
        (status = 422, description = "`id` is not a UUID", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<ContactView>, ApiError> {
    let (_, contact) = locate(&state, &caller, ContactId::from_uuid(id)).await?;
    Ok(Json(ContactView::from(&contact)))
}

/// Body of `PATCH /api/contacts/{id}`: any of the fields; `null` clears `name`, `email` and
/// `assigned_to`. The phone is not editable.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPatchBody {
    /// Name, 1..=200 characters; `null` clears.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// Email, at most 254 characters; `null` clears.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// Tags (replace the set).
    pub tags: Option<Vec<String>>,
    /// `new`, `cold`, `hot` or `client`.
    pub lead_status: Option<String>,
    /// 0..=100.
    pub lead_score: Option<i64>,
    /// A member's user id, or `null` to unassign; members may name only themselves.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Uuid>)]
    pub assigned_to: Option<Option<Uuid>>,
    /// A JSON object of at most 16 KiB (replaces the object).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// Not editable: sending it is a 422.
    #[schema(value_type = Option<String>)]
    pub phone: Option<IgnoredAny>,
}

impl TryFrom<ContactPatchBody> for ContactPatch {
    type Error = ApiError;

    fn try_from(body: ContactPatchBody) -> Result<Self, ApiError> {
        if body.phone.is_some() {
            return Err(ApiError::invalid(
                "phone",
                "cannot be changed; create a new contact for another number",
            ));
        }
        Ok(Self {
            name: body.name.map(|n| n.map(name).transpose()).transpose()?,
            email: body.email.map(|e| e.map(email).transpose()).transpose()?,
            tags: body.tags.map(|t| Tags::parse(&t)).transpose()?,
            lead_status: body
                .lead_status
                .as_deref()
                .map(str::parse::<LeadStatus>)
                .transpose()?,
            lead_score: body.lead_score.map(LeadScore::new).transpose()?,
            assigned_to: body.assigned_to.map(|a| a.map(UserId::from_uuid)),
            metadata: body.metadata.map(Metadata::parse).transpose()?,
        })
    }
}

/// Changes a contact.
#[utoipa::path(
    patch,
    path = "/api/contacts/{id}",
    tag = "contacts",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Contact id")),
    request_body = ContactPatchBody,
    responses(
        (status = 200, description = "The updated contact", body = ContactView),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "A member assigning someone else", body = ErrorBody),
        (status = 404, description = "No such contact the caller may see", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 422, description = "Invalid field, `phone` sent, unknown field, malformed JSON", body = ErrorBody),
    )
)]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ContactPatchBody>,
) -> Result<Json<ContactView>, ApiError> {
    let id = ContactId::from_uuid(id);
    // Who may touch the contact is settled before the body's contents are read: an outsider
    // learns nothing from validation, and costs no more than the lookup.
    let (actor, _) = locate(&state, &caller, id).await?;
    let patch = ContactPatch::try_from(body)?;
    let contact = state
        .repo
        .update_contact(actor, id, patch)
        .await
        .map_err(write_error)?;
    Ok(Json(ContactView::from(&contact)))
}

/// Deletes a contact with its conversation and messages. Owners only.
#[utoipa::path(
    delete,
    path = "/api/contacts/{id}",
    tag = "contacts",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Contact id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "Visible to the caller, who is not the owner", body = ErrorBody),
        (status = 404, description = "No such contact the caller may see", body = ErrorBody),
        (status = 422, description = "`id` is not a UUID", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let id = ContactId::from_uuid(id);
    let (actor, _) = locate(&state, &caller, id).await?;
    match state.repo.delete_contact(actor, id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(ActionError::Forbidden) => Err(ApiError::Forbidden(
            "Only the workspace owner may delete contacts.".to_owned(),
        )),
        Err(e) => Err(write_error(e)),
    }
}

/// Query of `GET /api/contacts/by-phone`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ByPhoneQuery {
    /// Workspace slug or id.
    pub workspace: String,
    /// International or local to the workspace's default country.
    pub phone: String,
}

/// One of the recent messages of a by-phone lookup.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecentMessage {
    /// `inbound` or `outbound`.
    pub direction: String,
    /// Body, caption or placeholder.
    pub text: Option<String>,
    /// WhatsApp timestamp.
    pub sent_at: String,
}

/// Answer of `GET /api/contacts/by-phone`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ByPhoneResponse {
    /// A contact the caller may see has this phone.
    Found {
        /// Always `true`.
        found: bool,
        /// The contact.
        #[schema(value_type = ContactView)]
        contact: Box<ContactView>,
        /// Its conversation.
        conversation_id: Option<Uuid>,
        /// WhatsApp time of the newest message either way, else the last activity.
        last_interaction: Option<String>,
        /// The 10 newest messages, newest first.
        recent_messages: Vec<RecentMessage>,
    },
    /// No contact the caller may see has this phone.
    NotFound {
        /// Always `false`.
        found: bool,
    },
}

/// What a bot needs about a phone number.
#[utoipa::path(
    get,
    path = "/api/contacts/by-phone",
    tag = "contacts",
    security(("bearer" = [])),
    params(ByPhoneQuery),
    responses(
        (status = 200, description = "`{\"found\": false}`, or the contact with its conversation and recent messages", body = ByPhoneResponse),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "Not a member of the workspace", body = ErrorBody),
        (status = 422, description = "Invalid phone, missing or unknown parameter", body = ErrorBody),
    )
)]
pub async fn by_phone(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ByPhoneQuery>,
) -> Result<Json<ByPhoneResponse>, ApiError> {
    let (workspace, actor) = caller.workspace(&state, &query.workspace).await?;
    let phone = phone(&query.phone, workspace.default_country)?;
    let lookup = state.repo.contact_by_phone(actor, &phone).await?;
    Ok(Json(match lookup {
        None => ByPhoneResponse::NotFound { found: false },
        Some(lookup) => ByPhoneResponse::Found {
            found: true,
            contact: Box::new(ContactView::from(&lookup.contact)),
            conversation_id: lookup.conversation_id.map(|id| id.as_uuid()),
            last_interaction: lookup.last_interaction.map(at),
            recent_messages: lookup
                .recent_messages
                .iter()
                .map(|m| RecentMessage {
                    direction: m.direction.as_str().to_owned(),
                    text: m.text.clone(),
                    sent_at: at(m.sent_at),
                })
                .collect(),
        },
    }))
}
