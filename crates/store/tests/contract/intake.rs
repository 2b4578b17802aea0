//! Intake under pressure: nothing acknowledged is lost, whatever runs beside it.

use std::sync::Arc;

use inbox_domain::contact::{ContactPatch, LeadScore, Tags};
use inbox_domain::delivery::{DeliveryOutcome, NewDelivery};
use inbox_domain::ingest::{DeliveryFacts, Fact, IncomingMessage, IngestOutcome, ingest};
use inbox_domain::phone::PhoneE164;
use inbox_domain::workspace::WorkspacePatch;

use crate::Harness;
use crate::fixtures::Team;
use crate::ingest::{PHONE_NUMBER_ID, delivery, facts, inbound};

const WA_ID: &str = "6281298765432";

/// A workspace of a team, owning [`PHONE_NUMBER_ID`].
async fn team(h: &Harness) -> Team {
    let team = Team::new(h, "intake").await;
    let patch = WorkspacePatch {
        kapso_phone_number_id: Some(Some(PHONE_NUMBER_ID.into())),
        ..WorkspacePatch::default()
    };
    h.repo
        .update_workspace(team.ws, patch)
        .await
        .expect("patch");
    team
}

/// Three senders post 40 messages each for one customer while two agents keep patching that
/// customer's contact (tags, lead score): ingest locks the conversation then the contact, and a
/// contact patch must take them in the same order, or PostgreSQL picks deadlock victims among
/// the deliveries. Every delivery must be stored, with gap-free seqs.
pub async fn ingest_beside_contact_patches_stores_every_message(h: Harness) {
    let team = team(&h).await;
    let out = ingest(
        h.repo.as_ref(),
        &delivery("first"),
        &facts(vec![inbound("w-first", WA_ID, Some("Budi"), 1_000, "hi")]),
    )
    .await
    .expect("first");
    assert_eq!(out, IngestOutcome::Processed);
    let phone = PhoneE164::from_wa_id(WA_ID).expect("phone");
    let contact = h
        .repo
        .contact_id_by_phone(team.ws, &phone)
        .await
        .expect("lookup")
        .expect("contact");

    let mut senders = Vec::new();
    for sender in 0..3 {
        let repo = Arc::clone(&h.repo);
        senders.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for i in 0..40 {
                let n = sender * 100 + i;
                let f = facts(vec![inbound(
                    &format!("w{n}"),
                    WA_ID,
                    Some("Budi"),
                    2_000 + n,
                    "burst",
                )]);
                outcomes.push(ingest(repo.as_ref(), &delivery(&format!("k{n}")), &f).await);
            }
            outcomes
        }));
    }
    let mut agents = Vec::new();
    for (agent, actor) in [team.owner, team.admin].into_iter().enumerate() {
        let repo = Arc::clone(&h.repo);
        agents.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for i in 0..40_i64 {
                let patch = ContactPatch {
                    tags: Some(Tags::parse(&[format!("t{agent}-{}", i % 3)]).expect("tags")),
                    lead_score: Some(LeadScore::new(i).expect("score")),
                    ..ContactPatch::default()
                };
                results.push(repo.update_contact(actor, contact, patch).await.map(drop));
            }
            results
        }));
    }
    for sender in senders {
        for out in sender.await.expect("sender") {
            assert_eq!(out, Ok(IngestOutcome::Processed));
        }
    }
    for agent in agents {
        for result in agent.await.expect("agent") {
            assert!(result.is_ok(), "patch: {result:?}");
        }
    }
    let seqs: Vec<Option<i64>> = (1..=121).map(Some).collect();
    assert_eq!(
        h.raw.ints("SELECT seq FROM messages ORDER BY seq").await,
        seqs
    );
    assert_eq!(
        h.raw
            .int("SELECT COUNT(*) FROM webhook_deliveries WHERE outcome = 'processed'")
            .await,
        121
    );
}

