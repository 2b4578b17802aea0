//! The workspace port.

use async_trait::async_trait;

use super::StoreError;
use crate::ids::WorkspaceId;
use crate::workspace::{KapsoCredentials, NewWorkspace, Workspace, WorkspacePatch};

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

    /// How many workspaces exist. A deployment-wide webhook secret identifies a tenant only
    /// while there is at most one.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn workspace_count(&self) -> Result<u64, StoreError>;
}
