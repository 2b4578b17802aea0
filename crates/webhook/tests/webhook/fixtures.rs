//! The repository's signed sample deliveries (`crates/kapso/samples`), posted as Kapso and Meta
//! would post them.

use axum::http::StatusCode;
use inbox_kapso::samples::{self, Sample};
use serde_json::Value;

use crate::{Harness, KAPSO_SECRET, Post, post};

/// Every sample, by name, in name order.
pub fn all() -> Vec<(String, Post)> {
    samples::all()
        .into_iter()
        .map(|sample| (sample.name.clone(), as_post(sample)))
        .collect()
}

/// One sample by name.
pub fn load(name: &str) -> Post {
    as_post(samples::load(name))
}

fn as_post(sample: Sample) -> Post {
    Post {
        headers: sample.headers,
        body: sample.body.into_bytes(),
    }
}

pub async fn every_fixture_is_stored_once_under_concurrent_repeats(h: Harness) {
    let app = h.app();
    let fixtures = all();
    assert!(fixtures.len() >= 13, "the samples are present");
    for (i, (name, fixture)) in fixtures.iter().enumerate() {
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let app = app.clone();
            let fixture = fixture.clone();
            tasks.push(tokio::spawn(async move { post(&app, &fixture).await }));
        }
        for task in tasks {
            let (status, body) = task.await.expect("task");
            assert_eq!(status, StatusCode::OK, "{name}: {body}");
            assert_eq!(body, serde_json::json!({"received": true}), "{name}");
        }
        let stored = h.int("SELECT COUNT(*) FROM webhook_deliveries").await;
        assert_eq!(
            stored,
            i64::try_from(i + 1).expect("small"),
            "{name} stored once"
        );
    }
    let outcomes = h
        .texts("SELECT DISTINCT outcome FROM webhook_deliveries")
        .await;
    assert_eq!(outcomes, [Some("processed".to_owned())]);
    assert_eq!(
        h.int(
            "SELECT COUNT(*) FROM (SELECT wamid FROM messages GROUP BY wamid HAVING COUNT(*) > 1) d"
        )
        .await,
        0,
        "no wamid stored twice"
    );
    let before = h.counts().await;
    // Everything again, one by one: nothing changes.
    for (_, fixture) in &fixtures {
        assert_eq!(post(&app, fixture).await.0, StatusCode::OK);
    }
    assert_eq!(h.counts().await, before, "repeats change nothing");
}

