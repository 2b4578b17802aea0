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

/// The background replayer retries failed deliveries by itself: one that now succeeds is
/// stored (once, however often it runs), one that keeps failing stops at the attempt limit and
/// stays listed as failed for a person.
pub async fn the_replayer_retries_failed_deliveries_until_the_limit(h: Harness) {
    use inbox_domain::delivery::NewDelivery;
    use inbox_domain::{DeliveryId, Timestamp};
    use inbox_webhook::replayer::{ReplayPolicy, replay_due};

    let record = |body: Vec<u8>, key: &str| NewDelivery {
        id: DeliveryId::new(),
        idempotency_key: Some(key.to_owned()),
        event: Some("whatsapp.message.received".to_owned()),
        phone_number_id: Some(crate::PHONE_NUMBER_ID.to_owned()),
        headers: serde_json::json!({"x-webhook-event": "whatsapp.message.received"}),
        body,
        received_at: Timestamp::now(),
    };
    // A delivery that failed under an older version and would be applied now.
    let recoverable = record(load("v2-received-text").body, "recoverable");
    let stuck = record(b"[\"never a delivery\"]".to_vec(), "stuck");
    for delivery in [&recoverable, &stuck] {
        h.repo
            .record_delivery(
                delivery,
                None,
                DeliveryOutcome::Failed,
                Some("old bug".into()),
            )
            .await
            .expect("record");
    }
    let policy = ReplayPolicy {
        base: std::time::Duration::ZERO,
        max_attempts: 3,
        ..ReplayPolicy::default()
    };
    for _ in 0..5 {
        replay_due(h.repo.as_ref(), &policy, Timestamp::now())
            .await
            .expect("replay");
    }
    let outcome = |id| {
        let repo = std::sync::Arc::clone(&h.repo);
        async move { repo.delivery(id).await.expect("read").expect("stored") }
    };
    let recovered = outcome(recoverable.id).await;
    assert_eq!(recovered.outcome, DeliveryOutcome::Processed);
    assert_eq!(
        h.int("SELECT COUNT(*) FROM messages").await,
        1,
        "stored once"
    );
    let still = outcome(stuck.id).await;
    assert_eq!(still.outcome, DeliveryOutcome::Failed);
    assert_eq!(still.attempts, 3, "stopped at the limit");
}
