//! Telling readers of the event log that it grew: at once for commits in this process, by a
//! coalesced PostgreSQL `NOTIFY` for other processes, and on SQLite, where another process (the
//! webhook binary) may write the same file without a way to say so, by a short poll of the
//! database's change counter.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use inbox_domain::event::ChangeToken;
use sqlx::postgres::PgListener;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, PgPool};
use tokio::sync::{Notify, watch};

/// The channel every process listens on. Notifications carry no payload: a listener only learns
/// "read the log".
pub(crate) const CHANNEL: &str = "inbox_events";

/// At most one `NOTIFY` per this interval: bursts of commits become one wake-up per listener.
const NOTIFY_COALESCE: Duration = Duration::from_millis(3);

/// How often SQLite readers look for commits made by other processes. Each look is one
/// `PRAGMA data_version` on a connection of its own, which reads a counter in shared memory and
/// touches no page: cheap enough to do often, so a commit in another process reaches live streams
/// within a few milliseconds, and an idle process reads the log only when something committed.
const SQLITE_POLL: Duration = Duration::from_millis(10);

/// On PostgreSQL, a safety net: an event settles only when every older transaction has ended,
/// and the transaction that ends last may write no event and so send no NOTIFY.
const POSTGRES_RECHECK: Duration = Duration::from_millis(250);

/// After a lost PostgreSQL listener connection (or SQLite watcher connection), how long to wait
/// before reconnecting.
const RELISTEN_BACKOFF: Duration = Duration::from_millis(500);

/// How other processes learn of commits, per backend.
#[derive(Clone)]
pub(crate) enum Remote {
    /// Poll the change counter of the SQLite database these options open: SQLite cannot notify
    /// across processes.
    Sqlite(Box<SqliteConnectOptions>),
    /// LISTEN/NOTIFY on this pool's server.
    Postgres(PgPool),
}

/// The change feed of one store.
pub(crate) struct Changes {
    version: watch::Sender<u64>,
    remote: Remote,
    /// Wakes the task that sends the coalesced NOTIFY.
    pending_notify: Arc<Notify>,
    /// Background tasks start on first use, so admin commands never open a listener.
    started: OnceLock<()>,
}

impl Changes {
    pub(crate) fn new(remote: Remote) -> Self {
        Self {
            version: watch::Sender::new(0),
            remote,
            pending_notify: Arc::new(Notify::new()),
            started: OnceLock::new(),
        }
    }

    /// Records that a transaction that appended events has committed. Call after the commit,
    /// never inside the transaction: a NOTIFY inside it holds a global lock across the commit's
    /// flush, which halves write throughput.
    pub(crate) fn committed(&self) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
        if matches!(self.remote, Remote::Postgres(_)) {
            self.start();
            self.pending_notify.notify_one();
        }
    }

    /// Waits for a change after `seen`; see `EventLog::wait_for_change`.
    pub(crate) async fn wait(&self, seen: ChangeToken) -> ChangeToken {
        self.start();
        let mut rx = self.version.subscribe();
        loop {
            let now = *rx.borrow_and_update();
            if now != seen.0 {
                return ChangeToken(now);
            }
            if rx.changed().await.is_err() {
                return ChangeToken(now);
            }
        }
    }

    fn start(&self) {
        self.started.get_or_init(|| match &self.remote {
            Remote::Sqlite(options) => {
                tokio::spawn(watch_data_version(
                    (**options).clone(),
                    self.version.clone(),
                ));
            }
            Remote::Postgres(pool) => {
                tokio::spawn(tick(self.version.clone(), POSTGRES_RECHECK));
                tokio::spawn(listen(pool.clone(), self.version.clone()));
                tokio::spawn(send_notifications(
                    pool.clone(),
                    Arc::clone(&self.pending_notify),
                ));
            }
        });
    }
}

/// Counts a change every `period`, prompting readers to look.
async fn tick(version: watch::Sender<u64>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        version.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// Counts a change whenever SQLite's `data_version` moves: it changes on a connection when any
/// other connection (of this process or another) commits.
async fn watch_data_version(options: SqliteConnectOptions, version: watch::Sender<u64>) {
    let mut tick = tokio::time::interval(SQLITE_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut watcher: Option<(SqliteConnection, i64)> = None;
    loop {
        tick.tick().await;
        let looked = match watcher.as_mut() {
            Some((conn, seen)) => data_version(conn).await.map(|now| {
                if now != *seen {
                    *seen = now;
                    version.send_modify(|v| *v = v.wrapping_add(1));
                }
            }),
            None => match options.connect().await {
                Ok(mut conn) => data_version(&mut conn).await.map(|now| {
                    watcher = Some((conn, now));
                    // Anything committed while nobody was watching is found by this re-read.
                    version.send_modify(|v| *v = v.wrapping_add(1));
                }),
                Err(e) => Err(e),
            },
        };
        if let Err(e) = looked {
            tracing::warn!(error = %e, "cannot watch the SQLite database for commits; retrying");
            watcher = None;
            // Readers look anyway, so a lost watcher delays events instead of losing them.
            version.send_modify(|v| *v = v.wrapping_add(1));
            tokio::time::sleep(RELISTEN_BACKOFF).await;
        }
    }
}

async fn data_version(conn: &mut SqliteConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("PRAGMA data_version")
        .fetch_one(conn)
        .await
}

/// Holds one LISTEN connection for the process and turns each notification into a change.
async fn listen(pool: PgPool, version: watch::Sender<u64>) {
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %e, "cannot LISTEN for event-log changes");
                } else {
                    // Anything committed while we were not listening is found by this re-read.
                    version.send_modify(|v| *v = v.wrapping_add(1));
                    while let Ok(_notification) = listener.recv().await {
                        version.send_modify(|v| *v = v.wrapping_add(1));
                    }
                    tracing::warn!("event-log listener connection lost; reconnecting");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot open the event-log listener; retrying"),
        }
        tokio::time::sleep(RELISTEN_BACKOFF).await;
    }
}

/// Sends at most one NOTIFY per coalescing interval while commits keep coming.
async fn send_notifications(pool: PgPool, pending: Arc<Notify>) {
    loop {
        pending.notified().await;
        if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&pool)
            .await
        {
            tracing::warn!(error = %e, "cannot notify other processes of new events");
        }
        tokio::time::sleep(NOTIFY_COALESCE).await;
    }
}
