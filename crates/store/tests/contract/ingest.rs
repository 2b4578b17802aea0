//! The ingest use case over the store: every rule, checked in what is really stored.

use std::sync::Arc;

use inbox_domain::delivery::{DeliveryOutcome, NewDelivery};
use inbox_domain::ingest::{
    ConversationNotice, CustomerRef, DeliveryFacts, Fact, IncomingMessage, IngestOutcome,
    StatusUpdate, ingest, replay,
};
use inbox_domain::message::{
    DeliveryStatus, Direction, Media, MessageError, MessageKind, SenderType,
};
use inbox_domain::phone::PhoneE164;
use inbox_domain::workspace::WorkspacePatch;
use inbox_domain::{DeliveryId, Timestamp, WorkspaceId};

use crate::Harness;
use crate::workspaces::new_workspace;

pub const PHONE_NUMBER_ID: &str = "123456789012345";

/// The WhatsApp time (Unix seconds, 2026-09-21) test messages count from: a believable one,
/// since ingest clamps a sender's time to around the delivery's arrival.
pub const T0: i64 = 1_790_000_000;

/// The stored milliseconds of a test message sent `secs` after [`T0`].
pub const fn at_ms(secs: i64) -> i64 {
    (T0 + secs) * 1_000
}
const WA_ID: &str = "6281234567890";

/// A workspace that owns [`PHONE_NUMBER_ID`].
pub async fn workspace(h: &Harness, slug: &str, phone_number_id: &str) -> WorkspaceId {
    let ws = h
        .repo
        .create_workspace(new_workspace(slug))
        .await
        .expect("create");
    let patch = WorkspacePatch {
        kapso_phone_number_id: Some(Some(phone_number_id.into())),
        ..WorkspacePatch::default()
    };
    h.repo.update_workspace(ws.id, patch).await.expect("patch");
    ws.id
}

fn customer(wa_id: &str, name: Option<&str>) -> CustomerRef {
    CustomerRef {
        phone: Some(PhoneE164::from_wa_id(wa_id).expect("valid wa_id")),
        bsuid: None,
        profile_name: name.map(str::to_owned),
    }
}

pub fn inbound(wamid: &str, wa_id: &str, name: Option<&str>, secs: i64, text: &str) -> Fact {
    Fact::Message(IncomingMessage {
        wamid: wamid.into(),
        direction: Direction::Inbound,
        sender_type: SenderType::Contact,
        customer: customer(wa_id, name),
        kind: MessageKind::text(),
        text: Some(text.into()),
        media: None,
        reply_to_wamid: None,
        sent_at: Timestamp::from_unix_seconds(T0 + secs),
        status: DeliveryStatus::Received,
        kapso_conversation_id: Some("kc_1".into()),
        callback_data: None,
        template: None,
        raw: serde_json::json!({"id": wamid, "unknown_field": [1, 2]}),
    })
}

fn echo(wamid: &str, secs: i64, text: &str, status: DeliveryStatus) -> Fact {
    Fact::Message(IncomingMessage {
        wamid: wamid.into(),
        direction: Direction::Outbound,
        sender_type: SenderType::External,
        customer: customer(WA_ID, None),
        kind: MessageKind::text(),
        text: Some(text.into()),
        media: None,
        reply_to_wamid: None,
        sent_at: Timestamp::from_unix_seconds(T0 + secs),
        status,
        kapso_conversation_id: None,
        callback_data: None,
        template: None,
        raw: serde_json::json!({"id": wamid}),
    })
}

fn status(wamid: &str, status: DeliveryStatus, error: Option<MessageError>) -> Fact {
    Fact::Status(StatusUpdate {
        wamid: wamid.into(),
        status,
        at: Timestamp::from_unix_seconds(1_000),
        error,
        customer: customer(WA_ID, None),
        kapso_conversation_id: None,
        callback_data: None,
    })
}

pub fn facts(items: Vec<Fact>) -> DeliveryFacts {
    DeliveryFacts {
        phone_number_id: Some(PHONE_NUMBER_ID.into()),
        items,
    }
}

pub fn delivery(key: &str) -> NewDelivery {
    NewDelivery {
        id: DeliveryId::new(),
        idempotency_key: Some(key.into()),
        event: Some("whatsapp.message.received".into()),
        phone_number_id: Some(PHONE_NUMBER_ID.into()),
        headers: serde_json::json!({"x-webhook-event": "whatsapp.message.received"}),
        body: b"{}".to_vec(),
        received_at: Timestamp::now(),
    }
}

async fn run(h: &Harness, key: &str, items: Vec<Fact>) -> IngestOutcome {
    ingest(h.repo.as_ref(), &delivery(key), &facts(items))
        .await
        .expect("ingest")
}

async fn event_kinds(h: &Harness) -> Vec<String> {
    h.raw
        .texts("SELECT kind FROM events ORDER BY id")
        .await
        .into_iter()
        .flatten()
        .collect()
}

