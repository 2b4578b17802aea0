//! Bulk seeding writes what the ports would have: the list invariants hold, tokens
//! authenticate, and the counts match what the seeder reports.

use inbox_domain::token::TokenHash;
use inbox_domain::user::Role;
use inbox_domain::{Timestamp, UserId, WorkspaceId};
use inbox_store::bulk::{Agents, BulkUser, BulkWorkspace, BusyPlan, RARE_TAG};

use crate::Harness;

pub async fn seeds_workspaces_users_and_threads_keeping_the_invariants(h: Harness) {
    let ws = WorkspaceId::new();
    h.bulk
        .bulk_workspaces(&[BulkWorkspace {
            id: ws,
            slug: "bulk".to_owned(),
            name: "Bulk".to_owned(),
            kapso_phone_number_id: Some("555".to_owned()),
        }])
        .await
        .expect("workspaces");
    let owner = UserId::new();
    let member = UserId::new();
    let users: Vec<BulkUser> = [(owner, Role::Owner), (member, Role::Member)]
        .into_iter()
        .enumerate()
        .map(|(i, (id, role))| BulkUser {
            id,
            name: format!("User {i}"),
            email: format!("user{i}@bulk.test"),
            role,
            token: format!("inbox_bulk_token_{i}"),
        })
        .collect();
    h.bulk.bulk_users(ws, &users).await.expect("users");
    let user = h
        .repo
        .authenticate(&TokenHash::of("inbox_bulk_token_1"))
        .await
        .expect("authenticate")
        .expect("the bulk token authenticates");
    assert_eq!(user.user.id, member);
    assert_eq!(
        user.memberships
            .iter()
            .map(|m| m.workspace_id)
            .collect::<Vec<_>>(),
        [ws]
    );

    let plan = BusyPlan {
        workspace_id: ws,
        conversations: 300,
        messages: 3_000,
        agents: Agents {
            owner,
            member,
            others: Vec::new(),
        },
        phone_prefix: "+62812".to_owned(),
        wamid_prefix: "bulk".to_owned(),
        now: Timestamp::now(),
        seed: 7,
    };
    let progress = |_: u64| {};
    let seeded = h
        .bulk
        .bulk_conversations(&plan, &progress)
        .await
        .expect("seed");
    h.bulk.bulk_finish().await.expect("analyze");
    assert_eq!(seeded.messages, 3_000);
    assert_eq!(seeded.conversations.len(), 300);
    assert!(seeded.conversations.iter().any(|c| c.window_open));
    assert!(seeded.conversations.iter().any(|c| c.unread));
    assert!(
        seeded
            .conversations
            .iter()
            .any(|c| c.assigned_to == Some(member))
    );

    let raw = &h.raw;
    assert_eq!(raw.count("SELECT COUNT(*) FROM messages").await, 3_000);
    assert_eq!(raw.count("SELECT COUNT(*) FROM conversations").await, 300);
    assert_eq!(
        raw.count("SELECT COUNT(*) FROM conversation_tags").await as u64,
        seeded.tag_rows
    );
    assert_eq!(
        raw.count(&format!(
            "SELECT COUNT(*) FROM conversation_tags WHERE tag = '{RARE_TAG}'"
        ))
        .await as u64,
        seeded.tag_counts.get(RARE_TAG).copied().unwrap_or(0)
    );
    for (what, sql) in [
        (
            "sort_at",
            "SELECT COUNT(*) FROM conversations WHERE sort_at <> COALESCE(last_message_at, 0)",
        ),
        (
            "last_seq",
            "SELECT COUNT(*) FROM conversations v WHERE v.last_seq <> \
             (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = v.id) \
             OR v.last_seq <> (SELECT COALESCE(MAX(seq), 0) FROM messages m WHERE m.conversation_id = v.id)",
        ),
        (
            "tag sort keys",
            "SELECT COUNT(*) FROM conversation_tags t JOIN conversations v ON v.id = t.conversation_id \
             WHERE t.sort_at <> v.sort_at",
        ),
        (
            "contact copies",
            "SELECT COUNT(*) FROM conversations v JOIN contacts k ON k.id = v.contact_id \
             WHERE v.lead_status <> k.lead_status \
             OR (v.contact_assigned_to IS NULL) <> (k.assigned_to IS NULL) \
             OR v.contact_assigned_to <> k.assigned_to",
        ),
        (
            "activity_sort",
            "SELECT COUNT(*) FROM contacts WHERE activity_sort <> COALESCE(last_activity_at, 0)",
        ),
        (
            "unread conversations end with an inbound message",
            "SELECT COUNT(*) FROM conversations v WHERE v.unread_count > 0 AND NOT EXISTS \
             (SELECT 1 FROM messages m WHERE m.conversation_id = v.id AND m.seq = v.last_seq \
              AND m.direction = 'inbound')",
        ),
    ] {
        assert_eq!(raw.count(sql).await, 0, "{what} invariant broken");
    }
}
