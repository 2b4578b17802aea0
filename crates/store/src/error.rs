//! Translation of sqlx errors into the domain's `StoreError`, so no driver text leaks upwards.

use inbox_domain::ports::StoreError;

/// Uniqueness rules, by a fragment of the constraint name (PostgreSQL) or of the failing column
/// list (SQLite's "UNIQUE constraint failed: table.column"), and the field each one protects.
/// Order matters: more specific fragments first.
const UNIQUE_RULES: &[(&str, &str)] = &[
    ("wamid", "wamid"),
    ("idempotency_key", "idempotency_key"),
    ("bsuid", "bsuid"),
    ("kapso_phone_number_id", "kapso_phone_number_id"),
    ("contacts_phone", "phone"),
    ("contacts.phone", "phone"),
    ("slug", "slug"),
    ("email", "email"),
    ("memberships", "membership"),
    ("contact_id", "conversation"),
    ("seq", "seq"),
    ("token_hash", "token"),
];

/// Maps a driver error to the domain error callers branch on.
pub(crate) fn from_sqlx(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => StoreError::Unavailable(err.to_string()),
        sqlx::Error::Database(db) => {
            let detail = db
                .constraint()
                .map_or_else(|| db.message().to_owned(), str::to_owned);
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => {
                    StoreError::Duplicate(unique_field(&detail))
                }
                sqlx::error::ErrorKind::ForeignKeyViolation => {
                    StoreError::MissingReference(reference_field(&detail))
                }
                _ if is_unavailable_code(db.code().as_deref()) => {
                    StoreError::Unavailable(err.to_string())
                }
                _ => StoreError::Internal(err.to_string()),
            }
        }
        _ => StoreError::Internal(err.to_string()),
    }
}

fn unique_field(detail: &str) -> String {
    UNIQUE_RULES
        .iter()
        .find(|(fragment, _)| detail.contains(fragment))
        .map_or("value", |(_, field)| field)
        .to_owned()
}

/// PostgreSQL names the foreign key (`memberships_user_id_fkey`); SQLite does not say which one
/// failed, so callers that need a precise field check existence first.
fn reference_field(detail: &str) -> String {
    [
        "workspace_id",
        "user_id",
        "assigned_to",
        "contact_id",
        "conversation_id",
    ]
    .into_iter()
    .find(|column| detail.contains(column))
    .map_or("reference", |column| column.trim_end_matches("_id"))
    .to_owned()
}

/// PostgreSQL's "the server is going away or refusing work" classes (57P01 admin shutdown,
/// 57P03 cannot connect now, 53300 too many connections), and SQLite's busy/locked codes.
fn is_unavailable_code(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("57P01" | "57P02" | "57P03" | "53300" | "5" | "6")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_field_from_either_backend() {
        assert_eq!(unique_field("workspaces_slug_key"), "slug");
        assert_eq!(
            unique_field("UNIQUE constraint failed: workspaces.slug"),
            "slug"
        );
        assert_eq!(
            unique_field("UNIQUE constraint failed: contacts.workspace_id, contacts.phone"),
            "phone"
        );
        assert_eq!(unique_field("contacts_phone_key"), "phone");
        assert_eq!(
            unique_field("workspaces_kapso_phone_number_id_key"),
            "kapso_phone_number_id"
        );
        assert_eq!(
            unique_field("UNIQUE constraint failed: memberships.workspace_id, memberships.user_id"),
            "membership"
        );
        assert_eq!(unique_field("something else"), "value");
        assert_eq!(reference_field("memberships_user_id_fkey"), "user");
        assert_eq!(
            reference_field("FOREIGN KEY constraint failed"),
            "reference"
        );
    }
}