pub async fn inbound_creates_contact_conversation_and_message(h: Harness) {
    workspace(&h, "acme", PHONE_NUMBER_ID).await;
    let out = run(
        &h,
        "k1",
        vec![inbound("w1", WA_ID, Some(" Budi "), 100, "Hello")],
    )
    .await;
    assert_eq!(out, IngestOutcome::Processed);

    assert_eq!(h.raw.int("SELECT COUNT(*) FROM contacts").await, 1);
    assert_eq!(
        h.raw.text("SELECT phone FROM contacts").await.as_deref(),
        Some("+6281234567890")
    );
    assert_eq!(
        h.raw
            .text("SELECT whatsapp_name FROM contacts")
            .await
            .as_deref(),
        Some("Budi")
    );
    assert_eq!(h.raw.text("SELECT name FROM contacts").await, None);
    assert_eq!(
        h.raw.text("SELECT source FROM contacts").await.as_deref(),
        Some("whatsapp")
    );
    assert_eq!(
        h.raw.ints("SELECT last_activity_at FROM contacts").await,
        [Some(at_ms(100))]
    );
    assert_eq!(
        h.raw.int("SELECT activity_sort FROM contacts").await,
        at_ms(100)
    );
    assert_eq!(
        h.raw.ints("SELECT last_contact_at FROM contacts").await,
        [None]
    );

    assert_eq!(
        h.raw
            .int("SELECT CAST(unread_count AS BIGINT) FROM conversations")
            .await,
        1
    );
    assert_eq!(
        h.raw
            .text("SELECT last_message_preview FROM conversations")
            .await
            .as_deref(),
        Some("Hello")
    );
    assert_eq!(
        h.raw.int("SELECT last_message_at FROM conversations").await,
        at_ms(100)
    );
    assert_eq!(
        h.raw.int("SELECT last_inbound_at FROM conversations").await,
        at_ms(100)
    );
    assert_eq!(
        h.raw.int("SELECT sort_at FROM conversations").await,
        at_ms(100)
    );
    assert_eq!(h.raw.int("SELECT last_seq FROM conversations").await, 1);
    assert_eq!(
        h.raw
            .text("SELECT status FROM conversations")
            .await
            .as_deref(),
        Some("open")
    );
    assert_eq!(
        h.raw
            .text("SELECT kapso_conversation_id FROM conversations")
            .await
            .as_deref(),
        Some("kc_1")
    );

    assert_eq!(h.raw.int("SELECT seq FROM messages").await, 1);
    assert_eq!(
        h.raw.text("SELECT status FROM messages").await.as_deref(),
        Some("received")
    );
    assert_eq!(
        h.raw
            .text("SELECT direction FROM messages")
            .await
            .as_deref(),
        Some("inbound")
    );
    assert_eq!(
        h.raw
            .text("SELECT sender_type FROM messages")
            .await
            .as_deref(),
        Some("contact")
    );
    assert_eq!(h.raw.int("SELECT sent_at FROM messages").await, at_ms(100));
    let raw = h
        .raw
        .text("SELECT raw FROM messages")
        .await
        .expect("raw kept");
    let raw: serde_json::Value = serde_json::from_str(&raw).expect("raw is JSON");
    assert_eq!(
        raw["unknown_field"],
        serde_json::json!([1, 2]),
        "unknown fields are kept"
    );

    assert_eq!(
        event_kinds(&h).await,
        ["contact.updated", "conversation.created", "message.created"]
    );
    assert_eq!(
        h.raw
            .text("SELECT outcome FROM webhook_deliveries")
            .await
            .as_deref(),
        Some("processed")
    );
    assert_eq!(
        h.raw
            .int("SELECT CAST(attempts AS BIGINT) FROM webhook_deliveries")
            .await,
        1
    );

    let out = run(
        &h,
        "k2",
        vec![inbound("w2", WA_ID, Some("Budi"), 101, "Again")],
    )
    .await;
    assert_eq!(out, IngestOutcome::Processed);
    assert_eq!(
        event_kinds(&h).await[3..],
        ["message.created", "conversation.updated"],
        "an unchanged profile name is not a contact change"
    );
}

pub async fn media_and_errors_are_stored_as_json(h: Harness) {
    workspace(&h, "acme", PHONE_NUMBER_ID).await;
    let Fact::Message(mut image) = inbound("w1", WA_ID, None, 100, "") else {
        unreachable!("inbound builds a message");
    };
    image.kind = MessageKind::new("image");
    image.text = None;
    image.media = Some(Media {
        url: Some("https://media.example/1".into()),
        mime_type: Some("image/jpeg".into()),
        filename: None,
        size_bytes: Some(2048),
        provider_media_id: Some("media_1".into()),
    });
    run(&h, "k1", vec![Fact::Message(image)]).await;
    let media = h
        .raw
        .text("SELECT media FROM messages")
        .await
        .expect("media");
    let media: serde_json::Value = serde_json::from_str(&media).expect("JSON");
    assert_eq!(media["mime_type"], "image/jpeg");
    assert_eq!(media["size_bytes"], 2048);
    assert_eq!(media["provider_media_id"], "media_1");
    assert_eq!(
        h.raw
            .text("SELECT last_message_preview FROM conversations")
            .await
            .as_deref(),
        Some("[Image]")
    );
}

