use std::collections::HashSet;
use std::time::Duration;

use inbox_domain::ingest::{CustomerRef, Fact, IncomingMessage, ingest};
use inbox_domain::message::{
    DeliveryStatus, Direction, MessageError, MessageKind, MessageText, SenderType,
};
use inbox_domain::sending::{
    CreatedSend, IdempotencyClaim, NewSend, OutboundContent, TemplateSignature,
};
use inbox_domain::workspace::WorkspacePatch;
use inbox_domain::{ConversationId, MessageId, Timestamp};
use inbox_store::testing::SeedConversation;

use crate::Harness;
use crate::fixtures::{NOW, Team, contact, phone};
use crate::ingest::{PHONE_NUMBER_ID, delivery, facts};

const LEASE: Duration = Duration::from_secs(15);

async fn conversation(h: &Harness, team: &Team) -> ConversationId {
    h.seed
        .seed_conversations(team.ws, vec![SeedConversation::new(contact(1, "Budi"))])
        .await
        .expect("seed")[0]
        .conversation_id
}

fn new_send(team: &Team, conversation_id: ConversationId, text: &str, now: i64) -> NewSend {
    NewSend {
        message_id: MessageId::new(),
        workspace_id: team.ws,
        conversation_id,
        sender_user_id: team.member.user_id,
        to: phone(1),
        content: OutboundContent::Text {
            text: MessageText::parse(text).expect("text"),
            reply_to_wamid: None,
        },
        idempotency: None,
        sends_per_minute: 30,
        lease: LEASE,
        now: Timestamp::from_millis(now),
    }
}

async fn create(h: &Harness, new: &NewSend) -> inbox_domain::message::Message {
    match h.repo.create_send(new).await.expect("create") {
        CreatedSend::Created(message) => *message,
        other => panic!("expected a new send, got {other:?}"),
    }
}

async fn events(h: &Harness, kind: &str, id: MessageId) -> i64 {
    h.raw
        .count(&format!(
            "SELECT COUNT(*) FROM events WHERE kind = '{kind}' AND message_id = {}",
            h.raw.uuid(id.as_uuid())
        ))
        .await
}

pub async fn sends_are_written_pending_with_their_job_then_settle(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let id = conversation(&h, &team).await;
    let new = new_send(&team, id, "Halo", NOW);
    let pending = create(&h, &new).await;
    assert_eq!(pending.status, DeliveryStatus::Pending);
    assert_eq!(pending.wamid, None);
    assert_eq!(pending.seq, 1);
    assert_eq!(pending.sender_type.as_str(), "user");
    assert_eq!(pending.sender_user_id, Some(team.member.user_id));
    assert_eq!(events(&h, "message.created", pending.id).await, 1);
    let conversation = h
        .repo
        .conversation(team.owner, id)
        .await
        .expect("read")
        .expect("conversation");
    assert_eq!(conversation.last_message_preview.as_deref(), Some("Halo"));
    assert_eq!(conversation.unread_count, 0);

    // The creator holds the lease: no worker gets the job before it runs out.
    let early = h
        .repo
        .claim_due_sends(
            Timestamp::from_millis(NOW + 1000),
            Timestamp::from_millis(NOW + 20_000),
            10,
        )
        .await
        .expect("claim");
    assert!(early.is_empty());
    let later = Timestamp::from_millis(NOW + 16_000);
    let jobs = h
        .repo
        .claim_due_sends(later, Timestamp::from_millis(NOW + 31_000), 10)
        .await
        .expect("claim");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].attempts, 2);
    assert_eq!(jobs[0].content, new.content);

    // A status that came before Kapso's answer is applied when the wamid is recorded.
    h.raw
        .execute(&format!(
            "INSERT INTO pending_statuses (workspace_id, wamid, status, at, received_at) \
             VALUES ({}, 'wamid.A', 'delivered', {NOW}, {NOW})",
            h.raw.uuid(team.ws.as_uuid())
        ))
        .await
        .expect("pending status");
    let sent = h
        .repo
        .record_send_accepted(team.ws, pending.id, "wamid.A")
        .await
        .expect("accepted");
    assert_eq!(sent.wamid.as_deref(), Some("wamid.A"));
    assert_eq!(sent.status, DeliveryStatus::Delivered);
    assert_eq!(events(&h, "message.updated", pending.id).await, 1);
    assert_eq!(h.raw.count("SELECT COUNT(*) FROM send_jobs").await, 0);
    assert_eq!(
        h.raw.count("SELECT COUNT(*) FROM pending_statuses").await,
        0
    );
    // Recording it again (a late duplicate answer) changes nothing.
    h.repo
        .record_send_accepted(team.ws, pending.id, "wamid.A")
        .await
        .expect("again");
    assert_eq!(events(&h, "message.updated", pending.id).await, 1);

    let second = create(&h, &new_send(&team, id, "Kedua", NOW + 1)).await;
    assert_eq!(second.seq, 2);
    h.repo
        .reschedule_send(second.id, Timestamp::from_millis(NOW + 100), "timeout")
        .await
        .expect("reschedule");
    let error = MessageError {
        code: Some("131026".into()),
        title: Some("Message undeliverable".into()),
        message: None,
    };
    let failed = h
        .repo
        .record_send_failed(team.ws, second.id, &error)
        .await
        .expect("failed");
    assert_eq!(failed.status, DeliveryStatus::Failed);
    assert_eq!(failed.error, Some(error));
    assert_eq!(events(&h, "message.updated", second.id).await, 1);
    assert_eq!(h.raw.count("SELECT COUNT(*) FROM send_jobs").await, 0);
}

