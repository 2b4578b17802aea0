//! Wire shapes shared by several routes.

use inbox_domain::user::User;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// A user as the API shows them.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Email, if any.
    pub email: Option<String>,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.as_uuid(),
            name: user.name.clone(),
            email: user.email.clone(),
        }
    }
}

/// A workspace's public identity.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceRef {
    /// Id.
    pub id: Uuid,
    /// Slug.
    pub slug: String,
    /// Name.
    pub name: String,
}
