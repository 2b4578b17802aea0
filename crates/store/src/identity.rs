//! The identity port: users, memberships and API tokens.

use async_trait::async_trait;
use inbox_domain::ports::{IdentityRepository, StoreError};
use inbox_domain::token::{ApiToken, TokenHash};
use inbox_domain::user::{Member, Membership, MembershipSummary, NewUser, Principal, Role, User};
use inbox_domain::{Timestamp, TokenId, UserId, WorkspaceId};
use sqlx::{Postgres, Sqlite};
use uuid::Uuid;

use crate::Store;
use crate::error::from_sqlx;
use crate::rows::{MemberRow, MembershipRow, MembershipSummaryRow, TokenRow, UserRow};

const TOKEN_COLUMNS: &str = "id, user_id, name, created_at, last_used_at, revoked_at";

/// Tokens asked about per query when live streams re-check their rights.
const TOKENS_PER_QUERY: usize = 500;

/// The read of a token's principal: one row per membership of its user.
const AUTH_SELECT: &str = "SELECT t.id AS token_id, u.id, u.name, u.email, u.created_at, \
            w.id AS workspace_id, w.slug, w.name AS workspace_name, m.role \
     FROM api_tokens t JOIN users u ON u.id = t.user_id \
     LEFT JOIN memberships m ON m.user_id = u.id \
     LEFT JOIN workspaces w ON w.id = m.workspace_id";

/// Folds rows of [`AUTH_SELECT`], ordered by token, into one principal per token.
fn principals(rows: Vec<AuthRow>) -> Result<Vec<Principal>, StoreError> {
    let mut found: Vec<Principal> = Vec::new();
    for row in rows {
        let token_id = TokenId::from_uuid(row.token_id);
        if found.last().is_none_or(|p| p.token_id != token_id) {
            found.push(Principal {
                token_id,
                user: User {
                    id: UserId::from_uuid(row.id),
                    name: row.name.clone(),
                    email: row.email.clone(),
                    created_at: Timestamp::from_millis(row.created_at),
                },
                memberships: Vec::new(),
            });
        }
        let membership = row.membership()?;
        if let Some(principal) = found.last_mut() {
            principal.memberships.extend(membership);
        }
    }
    Ok(found)
}

/// A token's owner, when the token was last recorded as used, and one of the owner's
/// memberships (`NULL`s when they have none): one row per membership.
#[derive(sqlx::FromRow)]
struct AuthRow {
    token_id: Uuid,
    id: Uuid,
    name: String,
    email: Option<String>,
    created_at: i64,
    workspace_id: Option<Uuid>,
    slug: Option<String>,
    workspace_name: Option<String>,
    role: Option<String>,
}

impl AuthRow {
    fn membership(self) -> Result<Option<MembershipSummary>, StoreError> {
        let (Some(workspace_id), Some(slug), Some(name), Some(role)) =
            (self.workspace_id, self.slug, self.workspace_name, self.role)
        else {
            return Ok(None);
        };
        MembershipSummaryRow {
            workspace_id,
            slug,
            name,
            role,
        }
        .try_into()
        .map(Some)
    }
}

