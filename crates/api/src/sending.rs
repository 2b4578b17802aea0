//! The "send this message" use case and the outbox worker that finishes what a first attempt
//! could not.
//!
//! A send is stored `pending` with its durable job before Kapso is called
//! ([`SendRepository::create_send`](inbox_domain::ports::SendRepository::create_send)). The
//! request that created it makes the first attempt while it holds the job's lease, in a task of
//! its own that the request only awaits, so a client hanging up cannot cut an attempt short; a
//! transient failure (timeout, 5xx, 429, 409) reschedules the job with backoff, and the worker
//! that every `inbox-api` process runs ([`spawn_outbox_worker`]) claims due jobs from the
//! database, so a send survives a restart and several instances never make the same attempt
//! twice.
//!
//! A send goes out at most once per intent. Every send carries its message id as
//! `biz_opaque_callback_data`, so its echo and statuses find it. A failure after the request was
//! written (a timeout waiting for Kapso's answer) leaves the outcome unknown: the retry waits at
//! least the echo window, and every retry (also one after a crash mid-attempt) first asks
//! Kapso's message history whether an earlier attempt went out, records its wamid if so, and
//! sends only if not.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use inbox_domain::message::Message;
use inbox_domain::phone::PhoneE164;
use inbox_domain::ports::StoreError;
use inbox_domain::sending::{Backoff, DEFAULT_SENDS_PER_MINUTE, OutboundContent, SendJob};
use inbox_domain::workspace::KapsoCredentials;
use inbox_domain::{MessageId, Timestamp, UserId, WorkspaceId};
use inbox_kapso::{KapsoError, SoughtContent, SoughtSend};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::AppState;

/// How sends are paced and retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendSettings {
    /// Sends per user per rolling minute.
    pub sends_per_minute: u32,
    /// The retry schedule of transient failures.
    pub backoff: Backoff,
    /// How long one attempt may hold a job: Kapso's whole request timeout plus a margin. A job
    /// whose attempt crashed is taken over once it runs out.
    pub lease: Duration,
    /// How often the worker looks for due jobs.
    pub poll_interval: Duration,
    /// How long the echo of a send whose outcome is unknown may take: it is retried (after a
    /// look at Kapso's history) no sooner than this.
    pub echo_window: Duration,
}

impl SendSettings {
    /// Settings for a Kapso request timeout of `kapso_timeout`.
    #[must_use]
    pub fn for_timeout(kapso_timeout: Duration) -> Self {
        Self {
            sends_per_minute: DEFAULT_SENDS_PER_MINUTE,
            backoff: Backoff::default(),
            // A retry may make two calls: the history lookup, then the send.
            lease: kapso_timeout * 2 + Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            echo_window: Duration::from_secs(5),
        }
    }
}

impl Default for SendSettings {
    fn default() -> Self {
        Self::for_timeout(Duration::from_secs(10))
    }
}

/// How one attempt ended.
#[derive(Debug)]
pub enum AttemptOutcome {
    /// Kapso accepted it; the message as stored (`sent`, or further if statuses came first).
    Sent(Message),
    /// Kapso refused it for good; the message as stored (`failed`) and why.
    Failed(Message, KapsoError),
    /// A transient failure; the job is due again later and the message stays `pending`.
    Retrying,
}

/// Clock skew allowed between us and Kapso when asking its history for messages sent since a
/// message was created.
const HISTORY_SKEW_MILLIS: i64 = 60_000;

/// One attempt to send a message: Kapso is called with the workspace's current credentials and
/// the outcome is recorded (`sent` with the wamid, `failed` with the error, or rescheduled).
///
/// Attempt `attempts > 1` may follow one that reached Kapso without us learning it (a timeout
/// after the request was written, a crash before the wamid was stored): it first asks Kapso's
/// message history for a message carrying this message's id, and records that one instead of
/// sending again. When the history cannot be read, nothing is sent and the job is rescheduled.
///
/// # Errors
/// A storage failure while recording; the job keeps its lease and is attempted again when it
/// runs out.
pub async fn attempt(
    state: &AppState,
    workspace_id: WorkspaceId,
    message_id: MessageId,
    to: &PhoneE164,
    content: &OutboundContent,
    attempts: u32,
) -> Result<AttemptOutcome, StoreError> {
    let credentials = state.repo.kapso_credentials(workspace_id).await?;
    let callback = message_id.to_string();
    let result = match usable(credentials) {
        Some((phone_number_id, api_key)) => {
            let earlier = if attempts > 1 {
                let sought = SoughtSend {
                    callback_data: &callback,
                    to,
                    content: match content {
                        OutboundContent::Text { text, .. } => SoughtContent::Text(text.as_str()),
                        OutboundContent::Template { template, .. } => {
                            SoughtContent::Template(template)
                        }
                    },
                    since: Timestamp::from_millis(
                        created_millis(message_id).saturating_sub(HISTORY_SKEW_MILLIS),
                    ),
                };
                state
                    .kapso
                    .find_sent(&phone_number_id, &api_key, &sought)
                    .await
            } else {
                Ok(None)
            };
            match earlier {
                Ok(Some(found)) => {
                    match state
                        .repo
                        .record_send_accepted(workspace_id, message_id, &found.wamid)
                        .await
                    {
                        Ok(message) => {
                            tracing::info!(
                                message.id = %message_id,
                                attempts,
                                "kapso's history shows the message sent"
                            );
                            return Ok(AttemptOutcome::Sent(message));
                        }
                        // The history matched by content a message another of our sends
                        // already owns: it is not this one, which did not go out.
                        Err(StoreError::Duplicate(_)) => {
                            tracing::warn!(
                                message.id = %message_id,
                                "the history's match is another of our messages; sending"
                            );
                        }
                        Err(e) => return Err(e),
                    }
                    send(state, &phone_number_id, &api_key, to, content, &callback).await
                }
                Ok(None) => send(state, &phone_number_id, &api_key, to, content, &callback).await,
                Err(error) => Err(HistoryUnreadable(error).into()),
            }
        }
        None => Err(not_configured()),
    };
    let settings = &state.sending;
    match result {
        Ok(sent) => {
            tracing::info!(message.id = %message_id, attempts, "kapso accepted the message");
            let message = state
                .repo
                .record_send_accepted(workspace_id, message_id, &sent.wamid)
                .await?;
            Ok(AttemptOutcome::Sent(message))
        }
        Err(error) if error.is_transient() && !settings.backoff.exhausted(attempts) => {
            let mut delay = settings.backoff.delay(attempts, error.retry_after());
            if error.outcome_unknown() {
                // Kapso may have sent it: give its echo time to arrive (which settles the
                // message) and its history time to show it, before looking there.
                delay = delay.max(settings.echo_window);
            }
            tracing::warn!(
                message.id = %message_id,
                attempts,
                outcome_unknown = error.outcome_unknown(),
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                %error,
                "send failed for now; retrying later"
            );
            let millis = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
            let retry_at =
                Timestamp::from_millis(Timestamp::now().as_millis().saturating_add(millis));
            state
                .repo
                .reschedule_send(message_id, retry_at, &error.to_string())
                .await?;
            Ok(AttemptOutcome::Retrying)
        }
        Err(error) => {
            tracing::warn!(message.id = %message_id, attempts, %error, "send failed for good");
            let message = state
                .repo
                .record_send_failed(workspace_id, message_id, &error.as_message_error())
                .await?;
            Ok(AttemptOutcome::Failed(message, error))
        }
    }
}

