//! Fresh databases for tests: a SQLite file in a temporary folder, or a new PostgreSQL database
//! created from `INBOX_TEST_DATABASE_URL` and dropped afterwards.

use std::str::FromStr;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use uuid::Uuid;

pub use crate::group_commit::WriterHold;
pub use crate::seed::{Seed, SeedConversation, SeedMessage, Seeded};

/// How many ingest units (and batch committers) wait for SQLite's writer right now.
#[must_use]
pub fn sqlite_writers_queued(store: &crate::sqlite::SqliteStore) -> usize {
    store.group_commit.queued()
}

/// Waits for SQLite's writer in turn, as an ingest unit does, and holds it until the hold is
/// dropped: nothing of the group commit runs meanwhile.
pub async fn hold_sqlite_writer(store: &crate::sqlite::SqliteStore) -> WriterHold {
    store.group_commit.hold().await
}

/// The variable naming the PostgreSQL server tests may create databases on.
pub const POSTGRES_URL_VAR: &str = "INBOX_TEST_DATABASE_URL";

/// A database that exists for one test and is removed after it.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Folder(#[allow(dead_code)] tempfile::TempDir),
    Postgres {
        admin: Box<PgConnectOptions>,
        name: String,
    },
}

/// Why a test database could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TestDatabaseError {
    /// PostgreSQL tests were asked for but `INBOX_TEST_DATABASE_URL` is not set.
    #[error("INBOX_TEST_DATABASE_URL is not set")]
    NotConfigured,
    /// Anything else.
    #[error("cannot prepare a test database: {0}")]
    Setup(String),
}

impl TestDatabase {
    /// A new SQLite database file in its own temporary folder.
    ///
    /// # Errors
    /// When the folder cannot be created.
    pub fn sqlite() -> Result<Self, TestDatabaseError> {
        let dir = tempfile::tempdir().map_err(|e| TestDatabaseError::Setup(e.to_string()))?;
        let url = format!("sqlite://{}", dir.path().join("inbox.db").display());
        Ok(Self {
            url,
            cleanup: Cleanup::Folder(dir),
        })
    }

    /// A new, empty PostgreSQL database on the server `INBOX_TEST_DATABASE_URL` names.
    ///
    /// # Errors
    /// [`TestDatabaseError::NotConfigured`] without the variable; `Setup` when the server
    /// refuses.
    pub async fn postgres() -> Result<Self, TestDatabaseError> {
        let base = std::env::var(POSTGRES_URL_VAR).map_err(|_| TestDatabaseError::NotConfigured)?;
        let admin = PgConnectOptions::from_str(&base)
            .map_err(|e| TestDatabaseError::Setup(e.to_string()))?;
        let name = format!("inbox_test_{}", Uuid::now_v7().simple());
        let setup = |e: sqlx::Error| TestDatabaseError::Setup(e.to_string());
        let mut conn = PgConnection::connect_with(&admin).await.map_err(setup)?;
        let template = migrated_template(&mut conn, &base).await?;
        sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .execute(&mut conn)
            .await
            .map_err(setup)?;
        drop(conn.close().await);
        let url = with_database(&base, &name);
        Ok(Self {
            url,
            cleanup: Cleanup::Postgres {
                admin: Box::new(admin),
                name,
            },
        })
    }

