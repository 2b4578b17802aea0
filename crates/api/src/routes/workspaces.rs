//! `GET`/`PATCH /api/workspaces/{workspace}` and `GET /api/workspaces/{workspace}/members`:
//! a workspace's settings (secrets write-only) and who belongs to it.

use axum::Json;
use axum::extract::State;
use inbox_domain::phone::CountryCode;
use inbox_domain::ports::StoreError;
use inbox_domain::validation::text_len;
use inbox_domain::workspace::{Secret, Workspace, WorkspaceName, WorkspacePatch};
use inbox_kapso::KapsoError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, nullable};
use crate::routes::views::{UserView, at};

/// A workspace's settings; the Kapso API key and webhook secret are only said to be set.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceView {
    /// Id.
    pub id: Uuid,
    /// Slug.
    #[schema(example = "acme")]
    pub slug: String,
    /// Display name.
    pub name: String,
    /// The Kapso phone number id that routes webhooks here.
    pub kapso_phone_number_id: Option<String>,
    /// ISO 3166 alpha-2 country local phone numbers are read in.
    #[schema(example = "ID")]
    pub default_country: String,
    /// Whether the webhook creates contacts for unknown senders.
    pub auto_create_contacts: bool,
    /// Whether a Kapso API key is stored.
    pub has_kapso_api_key: bool,
    /// Whether a workspace webhook secret is stored.
    pub has_webhook_secret: bool,
    /// Creation time.
    pub created_at: String,
}

impl From<&Workspace> for WorkspaceView {
    fn from(w: &Workspace) -> Self {
        Self {
            id: w.id.as_uuid(),
            slug: w.slug.as_str().to_owned(),
            name: w.name.clone(),
            kapso_phone_number_id: w.kapso_phone_number_id.clone(),
            default_country: w.default_country.as_str().to_owned(),
            auto_create_contacts: w.auto_create_contacts,
            has_kapso_api_key: w.has_kapso_api_key,
            has_webhook_secret: w.has_webhook_secret,
            created_at: at(w.created_at),
        }
    }
}

/// Body of `PATCH /api/workspaces/{workspace}`: any of the fields; `null` clears the nullable
/// ones.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspacePatchBody {
    /// Display name, 1..=100 characters.
    pub name: Option<String>,
    /// Kapso phone number id (unique across workspaces), 1..=64 characters; `null` clears.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub kapso_phone_number_id: Option<Option<String>>,
    /// Kapso API key, 1..=512 characters, write-only; `null` clears.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub kapso_api_key: Option<Option<String>>,
    /// Webhook signing secret, 1..=512 characters, write-only; `null` clears.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub webhook_secret: Option<Option<String>>,
    /// ISO 3166 alpha-2 country, e.g. `ID`.
    pub default_country: Option<String>,
    /// Whether the webhook creates contacts for unknown senders.
    pub auto_create_contacts: Option<bool>,
}

impl TryFrom<WorkspacePatchBody> for WorkspacePatch {
    type Error = ApiError;

    fn try_from(body: WorkspacePatchBody) -> Result<Self, ApiError> {
        let checked = |field: &str, value: Option<Option<String>>, max: usize| match &value {
            Some(Some(text)) => text_len(field, text, 1, max).map(|()| value),
            _ => Ok(value),
        };
        let secret = |value: Option<Option<String>>| value.map(|v| v.map(Secret::new));
        Ok(Self {
            name: body.name.as_deref().map(WorkspaceName::parse).transpose()?,
            kapso_phone_number_id: checked(
                "kapso_phone_number_id",
                body.kapso_phone_number_id,
                64,
            )?,
            kapso_api_key: secret(checked("kapso_api_key", body.kapso_api_key, 512)?),
            webhook_secret: secret(checked("webhook_secret", body.webhook_secret, 512)?),
            default_country: body
                .default_country
                .as_deref()
                .map(CountryCode::parse)
                .transpose()
                .map_err(|_| {
                    ApiError::invalid(
                        "default_country",
                        "must be an ISO 3166 alpha-2 country code such as ID",
                    )
                })?,
            auto_create_contacts: body.auto_create_contacts,
        })
    }
}

/// Body of `GET /api/workspaces/{workspace}/members`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembersResponse {
    /// The members, oldest first.
    pub members: Vec<MemberView>,
}

/// One member.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    /// The user.
    pub user: UserView,
    /// `owner`, `admin` or `member`.
    #[schema(example = "admin")]
    pub role: String,
    /// When they joined.
    pub created_at: String,
}

/// A workspace's settings. Members of any role.
#[utoipa::path(
    get,
    path = "/api/workspaces/{workspace}",
    tag = "workspaces",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug or id")),
    responses(
        (status = 200, description = "The workspace", body = WorkspaceView),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "Not a member of the workspace (or no such workspace)", body = ErrorBody),
    )
)]
pub async fn get_workspace(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(workspace): ApiPath<String>,
) -> Result<Json<WorkspaceView>, ApiError> {
    let (workspace, _) = caller.workspace(&state, &workspace).await?;
    Ok(Json(WorkspaceView::from(&workspace)))
}

