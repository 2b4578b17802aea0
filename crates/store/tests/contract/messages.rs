use inbox_domain::conversation::ConversationStatus;
use inbox_domain::message::{Direction, ThreadPosition, ThreadQuery};
use inbox_domain::page::Limit;
use inbox_domain::{ConversationId, Timestamp};
use inbox_store::testing::{SeedConversation, SeedMessage};

use crate::Harness;
use crate::fixtures::{NOW, Team, contact};

fn query(position: ThreadPosition, limit: i64) -> ThreadQuery {
    ThreadQuery {
        position,
        limit: Limit::new(limit).expect("limit"),
    }
}

async fn seqs(
    h: &Harness,
    team: &Team,
    id: ConversationId,
    position: ThreadPosition,
    limit: i64,
) -> (Vec<i64>, bool) {
    let page = h
        .repo
        .messages(team.owner, id, query(position, limit))
        .await
        .expect("read")
        .expect("visible");
    (page.messages.iter().map(|m| m.seq).collect(), page.has_more)
}

pub async fn threads_page_back_and_catch_up_in_seq_order(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let mut seed = SeedConversation::new(contact(1, "Budi"));
    seed.status = ConversationStatus::Closed;
    let id = h
        .seed
        .seed_conversations(team.ws, vec![seed])
        .await
        .expect("seed")[0]
        .conversation_id;
    for i in 0..25_i64 {
        let message = h
            .seed
            .seed_message(
                id,
                SeedMessage {
                    direction: if i % 3 == 0 {
                        Direction::Outbound
                    } else {
                        Direction::Inbound
                    },
                    text: format!("message {}", i + 1),
                    sent_at: Timestamp::from_millis(NOW + i * 1000),
                },
            )
            .await
            .expect("message");
        assert_eq!(message.seq, i + 1, "seq counts 1, 2, 3, ...");
    }

    let range = |a: i64, b: i64| (a..=b).collect::<Vec<_>>();
    assert_eq!(
        seqs(&h, &team, id, ThreadPosition::Newest, 10).await,
        (range(16, 25), true)
    );
    assert_eq!(
        seqs(&h, &team, id, ThreadPosition::Before(16), 10).await,
        (range(6, 15), true)
    );
    assert_eq!(
        seqs(&h, &team, id, ThreadPosition::Before(6), 10).await,
        (range(1, 5), false)
    );
    assert_eq!(
        seqs(&h, &team, id, ThreadPosition::After(0), 10).await,
        (range(1, 10), true)
    );
    assert_eq!(
        seqs(&h, &team, id, ThreadPosition::After(20), 10).await,
        (range(21, 25), false)
    );
    assert_eq!(
        seqs(&h, &team, id, ThreadPosition::After(25), 10).await,
        (vec![], false)
    );
    assert_eq!(
        seqs(&h, &team, id, ThreadPosition::Newest, 25).await,
        (range(1, 25), false)
    );

    // The seeded thread moved the conversation as ingest would: the member-facing state is
    // consistent with the messages the thread shows.
    let c = h
        .repo
        .conversation(team.owner, id)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(c.status, ConversationStatus::Open, "inbound reopens");
    assert_eq!(
        c.last_message_at,
        Some(Timestamp::from_millis(NOW + 24_000))
    );
    assert_eq!(c.last_message_preview.as_deref(), Some("message 25"));
    assert_eq!(c.unread_count, 16);
    let page = h
        .repo
        .messages(team.owner, id, query(ThreadPosition::Newest, 1))
        .await
        .expect("read")
        .expect("visible");
    let newest = &page.messages[0];
    assert_eq!(newest.text.as_deref(), Some("message 25"));
    assert_eq!(newest.conversation_id, id);
    assert_eq!(newest.workspace_id, team.ws);
}

pub async fn threads_follow_conversation_visibility(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let mut mine = SeedConversation::new(contact(1, "Mine"));
    mine.contact.assigned_to = Some(team.member.user_id);
    let theirs = SeedConversation::new(contact(2, "Theirs"));
    let seeded = h
        .seed
        .seed_conversations(team.ws, vec![mine, theirs])
        .await
        .expect("seed");
    for s in &seeded {
        h.seed
            .seed_message(
                s.conversation_id,
                SeedMessage {
                    direction: Direction::Inbound,
                    text: "hi".into(),
                    sent_at: Timestamp::from_millis(NOW),
                },
            )
            .await
            .expect("message");
    }
    let newest = query(ThreadPosition::Newest, 50);
    let visible = h
        .repo
        .messages(team.member, seeded[0].conversation_id, newest)
        .await
        .expect("read")
        .expect("their contact's thread");
    assert_eq!(visible.messages.len(), 1);
    assert_eq!(
        h.repo
            .messages(team.member, seeded[1].conversation_id, newest)
            .await
            .expect("read"),
        None
    );
    assert_eq!(
        h.repo
            .messages(team.owner, ConversationId::new(), newest)
            .await
            .expect("read"),
        None
    );
    // A thread with no messages yet is an empty page, not a missing conversation.
    let empty = h
        .seed
        .seed_conversations(team.ws, vec![SeedConversation::new(contact(3, "Quiet"))])
        .await
        .expect("seed")[0];
    let page = h
        .repo
        .messages(team.owner, empty.conversation_id, newest)
        .await
        .expect("read")
        .expect("an empty thread");
    assert!(page.messages.is_empty() && !page.has_more);
}
