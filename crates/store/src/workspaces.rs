//! The workspace port: tenants and their (encrypted) Kapso settings.

use async_trait::async_trait;
use inbox_domain::ports::{StoreError, WorkspaceRepository};
use inbox_domain::workspace::{
    KapsoCredentials, NewWorkspace, Secret, Workspace, WorkspaceName, WorkspacePatch,
};
use inbox_domain::{Timestamp, WorkspaceId};
use sqlx::{Postgres, Sqlite};
use uuid::Uuid;

use crate::Store;
use crate::crypto::SecretCipher;
use crate::error::from_sqlx;
use crate::rows::{WORKSPACE_COLUMNS, WorkspaceRow, corrupt};

/// The associated-data labels binding each ciphertext to its column and workspace.
fn api_key_context(id: WorkspaceId) -> String {
    format!("workspaces.kapso_api_key:{id}")
}

fn webhook_secret_context(id: WorkspaceId) -> String {
    format!("workspaces.webhook_secret:{id}")
}

/// The encrypted columns as stored.
#[derive(sqlx::FromRow)]
struct CredentialsRow {
    id: Uuid,
    kapso_phone_number_id: Option<String>,
    kapso_api_key_enc: Option<Vec<u8>>,
    webhook_secret_enc: Option<Vec<u8>>,
}

fn decrypt_credentials(
    cipher: &SecretCipher,
    row: CredentialsRow,
) -> Result<KapsoCredentials, StoreError> {
    let id = WorkspaceId::from_uuid(row.id);
    let open = |context: String, sealed: Option<Vec<u8>>| {
        sealed
            .map(|bytes| cipher.decrypt(&context, &bytes).map(Secret::new))
            .transpose()
            .map_err(|e| corrupt("secret", e))
    };
    Ok(KapsoCredentials {
        workspace_id: id,
        phone_number_id: row.kapso_phone_number_id,
        api_key: open(api_key_context(id), row.kapso_api_key_enc)?,
        webhook_secret: open(webhook_secret_context(id), row.webhook_secret_enc)?,
    })
}

/// A patch's secret, encrypted for storage: whether the column changes, and its new value.
/// Columns the patch leaves alone are not written at all, so two concurrent patches of
/// different secrets cannot undo each other.
fn seal(
    cipher: &SecretCipher,
    context: String,
    change: Option<Option<Secret>>,
) -> (bool, Option<Vec<u8>>) {
    match change {
        None => (false, None),
        Some(None) => (true, None),
        Some(Some(secret)) => (true, Some(cipher.encrypt(&context, secret.expose()))),
    }
}

macro_rules! impl_workspaces {
    ($db:ty) => {
        #[async_trait]
        impl WorkspaceRepository for Store<$db> {
            async fn create_workspace(&self, new: NewWorkspace) -> Result<Workspace, StoreError> {
                let now = Timestamp::now().as_millis();
                let row: WorkspaceRow = sqlx::query_as(&format!(
                    "INSERT INTO workspaces (id, slug, name, default_country, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $5) RETURNING {WORKSPACE_COLUMNS}"
                ))
                .bind(WorkspaceId::new().as_uuid())
                .bind(new.slug.as_str())
                .bind(new.name.as_str())
                .bind(new.default_country.as_str())
                .bind(now)
                .fetch_one(&self.write)
                .await
                .map_err(from_sqlx)?;
                row.try_into()
            }

            async fn workspace_by_id(&self, id: WorkspaceId) -> Result<Option<Workspace>, StoreError> {
                let row: Option<WorkspaceRow> = sqlx::query_as(&format!(
                    "SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1"
                ))
                .bind(id.as_uuid())
                .fetch_optional(&self.read)
                .await
                .map_err(from_sqlx)?;
                row.map(Workspace::try_from).transpose()
            }

            async fn workspace_count(&self) -> Result<u64, StoreError> {
                let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workspaces")
                    .fetch_one(&self.read)
                    .await
                    .map_err(from_sqlx)?;
                Ok(u64::try_from(count).unwrap_or_default())
            }

            async fn workspace_by_slug(&self, slug: &str) -> Result<Option<Workspace>, StoreError> {
                let row: Option<WorkspaceRow> = sqlx::query_as(&format!(
                    "SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE slug = $1"
                ))
                .bind(slug)
                .fetch_optional(&self.read)
                .await
                .map_err(from_sqlx)?;
                row.map(Workspace::try_from).transpose()
            }

            async fn update_workspace(
                &self,
                id: WorkspaceId,
                patch: WorkspacePatch,
            ) -> Result<Workspace, StoreError> {
                let (set_api_key, api_key) =
                    seal(&self.cipher, api_key_context(id), patch.kapso_api_key);
                let (set_webhook_secret, webhook_secret) =
                    seal(&self.cipher, webhook_secret_context(id), patch.webhook_secret);
                // One statement, column by column: nothing is read first and written back.
                let row: Option<WorkspaceRow> = sqlx::query_as(&format!(
                    "UPDATE workspaces SET \
                       name = COALESCE($2, name), \
                       kapso_phone_number_id = CASE WHEN $3 THEN $4 ELSE kapso_phone_number_id END, \
                       kapso_api_key_enc = CASE WHEN $5 THEN $6 ELSE kapso_api_key_enc END, \
                       webhook_secret_enc = CASE WHEN $7 THEN $8 ELSE webhook_secret_enc END, \
                       default_country = COALESCE($9, default_country), \
                       auto_create_contacts = COALESCE($10, auto_create_contacts), \
                       updated_at = $11 \
                     WHERE id = $1 RETURNING {WORKSPACE_COLUMNS}"
                ))
                .bind(id.as_uuid())
                .bind(patch.name.as_ref().map(WorkspaceName::as_str))
                .bind(patch.kapso_phone_number_id.is_some())
                .bind(patch.kapso_phone_number_id.flatten())
                .bind(set_api_key)
                .bind(api_key)
                .bind(set_webhook_secret)
                .bind(webhook_secret)
                .bind(patch.default_country.map(|c| c.as_str().to_owned()))
                .bind(patch.auto_create_contacts)
                .bind(Timestamp::now().as_millis())
                .fetch_optional(&self.write)
                .await
                .map_err(from_sqlx)?;
                let row = row.ok_or(StoreError::NotFound)?;
                row.try_into()
            }

            async fn kapso_credentials_by_phone_number_id(
                &self,
                phone_number_id: &str,
            ) -> Result<Option<KapsoCredentials>, StoreError> {
                let row: Option<CredentialsRow> = sqlx::query_as(
                    "SELECT id, kapso_phone_number_id, kapso_api_key_enc, webhook_secret_enc \
                     FROM workspaces WHERE kapso_phone_number_id = $1",
                )
                .bind(phone_number_id)
                .fetch_optional(&self.read)
                .await
                .map_err(from_sqlx)?;
                row.map(|r| decrypt_credentials(&self.cipher, r)).transpose()
            }

            async fn kapso_credentials(
                &self,
                id: WorkspaceId,
            ) -> Result<Option<KapsoCredentials>, StoreError> {
                let row: Option<CredentialsRow> = sqlx::query_as(
                    "SELECT id, kapso_phone_number_id, kapso_api_key_enc, webhook_secret_enc \
                     FROM workspaces WHERE id = $1",
                )
                .bind(id.as_uuid())
                .fetch_optional(&self.read)
                .await
                .map_err(from_sqlx)?;
                row.map(|r| decrypt_credentials(&self.cipher, r)).transpose()
            }
        }
    };
}

impl_workspaces!(Sqlite);
impl_workspaces!(Postgres);