    /// The database's URL, for `inbox_store::open` or `INBOX_DATABASE_URL`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// The name of a database holding every migration of this build, for test databases to be
/// copied from: `CREATE DATABASE ... TEMPLATE` copies files, where running the migrations anew
/// took half a second per test. Built once (under an advisory lock, so concurrent tests and
/// test binaries wait for one builder) and marked `IS_TEMPLATE` only when complete, so a build
/// cut short is rebuilt. Its name hashes the server URL given (CI makes a fresh database per
/// run, so a run never reuses an earlier run's template) and every migration's checksum (a
/// changed migration gets a template of its own).
async fn migrated_template(
    conn: &mut PgConnection,
    base: &str,
) -> Result<String, TestDatabaseError> {
    use sha2::{Digest, Sha256};
    let setup = |e: sqlx::Error| TestDatabaseError::Setup(e.to_string());
    let mut hash = Sha256::new();
    hash.update(base.as_bytes());
    for migration in crate::postgres::MIGRATOR.iter() {
        hash.update(migration.version.to_le_bytes());
        hash.update(&*migration.checksum);
    }
    let template = format!("inbox_template_{}", &hex::encode(hash.finalize())[..16]);
    // Any 64-bit key of our own; the template's name makes it specific.
    sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
        .bind(&template)
        .execute(&mut *conn)
        .await
        .map_err(setup)?;
    let built = async {
        let complete: Option<bool> =
            sqlx::query_scalar("SELECT datistemplate FROM pg_database WHERE datname = $1")
                .bind(&template)
                .fetch_optional(&mut *conn)
                .await
                .map_err(setup)?;
        if complete == Some(true) {
            return Ok(());
        }
        if complete == Some(false) {
            sqlx::query(&format!("DROP DATABASE {template} WITH (FORCE)"))
                .execute(&mut *conn)
                .await
                .map_err(setup)?;
        }
        sqlx::query(&format!("CREATE DATABASE {template}"))
            .execute(&mut *conn)
            .await
            .map_err(setup)?;
        let options = PgConnectOptions::from_str(&with_database(base, &template))
            .map_err(|e| TestDatabaseError::Setup(e.to_string()))?;
        let mut migrating = PgConnection::connect_with(&options).await.map_err(setup)?;
        crate::postgres::MIGRATOR
            .run(&mut migrating)
            .await
            .map_err(|e| TestDatabaseError::Setup(e.to_string()))?;
        migrating.close().await.map_err(setup)?;
        sqlx::query(&format!("ALTER DATABASE {template} WITH IS_TEMPLATE true"))
            .execute(&mut *conn)
            .await
            .map_err(setup)?;
        Ok(())
    }
    .await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
        .bind(&template)
        .execute(&mut *conn)
        .await
        .map_err(setup);
    built.and(unlocked.map(drop)).map(|()| template)
}

/// Replaces (or adds) the database name in a PostgreSQL URL, keeping the query string.
fn with_database(base: &str, name: &str) -> String {
    let (without_query, query) = base
        .split_once('?')
        .map_or((base, None), |(a, b)| (a, Some(b)));
    let scheme_end = without_query.find("://").map_or(0, |i| i + 3);
    let host_end = without_query[scheme_end..]
        .find('/')
        .map_or(without_query.len(), |i| scheme_end + i);
    let mut url = format!("{}/{name}", &without_query[..host_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Cleanup::Postgres { admin, name } = &self.cleanup else {
            return;
        };
        let admin = (**admin).clone();
        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        // Drop cannot await, and may run inside a runtime: drop on a thread of its own.
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect_with(&admin).await {
                    drop(sqlx::query(&sql).execute(&mut conn).await);
                }
            });
        });
        drop(dropper.join());
    }
}

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary folder.
    Sqlite,
    /// A fresh PostgreSQL database on `INBOX_TEST_DATABASE_URL`.
    Postgres,
}

impl TestDatabase {
    /// A fresh database of `backend` for `test`, or `None` when PostgreSQL is skipped on a
    /// developer machine without it (never on CI: see [`postgres_or_skip`]).
    ///
    /// # Panics
    /// When the temporary folder cannot be made, or as [`postgres_or_skip`] does.
    #[allow(clippy::panic)]
    pub async fn fresh(backend: Backend, test: &str) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(
                Self::sqlite().unwrap_or_else(|e| panic!("{test}: a SQLite test database: {e}")),
            ),
            Backend::Postgres => postgres_or_skip(test).await,
        }
    }
}

/// What a test declared with [`on_both_backends!`](crate::on_both_backends) receives: whatever
/// the suite builds over a fresh database (a store, a harness, a running binary's
/// environment).
pub trait OnBackend: Sized {
    /// The fixture over `db`, a fresh database of `backend`; it keeps `db` (dropping it removes
    /// the database).
    fn over(db: TestDatabase, backend: Backend) -> impl std::future::Future<Output = Self>;
}