/// An idempotency key is unique per workspace: one tenant's key cannot shadow another's
/// delivery. Deliveries routed to no workspace share one namespace. A key of any length is
/// stored and still deduplicates.
pub async fn idempotency_keys_are_namespaced_by_workspace(h: Harness) {
    let _acme = crate::ingest::workspace(&h, "acme", PHONE_NUMBER_ID).await;
    let _other = crate::ingest::workspace(&h, "other", "999999999999").await;
    let to = |phone_number_id: &str, wamid: &str| DeliveryFacts {
        phone_number_id: Some(phone_number_id.into()),
        items: vec![inbound(wamid, WA_ID, None, 1_000, "hi")],
    };
    let keyed = |key: &str, phone_number_id: &str| NewDelivery {
        phone_number_id: Some(phone_number_id.into()),
        ..delivery(key)
    };
    let run = |key: String, phone_number_id: &'static str, wamid: &'static str| {
        let repo = Arc::clone(&h.repo);
        async move {
            ingest(
                repo.as_ref(),
                &keyed(&key, phone_number_id),
                &to(phone_number_id, wamid),
            )
            .await
            .expect("ingest")
        }
    };
    // The other tenant uses the same key first; acme's delivery is still applied.
    assert_eq!(
        run("shared".into(), "999999999999", "w-other").await,
        IngestOutcome::Processed
    );
    assert_eq!(
        run("shared".into(), PHONE_NUMBER_ID, "w-acme").await,
        IngestOutcome::Processed
    );
    assert_eq!(
        run("shared".into(), PHONE_NUMBER_ID, "w-acme").await,
        IngestOutcome::Duplicate
    );
    assert_eq!(h.raw.count("SELECT COUNT(*) FROM messages").await, 2);

    // Routed nowhere: one global namespace.
    let ignored = |id: &str| NewDelivery {
        phone_number_id: Some(id.into()),
        ..delivery("nowhere")
    };
    for (phone_number_id, expected) in [("111", true), ("222", false)] {
        assert_eq!(
            h.repo
                .record_delivery(
                    &ignored(phone_number_id),
                    None,
                    DeliveryOutcome::Ignored,
                    None
                )
                .await
                .expect("record"),
            expected
        );
    }

    // A key far longer than any index entry may be.
    let long = "k".repeat(20_000);
    assert_eq!(
        run(long.clone(), PHONE_NUMBER_ID, "w-long").await,
        IngestOutcome::Processed
    );
    assert_eq!(
        run(long.clone(), PHONE_NUMBER_ID, "w-long").await,
        IngestOutcome::Duplicate
    );
    assert!(
        h.repo
            .delivery_by_idempotency_key(&long)
            .await
            .expect("lookup")
            .is_some()
    );
}

/// A delivery whose facts yield more events than one statement may carry values for (13,200
/// messages: 66,000 event values, past PostgreSQL's 65,535 and SQLite's 32,766) is stored whole.
pub async fn a_huge_delivery_is_stored_in_bounded_statements(h: Harness) {
    crate::ingest::workspace(&h, "acme", PHONE_NUMBER_ID).await;
    let items = (0..13_200)
        .map(|i| inbound(&format!("w{i}"), WA_ID, None, 1_000 + i, "many"))
        .collect();
    let out = ingest(h.repo.as_ref(), &delivery("huge"), &facts(items))
        .await
        .expect("ingest");
    assert_eq!(out, IngestOutcome::Processed);
    assert_eq!(h.raw.count("SELECT COUNT(*) FROM messages").await, 13_200);
    assert_eq!(
        h.raw
            .count("SELECT COUNT(*) FROM events WHERE kind = 'message.created'")
            .await,
        13_200
    );
    // In the order they were appended.
    let seqs = h
        .raw
        .ints(
            "SELECT m.seq FROM events e JOIN messages m ON m.id = e.message_id \
             WHERE e.kind = 'message.created' ORDER BY e.id",
        )
        .await;
    let expected: Vec<Option<i64>> = (1..=13_200).map(Some).collect();
    assert!(seqs == expected, "events out of order");
}

/// SQLite's group commit: a repeat of a delivery whose original is still in the open batch
/// (written, not committed) is answered only once the original is durable. The repeat queues
/// for the writer first, a hold on the writer second, the batch's committer last: when the hold
/// gets the writer, the repeat has had its turn, and the committer has not.
pub async fn sqlite_duplicates_wait_for_the_original_to_be_durable(
    store: inbox_store::sqlite::SqliteStore,
) {
    use inbox_domain::ports::{DeliveryRepository, IngestRepository, WorkspaceRepository};
    use inbox_store::testing::{hold_sqlite_writer, sqlite_writers_queued};

    let ws = store
        .create_workspace(crate::workspaces::new_workspace("acme"))
        .await
        .expect("workspace");
    store
        .update_workspace(
            ws.id,
            WorkspacePatch {
                kapso_phone_number_id: Some(Some(PHONE_NUMBER_ID.into())),
                ..WorkspacePatch::default()
            },
        )
        .await
        .expect("patch");
    let store = Arc::new(store);
    let original = delivery("k1");
    let mut unit = store.begin_ingest().await.expect("begin");
    let route = unit.route(PHONE_NUMBER_ID, None).await.expect("route");
    assert!(route.is_some());
    assert!(
        unit.insert_delivery(&original, Some(ws.id), DeliveryOutcome::Processed, None)
            .await
            .expect("insert")
    );

    let repeat = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let f = facts(vec![inbound("w1", WA_ID, None, 1_000, "hi")]);
            ingest(store.as_ref(), &delivery("k1"), &f).await
        })
    };
    while sqlite_writers_queued(&store) < 1 {
        tokio::task::yield_now().await;
    }
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let hold = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let hold = hold_sqlite_writer(&store).await;
            let _ = held_tx.send(());
            let _ = release_rx.await;
            drop(hold);
        })
    };
    while sqlite_writers_queued(&store) < 2 {
        tokio::task::yield_now().await;
    }
    let commit = tokio::spawn(async move { unit.commit().await });

    held_rx.await.expect("held");
    let durable = store
        .delivery_by_idempotency_key("k1")
        .await
        .expect("read")
        .is_some();
    assert!(
        !repeat.is_finished() || durable,
        "the repeat was answered before its original was durable"
    );
    let _ = release_tx.send(());
    hold.await.expect("hold");
    commit.await.expect("commit task").expect("commit");
    assert_eq!(
        repeat.await.expect("repeat task"),
        Ok(IngestOutcome::Duplicate)
    );
    assert!(
        store
            .delivery_by_idempotency_key("k1")
            .await
            .expect("read")
            .is_some()
    );
}

