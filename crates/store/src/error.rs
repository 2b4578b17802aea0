//! Translation of sqlx errors into the domain's `StoreError`, so no driver text leaks upwards.

use std::time::Duration;

use inbox_domain::ports::StoreError;
use rand::Rng;

/// Waits before attempt `attempt` (from 2) of a transaction that lost a conflict: a random
/// while of up to 5 ms times the attempts already made, so the colliding transactions do not
/// meet again in step.
pub(crate) async fn pause_before_retry(attempt: u32) {
    let ceiling = 5_000 * u64::from(attempt.saturating_sub(1).max(1));
    let micros = rand::thread_rng().gen_range(1_000..=ceiling);
    tokio::time::sleep(Duration::from_micros(micros)).await;
}

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
///
/// What may succeed when tried again (the pool, the network, a server going away, a lock or
/// statement timeout, a full disk, SQLite's busy and locked families) is `Unavailable`, so the
/// sender retries and nothing is recorded as failed; a lost deadlock or serialization conflict
/// is `Retryable`, so the use case can re-run its whole unit of work at once. Only what would
/// fail the same way again is `Internal`.
pub(crate) fn from_sqlx(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::RowNotFound => StoreError::NotFound,
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
                _ => match database_class(db.as_ref()) {
                    Class::Conflict => StoreError::Retryable(err.to_string()),
                    Class::Transient => StoreError::Unavailable(err.to_string()),
                    Class::Deterministic => StoreError::Internal(err.to_string()),
                },
            }
        }
        _ => match driver_class(&err) {
            Class::Conflict => StoreError::Retryable(err.to_string()),
            Class::Transient => StoreError::Unavailable(err.to_string()),
            Class::Deterministic => StoreError::Internal(err.to_string()),
        },
    }
}

/// Whether a failure can go away on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// The transaction lost a conflict with another one and was rolled back: running the same
    /// work again, at once, is expected to succeed.
    Conflict,
    /// The database, the connection or a resource is (for now) not there: later may succeed.
    Transient,
    /// It would fail the same way again.
    Deterministic,
}

/// Failures that are not the database's answer to a statement.
fn driver_class(err: &sqlx::Error) -> Class {
    match err {
        // No connection to be had, or the one we had broke mid-way: another may work.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => Class::Transient,
        // `Protocol` included: sqlx reports a statement with too many parameters as one, which
        // would fail the same way every time.
        _ => Class::Deterministic,
    }
}

/// A database's own error, by backend.
fn database_class(db: &dyn sqlx::error::DatabaseError) -> Class {
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return postgres_class(pg.code());
    }
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        return db
            .code()
            .and_then(|code| code.parse::<i64>().ok())
            .map_or(Class::Deterministic, sqlite_class);
    }
    Class::Deterministic
}

/// PostgreSQL, by SQLSTATE.
fn postgres_class(sqlstate: &str) -> Class {
    match sqlstate {
        // deadlock_detected, serialization_failure
        "40P01" | "40001" => Class::Conflict,
        // statement_completion_unknown (the connection went during COMMIT),
        // lock_not_available (NOWAIT, lock_timeout), query_canceled (statement_timeout),
        // idle_in_transaction_session_timeout, io_error
        "40003" | "55P03" | "57014" | "25P03" | "58030" => Class::Transient,
        // connection exceptions (class 08), insufficient resources (class 53: disk full, out
        // of memory, too many connections), operator intervention (57P01 admin shutdown,
        // 57P02 crash shutdown, 57P03 cannot connect now, 57P04 database dropped,
        // 57P05 idle session timeout)
        _ if sqlstate.starts_with("08")
            || sqlstate.starts_with("53")
            || sqlstate.starts_with("57P") =>
        {
            Class::Transient
        }
        _ => Class::Deterministic,
    }
}

