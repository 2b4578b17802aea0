//! The PostgreSQL backend: one pool for reads and writes.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{Connection, Postgres};

use crate::changes::{Changes, Remote};
use crate::crypto::{SecretCipher, SecretKey};
use crate::{OpenError, Store};

/// Migrations for PostgreSQL, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL store.
pub type PgStore = Store<Postgres>;

/// Sized for a 2-core machine: more connections than cores only adds context switches.
const POOL_SIZE: u32 = 8;

/// Connects to and migrates a PostgreSQL database. Concurrent starts are safe: sqlx serialises
/// migrations with an advisory lock.
///
/// # Errors
/// See [`OpenError`].
pub async fn open(url: &str, key: &SecretKey) -> Result<PgStore, OpenError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| OpenError::Connect {
            reason: e.to_string(),
        })?
        .application_name("inbox");
    // One direct attempt first: the pool would retry a refused connection until its acquire
    // timeout, and a wrong URL deserves an immediate, clear answer rather than a 10 s wait.
    PgConnection::connect_with(&options)
        .await
        .map_err(|e| OpenError::Connect {
            reason: e.to_string(),
        })?
        .close()
        .await
        .map_err(|e| OpenError::Connect {
            reason: e.to_string(),
        })?;
    // No ping before handing out a connection: it is a round trip on every acquire, a
    // tenth of a webhook delivery's. A connection the server dropped fails its next statement
    // instead, which answers `Unavailable` (503, so Kapso retries) and is not reused.
    // Waiting for a connection is bounded well inside Kapso's 10 s delivery timeout, so an
    // outage is answered 503 (retried) rather than timed out on Kapso's side.
    let pool = PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(|e| OpenError::Connect {
            reason: e.to_string(),
        })?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| OpenError::Migrate(e.to_string()))?;
    Ok(Store {
        read: pool.clone(),
        changes: Arc::new(Changes::new(Remote::Postgres(pool.clone()))),
        write: pool,
        cipher: SecretCipher::new(key),
        group_commit: crate::group_commit::GroupCommit::default(),
    })
}
