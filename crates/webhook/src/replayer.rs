//! The background replayer: failed deliveries are applied again by themselves, with backoff,
//! a bounded number of times.
//!
//! A delivery is stored `failed` only when applying it failed in a way a retry would repeat
//! (transient database errors answer 503 and store nothing). Such a failure is usually a bug
//! or a shape the parser did not know, fixed by a deploy; so every process retries its failed
//! deliveries after `base`, then after twice as long each time up to `max_backoff`, until
//! `max_attempts`. What is still failed then waits for a person
//! (`inbox-api admin deliveries list --failed`, then `deliveries replay`). Replays are safe to
//! repeat and to run from several processes at once: wamids are stored once per workspace and
//! statuses only move forward.

use std::sync::Arc;
use std::time::Duration;

use inbox_domain::Timestamp;
use inbox_domain::delivery::{Delivery, DeliveryFilter};
use inbox_domain::ingest::IngestOutcome;
use inbox_domain::ports::{Repository, StoreError};

use crate::replay::{ReplayError, replay_delivery};

/// When and how often failed deliveries are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayPolicy {
    /// How often the replayer looks for due deliveries.
    pub poll: Duration,
    /// The wait before the first retry; it doubles with each attempt.
    pub base: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// Attempts (the first one included) after which a delivery is left to a person.
    pub max_attempts: u32,
}

impl Default for ReplayPolicy {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(30),
            base: Duration::from_secs(60),
            max_backoff: Duration::from_secs(3600),
            max_attempts: 8,
        }
    }
}

/// Deliveries looked at per poll.
const BATCH: u32 = 100;

impl ReplayPolicy {
    /// Whether `delivery` is due for another attempt at `now`.
    #[must_use]
    pub fn is_due(&self, delivery: &Delivery, now: Timestamp) -> bool {
        let attempts = u32::try_from(delivery.attempts.max(0)).unwrap_or(u32::MAX);
        if attempts >= self.max_attempts {
            return false;
        }
        let last = delivery.processed_at.unwrap_or(delivery.received_at);
        let wait = self
            .base
            .saturating_mul(1_u32 << attempts.min(20))
            .min(self.max_backoff);
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        now.as_millis() >= last.as_millis().saturating_add(wait_ms)
    }
}

/// Replays every failed delivery that is due at `now` (at most one batch); returns how many
/// were replayed and how many of those are now stored.
///
/// # Errors
/// When the database fails; deliveries replayed before that keep their new outcome.
pub async fn replay_due(
    repo: &dyn Repository,
    policy: &ReplayPolicy,
    now: Timestamp,
) -> Result<(usize, usize), StoreError> {
    let candidates = repo
        .deliveries(
            DeliveryFilter::Retryable {
                max_attempts: policy.max_attempts,
            },
            BATCH,
        )
        .await?;
    let (mut replayed, mut recovered) = (0, 0);
    for delivery in candidates.iter().filter(|d| policy.is_due(d, now)) {
        match replay_delivery(repo, delivery.id).await {
            Ok(outcome) => {
                replayed += 1;
                if !matches!(outcome, IngestOutcome::Failed(_)) {
                    recovered += 1;
                }
            }
            // Replayed meanwhile by another process and pruned, or gone: nothing to do.
            Err(ReplayError::NotFound(_)) => {}
            Err(ReplayError::Store(e)) => return Err(e),
        }
    }
    Ok((replayed, recovered))
}

/// Runs [`replay_due`] every `policy.poll`, starting one poll after start-up (never at the
/// instant of start-up, when every process of a deploy starts at once).
pub fn spawn_replayer(repo: Arc<dyn Repository>, policy: ReplayPolicy) {
    tokio::spawn(async move {
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + policy.poll, policy.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match replay_due(&*repo, &policy, Timestamp::now()).await {
                Ok((0, _)) => {}
                Ok((replayed, recovered)) => {
                    tracing::info!(replayed, recovered, "replayed failed deliveries");
                }
                Err(e) => tracing::warn!(error = %e, "cannot replay failed deliveries"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use inbox_domain::DeliveryId;
    use inbox_domain::delivery::DeliveryOutcome;

    use super::*;

    fn failed(attempts: i64, last_ms: i64) -> Delivery {
        Delivery {
            id: DeliveryId::new(),
            idempotency_key: None,
            event: None,
            workspace_id: None,
            phone_number_id: None,
            headers: serde_json::json!({}),
            body: Vec::new(),
            received_at: Timestamp::from_millis(0),
            outcome: DeliveryOutcome::Failed,
            error: None,
            processed_at: Some(Timestamp::from_millis(last_ms)),
            attempts,
        }
    }

    #[test]
    fn retries_back_off_and_stop() {
        let policy = ReplayPolicy {
            base: Duration::from_secs(60),
            max_backoff: Duration::from_secs(600),
            max_attempts: 5,
            ..ReplayPolicy::default()
        };
        let at = |s: i64| Timestamp::from_millis(s * 1000);
        // After the first attempt: due 2 minutes later, not before.
        assert!(!policy.is_due(&failed(1, 0), at(119)));
        assert!(policy.is_due(&failed(1, 0), at(120)));
        // The wait doubles, up to the cap.
        assert!(!policy.is_due(&failed(3, 0), at(479)));
        assert!(policy.is_due(&failed(3, 0), at(480)));
        assert!(
            policy.is_due(&failed(4, 0), at(600)),
            "capped at 10 minutes"
        );
        // Exhausted: left to a person.
        assert!(!policy.is_due(&failed(5, 0), at(1_000_000)));
    }
}