/// SQLite, by the primary result code (the low byte of the extended code sqlx reports).
fn sqlite_class(extended: i64) -> Class {
    const SQLITE_BUSY: i64 = 5;
    const SQLITE_LOCKED: i64 = 6;
    const SQLITE_NOMEM: i64 = 7;
    const SQLITE_READONLY: i64 = 8;
    const SQLITE_IOERR: i64 = 10;
    const SQLITE_FULL: i64 = 13;
    const SQLITE_CANTOPEN: i64 = 14;
    match extended & 0xff {
        SQLITE_BUSY | SQLITE_LOCKED | SQLITE_NOMEM | SQLITE_READONLY | SQLITE_IOERR
        | SQLITE_FULL | SQLITE_CANTOPEN => Class::Transient,
        _ => Class::Deterministic,
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

    #[test]
    fn postgres_codes_retry_wait_or_fail() {
        for code in ["40P01", "40001"] {
            assert_eq!(postgres_class(code), Class::Conflict, "{code}");
        }
        for code in [
            "08000", "08003", "08006", "08001", "08004", "08007", "08P01", "40003", "55P03",
            "57014", "25P03", "58030", "53000", "53100", "53200", "53300", "53400", "57P01",
            "57P02", "57P03", "57P04", "57P05",
        ] {
            assert_eq!(postgres_class(code), Class::Transient, "{code}");
        }
        for code in [
            "23505", "23503", "23502", "23514", "22001", "22003", "22P02", "42601", "42P01",
            "42703", "40002", "40000", "57000", "55000", "55006", "XX000", "XX001", "P0001",
            "25P02", "0A000", "",
        ] {
            assert_eq!(postgres_class(code), Class::Deterministic, "{code}");
        }
    }

    #[test]
    fn sqlite_codes_are_judged_by_their_primary_code() {
        // Primary codes and extended ones of the same families.
        for code in [
            5, 261, 517, 773, // BUSY, _RECOVERY, _SNAPSHOT, _TIMEOUT
            6, 262, 518, // LOCKED, _SHAREDCACHE, _VTAB
            7,   // NOMEM
            8, 264, 520, 776, 1032, 1288, 1544, // READONLY and its extended codes
            10, 266, 522, 778, 1034, 3338, 6410, // IOERR and its extended codes
            13,   // FULL
            14, 270, 526, // CANTOPEN and its extended codes
        ] {
            assert_eq!(sqlite_class(code), Class::Transient, "{code}");
        }
        for code in [
            1, 2, 3, 4, 9, 11, 12, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
            267,  // CORRUPT_VTAB
            787,  // CONSTRAINT_FOREIGNKEY
            1555, // CONSTRAINT_PRIMARYKEY
            2067, // CONSTRAINT_UNIQUE
            1299, // CONSTRAINT_NOTNULL
            275,  // CONSTRAINT_CHECK
            513,  // ERROR_RETRY: judged by its primary code, ERROR
        ] {
            assert_eq!(sqlite_class(code), Class::Deterministic, "{code}");
        }
    }

    #[test]
    fn driver_failures_without_a_database_answer() {
        let io = || sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        for err in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            io(),
            sqlx::Error::Tls("handshake".into()),
            sqlx::Error::WorkerCrashed,
            sqlx::Error::BeginFailed,
        ] {
            assert_eq!(driver_class(&err), Class::Transient, "{err}");
            assert!(matches!(from_sqlx(err), StoreError::Unavailable(_)));
        }
        for err in [
            sqlx::Error::Configuration("bad url".into()),
            sqlx::Error::ColumnNotFound("x".into()),
            sqlx::Error::TypeNotFound {
                type_name: "x".into(),
            },
            sqlx::Error::ColumnIndexOutOfBounds { index: 3, len: 2 },
            sqlx::Error::Decode("bad".into()),
            sqlx::Error::Encode("bad".into()),
            sqlx::Error::InvalidSavePointStatement,
            sqlx::Error::Protocol("too many arguments for query: 66044".into()),
        ] {
            assert_eq!(driver_class(&err), Class::Deterministic, "{err}");
            assert!(matches!(from_sqlx(err), StoreError::Internal(_)));
        }
        assert_eq!(from_sqlx(sqlx::Error::RowNotFound), StoreError::NotFound);
    }
}
