//! The SQLite backend: a single writer connection and a pool of read-only readers, over WAL.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Sqlite};

use crate::changes::{Changes, Remote};
use crate::crypto::{SecretCipher, SecretKey};
use crate::{OpenError, Store};

/// Migrations for SQLite, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite store.
pub type SqliteStore = Store<Sqlite>;

/// Readers beside the writer; WAL lets them run concurrently with it.
const READERS: u32 = 4;

/// Opens (creating if missing) and migrates a SQLite database.
///
/// # Errors
/// See [`OpenError`].
pub async fn open(url: &str, key: &SecretKey) -> Result<SqliteStore, OpenError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| OpenError::Connect {
            reason: e.to_string(),
        })?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // An acknowledged webhook must survive a power cut: FULL syncs the WAL on every commit.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5))
        // A statement this slow on an embedded database is a missing index or a bad plan:
        // say which one.
        .log_slow_statements(log::LevelFilter::Warn, Duration::from_millis(20));
    if let Some(folder) = options
        .get_filename()
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(folder).map_err(|source| OpenError::Folder {
            path: folder.display().to_string(),
            source,
        })?;
    }
    // No ping before handing out a connection: on SQLite it is a round trip through the
    // connection's worker thread that can only fail when the file itself is gone, and on the
    // one writer it was one more wait per write transaction.
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await
        .map_err(|e| OpenError::Connect {
            reason: e.to_string(),
        })?;
    MIGRATOR
        .run(&write)
        .await
        .map_err(|e| OpenError::Migrate(e.to_string()))?;
    let options = options.read_only(true);
    let read = SqlitePoolOptions::new()
        .max_connections(READERS)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await
        .map_err(|e| OpenError::Connect {
            reason: e.to_string(),
        })?;
    Ok(Store {
        read,
        write,
        cipher: SecretCipher::new(key),
        group_commit: crate::group_commit::GroupCommit::default(),
        changes: Arc::new(Changes::new(Remote::Sqlite(Box::new(options)))),
    })
}