pub async fn repeated_idempotency_key_changes_nothing(h: Harness) {
    workspace(&h, "acme", PHONE_NUMBER_ID).await;
    let d = delivery("same-key");
    let f = facts(vec![inbound("w1", WA_ID, None, 100, "Hello")]);
    assert_eq!(
        ingest(h.repo.as_ref(), &d, &f).await.expect("first"),
        IngestOutcome::Processed
    );
    let events = h.raw.int("SELECT COUNT(*) FROM events").await;
    let again = NewDelivery {
        id: DeliveryId::new(),
        ..d.clone()
    };
    let f2 = facts(vec![inbound("w2", WA_ID, None, 101, "Other")]);
    assert_eq!(
        ingest(h.repo.as_ref(), &again, &f2).await.expect("second"),
        IngestOutcome::Duplicate
    );
    assert_eq!(
        h.raw.int("SELECT COUNT(*) FROM webhook_deliveries").await,
        1
    );
    assert_eq!(h.raw.int("SELECT COUNT(*) FROM messages").await, 1);
    assert_eq!(h.raw.int("SELECT COUNT(*) FROM events").await, events);
}

pub async fn duplicate_wamids_do_not_consume_a_seq(h: Harness) {
    workspace(&h, "acme", PHONE_NUMBER_ID).await;
    let batch = vec![
        inbound("w1", WA_ID, None, 100, "one"),
        inbound("w2", WA_ID, None, 101, "two"),
    ];
    run(&h, "batch", batch).await;
    // Kapso's fallback: the batch's messages again, one per request, under new keys.
    run(&h, "single-1", vec![inbound("w1", WA_ID, None, 100, "one")]).await;
    run(&h, "single-2", vec![inbound("w2", WA_ID, None, 101, "two")]).await;
    run(&h, "next", vec![inbound("w3", WA_ID, None, 102, "three")]).await;
    assert_eq!(
        h.raw.ints("SELECT seq FROM messages ORDER BY seq").await,
        [Some(1), Some(2), Some(3)]
    );
    assert_eq!(
        h.raw.texts("SELECT wamid FROM messages ORDER BY seq").await,
        [Some("w1".into()), Some("w2".into()), Some("w3".into())]
    );
    assert_eq!(h.raw.int("SELECT last_seq FROM conversations").await, 3);
    assert_eq!(
        h.raw
            .int("SELECT CAST(unread_count AS BIGINT) FROM conversations")
            .await,
        3,
        "duplicates add no unread"
    );
    assert_eq!(
        h.raw
            .int("SELECT COUNT(*) FROM events WHERE kind = 'message.created'")
            .await,
        3
    );
}

pub async fn wamids_phones_and_conversations_are_unique_where_they_must_be(h: Harness) {
    workspace(&h, "acme", PHONE_NUMBER_ID).await;
    workspace(&h, "other", "999").await;
    run(&h, "k1", vec![inbound("w1", WA_ID, None, 100, "a")]).await;
    let other = DeliveryFacts {
        phone_number_id: Some("999".into()),
        items: vec![inbound("w1", WA_ID, None, 100, "a")],
    };
    let out = ingest(h.repo.as_ref(), &delivery("k2"), &other)
        .await
        .expect("ingest");
    assert_eq!(out, IngestOutcome::Processed);
    assert_eq!(
        h.raw.int("SELECT COUNT(*) FROM messages").await,
        2,
        "wamids are per workspace"
    );
    assert_eq!(
        h.raw.int("SELECT COUNT(*) FROM contacts").await,
        2,
        "phones are per workspace"
    );

    // bsuid-only customers are found again by bsuid.
    let bsuid = |wamid: &str| {
        Fact::Message(IncomingMessage {
            customer: CustomerRef {
                phone: None,
                bsuid: Some("US.1349".into()),
                profile_name: None,
            },
            ..match inbound(wamid, WA_ID, None, 200, "b") {
                Fact::Message(m) => m,
                _ => unreachable!("inbound builds a message"),
            }
        })
    };
    run(&h, "k3", vec![bsuid("b1")]).await;
    run(&h, "k4", vec![bsuid("b2")]).await;
    assert_eq!(
        h.raw
            .int("SELECT COUNT(*) FROM contacts WHERE bsuid = 'US.1349'")
            .await,
        1
    );
    assert_eq!(h.raw.int("SELECT COUNT(*) FROM contacts").await, 3);
    assert_eq!(h.raw.int("SELECT COUNT(*) FROM conversations").await, 3);

    // The schema refuses a second conversation for a contact and a repeated wamid.
    let second_conversation = h
        .raw
        .execute(
            "INSERT INTO conversations (id, workspace_id, contact_id, created_at, updated_at) \
             SELECT workspace_id, workspace_id, contact_id, 0, 0 FROM conversations LIMIT 1",
        )
        .await;
    assert!(second_conversation.is_err(), "one conversation per contact");
    let repeated_wamid = h
        .raw
        .execute(
            "INSERT INTO messages (id, workspace_id, conversation_id, seq, direction, sender_type, \
               kind, wamid, status, sent_at, created_at) \
             SELECT conversation_id, workspace_id, conversation_id, 99, direction, sender_type, \
               kind, wamid, status, sent_at, created_at FROM messages LIMIT 1",
        )
        .await;
    assert!(repeated_wamid.is_err(), "one wamid per workspace");
    let repeated_phone = h
        .raw
        .execute(
            "INSERT INTO contacts (id, workspace_id, phone, source, created_at, updated_at) \
             SELECT workspace_id, workspace_id, phone, 'manual', 0, 0 FROM contacts \
             WHERE phone IS NOT NULL LIMIT 1",
        )
        .await;
    assert!(repeated_phone.is_err(), "one contact per phone");
}

