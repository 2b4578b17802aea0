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
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err.to_string()),
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
                _ if is_transient(db.as_ref()) => StoreError::Unavailable(err.to_string()),
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

/// Whether a database error may not happen again if the same work is retried: the sender
/// should be told to retry (503), never given a `failed` record of work that would succeed.
///
/// PostgreSQL, by SQLSTATE: class 08 (connection exceptions), 40001 (serialization failure),
/// 40P01 (deadlock), 55P03 (lock not available), 57014 (statement or lock timeout, query
/// canceled), class 53 (insufficient resources: disk, memory, connections), 57P01..57P05
/// (shutdowns, cannot connect now, idle session timeout).
///
/// SQLite, by primary result code (the low byte of an extended code, so `BUSY_SNAPSHOT` 517 is
/// `BUSY` 5): 5 BUSY, 6 LOCKED, 10 IOERR, 13 FULL, 8 READONLY (a read-only file or a
/// database moved underneath, recoverable), 14 CANTOPEN.
fn is_transient(db: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = db.code() else {
        return false;
    };
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        code.parse::<i64>().is_ok_and(sqlite_code_is_transient)
    } else {
        sqlstate_is_transient(&code)
    }
}

fn sqlite_code_is_transient(code: i64) -> bool {
    matches!(code & 0xff, 5 | 6 | 8 | 10 | 13 | 14)
}

fn sqlstate_is_transient(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "40001" | "40P01" | "55P03" | "57014" | "57P01" | "57P02" | "57P03" | "57P04" | "57P05"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_told_apart_from_deterministic_ones() {
        for code in [
            "08000", "08003", "08006", "08P01", "40001", "40P01", "55P03", "57014", "53000",
            "53100", "53200", "53300", "57P01", "57P02", "57P03", "57P05",
        ] {
            assert!(sqlstate_is_transient(code), "{code} may succeed on retry");
        }
        for code in [
            "23505", "23503", "22021", "22P02", "42601", "42P01", "XX000",
        ] {
            assert!(!sqlstate_is_transient(code), "{code} would fail again");
        }
        // SQLite, primary and extended: BUSY, BUSY_RECOVERY, BUSY_SNAPSHOT, BUSY_TIMEOUT,
        // LOCKED, LOCKED_SHAREDCACHE, IOERR, IOERR_WRITE, FULL, READONLY_DBMOVED, CANTOPEN.
        for code in [5, 261, 517, 773, 6, 262, 10, 778, 13, 1032, 14] {
            assert!(
                sqlite_code_is_transient(code),
                "{code} may succeed on retry"
            );
        }
        // SQLite: ERROR, CONSTRAINT, CONSTRAINT_UNIQUE, MISMATCH, CORRUPT.
        for code in [1, 19, 2067, 20, 11] {
            assert!(!sqlite_code_is_transient(code), "{code} would fail again");
        }
    }

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
