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

/// Longest a serving connection's statement may run (a request times out at 30 s anyway).
const STATEMENT_TIMEOUT: &str = "30s";

/// Longest a serving connection may sit idle inside a transaction.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "60s";

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
    // One direct connection first: the pool would retry a refused connection until its acquire
    // timeout, and a wrong URL deserves an immediate, clear answer rather than a 5 s wait. It
    // also runs the migrations, free of the serving connections' statement timeout: building
    // an index on a large table may rightly take longer.
    let mut direct =
        PgConnection::connect_with(&options)
            .await
            .map_err(|e| OpenError::Connect {
                reason: e.to_string(),
            })?;
    MIGRATOR
        .run(&mut direct)
        .await
        .map_err(|e| OpenError::Migrate(e.to_string()))?;
    direct.close().await.map_err(|e| OpenError::Connect {
        reason: e.to_string(),
    })?;
    // Serving connections bound every statement, and end a transaction left idle (a stuck
    // client elsewhere must not hold locks, or hold back the live event log, indefinitely).
    let options = options.options([
        ("statement_timeout", STATEMENT_TIMEOUT),
        (
            "idle_in_transaction_session_timeout",
            IDLE_IN_TRANSACTION_TIMEOUT,
        ),
    ]);
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
    Ok(Store {
        read: pool.clone(),
        changes: Arc::new(Changes::new(Remote::Postgres(pool.clone()))),
        write: pool,
        cipher: SecretCipher::new(key),
        group_commit: crate::group_commit::GroupCommit::default(),
    })
}