pub async fn the_person_set_name_is_never_overwritten(h: Harness) {
    workspace(&h, "acme", PHONE_NUMBER_ID).await;
    run(&h, "k1", vec![inbound("w1", WA_ID, Some("Budi"), 100, "a")]).await;
    h.raw
        .execute("UPDATE contacts SET name = 'Pak Budi'")
        .await
        .expect("rename");
    run(
        &h,
        "k2",
        vec![inbound("w2", WA_ID, Some("Budi S"), 101, "b")],
    )
    .await;
    assert_eq!(
        h.raw.text("SELECT name FROM contacts").await.as_deref(),
        Some("Pak Budi")
    );
    assert_eq!(
        h.raw
            .text("SELECT whatsapp_name FROM contacts")
            .await
            .as_deref(),
        Some("Budi S")
    );
    assert_eq!(
        h.raw
            .int("SELECT COUNT(*) FROM events WHERE kind = 'contact.updated'")
            .await,
        2,
        "created, then renamed"
    );
}

pub async fn unknown_customers_are_ignored_without_auto_create(h: Harness) {
    let ws = workspace(&h, "acme", PHONE_NUMBER_ID).await;
    run(&h, "k1", vec![inbound("w1", WA_ID, None, 100, "known")]).await;
    let patch = WorkspacePatch {
        auto_create_contacts: Some(false),
        ..WorkspacePatch::default()
    };
    h.repo.update_workspace(ws, patch).await.expect("patch");

    let out = run(
        &h,
        "k2",
        vec![inbound("w2", "6281299998888", None, 101, "stranger")],
    )
    .await;
    let IngestOutcome::Ignored(reason) = out else {
        panic!("expected ignored, got {out:?}");
    };
    assert!(reason.contains("auto_create_contacts"), "{reason}");
    assert_eq!(h.raw.int("SELECT COUNT(*) FROM contacts").await, 1);
    assert_eq!(
        h.raw
            .texts("SELECT outcome FROM webhook_deliveries ORDER BY received_at, id")
            .await,
        [Some("processed".into()), Some("ignored".into())]
    );
    let stored = h
        .repo
        .delivery_by_idempotency_key("k2")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.outcome, DeliveryOutcome::Ignored);
    assert_eq!(stored.error.as_deref(), Some(reason.as_str()));
    assert_eq!(stored.attempts, 1);

    let out = run(
        &h,
        "k3",
        vec![inbound("w3", WA_ID, None, 102, "known again")],
    )
    .await;
    assert_eq!(out, IngestOutcome::Processed, "known customers still flow");

    // Turning auto-creation back on and replaying brings the ignored message in.
    let patch = WorkspacePatch {
        auto_create_contacts: Some(true),
        ..WorkspacePatch::default()
    };
    h.repo.update_workspace(ws, patch).await.expect("patch");
    let f = facts(vec![inbound("w2", "6281299998888", None, 101, "stranger")]);
    let out = replay(h.repo.as_ref(), &stored, &f).await.expect("replay");
    assert_eq!(out, IngestOutcome::Processed);
    let stored = h
        .repo
        .delivery(stored.id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.outcome, DeliveryOutcome::Processed);
    assert_eq!(stored.error, None);
    assert_eq!(stored.attempts, 2);
    assert_eq!(h.raw.int("SELECT COUNT(*) FROM contacts").await, 2);
}

