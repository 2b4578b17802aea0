//! Group commit of ingest units on SQLite's single writer.
//!
//! A durable SQLite commit syncs the WAL, and the one writer connection does nothing else
//! meanwhile; so when deliveries queue for the writer, they share one transaction: each unit
//! runs in a savepoint of the open batch transaction (so a unit that fails or is abandoned rolls
//! back alone), and the batch commits when no other unit is waiting to join it. Every unit's
//! `commit` returns only after the batch's COMMIT, with its result: nothing is acknowledged
//! before it is durable, and a batch that fails to commit fails every unit in it.
//!
//! Units take the batch in turn behind a fair (FIFO) lock. The unit that finds nobody queued
//! behind it commits at once (a lone delivery waits for nobody); otherwise it leaves the commit
//! to a committer task that queues for the lock behind the units already waiting, so the batch
//! is committed even if those units are cancelled, and units arriving later start the next one.

use std::collections::HashSet;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use inbox_domain::ports::StoreError;
use sqlx::{Sqlite, SqliteConnection};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};
use uuid::Uuid;

use crate::Store;
use crate::changes::Changes;
use crate::error::from_sqlx;

/// The batch transaction of one SQLite store, and who waits for it.
#[derive(Clone, Default)]
pub(crate) struct GroupCommit {
    batch: Arc<Mutex<Batch>>,
    /// Units and committer tasks waiting for the lock.
    queued: Arc<AtomicUsize>,
}

#[derive(Default)]
struct Batch {
    tx: Option<sqlx::Transaction<'static, Sqlite>>,
    /// Savepoints handed out in this batch, for unique names.
    savepoints: u64,
    /// A savepoint whose unit was abandoned after sending statements: rolled back before
    /// anything else runs in the batch.
    rollback_to: Option<String>,
    /// Units whose writes are in the batch, waiting for its commit.
    waiting: Vec<oneshot::Sender<Result<(), StoreError>>>,
    /// Whether a unit in the batch appended events (readers are told after commit).
    appended_events: bool,
    /// Whether a committer task is queued for this batch.
    committer: bool,
    /// Deliveries inserted in this batch (not committed yet).
    deliveries: HashSet<Uuid>,
}

/// Counts a waiter for the lock while it waits, even if it is cancelled meanwhile.
struct Queued(Arc<AtomicUsize>);

impl Queued {
    fn new(queued: &Arc<AtomicUsize>) -> Self {
        queued.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(queued))
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A hold on the SQLite writer's batch lock, taken in turn like a unit (for tests that need to
/// stop the writer at a known point).
#[cfg(feature = "testing")]
pub struct WriterHold {
    _batch: OwnedMutexGuard<Batch>,
}

impl GroupCommit {
    /// Units and committers waiting for the writer.
    #[cfg(feature = "testing")]
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Waits for the writer in turn, as a unit does, and holds it until the hold is dropped.
    #[cfg(feature = "testing")]
    pub(crate) async fn hold(&self) -> WriterHold {
        let queued = Queued::new(&self.queued);
        let batch = Arc::clone(&self.batch).lock_owned().await;
        drop(queued);
        WriterHold { _batch: batch }
    }

    /// Joins the open batch, or opens one. Returns the member and the statement to send first
    /// (its savepoint), which the unit sends together with its first statement.
    pub(crate) async fn join(&self, store: &Store<Sqlite>) -> Result<(Member, String), StoreError> {
        let queued = Queued::new(&self.queued);
        let mut batch = Arc::clone(&self.batch).lock_owned().await;
        drop(queued);
        batch.settle().await;
        if batch.tx.is_none() {
            batch.tx = Some(store.begin_write().await?);
        }
        batch.savepoints += 1;
        let savepoint = format!("ingest_{}", batch.savepoints);
        let first = format!("SAVEPOINT {savepoint}");
        Ok((
            Member {
                batch: Some(batch),
                savepoint,
                sent: false,
                group: self.clone(),
            },
            first,
        ))
    }
}

impl Batch {
    fn conn(&mut self) -> Option<&mut SqliteConnection> {
        self.tx.as_deref_mut()
    }

    /// Rolls back an abandoned unit's savepoint. When that fails, nothing in the batch can be
    /// trusted: it is rolled back whole and its waiting units fail.
    async fn settle(&mut self) {
        let Some(savepoint) = self.rollback_to.take() else {
            return;
        };
        let rolled_back = match self.conn() {
            Some(conn) => sqlx::query(&format!("ROLLBACK TO {savepoint}"))
                .execute(conn)
                .await
                .map(drop)
                .map_err(from_sqlx),
            None => Ok(()),
        };
        if let Err(error) = rolled_back {
            tracing::error!(error = %error, "ingest: cannot roll back an abandoned delivery; failing its batch");
            self.abandon(&error);
        }
    }