/// A history lookup that failed: the earlier attempt's outcome is still unknown, so nothing may
/// be sent. Retried as a transient failure even when Kapso refused the lookup for good, since
/// giving up would fail a message that may have been delivered.
struct HistoryUnreadable(KapsoError);

impl From<HistoryUnreadable> for KapsoError {
    fn from(HistoryUnreadable(error): HistoryUnreadable) -> Self {
        Self::Transient {
            reason: format!("cannot look the earlier attempt up in Kapso's history: {error}"),
            retry_after: error.retry_after(),
            outcome_unknown: true,
        }
    }
}

/// The one call that sends: the message's id goes along as `biz_opaque_callback_data`.
async fn send(
    state: &AppState,
    phone_number_id: &str,
    api_key: &inbox_domain::workspace::Secret,
    to: &PhoneE164,
    content: &OutboundContent,
    callback: &str,
) -> Result<inbox_kapso::SentMessage, KapsoError> {
    match content {
        OutboundContent::Text {
            text,
            reply_to_wamid,
        } => {
            state
                .kapso
                .send_text(
                    phone_number_id,
                    api_key,
                    to,
                    text,
                    reply_to_wamid.as_deref(),
                    Some(callback),
                )
                .await
        }
        OutboundContent::Template { template, .. } => {
            state
                .kapso
                .send_template(phone_number_id, api_key, to, template, Some(callback))
                .await
        }
    }
}

/// When a message was created, from its time-ordered (UUIDv7) id; now for any other id.
fn created_millis(message_id: MessageId) -> i64 {
    message_id
        .as_uuid()
        .get_timestamp()
        .map(|at| {
            let (seconds, nanos) = at.to_unix();
            i64::try_from(seconds)
                .unwrap_or(i64::MAX)
                .saturating_mul(1000)
                .saturating_add(i64::from(nanos / 1_000_000))
        })
        .unwrap_or_else(|| Timestamp::now().as_millis())
}

/// The phone number id and API key, when both are configured.
pub fn usable(
    credentials: Option<KapsoCredentials>,
) -> Option<(String, inbox_domain::workspace::Secret)> {
    let credentials = credentials?;
    Some((credentials.phone_number_id?, credentials.api_key?))
}

fn not_configured() -> KapsoError {
    KapsoError::Permanent {
        status: None,
        code: Some("kapso_not_configured".to_owned()),
        title: "Kapso is not configured".to_owned(),
        message: "The workspace has no Kapso phone number id or API key.".to_owned(),
    }
}

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
    let now = Timestamp::now();
    let lease = i64::try_from(state.sending.lease.as_millis()).unwrap_or(i64::MAX);
    let lease_until = Timestamp::from_millis(now.as_millis().saturating_add(lease));
    let jobs = match state
        .repo
        .claim_due_sends(now, lease_until, CLAIM_BATCH)
        .await
    {
        Ok(jobs) => jobs,
        Err(e) => {
            tracing::warn!(error = %e, "cannot claim due sends; retrying at the next poll");
            return;
        }
    };
    futures::future::join_all(jobs.iter().map(|job| run_job(state, job))).await;
}

async fn run_job(state: &AppState, job: &SendJob) {
    if let Err(e) = attempt(
        state,
        job.workspace_id,
        job.message_id,
        &job.to,
        &job.content,
        job.attempts,
    )
    .await
    {
        tracing::warn!(message.id = %job.message_id, error = %e, "cannot record a send attempt; its lease will expire and it is retried");
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