pub async fn rate_limits_and_idempotency_keys_hold_in_the_database(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let id = conversation(&h, &team).await;
    let limited = |text: &str, now: i64| NewSend {
        sends_per_minute: 2,
        ..new_send(&team, id, text, now)
    };
    create(&h, &limited("1", NOW)).await;
    create(&h, &limited("2", NOW + 10_000)).await;
    match h
        .repo
        .create_send(&limited("3", NOW + 20_000))
        .await
        .expect("send")
    {
        CreatedSend::RateLimited { retry_after_secs } => assert_eq!(retry_after_secs, 40),
        other => panic!("expected the limit, got {other:?}"),
    }
    // A minute after the first, one more fits.
    create(&h, &limited("3", NOW + 60_001)).await;

    let keyed = |hash: &str| NewSend {
        idempotency: Some(IdempotencyClaim {
            key: "k1".into(),
            request_hash: hash.into(),
        }),
        ..new_send(&team, id, "Sekali", NOW + 70_000)
    };
    let first = create(&h, &keyed("h1")).await;
    match h.repo.create_send(&keyed("h1")).await.expect("repeat") {
        CreatedSend::Existing(record) => {
            assert_eq!(record.request_hash, "h1");
            assert_eq!(record.message_id, Some(first.id));
            assert_eq!(record.answer, None);
        }
        other => panic!("expected the existing record, got {other:?}"),
    }
    h.repo
        .store_send_answer(team.member.user_id, "k1", 201, "{\"message\":{}}")
        .await
        .expect("answer");
    let record = h
        .repo
        .idempotent_send(team.member.user_id, "k1")
        .await
        .expect("read")
        .expect("record");
    assert_eq!(record.answer, Some((201, "{\"message\":{}}".to_owned())));
    assert!(
        h.repo
            .idempotent_send(team.owner.user_id, "k1")
            .await
            .expect("read")
            .is_none(),
        "keys are per user"
    );
    assert_eq!(
        h.repo
            .prune_send_requests(Timestamp::from_millis(NOW + 80_000))
            .await
            .expect("prune"),
        1
    );
}

pub async fn concurrent_workers_never_claim_the_same_job(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let id = conversation(&h, &team).await;
    let mut ids = HashSet::new();
    for n in 0..12 {
        ids.insert(
            create(&h, &new_send(&team, id, &format!("m{n}"), NOW + n))
                .await
                .id,
        );
    }
    let due = Timestamp::from_millis(NOW + 60_000);
    let lease = Timestamp::from_millis(NOW + 120_000);
    let claims = futures_claims(&h, due, lease).await;
    let claimed: Vec<MessageId> = claims
        .into_iter()
        .flatten()
        .map(|job| job.message_id)
        .collect();
    let unique: HashSet<MessageId> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), unique.len(), "no job claimed twice");
    assert_eq!(unique, ids, "every due job claimed");
}