macro_rules! impl_identity {
    ($db:ty) => {
        #[async_trait]
        impl IdentityRepository for Store<$db> {
            async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
                let row: UserRow = sqlx::query_as(
                    "INSERT INTO users (id, name, email, created_at) VALUES ($1, $2, $3, $4) \
                     RETURNING id, name, email, created_at",
                )
                .bind(UserId::new().as_uuid())
                .bind(&new.name)
                .bind(&new.email)
                .bind(Timestamp::now().as_millis())
                .fetch_one(&self.write)
                .await
                .map_err(from_sqlx)?;
                Ok(row.into())
            }

            async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
                let row: Option<UserRow> =
                    sqlx::query_as("SELECT id, name, email, created_at FROM users WHERE id = $1")
                        .bind(id.as_uuid())
                        .fetch_optional(&self.read)
                        .await
                        .map_err(from_sqlx)?;
                Ok(row.map(User::from))
            }

            async fn add_member(
                &self,
                workspace_id: WorkspaceId,
                user_id: UserId,
                role: Role,
            ) -> Result<Membership, StoreError> {
                let mut tx = self.begin_write().await?;
                // SQLite does not say which foreign key failed; checking first names it.
                let (workspace_exists, user_exists): (bool, bool) = sqlx::query_as(
                    "SELECT EXISTS (SELECT 1 FROM workspaces WHERE id = $1), \
                            EXISTS (SELECT 1 FROM users WHERE id = $2)",
                )
                .bind(workspace_id.as_uuid())
                .bind(user_id.as_uuid())
                .fetch_one(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                if !workspace_exists {
                    return Err(StoreError::MissingReference("workspace".into()));
                }
                if !user_exists {
                    return Err(StoreError::MissingReference("user".into()));
                }
                let row: MembershipRow = sqlx::query_as(
                    "INSERT INTO memberships (workspace_id, user_id, role, created_at) \
                     VALUES ($1, $2, $3, $4) RETURNING workspace_id, user_id, role, created_at",
                )
                .bind(workspace_id.as_uuid())
                .bind(user_id.as_uuid())
                .bind(role.as_str())
                .bind(Timestamp::now().as_millis())
                .fetch_one(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                tx.commit().await.map_err(from_sqlx)?;
                row.try_into()
            }

            async fn membership(
                &self,
                workspace_id: WorkspaceId,
                user_id: UserId,
            ) -> Result<Option<Membership>, StoreError> {
                let row: Option<MembershipRow> = sqlx::query_as(
                    "SELECT workspace_id, user_id, role, created_at FROM memberships \
                     WHERE workspace_id = $1 AND user_id = $2",
                )
                .bind(workspace_id.as_uuid())
                .bind(user_id.as_uuid())
                .fetch_optional(&self.read)
                .await
                .map_err(from_sqlx)?;
                row.map(Membership::try_from).transpose()
            }

            async fn members(&self, workspace_id: WorkspaceId) -> Result<Vec<Member>, StoreError> {
                let rows: Vec<MemberRow> = sqlx::query_as(
                    "SELECT u.id, u.name, u.email, u.created_at AS user_created_at, m.role, m.created_at \
                     FROM memberships m JOIN users u ON u.id = m.user_id \
                     WHERE m.workspace_id = $1 ORDER BY m.created_at, u.id",
                )
                .bind(workspace_id.as_uuid())
                .fetch_all(&self.read)
                .await
                .map_err(from_sqlx)?;
                rows.into_iter().map(Member::try_from).collect()
            }

            async fn create_token(
                &self,
                user_id: UserId,
                name: &str,
                hash: &TokenHash,
            ) -> Result<ApiToken, StoreError> {
                let mut tx = self.begin_write().await?;
                let user_exists: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
                        .bind(user_id.as_uuid())
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(from_sqlx)?;
                if !user_exists {
                    return Err(StoreError::MissingReference("user".into()));
                }
                let row: TokenRow = sqlx::query_as(&format!(
                    "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING {TOKEN_COLUMNS}"
                ))
                .bind(TokenId::new().as_uuid())
                .bind(user_id.as_uuid())
                .bind(name)
                .bind(hash.as_bytes().as_slice())
                .bind(Timestamp::now().as_millis())
                .fetch_one(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                tx.commit().await.map_err(from_sqlx)?;
                Ok(row.into())
            }

            async fn authenticate(
                &self,
                hash: &TokenHash,
            ) -> Result<Option<Principal>, StoreError> {
                let rows: Vec<AuthRow> = sqlx::query_as(&format!(
                    "{AUTH_SELECT} WHERE t.token_hash = $1 AND t.revoked_at IS NULL ORDER BY w.slug"
                ))
                .bind(hash.as_bytes().as_slice())
                .fetch_all(&self.read)
                .await
                .map_err(from_sqlx)?;
                let principal = principals(rows)?.pop();
                Ok(principal)
            }

            async fn revoke_token(&self, id: TokenId) -> Result<ApiToken, StoreError> {
                let now = Timestamp::now().as_millis();
                let mut tx = self.begin_write().await?;
                let was_live: Option<bool> = sqlx::query_scalar(
                    "SELECT revoked_at IS NULL FROM api_tokens WHERE id = $1",
                )
                .bind(id.as_uuid())
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                let row: Option<TokenRow> = sqlx::query_as(&format!(
                    "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 \
                     RETURNING {TOKEN_COLUMNS}"
                ))
                .bind(id.as_uuid())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                let token = row.map(ApiToken::from).ok_or(StoreError::NotFound)?;
                if was_live == Some(true) {
                    sqlx::query(
                        "INSERT INTO events (workspace_id, kind, created_at) \
                         SELECT workspace_id, 'access.changed', $2 FROM memberships WHERE user_id = $1",
                    )
                    .bind(token.user_id.as_uuid())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                }
                self.commit_events(tx).await?;
                Ok(token)
            }

            async fn record_token_use(
                &self,
                uses: &[(TokenId, Timestamp)],
            ) -> Result<(), StoreError> {
                if uses.is_empty() {
                    return Ok(());
                }
                let mut tx = self.begin_write().await?;
                for (token, at) in uses {
                    sqlx::query(
                        "UPDATE api_tokens SET last_used_at = $2 \
                         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
                    )
                    .bind(token.as_uuid())
                    .bind(at.as_millis())
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                }
                tx.commit().await.map_err(from_sqlx)
            }

            async fn set_member_role(
                &self,
                workspace_id: WorkspaceId,
                user_id: UserId,
                role: Role,
            ) -> Result<Membership, StoreError> {
                let mut tx = self.begin_write().await?;
                let row: Option<MembershipRow> = sqlx::query_as(
                    "UPDATE memberships SET role = $3 WHERE workspace_id = $1 AND user_id = $2 \
                     RETURNING workspace_id, user_id, role, created_at",
                )
                .bind(workspace_id.as_uuid())
                .bind(user_id.as_uuid())
                .bind(role.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                let membership = Membership::try_from(row.ok_or(StoreError::NotFound)?)?;
                Self::access_changed(&mut tx, workspace_id).await?;
                self.commit_events(tx).await?;
                Ok(membership)
            }

            async fn remove_member(
                &self,
                workspace_id: WorkspaceId,
                user_id: UserId,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                let removed = sqlx::query(
                    "DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2",
                )
                .bind(workspace_id.as_uuid())
                .bind(user_id.as_uuid())
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?
                .rows_affected();
                if removed == 0 {
                    return Err(StoreError::NotFound);
                }
                Self::access_changed(&mut tx, workspace_id).await?;
                self.commit_events(tx).await?;
                Ok(())
            }

            async fn principals_by_tokens(
                &self,
                tokens: &[TokenId],
            ) -> Result<Vec<Principal>, StoreError> {
                let mut found = Vec::with_capacity(tokens.len());
                for chunk in tokens.chunks(TOKENS_PER_QUERY) {
                    let placeholders: Vec<String> =
                        (1..=chunk.len()).map(|i| format!("${i}")).collect();
                    let sql = format!(
                        "{AUTH_SELECT} WHERE t.id IN ({}) AND t.revoked_at IS NULL ORDER BY t.id, w.slug",
                        placeholders.join(", ")
                    );
                    let mut query = sqlx::query_as::<_, AuthRow>(&sql);
                    for token in chunk {
                        query = query.bind(token.as_uuid());
                    }
                    let rows = query.fetch_all(&self.read).await.map_err(from_sqlx)?;
                    found.extend(principals(rows)?);
                }
                Ok(found)
            }
        }

        impl Store<$db> {
        /// Appends `access.changed` for a workspace in the caller's transaction.
        async fn access_changed(
            tx: &mut sqlx::Transaction<'_, $db>,
            workspace_id: WorkspaceId,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO events (workspace_id, kind, created_at) VALUES ($1, 'access.changed', $2)",
            )
            .bind(workspace_id.as_uuid())
            .bind(Timestamp::now().as_millis())
            .execute(&mut **tx)
            .await
            .map_err(from_sqlx)?;
            Ok(())
        }
        }
    };
}

impl_identity!(Sqlite);
impl_identity!(Postgres);
