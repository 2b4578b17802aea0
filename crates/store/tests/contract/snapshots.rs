//! Batch reads by id for the live stream's renderer.

use inbox_domain::{ContactId, ConversationId};
use inbox_store::testing::SeedConversation;

use crate::Harness;
use crate::fixtures::{Team, contact};

pub async fn conversations_and_contacts_read_by_id_in_one_call(h: Harness) {
    let a = Team::new(&h, "acme").await;
    let b = Team::new(&h, "bravo").await;
    let in_a = h
        .seed
        .seed_conversations(
            a.ws,
            (1..=3)
                .map(|n| SeedConversation::new(contact(n, "A")))
                .collect(),
        )
        .await
        .expect("seed a");
    let in_b = h
        .seed
        .seed_conversations(b.ws, vec![SeedConversation::new(contact(9, "B"))])
        .await
        .expect("seed b");
    assert!(
        h.repo
            .conversations_by_id(&[])
            .await
            .expect("none")
            .is_empty()
    );

    // Across workspaces, repeated ids once, unknown ids left out.
    let wanted = [
        in_a[0].conversation_id,
        in_a[2].conversation_id,
        in_a[0].conversation_id,
        in_b[0].conversation_id,
        ConversationId::new(),
    ];
    let mut found = h.repo.conversations_by_id(&wanted).await.expect("read");
    found.sort_by_key(|c| c.id);
    let mut expected = vec![
        (in_a[0].conversation_id, a.ws, in_a[0].contact_id),
        (in_a[2].conversation_id, a.ws, in_a[2].contact_id),
        (in_b[0].conversation_id, b.ws, in_b[0].contact_id),
    ];
    expected.sort_by_key(|e| e.0);
    assert_eq!(
        found
            .iter()
            .map(|c| (c.id, c.workspace_id, c.contact.id))
            .collect::<Vec<_>>(),
        expected
    );
    let one = h
        .repo
        .conversation(a.owner, in_a[2].conversation_id)
        .await
        .expect("one")
        .expect("visible to the owner");
    assert_eq!(
        found.iter().find(|c| c.id == one.id),
        Some(&one),
        "the same state as the single read"
    );

    let contacts = [in_a[1].contact_id, in_b[0].contact_id, ContactId::new()];
    let mut found = h.repo.contacts_by_id(&contacts).await.expect("read");
    found.sort_by_key(|c| c.id);
    let mut expected = vec![(in_a[1].contact_id, a.ws), (in_b[0].contact_id, b.ws)];
    expected.sort_by_key(|e| e.0);
    assert_eq!(
        found
            .iter()
            .map(|c| (c.id, c.workspace_id))
            .collect::<Vec<_>>(),
        expected
    );
    let single = h
        .repo
        .contact(a.owner, in_a[1].contact_id)
        .await
        .expect("one")
        .expect("visible to the owner");
    assert_eq!(found.iter().find(|c| c.id == single.id), Some(&single));
    assert!(h.repo.contacts_by_id(&[]).await.expect("none").is_empty());
}
