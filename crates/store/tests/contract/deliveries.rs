//! The delivery log: stored once per idempotency key, listed, marked.

use inbox_domain::delivery::{DeliveryFilter, DeliveryOutcome, NewDelivery};
use inbox_domain::ports::StoreError;
use inbox_domain::{DeliveryId, Timestamp};

use crate::Harness;

fn new_delivery(key: &str, at: i64) -> NewDelivery {
    NewDelivery {
        id: DeliveryId::new(),
        idempotency_key: Some(key.into()),
        event: Some("whatsapp.message.received".into()),
        phone_number_id: Some("123".into()),
        headers: serde_json::json!({"x-idempotency-key": key}),
        body: vec![0, 159, 146, 150, b'{'],
        received_at: Timestamp::from_millis(at),
    }
}

pub async fn deliveries_are_stored_once_per_key_and_listed(h: Harness) {
    let first = new_delivery("k1", 1_000);
    assert!(
        h.repo
            .record_delivery(&first, None, DeliveryOutcome::Pending, None)
            .await
            .expect("record")
    );
    let again = NewDelivery {
        id: DeliveryId::new(),
        ..first.clone()
    };
    assert!(
        !h.repo
            .record_delivery(&again, None, DeliveryOutcome::Processed, None)
            .await
            .expect("record"),
        "the key is taken"
    );
    let reused_id = NewDelivery {
        idempotency_key: Some("k-other".into()),
        ..first.clone()
    };
    assert_eq!(
        h.repo
            .record_delivery(&reused_id, None, DeliveryOutcome::Pending, None)
            .await,
        Err(StoreError::Duplicate("id".into()))
    );
    let second = new_delivery("k2", 2_000);
    h.repo
        .record_delivery(&second, None, DeliveryOutcome::Failed, Some("boom".into()))
        .await
        .expect("record");

    let stored = h
        .repo
        .delivery_by_idempotency_key("k1")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.id, first.id);
    assert_eq!(stored.body, first.body, "raw bytes kept exactly");
    assert_eq!(stored.headers, first.headers);
    assert_eq!(stored.outcome, DeliveryOutcome::Pending);
    assert_eq!(stored.attempts, 0);
    assert_eq!(stored.processed_at, None);
    assert_eq!(stored.received_at, Timestamp::from_millis(1_000));
    assert!(
        h.repo
            .delivery_by_idempotency_key("nope")
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(
        h.repo
            .delivery(second.id)
            .await
            .expect("read")
            .map(|d| d.error),
        Some(Some("boom".into()))
    );

    let all = h
        .repo
        .deliveries(DeliveryFilter::All, 10)
        .await
        .expect("list");
    assert_eq!(
        all.iter().map(|d| d.id).collect::<Vec<_>>(),
        [first.id, second.id]
    );
    let failed = h
        .repo
        .deliveries(DeliveryFilter::Failed, 10)
        .await
        .expect("list");
    assert_eq!(failed.iter().map(|d| d.id).collect::<Vec<_>>(), [second.id]);
    assert_eq!(
        h.repo
            .deliveries(DeliveryFilter::All, 1)
            .await
            .expect("list")
            .len(),
        1
    );

    h.repo
        .mark_delivery(second.id, DeliveryOutcome::Processed, None)
        .await
        .expect("mark");
    let marked = h
        .repo
        .delivery(second.id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(marked.outcome, DeliveryOutcome::Processed);
    assert_eq!(marked.error, None);
    assert_eq!(marked.attempts, 2);
    assert!(marked.processed_at.is_some());
    assert_eq!(
        h.repo
            .mark_delivery(DeliveryId::new(), DeliveryOutcome::Failed, None)
            .await,
        Err(StoreError::NotFound)
    );
}