/// A sender's timestamp far in the future does not pin the conversation to the top of the list
/// nor hold its reply window open; the message keeps the raw value.
pub async fn sender_timestamps_are_clamped_for_order_and_window(h: Harness) {
    use inbox_domain::ingest::MAX_FUTURE_SKEW_MILLIS;

    crate::ingest::workspace(&h, "acme", PHONE_NUMBER_ID).await;
    let received = inbox_domain::Timestamp::from_millis(1_795_600_800_000);
    let far_future_secs = 4_102_444_800 - crate::ingest::T0; // 2100-01-01
    let arrives = |key: &str| NewDelivery {
        received_at: received,
        ..delivery(key)
    };
    let out = ingest(
        h.repo.as_ref(),
        &arrives("k1"),
        &facts(vec![inbound("w1", WA_ID, None, far_future_secs, "future")]),
    )
    .await
    .expect("ingest");
    assert_eq!(out, IngestOutcome::Processed);
    let bound = received.as_millis() + MAX_FUTURE_SKEW_MILLIS;
    assert_eq!(
        h.raw.int("SELECT sent_at FROM messages").await,
        4_102_444_800_000,
        "the message keeps the sender's time"
    );
    for column in ["last_message_at", "last_inbound_at", "sort_at"] {
        assert_eq!(
            h.raw
                .int(&format!("SELECT {column} FROM conversations"))
                .await,
            bound,
            "{column}"
        );
    }
    assert_eq!(
        h.raw.int("SELECT last_activity_at FROM contacts").await,
        bound
    );
    // Negative: taken as 2009.
    ingest(
        h.repo.as_ref(),
        &arrives("k2"),
        &facts(vec![Fact::Message(IncomingMessage {
            wamid: "w2".into(),
            ..match inbound("w2", WA_ID, None, 0, "past") {
                Fact::Message(m) => IncomingMessage {
                    sent_at: inbox_domain::Timestamp::from_millis(-5),
                    ..m
                },
                _ => unreachable!(),
            }
        })]),
    )
    .await
    .expect("ingest");
    assert_eq!(
        h.raw.int("SELECT last_message_at FROM conversations").await,
        bound,
        "an absurd past does not become the newest"
    );
}