pub async fn unknown_phone_number_ids_are_ignored(h: Harness) {
    workspace(&h, "acme", PHONE_NUMBER_ID).await;
    let f = DeliveryFacts {
        phone_number_id: Some("555".into()),
        items: vec![inbound("w1", WA_ID, None, 100, "a")],
    };
    let out = ingest(h.repo.as_ref(), &delivery("k1"), &f)
        .await
        .expect("ingest");
    assert!(
        matches!(out, IngestOutcome::Ignored(ref r) if r.contains("555")),
        "{out:?}"
    );
    assert_eq!(h.raw.int("SELECT COUNT(*) FROM messages").await, 0);
    let stored = h
        .repo
        .delivery_by_idempotency_key("k1")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.outcome, DeliveryOutcome::Ignored);
    assert_eq!(stored.workspace_id, None);
    let again = ingest(h.repo.as_ref(), &delivery("k1"), &f)
        .await
        .expect("ingest");
    assert_eq!(again, IngestOutcome::Duplicate);
}

pub async fn last_message_follows_whatsapp_time_not_arrival(h: Harness) {
    workspace(&h, "acme", PHONE_NUMBER_ID).await;
    run(&h, "k1", vec![inbound("w2", WA_ID, None, 200, "newer")]).await;
    run(&h, "k2", vec![inbound("w1", WA_ID, None, 100, "older")]).await;
    assert_eq!(
        h.raw
            .text("SELECT last_message_preview FROM conversations")
            .await
            .as_deref(),
        Some("newer")
    );
    assert_eq!(
        h.raw.int("SELECT last_message_at FROM conversations").await,
        at_ms(200)
    );
    assert_eq!(
        h.raw.int("SELECT sort_at FROM conversations").await,
        at_ms(200)
    );
    assert_eq!(
        h.raw.int("SELECT last_inbound_at FROM conversations").await,
        at_ms(200)
    );
    assert_eq!(
        h.raw.int("SELECT last_activity_at FROM contacts").await,
        at_ms(200)
    );
    assert_eq!(
        h.raw.texts("SELECT wamid FROM messages ORDER BY seq").await,
        [Some("w2".into()), Some("w1".into())],
        "seq is arrival order"
    );
}

pub async fn outbound_echoes_never_touch_unread_and_inbound_reopens(h: Harness) {
    workspace(&h, "acme", PHONE_NUMBER_ID).await;
    run(&h, "k1", vec![inbound("w1", WA_ID, None, 100, "hi")]).await;
    h.raw
        .execute("UPDATE conversations SET status = 'closed', unread_count = 0")
        .await
        .expect("close");
    run(
        &h,
        "k2",
        vec![echo(
            "o1",
            150,
            "reply from the phone app",
            DeliveryStatus::Sent,
        )],
    )
    .await;
    assert_eq!(
        h.raw
            .text("SELECT status FROM conversations")
            .await
            .as_deref(),
        Some("closed")
    );
    assert_eq!(
        h.raw
            .int("SELECT CAST(unread_count AS BIGINT) FROM conversations")
            .await,
        0
    );
    assert_eq!(
        h.raw
            .text("SELECT last_message_preview FROM conversations")
            .await
            .as_deref(),
        Some("reply from the phone app")
    );
    assert_eq!(
        h.raw.int("SELECT last_inbound_at FROM conversations").await,
        at_ms(100)
    );
    assert_eq!(
        h.raw.int("SELECT last_contact_at FROM contacts").await,
        at_ms(150)
    );
    assert_eq!(
        h.raw.int("SELECT last_activity_at FROM contacts").await,
        at_ms(150)
    );
    assert_eq!(
        h.raw
            .texts("SELECT sender_type FROM messages ORDER BY seq")
            .await,
        [Some("contact".into()), Some("external".into())]
    );
    assert_eq!(
        h.raw
            .text("SELECT status FROM messages WHERE wamid = 'o1'")
            .await
            .as_deref(),
        Some("sent")
    );

    run(&h, "k3", vec![inbound("w2", WA_ID, None, 160, "back")]).await;
    assert_eq!(
        h.raw
            .text("SELECT status FROM conversations")
            .await
            .as_deref(),
        Some("open")
    );
    assert_eq!(
        h.raw
            .int("SELECT CAST(unread_count AS BIGINT) FROM conversations")
            .await,
        1
    );
}

