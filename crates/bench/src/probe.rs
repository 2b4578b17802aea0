//! Direct reads of the run's database, for the correctness checks: counts and invariants,
//! asked of the tables themselves rather than of the API under test.

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use std::str::FromStr;
use uuid::Uuid;

/// A small pool on the run's database.
pub enum Probe {
    /// SQLite, read-only.
    Sqlite(sqlx::SqlitePool),
    /// PostgreSQL.
    Postgres(sqlx::PgPool),
}

/// A bind value: both backends take the same SQL text with `$n` parameters.
#[derive(Clone, Debug)]
pub enum Arg {
    /// A UUID (BLOB on SQLite, UUID on PostgreSQL).
    Id(Uuid),
    /// Text.
    Text(String),
}

macro_rules! bound {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Arg::Id(id) => query.bind(*id),
                Arg::Text(text) => query.bind(text.clone()),
            };
        }
        query
    }};
}

impl Probe {
    /// Connects to `url`.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?.read_only(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(2)
                .connect_with(options)
                .await
                .context("opening the SQLite database for checks")?;
            Ok(Self::Sqlite(pool))
        } else {
            let pool = PgPoolOptions::new()
                .max_connections(2)
                .connect(url)
                .await
                .context("connecting to PostgreSQL for checks")?;
            Ok(Self::Postgres(pool))
        }
    }

    /// One integer (a `COUNT(*)` or a sum cast to integer).
    pub async fn int(&self, sql: &str, args: &[Arg]) -> anyhow::Result<i64> {
        let value = match self {
            Self::Sqlite(pool) => {
                bound!(sqlx::query_scalar::<_, i64>(sql), args)
                    .fetch_one(pool)
                    .await
            }
            Self::Postgres(pool) => {
                bound!(sqlx::query_scalar::<_, i64>(sql), args)
                    .fetch_one(pool)
                    .await
            }
        };
        value.with_context(|| format!("running {sql}"))
    }

    /// A column of text.
    pub async fn strings(&self, sql: &str, args: &[Arg]) -> anyhow::Result<Vec<String>> {
        let value = match self {
            Self::Sqlite(pool) => {
                bound!(sqlx::query_scalar::<_, String>(sql), args)
                    .fetch_all(pool)
                    .await
            }
            Self::Postgres(pool) => {
                bound!(sqlx::query_scalar::<_, String>(sql), args)
                    .fetch_all(pool)
                    .await
            }
        };
        value.with_context(|| format!("running {sql}"))
    }

    /// The query plan of `sql`, one line per step, for the report.
    pub async fn explain(&self, sql: &str, args: &[Arg]) -> anyhow::Result<Vec<String>> {
        match self {
            Self::Sqlite(pool) => {
                let text = format!("EXPLAIN QUERY PLAN {sql}");
                let rows: Vec<(i64, i64, i64, String)> =
                    bound!(sqlx::query_as(&text), args).fetch_all(pool).await?;
                Ok(rows.into_iter().map(|r| r.3).collect())
            }
            Self::Postgres(pool) => {
                let text = format!("EXPLAIN (ANALYZE, BUFFERS) {sql}");
                let rows: Vec<String> = bound!(sqlx::query_scalar(&text), args)
                    .fetch_all(pool)
                    .await?;
                Ok(rows)
            }
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}
