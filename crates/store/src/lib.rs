//! sqlx adapters for the Inbox storage ports, on SQLite (the embedded default) and PostgreSQL.
//!
//! [`open`] picks the backend by URL scheme, connects, runs the embedded migrations of that
//! backend, and returns every port behind one `Arc<dyn Repository>`. Both backends run the same
//! SQL text (positional `$n` parameters, `ON CONFLICT`, `RETURNING`, Unix-millisecond
//! timestamps), written once per port in a macro instantiated for each backend; what differs
//! (pools, pragmas, migrations, identity columns) lives in [`sqlite`] and [`postgres`].

#[cfg(feature = "bulk")]
pub mod bulk;
mod changes;
mod contacts;
mod conversations;
mod crypto;
mod deliveries;
mod error;
mod event_log;
mod events;
mod group_commit;
mod health;
mod identity;
mod ingest;
pub mod postgres;
mod query;
mod rows;
#[cfg(feature = "testing")]
mod seed;
mod sending;
mod snapshots;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
mod workspaces;

use std::sync::Arc;

use inbox_domain::ports::Repository;

use crate::changes::Changes;
use crate::crypto::SecretCipher;
pub use crate::crypto::{InvalidSecretKey, SecretKey};
pub use crate::query::SEARCH_SCAN_ROWS;

/// A database behind the ports, generic over the sqlx driver.
///
/// Reads go to `read`, writes to `write`. On PostgreSQL both are the same pool; on SQLite
/// `write` is a single connection (SQLite has one writer; queuing writers in the pool is cheaper
/// and fairer than letting them spin on the busy timeout) and `read` a pool of read-only
/// connections, which WAL lets run beside the writer.
pub struct Store<DB: sqlx::Database> {
    read: sqlx::Pool<DB>,
    write: sqlx::Pool<DB>,
    cipher: SecretCipher,
    changes: Arc<Changes>,
    /// Ingest's batch transaction on the SQLite writer (unused on PostgreSQL).
    group_commit: group_commit::GroupCommit,
}

impl<DB: sqlx::Database> Clone for Store<DB> {
    fn clone(&self) -> Self {
        Self {
            read: self.read.clone(),
            write: self.write.clone(),
            cipher: self.cipher.clone(),
            changes: Arc::clone(&self.changes),
            group_commit: self.group_commit.clone(),
        }
    }
}

impl<DB: sqlx::Database> Store<DB> {
    /// The pool that serves reads.
    #[must_use]
    pub fn read_pool(&self) -> &sqlx::Pool<DB> {
        &self.read
    }

    /// The pool that serves writes.
    #[must_use]
    pub fn write_pool(&self) -> &sqlx::Pool<DB> {
        &self.write
    }

    /// Begins a write transaction on the writer (see [`events::Dialect::BEGIN_WRITE`]).
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, DB>, inbox_domain::ports::StoreError>
    where
        DB: events::Dialect,
    {
        self.write
            .begin_with(DB::BEGIN_WRITE)
            .await
            .map_err(crate::error::from_sqlx)
    }

    /// Commits a transaction that appended events, then tells readers of the log (in this
    /// process at once, in others by a coalesced notification). Every write port commits this way.
    pub(crate) async fn commit_events(
        &self,
        tx: sqlx::Transaction<'_, DB>,
    ) -> Result<(), inbox_domain::ports::StoreError> {
        tx.commit().await.map_err(crate::error::from_sqlx)?;
        self.changes.committed();
        Ok(())
    }

    /// Closes every connection, waiting for checked-out ones to come back.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite://path` or `sqlite:path`.
    Sqlite,
    /// `postgres://...` or `postgresql://...`.
    Postgres,
}

impl Backend {
    /// The backend a database URL names.
    ///
    /// # Errors
    /// [`OpenError::UnsupportedUrl`] for any other scheme.
    pub fn of_url(url: &str) -> Result<Self, OpenError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(OpenError::UnsupportedUrl)
        }
    }
}

/// Why the database could not be opened. Each message names the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL is neither SQLite nor PostgreSQL.
    #[error(
        "INBOX_DATABASE_URL must start with sqlite:// or postgres:// (for example sqlite://data/inbox.db)"
    )]
    UnsupportedUrl,
    /// The database did not accept a connection.
    #[error(
        "cannot connect to the database at INBOX_DATABASE_URL ({reason}); check the URL and that the server is running"
    )]
    Connect {
        /// The driver's explanation, without credentials.
        reason: String,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(String),
    /// The SQLite file's folder could not be created.
    #[error("cannot create the folder for the SQLite database {path}: {source}")]
    Folder {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Opens the database a URL names, migrates it, and returns every port.
///
/// # Errors
/// See [`OpenError`].
pub async fn open(url: &str, key: &SecretKey) -> Result<Arc<dyn Repository>, OpenError> {
    Ok(match Backend::of_url(url)? {
        Backend::Sqlite => Arc::new(sqlite::open(url, key).await?),
        Backend::Postgres => Arc::new(postgres::open(url, key).await?),
    })
}

/// Runs pending migrations only, without keeping the pools (for `inbox-api admin migrate`).
///
/// # Errors
/// See [`OpenError`].
pub async fn migrate(url: &str, key: &SecretKey) -> Result<(), OpenError> {
    match Backend::of_url(url)? {
        Backend::Sqlite => sqlite::open(url, key).await?.close().await,
        Backend::Postgres => postgres::open(url, key).await?.close().await,
    }
    Ok(())
}
