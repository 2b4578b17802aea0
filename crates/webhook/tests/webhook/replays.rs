//! Replaying stored deliveries by id and all failed ones.

use axum::http::StatusCode;
use inbox_domain::delivery::DeliveryOutcome;
use inbox_domain::ingest::IngestOutcome;
use inbox_domain::workspace::WorkspacePatch;
use inbox_webhook::{replay_delivery, replay_failed};

use crate::fixtures::load;
use crate::{Harness, KAPSO_SECRET, Post, post};

pub async fn ignored_deliveries_replay_once_contacts_may_be_created(h: Harness) {
    let app = h.app();
    let off = WorkspacePatch {
        auto_create_contacts: Some(false),
        ..WorkspacePatch::default()
    };
    h.repo
        .update_workspace(h.workspace, off)
        .await
        .expect("patch");
    let fixture = load("v2-received-text");
    assert_eq!(post(&app, &fixture).await.0, StatusCode::OK);
    let key = fixture.header("X-Idempotency-Key").expect("keyed");
    let stored = h
        .repo
        .delivery_by_idempotency_key(key)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.outcome, DeliveryOutcome::Ignored);
    assert_eq!(h.int("SELECT COUNT(*) FROM messages").await, 0);

    let on = WorkspacePatch {
        auto_create_contacts: Some(true),
        ..WorkspacePatch::default()
    };
    h.repo
        .update_workspace(h.workspace, on)
        .await
        .expect("patch");
    for _ in 0..2 {
        let outcome = replay_delivery(h.repo.as_ref(), stored.id)
            .await
            .expect("replay");
        assert_eq!(outcome, IngestOutcome::Processed);
    }
    assert_eq!(
        h.int("SELECT COUNT(*) FROM messages").await,
        1,
        "replays never duplicate"
    );
    let replayed = h
        .repo
        .delivery(stored.id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(replayed.outcome, DeliveryOutcome::Processed);
    assert_eq!(replayed.attempts, 3);
    assert!(matches!(
        replay_delivery(h.repo.as_ref(), inbox_domain::DeliveryId::new()).await,
        Err(inbox_webhook::ReplayError::NotFound(_))
    ));
}

pub async fn unreadable_deliveries_are_kept_as_failed_and_stay_failed_on_replay(h: Harness) {
    let app = h.app();
    let body = br#"{"hello":"world","phone_number_id":"123456789012345"}"#;
    let request = Post::kapso("", "odd", body, KAPSO_SECRET).without("X-Webhook-Event");
    assert_eq!(post(&app, &request).await.0, StatusCode::OK);
    let stored = h
        .repo
        .delivery_by_idempotency_key("odd")
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(stored.outcome, DeliveryOutcome::Failed);
    assert_eq!(
        stored.body,
        body.to_vec(),
        "raw bytes kept for a later replay"
    );
    assert!(stored.error.is_some());

    // A good delivery that failed for another reason is replayed alongside it.
    let good = load("v2-received-text");
    assert_eq!(post(&app, &good).await.0, StatusCode::OK);
    let outcomes = replay_failed(h.repo.as_ref()).await.expect("replay");
    assert_eq!(outcomes.len(), 1);
    assert!(matches!(outcomes[0].1, IngestOutcome::Failed(_)));
    let again = h
        .repo
        .delivery(stored.id)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(again.outcome, DeliveryOutcome::Failed);
    assert_eq!(again.attempts, 2);
}

/// The background replayer's step: a failed delivery is tried again when due, each attempt
/// counted, until its attempts run out; one that now applies becomes processed.
pub async fn failed_deliveries_are_replayed_with_backoff_until_attempts_run_out(h: Harness) {
    use inbox_domain::Timestamp;
    use inbox_webhook::replayer::{ReplayPolicy, replay_due};

    let app = h.app();
    let body = br#"{"hello":"world","phone_number_id":"123456789012345"}"#;
    let request = Post::kapso("", "odd", body, KAPSO_SECRET).without("X-Webhook-Event");
    assert_eq!(post(&app, &request).await.0, StatusCode::OK);
    let policy = ReplayPolicy::default();
    let minute = 60_000;
    let start = Timestamp::now().as_millis();
    // Not yet due.
    assert!(
        replay_due(h.repo.as_ref(), &policy, Timestamp::from_millis(start))
            .await
            .expect("replay")
            .is_empty()
    );
    let mut replays = 0;
    let mut now = start;
    for _ in 0..10 {
        // Far enough ahead for any wait.
        now += 6 * 60 * minute + 1;
        let done = replay_due(h.repo.as_ref(), &policy, Timestamp::from_millis(now))
            .await
            .expect("replay");
        replays += done.len();
    }
    let stored = h
        .repo
        .delivery_by_idempotency_key("odd")
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(stored.outcome, DeliveryOutcome::Failed);
    assert_eq!(stored.attempts, policy.max_attempts, "bounded");
    assert_eq!(i64::try_from(replays).unwrap_or(0), policy.max_attempts - 1);
}