/// Deliveries past retention are deleted in small batches: processed and ignored ones after
/// their retention, failed ones only after theirs (longer), pending ones never. Statuses kept for
/// wamids that never arrived expire too.
pub async fn retention_prunes_in_small_batches(h: Harness) {
    use inbox_domain::{DeliveryId, Timestamp};

    const DAY: i64 = 86_400_000;
    let now = Timestamp::now().as_millis();
    let at = |days: i64| Timestamp::from_millis(now - days * DAY);
    let mut keep = Vec::new();
    for (key, days, outcome, kept) in [
        ("processed-old", 40, DeliveryOutcome::Processed, false),
        ("processed-new", 1, DeliveryOutcome::Processed, true),
        ("ignored-old", 31, DeliveryOutcome::Ignored, false),
        ("failed-old", 40, DeliveryOutcome::Failed, true),
        ("failed-ancient", 100, DeliveryOutcome::Failed, false),
        ("pending-ancient", 100, DeliveryOutcome::Pending, true),
    ] {
        let new = NewDelivery {
            id: DeliveryId::new(),
            received_at: at(days),
            ..delivery(key)
        };
        h.repo
            .record_delivery(&new, None, outcome, None)
            .await
            .expect("record");
        if kept {
            keep.push(key.to_owned());
        }
    }
    let mut pruned = Vec::new();
    loop {
        let n = h
            .repo
            .prune_deliveries(at(30), at(90), 2)
            .await
            .expect("prune");
        assert!(n <= 2, "one batch deletes at most the limit");
        if n == 0 {
            break;
        }
        pruned.push(n);
    }
    assert_eq!(pruned, vec![2, 1]);
    let mut left: Vec<String> = h
        .raw
        .texts("SELECT idempotency_key FROM webhook_deliveries")
        .await
        .into_iter()
        .flatten()
        .collect();
    left.sort();
    keep.sort();
    assert_eq!(left, keep);

    let ws = crate::ingest::workspace(&h, "acme", PHONE_NUMBER_ID).await;
    for (wamid, days) in [("gone", 8), ("kept", 6)] {
        h.raw
            .execute(&format!(
                "INSERT INTO pending_statuses (workspace_id, wamid, status, at, received_at) \
                 VALUES ({}, '{wamid}', 'read', 0, {})",
                h.raw.uuid(ws.as_uuid()),
                now - days * DAY
            ))
            .await
            .expect("insert");
    }
    assert_eq!(
        h.repo
            .prune_pending_statuses(at(7), 1)
            .await
            .expect("prune"),
        1
    );
    assert_eq!(
        h.repo
            .prune_pending_statuses(at(7), 1)
            .await
            .expect("prune"),
        0
    );
    assert_eq!(
        h.raw
            .text("SELECT wamid FROM pending_statuses")
            .await
            .as_deref(),
        Some("kept")
    );
}

/// Deleting a contact redacts the raw payloads of the deliveries that named it and leaves a
/// tombstone: messages from before the deletion never bring the contact back, a message after it
/// starts a fresh contact.
pub async fn a_deleted_contact_stays_deleted_and_its_payloads_are_redacted(h: Harness) {
    let team = team(&h).await;
    let named = NewDelivery {
        body: format!(r#"{{"message":{{"from":"{WA_ID}","text":"secret"}}}}"#).into_bytes(),
        ..delivery("k1")
    };
    let out = ingest(
        h.repo.as_ref(),
        &named,
        &facts(vec![inbound("w1", WA_ID, Some("Budi"), 100, "secret")]),
    )
    .await
    .expect("ingest");
    assert_eq!(out, IngestOutcome::Processed);
    let phone = PhoneE164::from_wa_id(WA_ID).expect("phone");
    let contact = h
        .repo
        .contact_id_by_phone(team.ws, &phone)
        .await
        .expect("lookup")
        .expect("contact");
    h.repo
        .delete_contact(team.owner, contact)
        .await
        .expect("delete");

    let body = h
        .repo
        .delivery_by_idempotency_key("k1")
        .await
        .expect("read")
        .expect("kept")
        .body;
    assert!(
        !String::from_utf8_lossy(&body).contains(WA_ID),
        "the payload still names the customer"
    );
    assert_eq!(
        h.raw.count("SELECT COUNT(*) FROM contact_tombstones").await,
        1
    );

    // A message from before the deletion, delivered again under another key: nothing returns.
    let out = ingest(
        h.repo.as_ref(),
        &delivery("k1-again"),
        &facts(vec![inbound("w1", WA_ID, Some("Budi"), 100, "secret")]),
    )
    .await
    .expect("ingest");
    assert!(matches!(out, IngestOutcome::Ignored(_)), "{out:?}");
    assert_eq!(h.raw.count("SELECT COUNT(*) FROM contacts").await, 0);
    assert_eq!(h.raw.count("SELECT COUNT(*) FROM messages").await, 0);

    // A message after the deletion: a fresh contact with only that message.
    let now_secs = inbox_domain::Timestamp::now().as_millis() / 1_000 + 1;
    let out = ingest(
        h.repo.as_ref(),
        &delivery("k2"),
        &facts(vec![
            inbound("w0", WA_ID, None, 100, "old"),
            inbound(
                "w2",
                WA_ID,
                None,
                now_secs - crate::ingest::T0,
                "hello again",
            ),
        ]),
    )
    .await
    .expect("ingest");
    assert_eq!(out, IngestOutcome::Processed);
    assert_eq!(h.raw.count("SELECT COUNT(*) FROM contacts").await, 1);
    assert_eq!(
        h.raw.texts("SELECT text FROM messages").await,
        vec![Some("hello again".to_owned())]
    );

    // Nor does an old message join the fresh contact.
    let out = ingest(
        h.repo.as_ref(),
        &delivery("k1-once-more"),
        &facts(vec![inbound("w1", WA_ID, Some("Budi"), 100, "secret")]),
    )
    .await
    .expect("ingest");
    assert!(matches!(out, IngestOutcome::Ignored(_)), "{out:?}");
    assert_eq!(h.raw.count("SELECT COUNT(*) FROM messages").await, 1);
}
