//! Who is calling: bearer-token authentication, and the caller's role in a workspace.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use inbox_domain::WorkspaceId;
use inbox_domain::token::TokenHash;
use inbox_domain::user::{Actor, Principal, User};
use inbox_domain::workspace::Workspace;

use crate::AppState;
use crate::error::ApiError;

/// The authenticated user behind a request's bearer token, with their memberships: one query
/// per request answers both "who is this" and "what may they do in the workspace they name".
#[derive(Clone, Debug)]
pub struct Caller(pub Principal);

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
        let hash = TokenHash::of(token);
        // Spent before the database is asked: a flood costs no query.
        state
            .budgets
            .take(*hash.as_bytes(), state.limits.requests_per_minute)
            .map_err(|retry_after_secs| ApiError::TooManyRequests {
                message: format!(
                    "More than {} requests a minute with this token; retry in {retry_after_secs} s.",
                    state.limits.requests_per_minute
                ),
                retry_after_secs,
            })?;
        let principal = state
            .repo
            .authenticate(&hash)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        state.token_use.record(principal.token_id);
        Ok(Self(principal))
    }
}

impl Caller {
    /// The user.
    #[must_use]
    pub fn user(&self) -> &User {
        &self.0.user
    }

    /// The caller's role in the workspace named by `reference` (slug or id), with no query.
    ///
    /// # Errors
    /// `Forbidden` when the workspace does not exist or the caller is not a member: the two are
    /// answered alike so that workspace slugs cannot be probed.
    pub fn in_workspace(&self, reference: &str) -> Result<Actor, ApiError> {
        self.0
            .membership(reference)
            .map(|m| self.0.actor(m))
            .ok_or_else(not_a_member)
    }

    /// The workspace named by `reference` (slug or id) and the caller's role in it, for routes
    /// that need the workspace's settings.
    ///
    /// # Errors
    /// `Forbidden` as [`Caller::in_workspace`]; a workspace deleted since authentication is
    /// answered alike.
    pub async fn workspace(
        &self,
        state: &AppState,
        reference: &str,
    ) -> Result<(Workspace, Actor), ApiError> {
        let actor = self.in_workspace(reference)?;
        let workspace = state
            .repo
            .workspace_by_id(actor.workspace_id)
            .await?
            .ok_or_else(not_a_member)?;
        Ok((workspace, actor))
    }

    /// The caller's role in a workspace found through one of its resources.
    ///
    /// # Errors
    /// `Forbidden` when the caller is not a member.
    pub fn actor(&self, workspace_id: WorkspaceId) -> Result<Actor, ApiError> {
        self.0
            .membership_of(workspace_id)
            .map(|m| self.0.actor(m))
            .ok_or_else(not_a_member)
    }

    /// The caller as an actor in each workspace they belong to, for routes on one resource:
    /// the resource is looked for in these workspaces only, so an id from a workspace the
    /// caller is not in is simply not found (a 404, never a hint that it exists).
    #[must_use]
    pub fn actors(&self) -> Vec<Actor> {
        self.0.memberships.iter().map(|m| self.0.actor(m)).collect()
    }
}

fn not_a_member() -> ApiError {
    ApiError::Forbidden("You are not a member of this workspace.".to_owned())
}

/// When each token was last used, kept in memory and written in one batch about once a minute,
/// so authenticating a read request never waits on the database's writer.
#[derive(Debug, Default)]
pub struct TokenUse {
    pending:
        std::sync::Mutex<std::collections::HashMap<inbox_domain::TokenId, inbox_domain::Timestamp>>,
}

impl TokenUse {
    /// Notes a use now.
    pub fn record(&self, token: inbox_domain::TokenId) {
        self.lock().insert(token, inbox_domain::Timestamp::now());
    }

    /// Writes every use noted since the last flush. On failure the uses are kept for the
    /// next flush (a later use of the same token replaces an older one).
    pub async fn flush(&self, repo: &dyn inbox_domain::ports::Repository) {
        let uses: Vec<_> = self.lock().drain().collect();
        if uses.is_empty() {
            return;
        }
        if let Err(e) = repo.record_token_use(&uses).await {
            tracing::warn!(error = %e, tokens = uses.len(), "cannot record token use; retrying later");
            let mut pending = self.lock();
            for (token, at) in uses {
                pending.entry(token).or_insert(at);
            }
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<inbox_domain::TokenId, inbox_domain::Timestamp>,
    > {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Flushes token use every `every` until `stopped` turns true, then once more.
pub fn spawn_token_use_writer(
    state: crate::AppState,
    every: std::time::Duration,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        while !*stopped.borrow() {
            tokio::select! {
                _ = tick.tick() => state.token_use.flush(&*state.repo).await,
                changed = stopped.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        state.token_use.flush(&*state.repo).await;
    })
}
