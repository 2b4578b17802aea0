//! Row shapes shared by both backends, and their conversion into domain entities.
//!
//! Stored values were validated before they were written, so conversions trust them; a value
//! that still does not parse is corrupt data and becomes `StoreError::Internal`.

use inbox_domain::phone::CountryCode;
use inbox_domain::ports::StoreError;
use inbox_domain::token::ApiToken;
use inbox_domain::user::{Member, Membership, MembershipSummary, Role, User};
use inbox_domain::workspace::{Workspace, WorkspaceSlug};
use inbox_domain::{Timestamp, TokenId, UserId, WorkspaceId};
use uuid::Uuid;

pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("stored {what} is invalid: {detail}"))
}

/// Columns of `workspaces` as [`WORKSPACE_COLUMNS`] selects them.
#[derive(sqlx::FromRow)]
pub(crate) struct WorkspaceRow {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub kapso_phone_number_id: Option<String>,
    pub has_kapso_api_key: bool,
    pub has_webhook_secret: bool,
    pub default_country: String,
    pub auto_create_contacts: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(crate) const WORKSPACE_COLUMNS: &str = "id, slug, name, kapso_phone_number_id, \
    kapso_api_key_enc IS NOT NULL AS has_kapso_api_key, \
    webhook_secret_enc IS NOT NULL AS has_webhook_secret, \
    default_country, auto_create_contacts, created_at, updated_at";

impl TryFrom<WorkspaceRow> for Workspace {
    type Error = StoreError;

    fn try_from(row: WorkspaceRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: WorkspaceId::from_uuid(row.id),
            slug: WorkspaceSlug::parse(&row.slug).map_err(|e| corrupt("slug", e))?,
            name: row.name,
            kapso_phone_number_id: row.kapso_phone_number_id,
            has_kapso_api_key: row.has_kapso_api_key,
            has_webhook_secret: row.has_webhook_secret,
            default_country: CountryCode::parse(&row.default_country)
                .map_err(|e| corrupt("default_country", e))?,
            auto_create_contacts: row.auto_create_contacts,
            created_at: Timestamp::from_millis(row.created_at),
            updated_at: Timestamp::from_millis(row.updated_at),
        })
    }
}

/// Columns of `users`.
#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    pub id: Uuid,
    pub name: String,
    pub email: Option<String>,
    pub created_at: i64,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            id: UserId::from_uuid(row.id),
            name: row.name,
            email: row.email,
            created_at: Timestamp::from_millis(row.created_at),
        }
    }
}

pub(crate) fn role(text: &str) -> Result<Role, StoreError> {
    text.parse().map_err(|e: String| corrupt("role", e))
}

/// Columns of `memberships`.
#[derive(sqlx::FromRow)]
pub(crate) struct MembershipRow {
    pub workspace_id: Uuid,
    pub user_id: Uuid,
    pub role: String,
    pub created_at: i64,
}

impl TryFrom<MembershipRow> for Membership {
    type Error = StoreError;

    fn try_from(row: MembershipRow) -> Result<Self, StoreError> {
        Ok(Self {
            workspace_id: WorkspaceId::from_uuid(row.workspace_id),
            user_id: UserId::from_uuid(row.user_id),
            role: role(&row.role)?,
            created_at: Timestamp::from_millis(row.created_at),
        })
    }
}

/// A membership joined with its workspace.
#[derive(sqlx::FromRow)]
pub(crate) struct MembershipSummaryRow {
    pub workspace_id: Uuid,
    pub slug: String,
    pub name: String,
    pub role: String,
}

impl TryFrom<MembershipSummaryRow> for MembershipSummary {
    type Error = StoreError;

    fn try_from(row: MembershipSummaryRow) -> Result<Self, StoreError> {
        Ok(Self {
            workspace_id: WorkspaceId::from_uuid(row.workspace_id),
            workspace_slug: WorkspaceSlug::parse(&row.slug).map_err(|e| corrupt("slug", e))?,
            workspace_name: row.name,
            role: role(&row.role)?,
        })
    }
}

/// A membership joined with its user.
#[derive(sqlx::FromRow)]
pub(crate) struct MemberRow {
    pub id: Uuid,
    pub name: String,
    pub email: Option<String>,
    pub user_created_at: i64,
    pub role: String,
    pub created_at: i64,
}

impl TryFrom<MemberRow> for Member {
    type Error = StoreError;

    fn try_from(row: MemberRow) -> Result<Self, StoreError> {
        Ok(Self {
            user: User {
                id: UserId::from_uuid(row.id),
                name: row.name,
                email: row.email,
                created_at: Timestamp::from_millis(row.user_created_at),
            },
            role: role(&row.role)?,
            created_at: Timestamp::from_millis(row.created_at),
        })
    }
}

/// Columns of `api_tokens` except the hash.
#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl From<TokenRow> for ApiToken {
    fn from(row: TokenRow) -> Self {
        Self {
            id: TokenId::from_uuid(row.id),
            user_id: UserId::from_uuid(row.user_id),
            name: row.name,
            created_at: Timestamp::from_millis(row.created_at),
            last_used_at: row.last_used_at.map(Timestamp::from_millis),
            revoked_at: row.revoked_at.map(Timestamp::from_millis),
        }
    }
}
