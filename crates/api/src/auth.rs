//! Who is calling: bearer-token authentication, and the caller's role in a workspace.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use inbox_domain::WorkspaceId;
use inbox_domain::token::TokenHash;
use inbox_domain::user::{Actor, User};
use inbox_domain::workspace::Workspace;

use crate::AppState;
use crate::error::ApiError;

/// The authenticated user behind a request's bearer token.
#[derive(Clone, Debug)]
pub struct Caller(pub User);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let user = state
            .repo
            .authenticate(&TokenHash::of(token))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Self(user))
    }
}

impl Caller {
    /// The workspace named by `reference` (slug or id) and the caller's role in it.
    ///
    /// # Errors
    /// `Forbidden` when the workspace does not exist or the caller is not a member: the two are
    /// answered alike so that workspace slugs cannot be probed.
    pub async fn in_workspace(
        &self,
        state: &AppState,
        reference: &str,
    ) -> Result<(Workspace, Actor), ApiError> {
        let workspace = match reference.parse::<WorkspaceId>() {
            Ok(id) => state.repo.workspace_by_id(id).await?,
            Err(_) => state.repo.workspace_by_slug(reference).await?,
        }
        .ok_or_else(not_a_member)?;
        let actor = self.actor(state, workspace.id).await?;
        Ok((workspace, actor))
    }

    /// The caller's role in a workspace found through one of its resources.
    ///
    /// # Errors
    /// `Forbidden` when the caller is not a member.
    pub async fn actor(
        &self,
        state: &AppState,
        workspace_id: WorkspaceId,
    ) -> Result<Actor, ApiError> {
        let membership = state
            .repo
            .membership(workspace_id, self.0.id)
            .await?
            .ok_or_else(not_a_member)?;
        Ok(Actor {
            user_id: self.0.id,
            workspace_id,
            role: membership.role,
        })
    }

    /// The caller as an actor in each workspace they belong to, for routes on one resource:
    /// the resource is looked for in these workspaces only, so an id from a workspace the
    /// caller is not in is simply not found (a 404, never a hint that it exists).
    ///
    /// # Errors
    /// Only storage failures.
    pub async fn actors(&self, state: &AppState) -> Result<Vec<Actor>, ApiError> {
        let memberships = state.repo.memberships_of(self.0.id).await?;
        Ok(memberships
            .into_iter()
            .map(|m| Actor {
                user_id: self.0.id,
                workspace_id: m.workspace_id,
                role: m.role,
            })
            .collect())
    }
}

fn not_a_member() -> ApiError {
    ApiError::Forbidden("You are not a member of this workspace.".to_owned())
}
