//! Pruning past retention: what a received delivery leaves behind goes after its time, in
//! batches, and what is still needed stays.

use std::time::Duration;

use axum::http::StatusCode;
use inbox_domain::Timestamp;
use inbox_webhook::retention::{Pruned, RetentionSettings, prune_once};

use crate::fixtures::load;
use crate::{Harness, post};

pub async fn deliveries_are_pruned_after_retention_in_batches(h: Harness) {
    let app = h.app();
    for name in ["v2-received-text", "v2-batch-received"] {
        assert_eq!(post(&app, &load(name)).await.0, StatusCode::OK);
    }
    let stored = h.int("SELECT COUNT(*) FROM webhook_deliveries").await;
    assert_eq!(stored, 2);
    let settings = RetentionSettings {
        batch: 1,
        ..RetentionSettings::with_delivery_days(30)
    };
    // Within retention: nothing goes.
    let now = Timestamp::now();
    assert_eq!(
        prune_once(h.repo.as_ref(), &settings, now).await,
        Ok(Pruned::default())
    );
    // A month and a day later: both, one statement each.
    let later = Timestamp::from_millis(
        now.as_millis()
            + i64::try_from((Duration::from_secs(86_400) * 31).as_millis()).unwrap_or(0),
    );
    let pruned = prune_once(h.repo.as_ref(), &settings, later)
        .await
        .expect("prune");
    assert_eq!(pruned.deliveries, 2);
    assert_eq!(h.int("SELECT COUNT(*) FROM webhook_deliveries").await, 0);
    assert!(
        h.int("SELECT COUNT(*) FROM messages").await > 0,
        "messages are not the deliveries'"
    );
}
