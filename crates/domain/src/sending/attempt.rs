//! One attempt at a stored send, and the outbox worker's step that makes the due ones.
//!
//! A send goes out at most once per intent. Every attempt carries the message id as
//! `biz_opaque_callback_data`, so its echo and statuses find the message. A failure after the
//! request was written (a timeout waiting for Kapso's answer) leaves the outcome unknown: the
//! retry waits at least the echo window, and every retry (also one after a crash mid-attempt)
//! first asks Kapso's message history whether an earlier attempt went out, records its wamid if
//! so, and sends only if not. When the history cannot be read, nothing is sent.

use std::time::Duration;

use futures::future::join_all;

use super::{Backoff, DEFAULT_SENDS_PER_MINUTE, OutboundContent, SendJob};
use crate::ids::{MessageId, WorkspaceId};
use crate::message::Message;
use crate::phone::PhoneE164;
use crate::ports::{
    KapsoAccount, KapsoError, KapsoGateway, SendRepository, SoughtContent, SoughtSend, StoreError,
    WorkspaceRepository,
};
use crate::timestamp::Timestamp;

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

    /// When a job claimed at `now` may be taken over by another worker.
    #[must_use]
    pub fn lease_until(&self, now: Timestamp) -> Timestamp {
        now.plus_millis(millis(self.lease))
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

/// The send an attempt is for.
#[derive(Clone, Copy, Debug)]
pub struct Attempt<'a> {
    /// Its workspace.
    pub workspace_id: WorkspaceId,
    /// The stored `pending` message.
    pub message_id: MessageId,
    /// The customer.
    pub to: &'a PhoneE164,
    /// What to send.
    pub content: &'a OutboundContent,
    /// This attempt's number, from 1; any later one may follow an attempt that went out.
    pub attempts: u32,
}

impl<'a> From<&'a SendJob> for Attempt<'a> {
    fn from(job: &'a SendJob) -> Self {
        Self {
            workspace_id: job.workspace_id,
            message_id: job.message_id,
            to: &job.to,
            content: &job.content,
            attempts: job.attempts,
        }
    }
}

/// Clock skew allowed between us and Kapso when asking its history for messages sent since a
/// message was created.
const HISTORY_SKEW_MILLIS: i64 = 60_000;

/// One attempt to send a message: Kapso is called with the workspace's current credentials and
/// the outcome is recorded (`sent` with the wamid, `failed` with the error, or rescheduled).
///
/// An attempt after the first may follow one that reached Kapso without us learning it (a
/// timeout after the request was written, a crash before the wamid was stored): it first asks
/// Kapso's message history for a message carrying this message's id, and records that one
/// instead of sending again. When the history cannot be read, nothing is sent and the job is
/// rescheduled.
///
/// # Errors
/// A storage failure while recording; the job keeps its lease and is attempted again when it
/// runs out.
#[tracing::instrument(skip_all, fields(workspace.id = %send.workspace_id, message.id = %send.message_id, attempts = send.attempts))]
pub async fn attempt<R>(
    repo: &R,
    kapso: &dyn KapsoGateway,
    settings: &SendSettings,
    send: Attempt<'_>,
) -> Result<AttemptOutcome, StoreError>
where
    R: SendRepository + WorkspaceRepository + ?Sized,
{
    let Attempt {
        workspace_id,
        message_id,
        to,
        content,
        attempts,
    } = send;
    let callback = message_id.to_string();
    let result = match KapsoAccount::of(repo.kapso_credentials(workspace_id).await?) {
        None => Err(KapsoError::not_configured()),
        Some(account) => {
            let earlier = if attempts > 1 {
                let sought = SoughtSend {
                    callback_data: &callback,
                    to,
                    content: SoughtContent::of(content),
                    since: Timestamp::from_millis(
                        created_millis(message_id).saturating_sub(HISTORY_SKEW_MILLIS),
                    ),
                };
                kapso.find_sent(&account, &sought).await
            } else {
                Ok(None)
            };
            match earlier {
                Ok(Some(found)) => {
                    match repo
                        .record_send_accepted(workspace_id, message_id, &found.wamid)
                        .await
                    {
                        Ok(message) => {
                            tracing::info!("kapso's history shows the message sent");
                            return Ok(AttemptOutcome::Sent(message));
                        }
                        // The history matched by content a message another of our sends
                        // already owns: it is not this one, which did not go out.
                        Err(StoreError::Duplicate(_)) => {
                            tracing::warn!(
                                "the history's match is another of our messages; sending"
                            );
                        }
                        Err(e) => return Err(e),
                    }
                    kapso.send(&account, to, content, &callback).await
                }
                Ok(None) => kapso.send(&account, to, content, &callback).await,
                Err(error) => Err(history_unreadable(&error)),
            }
        }
    };
    match result {
        Ok(sent) => {
            tracing::info!("kapso accepted the message");
            let message = repo
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
                outcome_unknown = error.outcome_unknown(),
                retry_in_ms = millis(delay),
                %error,
                "send failed for now; retrying later"
            );
            let retry_at = Timestamp::now().plus_millis(millis(delay));
            repo.reschedule_send(message_id, retry_at, &error.to_string())
                .await?;
            Ok(AttemptOutcome::Retrying)
        }
        Err(error) => {
            tracing::warn!(%error, "send failed for good");
            let message = repo
                .record_send_failed(workspace_id, message_id, &error.as_message_error())
                .await?;
            Ok(AttemptOutcome::Failed(message, error))
        }
    }
}

