//! Retention of the intake's own records, in the background of both binaries: processed and
//! ignored webhook deliveries after `INBOX_DELIVERY_RETENTION_DAYS` (30), failed ones after 90
//! days unless replayed, statuses kept for wamids that never arrived after 7 days.
//!
//! Pruning deletes small batches, one statement each, yielding between them, so that it never
//! holds the writer (SQLite) or many row locks (PostgreSQL) for long; the first run waits one
//! period after start, so a fleet restarting at once does not prune at once.

use std::sync::Arc;
use std::time::Duration;

use inbox_domain::Timestamp;
use inbox_domain::ports::{DeliveryRepository, Repository, StoreError};

/// How long each kind of record is kept, and how pruning runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Processed and ignored deliveries.
    pub deliveries: Duration,
    /// Failed deliveries (until replayed; a replayed one is processed).
    pub failed_deliveries: Duration,
    /// Statuses kept for a wamid with no message.
    pub pending_statuses: Duration,
    /// Time between runs, and before the first.
    pub every: Duration,
    /// Rows per statement.
    pub batch: u32,
}

const DAY: Duration = Duration::from_secs(86_400);

impl RetentionSettings {
    /// The defaults, with processed deliveries kept `delivery_days` days.
    #[must_use]
    pub fn with_delivery_days(delivery_days: u32) -> Self {
        Self {
            deliveries: DAY * delivery_days,
            failed_deliveries: DAY * 90,
            pending_statuses: DAY * 7,
            every: Duration::from_secs(3_600),
            batch: 500,
        }
    }
}

/// What one run deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Webhook deliveries.
    pub deliveries: u64,
    /// Parked statuses.
    pub pending_statuses: u64,
}

fn before(now: Timestamp, age: Duration) -> Timestamp {
    let millis = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_millis(now.as_millis().saturating_sub(millis))
}

/// Deletes everything past retention at `now`, batch by batch.
///
/// # Errors
/// The first failing batch's error; what earlier batches deleted stays deleted.
pub async fn prune_once<R>(
    repo: &R,
    settings: &RetentionSettings,
    now: Timestamp,
) -> Result<Pruned, StoreError>
where
    R: DeliveryRepository + ?Sized,
{
    let batch = settings.batch.max(1);
    let mut pruned = Pruned::default();
    loop {
        let n = repo
            .prune_deliveries(
                before(now, settings.deliveries),
                before(now, settings.failed_deliveries),
                batch,
            )
            .await?;
        pruned.deliveries += n;
        if n < u64::from(batch) {
            break;
        }
        tokio::task::yield_now().await;
    }
    loop {
        let n = repo
            .prune_pending_statuses(before(now, settings.pending_statuses), batch)
            .await?;
        pruned.pending_statuses += n;
        if n < u64::from(batch) {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(pruned)
}

/// Prunes every `settings.every`, the first time one period after start.
pub fn spawn_retention(
    repo: Arc<dyn Repository>,
    settings: RetentionSettings,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = settings.every.max(Duration::from_secs(1));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match prune_once(repo.as_ref(), &settings, Timestamp::now()).await {
                Ok(Pruned {
                    deliveries: 0,
                    pending_statuses: 0,
                }) => {}
                Ok(pruned) => tracing::info!(
                    deliveries = pruned.deliveries,
                    pending_statuses = pruned.pending_statuses,
                    "pruned intake records past retention"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot prune intake records"),
            }
        }
    })
}