    /// Rolls the whole batch back (by dropping its transaction) and fails its waiting units.
    fn abandon(&mut self, error: &StoreError) {
        self.tx = None;
        for waiter in self.waiting.drain(..) {
            let _ = waiter.send(Err(error.clone()));
        }
        self.reset();
    }

    /// Commits the batch and tells every unit in it the result.
    async fn commit(&mut self, changes: &Changes) {
        self.settle().await;
        let result = match self.tx.take() {
            Some(tx) => tx.commit().await.map_err(from_sqlx),
            None => Err(StoreError::Internal(
                "the ingest batch was rolled back".into(),
            )),
        };
        if result.is_ok() && self.appended_events {
            changes.committed();
        }
        for waiter in self.waiting.drain(..) {
            let _ = waiter.send(result.clone());
        }
        self.reset();
    }

    fn reset(&mut self) {
        self.savepoints = 0;
        self.rollback_to = None;
        self.appended_events = false;
        self.committer = false;
        self.deliveries.clear();
    }
}

/// One unit's place in the batch: its savepoint, and the batch itself while the unit runs.
pub(crate) struct Member {
    batch: Option<OwnedMutexGuard<Batch>>,
    savepoint: String,
    /// Whether any statement of the unit may have run.
    sent: bool,
    group: GroupCommit,
}

impl Member {
    /// Records that the unit is sending statements.
    pub(crate) fn sending(&mut self) {
        self.sent = true;
    }

    /// Records that the unit inserted this delivery in the batch.
    pub(crate) fn inserted_delivery(&mut self, id: Uuid) {
        if let Some(batch) = self.batch.as_mut() {
            batch.deliveries.insert(id);
        }
    }

    /// Whether a delivery of this batch may be uncommitted (some unit inserted one).
    pub(crate) fn batch_has_deliveries(&self) -> bool {
        self.batch
            .as_ref()
            .is_some_and(|b| !b.deliveries.is_empty())
    }

    /// Whether this delivery was inserted in the batch, so is not committed yet.
    pub(crate) fn batch_inserted(&self, id: Uuid) -> bool {
        self.batch
            .as_ref()
            .is_some_and(|b| b.deliveries.contains(&id))
    }

    /// Rolls this unit's writes back and commits the rest of the batch now, telling its units
    /// the result; the unit can then only be dropped. A repeat of a delivery still in the batch
    /// does this before it is answered, so that its answer follows the original's outcome.
    pub(crate) async fn commit_others(&mut self, changes: &Changes) {
        if let Some(batch) = self.batch.as_mut() {
            if self.sent {
                batch.rollback_to = Some(self.savepoint.clone());
            }
            batch.commit(changes).await;
        }
    }

    /// Puts the unit's writes into the batch and waits for the batch's commit.
    pub(crate) async fn commit(
        mut self,
        changes: &Arc<Changes>,
        appended_events: bool,
    ) -> Result<(), StoreError> {
        let Some(mut batch) = self.batch.take() else {
            return Err(StoreError::Internal("ingest unit already finished".into()));
        };
        let (tell, result) = oneshot::channel();
        batch.waiting.push(tell);
        batch.appended_events |= appended_events;
        if self.group.queued.load(Ordering::SeqCst) == 0 {
            batch.commit(changes).await;
        } else if !batch.committer {
            batch.committer = true;
            let queued = Queued::new(&self.group.queued);
            let lock = Arc::clone(&self.group.batch);
            let changes = Arc::clone(changes);
            tokio::spawn(async move {
                let mut batch = lock.lock_owned().await;
                drop(queued);
                batch.commit(&changes).await;
            });
        }
        drop(batch);
        result.await.unwrap_or_else(|_| {
            Err(StoreError::Internal(
                "the ingest batch ended without a result".into(),
            ))
        })
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        // Abandoned without committing (an error, or the request was cancelled).
        let Some(batch) = self.batch.as_mut() else {
            return;
        };
        if batch.waiting.is_empty() {
            // Nothing else in the batch: roll it all back now, which also hands the writer
            // connection back to other writers (a failed delivery is recorded through it).
            batch.tx = None;
            batch.reset();
        } else if self.sent {
            batch.rollback_to = Some(self.savepoint.clone());
        }
    }
}

impl Deref for Member {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match self.batch.as_ref().and_then(|b| b.tx.as_ref()) {
            Some(tx) => tx,
            None => unreachable!("a member holds the open batch until it finishes"),
        }
    }
}

impl DerefMut for Member {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self.batch.as_mut().and_then(|b| b.conn()) {
            Some(conn) => conn,
            None => unreachable!("a member holds the open batch until it finishes"),
        }
    }
}