/// The outbox worker's step: leases up to `limit` due jobs (so no other worker takes them
/// meanwhile) and attempts them concurrently. Returns how many it attempted.
///
/// # Errors
/// When the jobs cannot be claimed; a failure to record one attempt is logged, and its lease
/// brings it back.
pub async fn run_due_sends<R>(
    repo: &R,
    kapso: &dyn KapsoGateway,
    settings: &SendSettings,
    limit: u32,
) -> Result<usize, StoreError>
where
    R: SendRepository + WorkspaceRepository + ?Sized,
{
    let now = Timestamp::now();
    let jobs = repo
        .claim_due_sends(now, settings.lease_until(now), limit)
        .await?;
    join_all(jobs.iter().map(|job| async move {
        if let Err(e) = attempt(repo, kapso, settings, Attempt::from(job)).await {
            tracing::warn!(message.id = %job.message_id, error = %e, "cannot record a send attempt; its lease will expire and it is retried");
        }
    }))
    .await;
    Ok(jobs.len())
}

/// A history lookup that failed: the earlier attempt's outcome is still unknown, so nothing may
/// be sent. Retried as a transient failure even when Kapso refused the lookup for good, since
/// giving up would fail a message that may have been delivered.
fn history_unreadable(error: &KapsoError) -> KapsoError {
    KapsoError::Transient {
        reason: format!("cannot look the earlier attempt up in Kapso's history: {error}"),
        retry_after: error.retry_after(),
        outcome_unknown: true,
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

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    //! The at-most-once rules of an attempt, against an in-memory outbox and a mocked Kapso: no
    //! database, no HTTP, so every branch is cheap to pin.

    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::ids::{ConversationId, UserId};
    use crate::message::{
        DeliveryStatus, Direction, MessageError, MessageKind, MessageText, SenderType,
    };
    use crate::ports::{MockKapsoGateway, SentMessage};
    use crate::sending::{CreatedSend, IdempotentSend, NewSend};
    use crate::workspace::{KapsoCredentials, NewWorkspace, Workspace, WorkspacePatch};

    /// What the use case did to storage, in order.
    #[derive(Debug, PartialEq, Eq)]
    enum Recorded {
        Accepted(String),
        Failed(Option<String>),
        Rescheduled { delay_at_least_ms: i64 },
    }

    struct Outbox {
        configured: bool,
        recorded: Mutex<Vec<Recorded>>,
        started: Timestamp,
    }

    impl Outbox {
        fn new(configured: bool) -> Self {
            Self {
                configured,
                recorded: Mutex::new(Vec::new()),
                started: Timestamp::now(),
            }
        }

        fn recorded(&self) -> Vec<Recorded> {
            std::mem::take(&mut *self.recorded.lock().expect("lock"))
        }

        fn message(&self, id: MessageId, wamid: Option<String>, status: DeliveryStatus) -> Message {
            Message {
                id,
                workspace_id: WorkspaceId::new(),
                conversation_id: ConversationId::new(),
                seq: 1,
                direction: Direction::Outbound,
                sender_type: SenderType::User,
                sender_user_id: None,
                kind: MessageKind::text(),
                text: Some("hi".into()),
                media: None,
                reply_to_wamid: None,
                wamid,
                status,
                error: None,
                sent_at: self.started,
                created_at: self.started,
            }
        }
    }

    #[async_trait]
    impl SendRepository for Outbox {
        async fn conversation_workspace(
            &self,
            _: ConversationId,
        ) -> Result<Option<WorkspaceId>, StoreError> {
            unreachable!("not used by an attempt")
        }
        async fn create_send(&self, _: &NewSend) -> Result<CreatedSend, StoreError> {
            unreachable!("not used by an attempt")
        }
        async fn idempotent_send(
            &self,
            _: UserId,
            _: &str,
        ) -> Result<Option<IdempotentSend>, StoreError> {
            unreachable!("not used by an attempt")
        }
        async fn store_send_answer(
            &self,
            _: UserId,
            _: &str,
            _: u16,
            _: &str,
        ) -> Result<(), StoreError> {
            unreachable!("not used by an attempt")
        }
        async fn record_send_accepted(
            &self,
            _: WorkspaceId,
            message_id: MessageId,
            wamid: &str,
        ) -> Result<Message, StoreError> {
            self.recorded
                .lock()
                .expect("lock")
                .push(Recorded::Accepted(wamid.to_owned()));
            Ok(self.message(message_id, Some(wamid.to_owned()), DeliveryStatus::Sent))
        }
        async fn record_send_failed(
            &self,
            _: WorkspaceId,
            message_id: MessageId,
            error: &MessageError,
        ) -> Result<Message, StoreError> {
            self.recorded
                .lock()
                .expect("lock")
                .push(Recorded::Failed(error.code.clone()));
            Ok(self.message(message_id, None, DeliveryStatus::Failed))
        }
        async fn reschedule_send(
            &self,
            _: MessageId,
            retry_at: Timestamp,
            _: &str,
        ) -> Result<(), StoreError> {
            let delay = retry_at.as_millis() - Timestamp::now().as_millis();
            // Rounded down to whole seconds: the test's own time passes meanwhile.
            self.recorded
                .lock()
                .expect("lock")
                .push(Recorded::Rescheduled {
                    delay_at_least_ms: delay / 1000 * 1000,
                });
            Ok(())
        }
        async fn claim_due_sends(
            &self,
            _: Timestamp,
            _: Timestamp,
            _: u32,
        ) -> Result<Vec<SendJob>, StoreError> {
            unreachable!("not used by an attempt")
        }
        async fn prune_send_requests(&self, _: Timestamp) -> Result<u64, StoreError> {
            unreachable!("not used by an attempt")
        }
    }

    #[async_trait]
    impl WorkspaceRepository for Outbox {
        async fn create_workspace(&self, _: NewWorkspace) -> Result<Workspace, StoreError> {
            unreachable!("not used by an attempt")
        }
        async fn workspace_by_id(&self, _: WorkspaceId) -> Result<Option<Workspace>, StoreError> {
            unreachable!("not used by an attempt")
        }
        async fn workspace_by_slug(&self, _: &str) -> Result<Option<Workspace>, StoreError> {
            unreachable!("not used by an attempt")
        }
        async fn update_workspace(
            &self,
            _: WorkspaceId,
            _: WorkspacePatch,
        ) -> Result<Workspace, StoreError> {
            unreachable!("not used by an attempt")
        }
        async fn kapso_credentials_by_phone_number_id(
            &self,
            _: &str,
        ) -> Result<Option<KapsoCredentials>, StoreError> {
            unreachable!("not used by an attempt")
        }
        async fn kapso_credentials(
            &self,
            id: WorkspaceId,
        ) -> Result<Option<KapsoCredentials>, StoreError> {
            Ok(Some(KapsoCredentials {
                workspace_id: id,
                phone_number_id: self.configured.then(|| "123".to_owned()),
                api_key: self.configured.then(|| "key".parse().expect("secret")),
                webhook_secret: None,
            }))
        }
        async fn workspace_count(&self) -> Result<u64, StoreError> {
            unreachable!("not used by an attempt")
        }
    }

    fn settings() -> SendSettings {
        SendSettings {
            echo_window: Duration::from_secs(30),
            ..SendSettings::default()
        }
    }

    fn timeout() -> KapsoError {
        KapsoError::Transient {
            reason: "the request to Kapso timed out".into(),
            retry_after: None,
            outcome_unknown: true,
        }
    }

    async fn run(outbox: &Outbox, kapso: &MockKapsoGateway, attempts: u32) -> AttemptOutcome {
        let to = PhoneE164::from_trusted("+6281200000001".into());
        let content = OutboundContent::Text {
            text: MessageText::parse("hi").expect("text"),
            reply_to_wamid: None,
        };
        let send = Attempt {
            workspace_id: WorkspaceId::new(),
            message_id: MessageId::new(),
            to: &to,
            content: &content,
            attempts,
        };
        attempt(outbox, kapso, &settings(), send)
            .await
            .expect("stored")
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        futures::executor::block_on(future)
    }

    #[test]
    fn a_first_attempt_sends_once_with_the_message_id_as_callback_data() {
        let outbox = Outbox::new(true);
        let mut kapso = MockKapsoGateway::new();
        kapso.expect_find_sent().never();
        kapso
            .expect_send()
            .times(1)
            .withf(|_, _, _, callback| uuid::Uuid::parse_str(callback).is_ok())
            .returning(|_, _, _, _| {
                Ok(SentMessage {
                    wamid: "wamid.1".into(),
                })
            });
        let outcome = block_on(run(&outbox, &kapso, 1));
        assert!(matches!(outcome, AttemptOutcome::Sent(_)));
        assert_eq!(outbox.recorded(), [Recorded::Accepted("wamid.1".into())]);
    }

    #[test]
    fn a_retry_that_finds_the_send_in_the_history_records_it_and_sends_nothing() {
        let outbox = Outbox::new(true);
        let mut kapso = MockKapsoGateway::new();
        kapso.expect_find_sent().times(1).returning(|_, sought| {
            assert!(uuid::Uuid::parse_str(sought.callback_data).is_ok());
            Ok(Some(SentMessage {
                wamid: "wamid.earlier".into(),
            }))
        });
        kapso.expect_send().never();
        let outcome = block_on(run(&outbox, &kapso, 2));
        assert!(matches!(outcome, AttemptOutcome::Sent(_)));
        assert_eq!(
            outbox.recorded(),
            [Recorded::Accepted("wamid.earlier".into())]
        );
    }

    #[test]
    fn an_unreadable_history_sends_nothing_and_waits_at_least_the_echo_window() {
        let outbox = Outbox::new(true);
        let mut kapso = MockKapsoGateway::new();
        kapso.expect_find_sent().times(1).returning(|_, _| {
            Err(KapsoError::Permanent {
                status: Some(404),
                code: None,
                title: "Not found".into(),
                message: "no history".into(),
            })
        });
        kapso.expect_send().never();
        let outcome = block_on(run(&outbox, &kapso, 2));
        assert!(matches!(outcome, AttemptOutcome::Retrying));
        let [Recorded::Rescheduled { delay_at_least_ms }] = outbox.recorded()[..] else {
            panic!("rescheduled once");
        };
        assert!(delay_at_least_ms >= 29_000, "{delay_at_least_ms}");
    }

    #[test]
    fn a_timeout_is_an_unknown_outcome_retried_no_sooner_than_the_echo_window() {
        let outbox = Outbox::new(true);
        let mut kapso = MockKapsoGateway::new();
        kapso
            .expect_send()
            .times(1)
            .returning(|_, _, _, _| Err(timeout()));
        let outcome = block_on(run(&outbox, &kapso, 1));
        assert!(matches!(outcome, AttemptOutcome::Retrying));
        let [Recorded::Rescheduled { delay_at_least_ms }] = outbox.recorded()[..] else {
            panic!("rescheduled once");
        };
        assert!(delay_at_least_ms >= 29_000, "{delay_at_least_ms}");
    }

    #[test]
    fn a_workspace_without_kapso_fails_for_good_without_calling_it() {
        let outbox = Outbox::new(false);
        let mut kapso = MockKapsoGateway::new();
        kapso.expect_send().never();
        kapso.expect_find_sent().never();
        let outcome = block_on(run(&outbox, &kapso, 1));
        assert!(matches!(outcome, AttemptOutcome::Failed(..)));
        assert_eq!(
            outbox.recorded(),
            [Recorded::Failed(Some("kapso_not_configured".into()))]
        );
    }
}
