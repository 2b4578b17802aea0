//! Intake under pressure: nothing acknowledged is lost, whatever runs beside it.

use std::sync::Arc;

use inbox_domain::contact::{ContactPatch, LeadScore, Tags};
use inbox_domain::ingest::{IngestOutcome, ingest};
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