pub async fn fixtures_produce_the_promised_state(h: Harness) {
    let app = h.app();
    for (name, fixture) in all() {
        assert_eq!(post(&app, &fixture).await.0, StatusCode::OK, "{name}");
    }
    // v2-received-text: a new customer with their WhatsApp name.
    assert_eq!(
        h.text("SELECT whatsapp_name FROM contacts WHERE phone = '+15551234567'")
            .await
            .as_deref(),
        Some("John Doe")
    );
    assert_eq!(
        h.text("SELECT source FROM contacts WHERE phone = '+15551234567'")
            .await
            .as_deref(),
        Some("whatsapp")
    );
    assert_eq!(
        h.int("SELECT COUNT(*) FROM conversations c JOIN contacts k ON k.id = c.contact_id WHERE k.phone = '+15551234567'")
            .await,
        1,
        "one conversation per contact"
    );
    // v2-batch-received: both stored, in order.
    assert_eq!(
        h.texts("SELECT wamid FROM messages WHERE wamid IN ('wamid.B1', 'wamid.B2') ORDER BY seq")
            .await,
        [Some("wamid.B1".into()), Some("wamid.B2".into())]
    );
    // The business-app echo is outbound from someone outside this API.
    assert_eq!(
        h.text("SELECT direction || '/' || sender_type FROM messages WHERE wamid = 'wamid.ECHO1'")
            .await
            .as_deref(),
        Some("outbound/external")
    );
    // The image keeps its media.
    let media = h
        .text("SELECT media FROM messages WHERE wamid = 'wamid.IMG1'")
        .await
        .expect("media stored");
    let media: Value = serde_json::from_str(&media).expect("media JSON");
    assert_eq!(media["mime_type"], "image/jpeg");
    // OUT1: delivered and read arrived (Meta statuses) before the sent echo; read wins, and
    // the later v2 delivered did not move it back.
    assert_eq!(
        h.text("SELECT status FROM messages WHERE wamid = 'wamid.OUT1'")
            .await
            .as_deref(),
        Some("read")
    );
    // OUT2's failure arrived before any message: it waits, with Meta's code and title, and is
    // applied when the message shows up (here Kapso's sent event for it, arriving late).
    let error = h
        .text("SELECT error FROM pending_statuses WHERE wamid = 'wamid.OUT2' AND status = 'failed'")
        .await
        .expect("error kept");
    let error: Value = serde_json::from_str(&error).expect("error JSON");
    assert_eq!(error["code"], "131047");
    let sent = load("v2-sent");
    let late = String::from_utf8(sent.body)
        .expect("UTF-8")
        .replace("wamid.OUT1", "wamid.OUT2");
    let late = Post::kapso(
        "whatsapp.message.sent",
        "late-sent",
        late.as_bytes(),
        KAPSO_SECRET,
    );
    assert_eq!(post(&app, &late).await.0, StatusCode::OK);
    assert_eq!(
        h.text("SELECT status FROM messages WHERE wamid = 'wamid.OUT2'")
            .await
            .as_deref(),
        Some("failed")
    );
    let error = h
        .text("SELECT error FROM messages WHERE wamid = 'wamid.OUT2'")
        .await
        .expect("error stored");
    let error: Value = serde_json::from_str(&error).expect("error JSON");
    assert_eq!(error["code"], "131047");
    assert_eq!(error["title"], "Re-engagement message");
    assert_eq!(
        h.int("SELECT COUNT(*) FROM pending_statuses WHERE wamid = 'wamid.OUT2'")
            .await,
        0
    );
    // OUT3 never arrived: its failure waits for it.
    assert_eq!(
        h.int("SELECT COUNT(*) FROM pending_statuses WHERE wamid = 'wamid.OUT3'")
            .await,
        1
    );
    assert_eq!(
        h.int("SELECT COUNT(*) FROM pending_statuses WHERE wamid = 'wamid.OUT1'")
            .await,
        0
    );
    // Meta multi-entry: every message of every entry, each customer once.
    assert_eq!(
        h.int("SELECT COUNT(*) FROM messages WHERE wamid LIKE 'wamid.MULTI%'")
            .await,
        3
    );
    assert_eq!(
        h.int("SELECT COUNT(*) FROM contacts WHERE phone IN ('+5511987654321', '+6281234567890')")
            .await,
        2
    );
    // Seqs are gap-free in every conversation.
    assert_eq!(
        h.int("SELECT COUNT(*) FROM conversations c WHERE c.last_seq <> (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id)")
            .await,
        0
    );
}

pub async fn batch_messages_resent_one_by_one_are_not_duplicated(h: Harness) {
    let app = h.app();
    let batch = load("v2-batch-received");
    assert_eq!(post(&app, &batch).await.0, StatusCode::OK);
    let events = h.int("SELECT COUNT(*) FROM events").await;
    let body: Value = serde_json::from_slice(&batch.body).expect("JSON");
    let elements = body["data"].as_array().expect("batch data");
    for (i, element) in elements.iter().enumerate() {
        let single = serde_json::to_vec(element).expect("serialise");
        let resend = Post::kapso(
            "whatsapp.message.received",
            &format!("fallback-{i}"),
            &single,
            KAPSO_SECRET,
        );
        assert_eq!(post(&app, &resend).await.0, StatusCode::OK);
    }
    assert_eq!(h.int("SELECT COUNT(*) FROM messages").await, 2);
    assert_eq!(
        h.texts("SELECT CAST(seq AS TEXT) FROM messages ORDER BY seq")
            .await,
        [Some("1".into()), Some("2".into())]
    );
    assert_eq!(h.int("SELECT COUNT(*) FROM webhook_deliveries").await, 3);
    assert_eq!(
        h.int("SELECT COUNT(*) FROM events").await,
        events,
        "the fallback changes nothing"
    );
}
