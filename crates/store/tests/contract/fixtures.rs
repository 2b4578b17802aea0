//! Workspaces with a team, contacts and paging helpers shared by the inbox scenarios.

use inbox_domain::contact::NewContact;
use inbox_domain::conversation::{Conversation, ConversationFilter, ConversationQuery};
use inbox_domain::page::Limit;
use inbox_domain::phone::PhoneE164;
use inbox_domain::user::{Actor, NewUser, Role};
use inbox_domain::{ConversationId, Timestamp, WorkspaceId};

use crate::Harness;
use crate::workspaces::new_workspace;

/// A fixed "now" (2026-11-25T10:00:00Z), so window arithmetic does not depend on the clock.
pub const NOW: i64 = 1_795_600_800_000;
pub const HOUR: i64 = 3_600_000;

/// A workspace with one user of each role, and a second member.
pub struct Team {
    pub ws: WorkspaceId,
    pub owner: Actor,
    pub admin: Actor,
    pub member: Actor,
    pub member2: Actor,
}

impl Team {
    pub async fn new(h: &Harness, slug: &str) -> Self {
        let ws = h
            .repo
            .create_workspace(new_workspace(slug))
            .await
            .expect("workspace")
            .id;
        let mut actors = Vec::new();
        for (name, role) in [
            ("owner", Role::Owner),
            ("admin", Role::Admin),
            ("member", Role::Member),
            ("member2", Role::Member),
        ] {
            let user = h
                .repo
                .create_user(NewUser {
                    name: format!("{slug} {name}"),
                    email: None,
                })
                .await
                .expect("user");
            h.repo.add_member(ws, user.id, role).await.expect("member");
            actors.push(Actor {
                user_id: user.id,
                workspace_id: ws,
                role,
            });
        }
        Self {
            ws,
            owner: actors[0],
            admin: actors[1],
            member: actors[2],
            member2: actors[3],
        }
    }
}

/// An Indonesian mobile number unique per `n`.
pub fn phone(n: u32) -> PhoneE164 {
    PhoneE164::from_trusted(format!("+628120{n:07}"))
}

/// A contact with a phone and a name.
pub fn contact(n: u32, name: &str) -> NewContact {
    NewContact {
        phone: Some(phone(n)),
        name: Some(name.to_owned()),
        ..NewContact::default()
    }
}

/// Every page of a conversation list, each `limit` long, concatenated.
pub async fn all_pages(
    h: &Harness,
    actor: Actor,
    filter: &ConversationFilter,
    limit: i64,
) -> Vec<Conversation> {
    every_page(h, actor, filter, limit)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Every page of a conversation list, as pages: each at most `limit` long, and full unless it
/// is the last or a search page stopped short at its scan bound.
pub async fn every_page(
    h: &Harness,
    actor: Actor,
    filter: &ConversationFilter,
    limit: i64,
) -> Vec<Vec<Conversation>> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = h
            .repo
            .conversations(
                actor,
                ConversationQuery {
                    filter: filter.clone(),
                    now: Timestamp::from_millis(NOW),
                    limit: Limit::new(limit).expect("limit"),
                    after,
                },
            )
            .await
            .expect("list");
        assert!(page.items.len() <= usize::try_from(limit).expect("small"));
        if page.next.is_some() && filter.q.is_none() {
            assert_eq!(page.items.len(), usize::try_from(limit).expect("small"));
        }
        pages.push(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => return pages,
        }
    }
}

/// The ids, for comparisons.
pub fn ids(list: &[Conversation]) -> Vec<ConversationId> {
    list.iter().map(|c| c.id).collect()
}

/// Events in the log.
pub async fn event_count(h: &Harness) -> i64 {
    h.raw.count("SELECT COUNT(*) FROM events").await
}
