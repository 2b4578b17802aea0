//! The storage contract: every scenario is written once against the ports and run on SQLite and
//! on PostgreSQL, each in a database of its own.

mod identity;
mod workspaces;

use std::sync::Arc;

use inbox_domain::ports::Repository;
use inbox_store::testing::{TestDatabase, postgres_or_skip};
use inbox_store::{SecretKey, postgres, sqlite};

/// What a scenario gets: the ports, and raw SQL access for checking what is really stored.
pub struct Harness {
    /// Every port.
    pub repo: Arc<dyn Repository>,
    /// The same database, for raw inspection.
    pub raw: Raw,
    _db: TestDatabase,
}

/// Raw access to the backend under test.
pub enum Raw {
    /// SQLite's write pool.
    Sqlite(sqlx::SqlitePool),
    /// PostgreSQL's pool.
    Postgres(sqlx::PgPool),
}

impl Raw {
    /// Runs a query returning one optional blob.
    pub async fn blob(&self, sql: &str) -> Option<Vec<u8>> {
        match self {
            Self::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Self::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .expect("raw query")
    }
}

impl Harness {
    async fn sqlite() -> Self {
        let db = TestDatabase::sqlite().expect("temp dir");
        let store = sqlite::open(db.url(), &SecretKey::generate())
            .await
            .expect("open sqlite");
        Self {
            raw: Raw::Sqlite(store.write_pool().clone()),
            repo: Arc::new(store),
            _db: db,
        }
    }

    async fn postgres(test: &str) -> Option<Self> {
        let db = postgres_or_skip(test).await?;
        let store = postgres::open(db.url(), &SecretKey::generate())
            .await
            .expect("open postgres");
        Some(Self {
            raw: Raw::Postgres(store.write_pool().clone()),
            repo: Arc::new(store),
            _db: db,
        })
    }
}

/// Declares each scenario as a test on both backends.
macro_rules! contract {
    ($($module:ident :: $scenario:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $scenario() {
                    crate::$module::$scenario(crate::Harness::sqlite().await).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $scenario() {
                    if let Some(h) = crate::Harness::postgres(stringify!($scenario)).await {
                        crate::$module::$scenario(h).await;
                    }
                }
            )*
        }
    };
}

contract!(
    workspaces::create_and_find_by_slug_and_id,
    workspaces::slugs_are_unique,
    workspaces::secrets_are_encrypted_and_write_only,
    workspaces::phone_number_ids_are_unique,
    workspaces::patch_changes_only_what_it_names,
    identity::users_have_unique_emails,
    identity::memberships_are_unique_and_reference_real_rows,
    identity::memberships_are_listed_both_ways,
    identity::tokens_authenticate_until_revoked,
    identity::health_answers,
);
