//! The identity port.

use async_trait::async_trait;

use super::StoreError;
use crate::ids::{TokenId, UserId, WorkspaceId};
use crate::token::{ApiToken, TokenHash};
use crate::user::{Member, Membership, NewUser, Principal, Role, User};

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

    /// The user a presented token belongs to, with their memberships, in one read; `None`
    /// when the token is unknown or revoked. A pure read: use is recorded apart, in batches
    /// ([`IdentityRepository::record_token_use`]).
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn authenticate(&self, hash: &TokenHash) -> Result<Option<Principal>, StoreError>;

    /// Revokes a token; revoking twice is not an error. Appends `access.changed` for every
    /// workspace of the token's user in the same transaction, so open streams end before they
    /// send anything written after the revocation.
    ///
    /// # Errors
    /// `NotFound` for an unknown token id.
    async fn revoke_token(&self, id: TokenId) -> Result<ApiToken, StoreError>;

    /// Records when tokens were last used, in one transaction (the API batches this off the
    /// request path, about once a minute). A later record never moves a time back.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn record_token_use(
        &self,
        uses: &[(TokenId, crate::timestamp::Timestamp)],
    ) -> Result<(), StoreError>;

    /// Changes a member's role, appending `access.changed` for the workspace.
    ///
    /// # Errors
    /// `NotFound` when the user is not a member of the workspace.
    async fn set_member_role(
        &self,
        workspace_id: WorkspaceId,
        user_id: UserId,
        role: Role,
    ) -> Result<Membership, StoreError>;

    /// Removes a member, appending `access.changed` for the workspace.
    ///
    /// # Errors
    /// `NotFound` when the user is not a member of the workspace.
    async fn remove_member(
        &self,
        workspace_id: WorkspaceId,
        user_id: UserId,
    ) -> Result<(), StoreError>;

    /// The current principal of each token that is still valid, in one read per few hundred
    /// tokens: what live streams re-check their rights against. Revoked and unknown tokens are
    /// absent. Records no use.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn principals_by_tokens(&self, tokens: &[TokenId]) -> Result<Vec<Principal>, StoreError>;
}
