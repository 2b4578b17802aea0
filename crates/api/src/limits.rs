//! Per-token limits of one process: requests a minute (a token bucket) and open event streams.
//! Both are counted in this process's memory, so behind a load balancer each instance allows
//! its own share; the send limit, which must hold across instances, lives in the database.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Limits from `INBOX_REQUESTS_PER_MINUTE`, `INBOX_MAX_STREAMS_PER_TOKEN` and
/// `INBOX_EVENT_REPLAY_MAX` (see `inbox-api serve --help`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiLimits {
    /// Requests a token may make a minute (a burst of this many, refilled evenly).
    pub requests_per_minute: u32,
    /// Event streams one token may hold open at once.
    pub max_streams_per_token: usize,
    /// A resume point further back than this many events gets `resync`, not a replay.
    pub event_replay_max: i64,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            requests_per_minute: 600,
            max_streams_per_token: 8,
            event_replay_max: 10_000,
        }
    }
}

/// Tokens tracked before idle (full) buckets are forgotten.
const TRACKED: usize = 50_000;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Each token's bucket, keyed by the SHA-256 of the presented token (never the token itself).
#[derive(Debug, Default)]
pub struct RequestBudgets {
    buckets: Mutex<HashMap<[u8; 32], Bucket>>,
}

impl RequestBudgets {
    /// Takes one request from the token's budget: `Ok`, or `Err(seconds until one is back)`.
    ///
    /// # Errors
    /// The whole seconds to wait when the budget is spent.
    pub fn take(&self, key: [u8; 32], per_minute: u32) -> Result<(), u64> {
        let capacity = f64::from(per_minute.max(1));
        let per_second = capacity / 60.0;
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= TRACKED {
            // Forget tokens whose bucket has refilled: they are indistinguishable from new.
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * per_second < capacity
            });
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let refilled = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * per_second)
            .min(capacity);
        if refilled >= 1.0 {
            *bucket = Bucket {
                tokens: refilled - 1.0,
                at: now,
            };
            Ok(())
        } else {
            *bucket = Bucket {
                tokens: refilled,
                at: now,
            };
            // Whole seconds, rounded up, never 0.
            let wait = ((1.0 - refilled) / per_second).ceil();
            Err(if wait.is_finite() && wait >= 1.0 {
                wait as u64
            } else {
                1
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_spends_its_burst_then_waits() {
        let budgets = RequestBudgets::default();
        for _ in 0..3 {
            assert_eq!(budgets.take([1; 32], 3), Ok(()));
        }
        let wait = budgets.take([1; 32], 3).expect_err("spent");
        assert!((1..=20).contains(&wait), "{wait}");
        assert_eq!(
            budgets.take([2; 32], 3),
            Ok(()),
            "another token has its own"
        );
    }
}
