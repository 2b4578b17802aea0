//! `GET /api/me`: who the token belongs to and where they are a member.

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::routes::views::{UserView, WorkspaceRef};

/// The caller and their memberships.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// The caller.
    pub user: UserView,
    /// Every workspace they belong to, by slug.
    pub memberships: Vec<MembershipView>,
}

/// One membership.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipView {
    /// The workspace.
    pub workspace: WorkspaceRef,
    /// `owner`, `admin` or `member`.
    #[schema(example = "owner")]
    pub role: String,
}

/// The caller's identity and memberships.
#[utoipa::path(
    get,
    path = "/api/me",
    tag = "identity",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = MeResponse),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
    )
)]
pub async fn me(caller: Caller) -> Result<Json<MeResponse>, ApiError> {
    Ok(Json(MeResponse {
        user: UserView::from(caller.user()),
        memberships: caller
            .0
            .memberships
            .iter()
            .map(|m| MembershipView {
                workspace: WorkspaceRef {
                    id: m.workspace_id.as_uuid(),
                    slug: m.workspace_slug.as_str().to_owned(),
                    name: m.workspace_name.clone(),
                },
                role: m.role.as_str().to_owned(),
            })
            .collect(),
    }))
}
