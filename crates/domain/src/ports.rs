//! Storage ports: what the use cases need from a database, implemented by `inbox-store`.
//!
//! Every method is scoped: anything that reads or changes tenant data takes the workspace it
//! belongs to, so an adapter cannot forget the tenant filter.

use async_trait::async_trait;

use crate::ids::{TokenId, UserId, WorkspaceId};
use crate::token::{ApiToken, TokenHash};
use crate::user::{Member, Membership, MembershipSummary, NewUser, Role, User};
use crate::workspace::{KapsoCredentials, NewWorkspace, Workspace, WorkspacePatch};

/// Why a storage call failed. Adapters translate driver errors into these; no driver text or SQL
/// reaches callers except inside `Internal`, which is logged and never shown to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The row to change does not exist (in that workspace).
    #[error("not found")]
    NotFound,
    /// A uniqueness rule refused the write; names the rule's field, e.g. `slug` or `phone`.
    #[error("{0} is already taken")]
    Duplicate(String),
    /// A reference points nowhere (a user id that is not a user, say); names the field.
    #[error("{0} does not exist")]
    MissingReference(String),
    /// The database cannot be reached or is shutting down; the caller may retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or corrupt data.
    #[error("storage failure: {0}")]
    Internal(String),
}

/// Workspaces and their Kapso settings.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait WorkspaceRepository: Send + Sync {
    /// Creates a workspace.
    ///
    /// # Errors
    /// `Duplicate("slug")` when the slug is taken.
    async fn create_workspace(&self, new: NewWorkspace) -> Result<Workspace, StoreError>;

    /// A workspace by id, `None` if there is none.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn workspace_by_id(&self, id: WorkspaceId) -> Result<Option<Workspace>, StoreError>;

    /// A workspace by slug, `None` if there is none.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn workspace_by_slug(&self, slug: &str) -> Result<Option<Workspace>, StoreError>;

    /// Applies a settings change; secrets in the patch are encrypted before they are written.
    ///
    /// # Errors
    /// `NotFound` for an unknown workspace; `Duplicate("kapso_phone_number_id")` when another
    /// workspace already uses that phone number id.
    async fn update_workspace(
        &self,
        id: WorkspaceId,
        patch: WorkspacePatch,
    ) -> Result<Workspace, StoreError>;

    /// The decrypted Kapso credentials of the workspace that owns `phone_number_id`.
    ///
    /// # Errors
    /// `Internal` when a stored secret cannot be decrypted (wrong `INBOX_SECRET_KEY`).
    async fn kapso_credentials_by_phone_number_id(
        &self,
        phone_number_id: &str,
    ) -> Result<Option<KapsoCredentials>, StoreError>;

    /// The decrypted Kapso credentials of a workspace.
    ///
    /// # Errors
    /// `Internal` when a stored secret cannot be decrypted (wrong `INBOX_SECRET_KEY`).
    async fn kapso_credentials(
        &self,
        id: WorkspaceId,
    ) -> Result<Option<KapsoCredentials>, StoreError>;
}

/// Users, memberships and API tokens.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait IdentityRepository: Send + Sync {
    /// Creates a user.
    ///
    /// # Errors
    /// `Duplicate("email")` when the email is taken.
    async fn create_user(&self, new: NewUser) -> Result<User, StoreError>;

    /// A user by id.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// Makes a user a member of a workspace.
    ///
    /// # Errors
    /// `Duplicate("membership")` when they already are; `MissingReference("workspace")` or
    /// `MissingReference("user")` for unknown ids.
    async fn add_member(
        &self,
        workspace_id: WorkspaceId,
        user_id: UserId,
        role: Role,
    ) -> Result<Membership, StoreError>;

    /// A user's membership of a workspace, `None` if they are not a member.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn membership(
        &self,
        workspace_id: WorkspaceId,
        user_id: UserId,
    ) -> Result<Option<Membership>, StoreError>;

    /// Every membership of a user, with the workspaces' public identity, ordered by slug.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn memberships_of(&self, user_id: UserId) -> Result<Vec<MembershipSummary>, StoreError>;

    /// The members of a workspace, oldest first.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn members(&self, workspace_id: WorkspaceId) -> Result<Vec<Member>, StoreError>;

    /// Stores a new token's hash.
    ///
    /// # Errors
    /// `MissingReference("user")` for an unknown user.
    async fn create_token(
        &self,
        user_id: UserId,
        name: &str,
        hash: &TokenHash,
    ) -> Result<ApiToken, StoreError>;

    /// The user a presented token belongs to, `None` when the token is unknown or revoked.
    /// Records `last_used_at` (at most about once a minute per token, to keep reads cheap).
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn authenticate(&self, hash: &TokenHash) -> Result<Option<User>, StoreError>;

    /// Revokes a token; revoking twice is not an error.
    ///
    /// # Errors
    /// `NotFound` for an unknown token id.
    async fn revoke_token(&self, id: TokenId) -> Result<ApiToken, StoreError>;
}

/// Whether the database answers.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Health: Send + Sync {
    /// Round-trips a trivial query.
    ///
    /// # Errors
    /// `Unavailable` when the database does not answer.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Every port, for binaries that hold one `Arc<dyn Repository>`.
pub trait Repository: WorkspaceRepository + IdentityRepository + Health {}

impl<T: WorkspaceRepository + IdentityRepository + Health> Repository for T {}