/// The fixture a test of [`on_both_backends!`](crate::on_both_backends) runs with, or `None`
/// (said loudly) when PostgreSQL is skipped on a machine without it. Used by the macro.
pub async fn fixture<F: OnBackend>(backend: Backend, test: &str) -> Option<F> {
    let db = TestDatabase::fresh(backend, test).await?;
    Some(F::over(db, backend).await)
}

/// Declares async test bodies once and runs each as a test on SQLite (`on_sqlite::<name>`) and
/// on PostgreSQL (`on_postgres::<name>`). The one "on both backends" helper of every suite.
///
/// ```text
/// inbox_store::on_both_backends!(crate::Harness; ingest::stores_once, lists_in_order);
/// inbox_store::on_both_backends!(crate::Harness, current_thread; ingest::stores_once);
/// ```
///
/// The first argument is the fixture type (an [`OnBackend`](crate::testing::OnBackend), named
/// by a path that resolves from a child module, e.g. `crate::Harness`); each test body is an
/// `async fn(fixture)` named by its path from the calling module. Tests run on a multi-thread
/// runtime with 2 workers unless `current_thread` is given. On PostgreSQL a test skips loudly
/// without `INBOX_TEST_DATABASE_URL`, and fails instead when `CI` is set.
#[macro_export]
macro_rules! on_both_backends {
    ($fixture:ty, current_thread; $($tests:tt)*) => {
        $crate::on_both_backends!(@backends [flavor = "current_thread"] $fixture; $($tests)*);
    };
    ($fixture:ty; $($tests:tt)*) => {
        $crate::on_both_backends!(
            @backends [flavor = "multi_thread", worker_threads = 2] $fixture; $($tests)*
        );
    };
    (@backends $runtime:tt $fixture:ty; $($($segment:ident)::+),* $(,)?) => {
        mod on_sqlite {
            $($crate::on_both_backends!(@test $runtime Sqlite $fixture; [] $($segment)+);)*
        }
        mod on_postgres {
            $($crate::on_both_backends!(@test $runtime Postgres $fixture; [] $($segment)+);)*
        }
    };
    // A test's path is read one segment at a time: its last segment names the test.
    (@test $runtime:tt $backend:ident $fixture:ty; [$($path:ident)*] $segment:ident $($rest:ident)+) => {
        $crate::on_both_backends!(@test $runtime $backend $fixture; [$($path)* $segment] $($rest)+);
    };
    (@test [$($runtime:tt)*] $backend:ident $fixture:ty; [$($path:ident)*] $test:ident) => {
        #[::tokio::test($($runtime)*)]
        async fn $test() {
            if let Some(fixture) = $crate::testing::fixture::<$fixture>(
                $crate::testing::Backend::$backend,
                stringify!($test),
            )
            .await
            {
                super::$($path::)*$test(fixture).await;
            }
        }
    };
}

/// A fresh PostgreSQL database for a test, or `None` (with a loud message) on a developer machine
/// without `INBOX_TEST_DATABASE_URL`. On CI (`CI` set) a missing PostgreSQL is a failure.
///
/// # Panics
/// On CI without `INBOX_TEST_DATABASE_URL`, and whenever the server refuses to create a database.
#[allow(clippy::panic)]
pub async fn postgres_or_skip(test: &str) -> Option<TestDatabase> {
    match TestDatabase::postgres().await {
        Ok(db) => Some(db),
        Err(TestDatabaseError::NotConfigured) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "\n!!! SKIPPED {test} on PostgreSQL: {POSTGRES_URL_VAR} is not set.\n\
                 !!! Set it (e.g. postgres://postgres@127.0.0.1:5432/test) to run the PostgreSQL half of the suite.\n"
            );
            None
        }
        Err(e) => panic!("{test}: PostgreSQL is required here: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn swaps_the_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://127.0.0.1", "x"),
            "postgres://127.0.0.1/x"
        );
        assert_eq!(
            with_database("postgres://h/test?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}