pub async fn statuses_before_their_message_are_applied_when_it_arrives(h: Harness) {
    workspace(&h, "acme", PHONE_NUMBER_ID).await;
    let out = run(
        &h,
        "s1",
        vec![status("o1", DeliveryStatus::Delivered, None)],
    )
    .await;
    assert_eq!(out, IngestOutcome::Processed);
    assert_eq!(h.raw.int("SELECT COUNT(*) FROM pending_statuses").await, 1);
    assert_eq!(h.raw.int("SELECT COUNT(*) FROM messages").await, 0);
    run(
        &h,
        "s2",
        vec![status("o1", DeliveryStatus::Delivered, None)],
    )
    .await;
    assert_eq!(
        h.raw.int("SELECT COUNT(*) FROM pending_statuses").await,
        1,
        "kept once"
    );

    run(
        &h,
        "m1",
        vec![echo("o1", 100, "hello", DeliveryStatus::Sent)],
    )
    .await;
    assert_eq!(
        h.raw
            .text("SELECT status FROM messages WHERE wamid = 'o1'")
            .await
            .as_deref(),
        Some("delivered")
    );
    assert_eq!(
        h.raw.int("SELECT COUNT(*) FROM pending_statuses").await,
        0,
        "applied, then deleted"
    );

    // A status and its message in one delivery, the status listed first.
    run(
        &h,
        "m2",
        vec![
            status("o2", DeliveryStatus::Read, None),
            echo("o2", 101, "second", DeliveryStatus::Sent),
        ],
    )
    .await;
    assert_eq!(
        h.raw
            .text("SELECT status FROM messages WHERE wamid = 'o2'")
            .await
            .as_deref(),
        Some("read")
    );
    assert_eq!(h.raw.int("SELECT COUNT(*) FROM pending_statuses").await, 0);
}

pub async fn statuses_only_move_forward(h: Harness) {
    workspace(&h, "acme", PHONE_NUMBER_ID).await;
    run(
        &h,
        "m",
        vec![echo("o1", 100, "hello", DeliveryStatus::Sent)],
    )
    .await;
    run(&h, "r", vec![status("o1", DeliveryStatus::Read, None)]).await;
    let events = h.raw.int("SELECT COUNT(*) FROM events").await;
    run(&h, "d", vec![status("o1", DeliveryStatus::Delivered, None)]).await;
    assert_eq!(
        h.raw
            .text("SELECT status FROM messages WHERE wamid = 'o1'")
            .await
            .as_deref(),
        Some("read")
    );
    assert_eq!(
        h.raw.int("SELECT COUNT(*) FROM events").await,
        events,
        "a late delivered changes nothing"
    );
    assert_eq!(
        h.raw
            .int("SELECT COUNT(*) FROM events WHERE kind = 'message.updated'")
            .await,
        1
    );
    // A repeated echo of the message does not move it back either.
    run(
        &h,
        "m-again",
        vec![echo("o1", 100, "hello", DeliveryStatus::Sent)],
    )
    .await;
    assert_eq!(
        h.raw
            .text("SELECT status FROM messages WHERE wamid = 'o1'")
            .await
            .as_deref(),
        Some("read")
    );
    assert_eq!(h.raw.int("SELECT COUNT(*) FROM messages").await, 1);
}

pub async fn failed_records_code_and_title(h: Harness) {
    workspace(&h, "acme", PHONE_NUMBER_ID).await;
    run(
        &h,
        "m",
        vec![echo("o1", 100, "hello", DeliveryStatus::Sent)],
    )
    .await;
    let error = MessageError {
        code: Some("131047".into()),
        title: Some("Re-engagement message".into()),
        message: Some("More than 24 hours have passed".into()),
    };
    run(
        &h,
        "f",
        vec![status("o1", DeliveryStatus::Failed, Some(error))],
    )
    .await;
    assert_eq!(
        h.raw
            .text("SELECT status FROM messages WHERE wamid = 'o1'")
            .await
            .as_deref(),
        Some("failed")
    );
    let stored = h
        .raw
        .text("SELECT error FROM messages WHERE wamid = 'o1'")
        .await
        .expect("error");
    let stored: serde_json::Value = serde_json::from_str(&stored).expect("JSON");
    assert_eq!(stored["code"], "131047");
    assert_eq!(stored["title"], "Re-engagement message");
    run(&h, "r", vec![status("o1", DeliveryStatus::Read, None)]).await;
    assert_eq!(
        h.raw
            .text("SELECT status FROM messages WHERE wamid = 'o1'")
            .await
            .as_deref(),
        Some("failed"),
        "failed is terminal"
    );
}

pub async fn concurrent_burst_from_a_new_phone(h: Harness) {
    workspace(&h, "acme", PHONE_NUMBER_ID).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let repo = Arc::clone(&h.repo);
        tasks.push(tokio::spawn(async move {
            let f = facts(vec![inbound(
                &format!("w{i}"),
                WA_ID,
                Some("Budi"),
                100 + i,
                "album",
            )]);
            ingest(repo.as_ref(), &delivery(&format!("k{i}")), &f).await
        }));
    }
    // The same messages again, concurrently, under other keys: retries racing the originals.
    for i in 0..20 {
        let repo = Arc::clone(&h.repo);
        tasks.push(tokio::spawn(async move {
            let f = facts(vec![inbound(
                &format!("w{i}"),
                WA_ID,
                Some("Budi"),
                100 + i,
                "album",
            )]);
            ingest(repo.as_ref(), &delivery(&format!("retry{i}")), &f).await
        }));
    }
    for task in tasks {
        let out = task.await.expect("task").expect("ingest");
        assert_eq!(out, IngestOutcome::Processed);
    }
    assert_eq!(h.raw.int("SELECT COUNT(*) FROM contacts").await, 1);
    assert_eq!(h.raw.int("SELECT COUNT(*) FROM conversations").await, 1);
    let seqs: Vec<Option<i64>> = (1..=20).map(Some).collect();
    assert_eq!(
        h.raw.ints("SELECT seq FROM messages ORDER BY seq").await,
        seqs
    );
    assert_eq!(
        h.raw
            .int("SELECT CAST(unread_count AS BIGINT) FROM conversations")
            .await,
        20
    );
    assert_eq!(h.raw.int("SELECT last_seq FROM conversations").await, 20);
    assert_eq!(
        h.raw.int("SELECT last_message_at FROM conversations").await,
        at_ms(119)
    );
    assert_eq!(
        h.raw
            .int("SELECT COUNT(*) FROM events WHERE kind = 'conversation.created'")
            .await,
        1
    );
    assert_eq!(
        h.raw
            .int("SELECT COUNT(*) FROM events WHERE kind = 'message.created'")
            .await,
        20
    );
}

