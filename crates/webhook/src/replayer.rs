//! The background replayer both binaries run: failed deliveries are replayed with exponential
//! backoff, a bounded number of times. Each attempt counts in the delivery's `attempts`
//! (`inbox-api admin deliveries list` shows it); one that has used them all stays `failed` for
//! an operator (`admin deliveries replay`) or for retention.
//!
//! A delivery fails for a reason that repeats (a transient one is answered 503 and retried by
//! the sender instead), but a later version, a fixed row or a changed setting may mend it; the
//! backoff keeps a delivery that never will from costing more than a few statements.

use std::sync::Arc;
use std::time::Duration;

use inbox_domain::Timestamp;
use inbox_domain::delivery::{Delivery, DeliveryFilter, DeliveryOutcome};
use inbox_domain::ingest::IngestOutcome;
use inbox_domain::ports::Repository;

use crate::replay::{REPLAY_BATCH, ReplayError, replay_delivery};

/// When failed deliveries are tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayPolicy {
    /// Attempts in all, the first (at arrival) included.
    pub max_attempts: i64,
    /// Wait after the first attempt; doubled after each further one.
    pub base: Duration,
    /// Longest wait.
    pub max: Duration,
    /// How often the replayer looks, and how long it waits before its first look.
    pub every: Duration,
}

impl Default for ReplayPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base: Duration::from_secs(60),
            max: Duration::from_secs(6 * 3_600),
            every: Duration::from_secs(60),
        }
    }
}

impl ReplayPolicy {
    /// Whether `delivery` is due for another attempt at `now`: failed, attempts left, and its
    /// last attempt `base * 2^(attempts - 1)` (at most `max`) ago or more.
    #[must_use]
    pub fn due(&self, delivery: &Delivery, now: Timestamp) -> bool {
        if delivery.outcome != DeliveryOutcome::Failed || delivery.attempts >= self.max_attempts {
            return false;
        }
        let doublings =
            u32::try_from(delivery.attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let wait = self.base.saturating_mul(1_u32 << doublings).min(self.max);
        let wait = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        let last = delivery.processed_at.unwrap_or(delivery.received_at);
        now.as_millis() >= last.as_millis().saturating_add(wait)
    }
}

/// Replays every failed delivery due at `now`, oldest first, and returns each one's outcome.
///
/// # Errors
/// When the database fails; deliveries replayed before that keep their new outcome.
pub async fn replay_due(
    repo: &dyn Repository,
    policy: &ReplayPolicy,
    now: Timestamp,
) -> Result<Vec<(inbox_domain::DeliveryId, IngestOutcome)>, ReplayError> {
    let failed = repo
        .deliveries(DeliveryFilter::Failed, REPLAY_BATCH)
        .await?;
    let mut outcomes = Vec::new();
    for delivery in failed.iter().filter(|d| policy.due(d, now)) {
        match replay_delivery(repo, delivery.id).await {
            Ok(outcome) => outcomes.push((delivery.id, outcome)),
            // Deleted meanwhile (retention, or another instance's replay and prune).
            Err(ReplayError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(outcomes)
}

/// Replays due deliveries every `policy.every`, the first time one period after start.
pub fn spawn_replayer(
    repo: Arc<dyn Repository>,
    policy: ReplayPolicy,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = policy.every.max(Duration::from_secs(1));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match replay_due(repo.as_ref(), &policy, Timestamp::now()).await {
                Ok(outcomes) if outcomes.is_empty() => {}
                Ok(outcomes) => {
                    let still_failed = outcomes
                        .iter()
                        .filter(|(_, o)| matches!(o, IngestOutcome::Failed(_)))
                        .count();
                    tracing::info!(
                        replayed = outcomes.len(),
                        still_failed,
                        "replayed failed deliveries"
                    );
                }
                Err(e) => tracing::warn!(error = %e, "cannot replay failed deliveries"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(attempts: i64, last: i64) -> Delivery {
        Delivery {
            id: inbox_domain::DeliveryId::new(),
            idempotency_key: None,
            event: None,
            workspace_id: None,
            phone_number_id: None,
            headers: serde_json::json!({}),
            body: Vec::new(),
            received_at: Timestamp::from_millis(0),
            outcome: DeliveryOutcome::Failed,
            error: None,
            processed_at: Some(Timestamp::from_millis(last)),
            attempts,
        }
    }

    #[test]
    fn failed_deliveries_are_due_after_a_doubling_wait_until_attempts_run_out() {
        let policy = ReplayPolicy::default();
        let minute = 60_000;
        let at = Timestamp::from_millis;
        // After the first attempt: one minute; then 2, 4, 8, 16.
        for (attempts, wait) in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 16)] {
            let d = failed(attempts, 1_000);
            assert!(!policy.due(&d, at(1_000 + wait * minute - 1)), "{attempts}");
            assert!(policy.due(&d, at(1_000 + wait * minute)), "{attempts}");
        }
        // Out of attempts: never again.
        assert!(!policy.due(&failed(6, 0), at(i64::MAX)));
        // The wait is capped.
        let capped = ReplayPolicy {
            max_attempts: 100,
            ..policy
        };
        assert!(capped.due(&failed(40, 0), at(6 * 3_600_000)));
        // Only failed ones.
        let processed = Delivery {
            outcome: DeliveryOutcome::Processed,
            ..failed(1, 0)
        };
        assert!(!policy.due(&processed, at(i64::MAX)));
    }
}
