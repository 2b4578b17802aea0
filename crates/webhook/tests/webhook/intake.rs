//! What a signed delivery may carry: text PostgreSQL can store, a bounded number of elements,
//! a bounded idempotency key.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::{Harness, KAPSO_SECRET, PHONE_NUMBER_ID, Post, post};

fn inbound(wamid: &str, text: &str, name: &str) -> Value {
    json!({
        "phone_number_id": PHONE_NUMBER_ID,
        "message": {"id": wamid, "timestamp": "1730092800", "type": "text", "from": "15550001111",
                    "text": {"body": text},
                    "kapso": {"direction": "inbound", "status": "received"}},
        "conversation": {"id": "conv_nul", "phone_number": "+15550001111",
                         "phone_number_id": PHONE_NUMBER_ID,
                         "kapso": {"contact_name": name}}
    })
}

fn signed(key: &str, body: &Value) -> Post {
    Post::kapso(
        "whatsapp.message.received",
        key,
        body.to_string().as_bytes(),
        KAPSO_SECRET,
    )
}

pub async fn a_nul_character_is_stored_without_it(h: Harness) {
    let app = h.app();
    let body = inbound("wamid.NUL1", "before\u{0}after", "Nu\u{0}l");
    let (status, answer) = post(&app, &signed("nul", &body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        h.text("SELECT text FROM messages WHERE wamid = 'wamid.NUL1'")
            .await
            .as_deref(),
        Some("beforeafter")
    );
    assert_eq!(
        h.text("SELECT outcome FROM webhook_deliveries")
            .await
            .as_deref(),
        Some("processed")
    );
}

pub async fn a_batch_over_the_cap_is_refused_whole(h: Harness) {
    let app = h.app();
    let batch = |n: usize, prefix: &str| {
        let data: Vec<Value> = (0..n)
            .map(|i| inbound(&format!("wamid.{prefix}{i}"), "hi", "Cap"))
            .collect();
        json!({"type": "whatsapp.message.received", "batch": true, "data": data})
    };
    let (status, answer) = post(&app, &signed("too-many", &batch(101, "OVER"))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["error"]["code"], "payload_too_large");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("100")),
        "{answer}"
    );
    assert_eq!(h.int("SELECT COUNT(*) FROM webhook_deliveries").await, 0);
    assert_eq!(
        post(&app, &signed("at-cap", &batch(100, "CAP"))).await.0,
        StatusCode::OK
    );
    assert_eq!(h.int("SELECT COUNT(*) FROM messages").await, 100);
}

pub async fn an_overlong_idempotency_key_is_refused(h: Harness) {
    let app = h.app();
    let body = inbound("wamid.KEY1", "hi", "Key");
    let (status, answer) = post(&app, &signed(&"k".repeat(129), &body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["code"], "bad_request");
    assert_eq!(h.int("SELECT COUNT(*) FROM webhook_deliveries").await, 0);
    assert_eq!(
        post(&app, &signed(&"k".repeat(128), &body)).await.0,
        StatusCode::OK
    );
}
