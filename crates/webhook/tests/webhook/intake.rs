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

/// Agents editing a contact (tags, lead score) while that customer writes: every message the
/// webhook acknowledges is stored, and none is refused for the agents' sake. (On PostgreSQL a
/// contact update locked the contact then its conversation, ingest the other way round; the
/// deadlock's victim was stored as a failed delivery behind a 200.)
pub async fn agents_editing_a_contact_while_its_customer_writes_lose_nothing(h: Harness) {
    use inbox_domain::contact::{ContactPatch, LeadScore, Tags};
    use inbox_domain::user::{Actor, Role};

    let app = h.app();
    assert_eq!(
        post(
            &app,
            &signed("first", &inbound("wamid.EDIT0", "hi", "Edit"))
        )
        .await
        .0,
        StatusCode::OK
    );
    let owner = Actor {
        user_id: inbox_domain::UserId::new(),
        workspace_id: h.workspace,
        role: Role::Owner,
    };
    let phone = inbox_domain::phone::PhoneE164::from_wa_id("15550001111").expect("phone");
    let contact = h
        .repo
        .contact_by_phone(owner, &phone)
        .await
        .expect("read")
        .expect("the contact")
        .contact
        .id;
    let mut tasks = Vec::new();
    for sender in 0..3 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = 0;
            for n in 0..40 {
                let wamid = format!("wamid.EDIT{sender}.{n}");
                let (status, _) = post(&app, &signed(&wamid, &inbound(&wamid, "hi", "Edit"))).await;
                assert!(
                    status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
                    "{status}"
                );
                acked += usize::from(status == StatusCode::OK);
            }
            acked
        }));
    }
    let mut edits = Vec::new();
    for agent in 0..2_u8 {
        let repo = std::sync::Arc::clone(&h.repo);
        edits.push(tokio::spawn(async move {
            for n in 0..40_u8 {
                let patch = ContactPatch {
                    tags: Some(Tags::parse(&[format!("t{agent}{n}")]).expect("tag")),
                    lead_score: Some(LeadScore::new(i64::from(n)).expect("score")),
                    ..ContactPatch::default()
                };
                repo.update_contact(owner, contact, patch)
                    .await
                    .expect("the agent's edit");
            }
        }));
    }
    let mut acked = 0;
    for task in tasks {
        acked += task.await.expect("sender");
    }
    for edit in edits {
        edit.await.expect("agent");
    }
    let stored = h
        .int("SELECT COUNT(*) FROM messages WHERE wamid LIKE 'wamid.EDIT%.%'")
        .await;
    assert_eq!(
        stored,
        i64::try_from(acked).expect("small"),
        "every acknowledged message is stored"
    );
    assert_eq!(
        acked, 120,
        "no message was refused because agents were editing"
    );
    assert_eq!(
        h.int("SELECT COUNT(*) FROM webhook_deliveries WHERE outcome = 'failed'")
            .await,
        0
    );
}
