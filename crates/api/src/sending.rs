//! The outbox worker every `inbox-api` process runs, and the in-process meeting point of a keyed
//! send's repeats with its first request. The send use case itself, its attempts and the
//! worker's step live in [`inbox_domain::sending`]; this module only gives them a runtime.

use std::collections::HashMap;
use std::sync::Arc;

use inbox_domain::sending::run_due_sends;
use inbox_domain::{Timestamp, UserId};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::AppState;

/// Jobs one poll claims at most; they are attempted concurrently.
const CLAIM_BATCH: u32 = 16;

/// Idempotency records are kept this long.
const IDEMPOTENCY_RETENTION_MILLIS: i64 = 24 * 3600 * 1000;

/// Starts the outbox worker: every `poll_interval` it claims due jobs (leased, so no other
/// worker takes them meanwhile) and attempts them. It returns once `shutdown` turns true,
/// after finishing the attempts under way (each bounded by Kapso's request timeout), so that
/// their outcome is recorded rather than left to a lease.
pub fn spawn_outbox_worker(state: AppState, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut polls: u64 = 0;
        loop {
            if *shutdown.borrow() {
                break;
            }
            run_due_jobs(&state).await;
            polls += 1;
            // About hourly at the default interval; the table is small and indexed.
            if polls % 3600 == 1 {
                let cutoff = Timestamp::from_millis(
                    Timestamp::now().as_millis() - IDEMPOTENCY_RETENTION_MILLIS,
                );
                if let Err(e) = state.repo.prune_send_requests(cutoff).await {
                    tracing::warn!(error = %e, "cannot prune idempotency records");
                }
            }
            tokio::select! {
                _ = shutdown.changed() => {}
                () = tokio::time::sleep(state.sending.poll_interval) => {}
            }
        }
        tracing::debug!("outbox worker stopped");
    })
}

async fn run_due_jobs(state: &AppState) {
    if let Err(e) = run_due_sends(&*state.repo, &*state.kapso, &state.sending, CLAIM_BATCH).await {
        tracing::warn!(error = %e, "cannot claim due sends; retrying at the next poll");
    }
}

/// Repeats of a keyed send waiting for the first request's answer, in this process. The first
/// request wakes its waiter when it stores the answer; a first request in another process is
/// noticed by a slow re-read on the read pool. At most one waiter per key: more repeats of a
/// send still in progress answer 409 `request_in_progress` instead of piling up.
#[derive(Debug, Default)]
pub struct SendAnswers {
    waiters: std::sync::Mutex<HashMap<(UserId, String), Arc<tokio::sync::Notify>>>,
}

/// A repeat's place in [`SendAnswers`], given up when dropped.
pub struct AnswerWait {
    answers: Arc<SendAnswers>,
    key: (UserId, String),
    /// Woken when the answer is stored in this process.
    pub answered: Arc<tokio::sync::Notify>,
}

impl Drop for AnswerWait {
    fn drop(&mut self) {
        self.answers.lock().remove(&self.key);
    }
}

impl SendAnswers {
    /// A place to wait for the answer to `key`, unless a repeat of it already waits here.
    #[must_use]
    pub fn wait(self: &Arc<Self>, user_id: UserId, key: &str) -> Option<AnswerWait> {
        let key = (user_id, key.to_owned());
        let mut waiters = self.lock();
        if waiters.contains_key(&key) {
            return None;
        }
        let answered = Arc::new(tokio::sync::Notify::new());
        waiters.insert(key.clone(), Arc::clone(&answered));
        Some(AnswerWait {
            answers: Arc::clone(self),
            key,
            answered,
        })
    }

    /// The answer to `key` is stored: wakes its waiter, if any.
    pub fn answered(&self, user_id: UserId, key: &str) {
        if let Some(waiter) = self.lock().get(&(user_id, key.to_owned())) {
            waiter.notify_one();
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(UserId, String), Arc<tokio::sync::Notify>>> {
        self.waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