/// Changes a workspace's settings. Owners only; secrets are stored encrypted and never returned.
#[utoipa::path(
    patch,
    path = "/api/workspaces/{workspace}",
    tag = "workspaces",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug or id")),
    request_body = WorkspacePatchBody,
    responses(
        (status = 200, description = "The updated workspace", body = WorkspaceView),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "Not a member, or not the owner; or setting `kapso_phone_number_id`, which only the operator may do unless the server runs with `INBOX_OWNERS_MAY_SET_NUMBER=true`", body = ErrorBody),
        (status = 409, description = "Another workspace uses this `kapso_phone_number_id`", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 422, description = "Invalid field, unknown field or malformed JSON; or a `kapso_phone_number_id` that Kapso does not list for the workspace's API key", body = ErrorBody),
        (status = 502, description = "Kapso refused the check of the number", body = ErrorBody),
        (status = 503, description = "Kapso or the database cannot be reached to check the number", body = ErrorBody),
    )
)]
pub async fn patch_workspace(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(workspace): ApiPath<String>,
    ApiJson(body): ApiJson<WorkspacePatchBody>,
) -> Result<Json<WorkspaceView>, ApiError> {
    let (workspace, actor) = caller.workspace(&state, &workspace).await?;
    if !actor.may_manage_workspace() {
        return Err(ApiError::Forbidden(
            "Only the workspace owner may change its settings.".to_owned(),
        ));
    }
    let patch = WorkspacePatch::try_from(body)?;
    if let Some(Some(number)) = &patch.kapso_phone_number_id {
        if workspace.kapso_phone_number_id.as_deref() != Some(number.as_str()) {
            check_number_claim(&state, &workspace, &patch, number).await?;
        }
    }
    match state.repo.update_workspace(workspace.id, patch).await {
        Ok(updated) => Ok(Json(WorkspaceView::from(&updated))),
        Err(StoreError::Duplicate(_)) => Err(ApiError::Conflict {
            message: "Another workspace already uses this `kapso_phone_number_id`.".to_owned(),
            existing_id: None,
        }),
        Err(e) => Err(e.into()),
    }
}

/// Whether an owner may route deliveries for `number` to their workspace. The number decides
/// which tenant's inbox a webhook delivery lands in, so by default only the operator sets it;
/// with `INBOX_OWNERS_MAY_SET_NUMBER`, an owner may, once Kapso lists the number for the
/// workspace's own API key (the one in this patch, else the stored one).
async fn check_number_claim(
    state: &AppState,
    workspace: &Workspace,
    patch: &WorkspacePatch,
    number: &str,
) -> Result<(), ApiError> {
    if !state.owners_may_set_number {
        return Err(ApiError::Forbidden(
            "Only the operator routes a phone number to a workspace: `inbox-api admin workspace set-kapso --workspace <slug> --phone-number-id <id>`."
                .to_owned(),
        ));
    }
    let api_key = match &patch.kapso_api_key {
        Some(key) => key.clone(),
        None => state
            .repo
            .kapso_credentials(workspace.id)
            .await?
            .and_then(|c| c.api_key),
    };
    let unverified = |message: &str| ApiError::invalid("kapso_phone_number_id", message);
    let Some(api_key) = api_key else {
        return Err(unverified(
            "set `kapso_api_key` first (or in the same request): the number is checked against its Kapso project",
        ));
    };
    match state.kapso.project_has_phone_number(&api_key, number).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(unverified(
            "Kapso does not list this phone number for the workspace's API key",
        )),
        Err(KapsoError::Transient { .. }) => Err(ApiError::Unavailable),
        Err(KapsoError::Permanent {
            status: Some(401 | 403),
            ..
        }) => Err(unverified(
            "Kapso does not accept the workspace's API key, so the number cannot be checked",
        )),
        Err(e) => Err(ApiError::Kapso {
            reason: format!("Kapso could not check the phone number: {e}"),
            message: None,
        }),
    }
}

/// The members of a workspace. Members of any role.
#[utoipa::path(
    get,
    path = "/api/workspaces/{workspace}/members",
    tag = "workspaces",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug or id")),
    responses(
        (status = 200, description = "The members, oldest first", body = MembersResponse),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "Not a member of the workspace (or no such workspace)", body = ErrorBody),
    )
)]
pub async fn members(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(workspace): ApiPath<String>,
) -> Result<Json<MembersResponse>, ApiError> {
    let (workspace, _) = caller.workspace(&state, &workspace).await?;
    let members = state.repo.members(workspace.id).await?;
    Ok(Json(MembersResponse {
        members: members
            .iter()
            .map(|m| MemberView {
                user: UserView::from(&m.user),
                role: m.role.as_str().to_owned(),
                created_at: at(m.created_at),
            })
            .collect(),
    }))
}