/// Kapso retrying a delivery while the first attempt is still being stored: one of them stores
/// it, every other one is a duplicate that changed nothing, for a known customer as for a new one.
pub async fn concurrent_copies_of_one_delivery_store_it_once(h: Harness) {
    workspace(&h, "acme", PHONE_NUMBER_ID).await;
    run(&h, "k0", vec![inbound("w0", WA_ID, None, 100, "known")]).await;
    let events = h.raw.int("SELECT COUNT(*) FROM events").await;
    let mut tasks = Vec::new();
    for (key, wa_id) in [("known", WA_ID), ("new", "6289999999999")] {
        for _ in 0..8 {
            let repo = Arc::clone(&h.repo);
            tasks.push(tokio::spawn(async move {
                let f = facts(vec![inbound(
                    &format!("w-{key}"),
                    wa_id,
                    Some("Budi"),
                    200,
                    "again?",
                )]);
                // Every copy is received afresh, under a new id but the same key.
                ingest(repo.as_ref(), &delivery(key), &f).await
            }));
        }
    }
    let mut processed = 0;
    for task in tasks {
        match task.await.expect("task").expect("ingest") {
            IngestOutcome::Processed => processed += 1,
            IngestOutcome::Duplicate => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(processed, 2);
    assert_eq!(
        h.raw.int("SELECT COUNT(*) FROM webhook_deliveries").await,
        3
    );
    assert_eq!(h.raw.int("SELECT COUNT(*) FROM messages").await, 3);
    assert_eq!(h.raw.int("SELECT COUNT(*) FROM contacts").await, 2);
    assert_eq!(h.raw.int("SELECT COUNT(*) FROM conversations").await, 2);
    assert_eq!(
        h.raw
            .ints("SELECT last_seq FROM conversations ORDER BY last_seq")
            .await,
        [Some(1), Some(2)]
    );
    // Known customer: message.created, conversation.updated, contact.updated (the name).
    // New customer: contact.updated, conversation.created, message.created.
    assert_eq!(h.raw.int("SELECT COUNT(*) FROM events").await, events + 6);
}

pub async fn schema_mirrors_are_kept(h: Harness) {
    workspace(&h, "acme", PHONE_NUMBER_ID).await;
    run(&h, "k1", vec![inbound("w1", WA_ID, None, 100, "a")]).await;
    h.raw
        .execute(
            "INSERT INTO conversation_tags (conversation_id, workspace_id, tag, sort_at) \
             SELECT id, workspace_id, 'vip', sort_at FROM conversations",
        )
        .await
        .expect("tag");
    run(&h, "k2", vec![inbound("w2", WA_ID, None, 300, "b")]).await;
    assert_eq!(
        h.raw.int("SELECT sort_at FROM conversation_tags").await,
        at_ms(300)
    );

    // A contact whose conversation is gone gets a new one carrying its lead status.
    h.raw
        .execute("DELETE FROM conversations")
        .await
        .expect("delete");
    h.raw
        .execute("UPDATE contacts SET lead_status = 'hot'")
        .await
        .expect("lead");
    run(&h, "k3", vec![inbound("w3", WA_ID, None, 400, "c")]).await;
    assert_eq!(
        h.raw
            .text("SELECT lead_status FROM conversations")
            .await
            .as_deref(),
        Some("hot")
    );
    assert_eq!(h.raw.int("SELECT last_seq FROM conversations").await, 1);
}

pub async fn conversation_notices_keep_the_kapso_id_current(h: Harness) {
    workspace(&h, "acme", PHONE_NUMBER_ID).await;
    run(&h, "k1", vec![inbound("w1", WA_ID, None, 100, "a")]).await;
    let notice = Fact::Conversation(ConversationNotice {
        event: "whatsapp.conversation.created".into(),
        customer: customer(WA_ID, None),
        kapso_conversation_id: Some("kc_2".into()),
        at: Timestamp::from_unix_seconds(200),
    });
    assert_eq!(run(&h, "k2", vec![notice]).await, IngestOutcome::Processed);
    assert_eq!(
        h.raw
            .text("SELECT kapso_conversation_id FROM conversations")
            .await
            .as_deref(),
        Some("kc_2")
    );
    let out = run(
        &h,
        "k3",
        vec![Fact::Unhandled {
            event: "whatsapp.phone_number.created".into(),
        }],
    )
    .await;
    assert!(
        matches!(out, IngestOutcome::Ignored(ref r) if r.contains("phone_number.created")),
        "{out:?}"
    );
}

/// Workspace `acme` with our message `o1` stored with a corrupt status, so that applying a
/// status to it fails without the database being unavailable.
async fn with_a_corrupt_message(h: &Harness) {
    workspace(h, "acme", PHONE_NUMBER_ID).await;
    run(h, "m", vec![echo("o1", 100, "hello", DeliveryStatus::Sent)]).await;
    h.raw
        .execute("UPDATE messages SET status = 'bogus'")
        .await
        .expect("corrupt");
}

pub async fn failures_are_recorded_and_replayable(h: Harness) {
    with_a_corrupt_message(&h).await;
    let f = facts(vec![
        inbound("w9", WA_ID, None, 500, "lost?"),
        status("o1", DeliveryStatus::Read, None),
    ]);
    let out = ingest(h.repo.as_ref(), &delivery("bad"), &f)
        .await
        .expect("recorded");
    assert!(matches!(out, IngestOutcome::Failed(_)), "{out:?}");
    assert_eq!(
        h.raw
            .int("SELECT COUNT(*) FROM messages WHERE wamid = 'w9'")
            .await,
        0,
        "rolled back"
    );
    let failed = h
        .repo
        .deliveries(inbox_domain::delivery::DeliveryFilter::Failed, 10)
        .await
        .expect("list");
    assert_eq!(failed.len(), 1);
    assert!(failed[0].error.is_some());

    h.raw
        .execute("UPDATE messages SET status = 'sent'")
        .await
        .expect("repair");
    for _ in 0..2 {
        let out = replay(h.repo.as_ref(), &failed[0], &f)
            .await
            .expect("replay");
        assert_eq!(out, IngestOutcome::Processed);
    }
    assert_eq!(
        h.raw
            .int("SELECT COUNT(*) FROM messages WHERE wamid = 'w9'")
            .await,
        1
    );
    let stored = h
        .repo
        .delivery(failed[0].id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.outcome, DeliveryOutcome::Processed);
    assert_eq!(stored.attempts, 3);
    assert!(
        h.repo
            .deliveries(inbox_domain::delivery::DeliveryFilter::Failed, 10)
            .await
            .expect("list")
            .is_empty()
    );
}

/// Deliveries stored together (SQLite commits queued deliveries as one batch) stay independent:
/// one that fails is rolled back alone and recorded as failed, every other one is stored whole.
pub async fn a_failing_delivery_among_concurrent_ones_fails_alone(h: Harness) {
    with_a_corrupt_message(&h).await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let repo = Arc::clone(&h.repo);
        tasks.push(tokio::spawn(async move {
            let mut items = vec![inbound(
                &format!("w{i}"),
                &format!("62812000000{i:02}"),
                None,
                200 + i,
                "hi",
            )];
            if i % 8 == 3 {
                items.push(status("o1", DeliveryStatus::Read, None));
            }
            let out = ingest(repo.as_ref(), &delivery(&format!("k{i}")), &facts(items)).await;
            (i, out)
        }));
    }
    for task in tasks {
        let (i, out) = task.await.expect("task");
        let out = out.expect("ingest");
        if i % 8 == 3 {
            assert!(matches!(out, IngestOutcome::Failed(_)), "{i}: {out:?}");
        } else {
            assert_eq!(out, IngestOutcome::Processed, "{i}");
        }
    }
    assert_eq!(h.raw.int("SELECT COUNT(*) FROM messages").await, 1 + 21);
    for i in [3, 11, 19] {
        assert_eq!(
            h.raw
                .int(&format!(
                    "SELECT COUNT(*) FROM messages WHERE wamid = 'w{i}'"
                ))
                .await,
            0,
            "w{i} rolled back"
        );
    }
    assert_eq!(h.raw.int("SELECT COUNT(*) FROM contacts").await, 1 + 21);
    assert_eq!(
        h.raw
            .int("SELECT COUNT(*) FROM webhook_deliveries WHERE outcome = 'failed'")
            .await,
        3
    );
    assert_eq!(
        h.raw
            .int("SELECT COUNT(*) FROM webhook_deliveries WHERE outcome = 'processed'")
            .await,
        1 + 21
    );
    assert_eq!(
        h.raw
            .int("SELECT COUNT(*) FROM events WHERE kind = 'message.created'")
            .await,
        1 + 21
    );
}