async fn futures_claims(
    h: &Harness,
    due: Timestamp,
    lease: Timestamp,
) -> Vec<Vec<inbox_domain::sending::SendJob>> {
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let repo = h.repo.clone();
        tasks.push(tokio::spawn(async move {
            repo.claim_due_sends(due, lease, 5).await.expect("claim")
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.push(task.await.expect("task"));
    }
    // Whatever the four left (each takes at most 5) is claimed now.
    all.push(
        h.repo
            .claim_due_sends(due, lease, 100)
            .await
            .expect("claim"),
    );
    all
}

/// Kapso's echo of an outbound message to customer 1, carrying `callback` when given.
fn echo_of(
    wamid: &str,
    kind: &str,
    text: &str,
    template: Option<serde_json::Value>,
    callback: Option<&str>,
) -> Fact {
    Fact::Message(IncomingMessage {
        wamid: wamid.into(),
        direction: Direction::Outbound,
        sender_type: SenderType::External,
        customer: CustomerRef {
            phone: Some(phone(1)),
            bsuid: None,
            profile_name: None,
        },
        kind: MessageKind::new(kind),
        text: Some(text.into()),
        media: None,
        reply_to_wamid: None,
        sent_at: Timestamp::from_millis(NOW),
        status: DeliveryStatus::Sent,
        kapso_conversation_id: None,
        callback_data: callback.map(str::to_owned),
        template: template
            .as_ref()
            .and_then(TemplateSignature::from_meta)
            .map(Box::new),
        raw: serde_json::json!({"id": wamid}),
    })
}

fn template_send(
    team: &Team,
    conversation_id: ConversationId,
    template: &serde_json::Value,
) -> NewSend {
    NewSend {
        content: OutboundContent::Template {
            name: template["name"].as_str().expect("name").to_owned(),
            template: template.clone(),
        },
        ..new_send(team, conversation_id, "unused", NOW)
    }
}

async fn echo(h: &Harness, key: &str, fact: Fact) {
    ingest(h.repo.as_ref(), &delivery(key), &facts(vec![fact]))
        .await
        .expect("ingest");
}

async fn wamid_of(h: &Harness, team: &Team, id: MessageId) -> Option<String> {
    h.repo
        .message(team.ws, id)
        .await
        .expect("read")
        .expect("message")
        .wamid
}

pub async fn echoes_find_our_sends_by_callback_data_and_old_ones_by_whole_content(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let patch = WorkspacePatch {
        kapso_phone_number_id: Some(Some(PHONE_NUMBER_ID.into())),
        ..WorkspacePatch::default()
    };
    h.repo
        .update_workspace(team.ws, patch)
        .await
        .expect("route");
    let id = conversation(&h, &team).await;
    let order = |n: &str| {
        serde_json::json!({"name": "order_update", "language": "id",
            "components": [{"type": "body", "parameters": [{"type": "text", "text": n}]}]})
    };
    let meta_order = |n: &str| {
        serde_json::json!({"name": "order_update", "language": {"code": "id"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": n}]}]})
    };
    let text = create(&h, &new_send(&team, id, "Halo", NOW)).await;
    let template = create(&h, &template_send(&team, id, &order("ORD-1"))).await;

    // Sends carry their id as callback data: the same content from someone else is not ours.
    echo(&h, "e1", echo_of("x1", "text", "Halo", None, None)).await;
    echo(
        &h,
        "e2",
        echo_of(
            "x2",
            "template",
            "Template: order_update",
            Some(meta_order("ORD-1")),
            None,
        ),
    )
    .await;
    assert_eq!(wamid_of(&h, &team, text.id).await, None);
    assert_eq!(wamid_of(&h, &team, template.id).await, None);
    // Callback data naming none of our messages is someone else's send too.
    let stranger = MessageId::new().to_string();
    echo(
        &h,
        "e3",
        echo_of("x3", "text", "Halo", None, Some(&stranger)),
    )
    .await;
    echo(
        &h,
        "e4",
        echo_of("x4", "text", "Halo", None, Some("not-an-id")),
    )
    .await;
    assert_eq!(wamid_of(&h, &team, text.id).await, None);
    // Our callback data decides, whatever else the echo says.
    let ours = template.id.to_string();
    echo(
        &h,
        "e5",
        echo_of(
            "w-template",
            "template",
            "Template: order_update",
            Some(meta_order("ORD-1")),
            Some(&ours),
        ),
    )
    .await;
    assert_eq!(
        wamid_of(&h, &team, template.id).await.as_deref(),
        Some("w-template")
    );
    assert_eq!(wamid_of(&h, &team, text.id).await, None);
    let ours = text.id.to_string();
    echo(
        &h,
        "e6",
        echo_of("w-text", "text", "Halo", None, Some(&ours)),
    )
    .await;
    assert_eq!(
        wamid_of(&h, &team, text.id).await.as_deref(),
        Some("w-text")
    );
    assert_eq!(
        h.raw.count("SELECT COUNT(*) FROM messages WHERE sender_user_id IS NULL AND direction = 'outbound'").await,
        4,
        "x1, x2, x3 and x4 are messages of their own"
    );

    // Sends made before callback data were: their echoes carry none, content decides; for a
    // template the name, language and every parameter.
    let old_text = create(&h, &new_send(&team, id, "Lama", NOW + 1)).await;
    let old_template = create(&h, &template_send(&team, id, &order("ORD-7"))).await;
    h.raw
        .execute("UPDATE send_jobs SET payload = REPLACE(payload, '\"tagged\":true', '\"tagged\":false')")
        .await
        .expect("untag");
    echo(
        &h,
        "o1",
        echo_of(
            "y1",
            "template",
            "Template: welcome",
            Some(serde_json::json!({"name": "welcome", "language": {"code": "id"}})),
            None,
        ),
    )
    .await;
    echo(
        &h,
        "o2",
        echo_of(
            "y2",
            "template",
            "Template: order_update",
            Some(meta_order("ORD-8")),
            None,
        ),
    )
    .await;
    echo(
        &h,
        "o3",
        echo_of(
            "y3",
            "template",
            "Template: order_update",
            Some(
                serde_json::json!({"name": "order_update", "language": {"code": "en"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "ORD-7"}]}]}),
            ),
            None,
        ),
    )
    .await;
    assert_eq!(wamid_of(&h, &team, old_template.id).await, None);
    echo(
        &h,
        "o4",
        echo_of(
            "y4",
            "template",
            "Template: order_update",
            Some(meta_order("ORD-7")),
            None,
        ),
    )
    .await;
    assert_eq!(
        wamid_of(&h, &team, old_template.id).await.as_deref(),
        Some("y4")
    );
    echo(&h, "o5", echo_of("y5", "text", "Lain", None, None)).await;
    assert_eq!(wamid_of(&h, &team, old_text.id).await, None);
    echo(&h, "o6", echo_of("y6", "text", "Lama", None, None)).await;
    assert_eq!(
        wamid_of(&h, &team, old_text.id).await.as_deref(),
        Some("y6")
    );
}

pub async fn a_wamid_another_of_our_sends_has_is_never_taken_from_it(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let id = conversation(&h, &team).await;
    let first = create(&h, &new_send(&team, id, "Satu", NOW)).await;
    let second = create(&h, &new_send(&team, id, "Dua", NOW + 1)).await;
    h.repo
        .record_send_accepted(team.ws, first.id, "w1")
        .await
        .expect("first accepted");
    // A wrong wamid for the second (a history lookup that guessed by content, say) must not
    // delete the first as if it were a stray copy of an echo.
    let taken = h.repo.record_send_accepted(team.ws, second.id, "w1").await;
    assert!(taken.is_err(), "{taken:?}");
    assert_eq!(wamid_of(&h, &team, first.id).await.as_deref(), Some("w1"));
    assert_eq!(wamid_of(&h, &team, second.id).await, None);
}
