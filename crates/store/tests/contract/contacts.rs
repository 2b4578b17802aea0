use std::collections::HashSet;

use inbox_domain::contact::{
    Contact, ContactFilter, ContactPatch, ContactQuery, ContactSource, LeadScore, LeadStatus,
    Metadata, NewContact, Tags,
};
use inbox_domain::conversation::{
    AssigneeFilter, ConversationFilter, LeadStatusFilter, SearchText, TagFilter,
};
use inbox_domain::message::Direction;
use inbox_domain::page::Limit;
use inbox_domain::ports::{ActionError, StoreError};
use inbox_domain::user::Actor;
use inbox_domain::{ContactId, ConversationId, Timestamp, UserId};
use inbox_store::SEARCH_SCAN_ROWS;
use inbox_store::testing::{SeedConversation, SeedMessage};

use crate::Harness;
use crate::fixtures::{HOUR, NOW, Team, all_pages, contact, event_count, ids, phone};

async fn all_contacts(
    h: &Harness,
    actor: Actor,
    filter: &ContactFilter,
    limit: i64,
) -> Vec<Contact> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = h
            .repo
            .contacts(
                actor,
                ContactQuery {
                    filter: filter.clone(),
                    limit: Limit::new(limit).expect("limit"),
                    after,
                },
            )
            .await
            .expect("list");
        out.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

/// The contact list's search is bounded per page like the conversation list's: a rare name at
/// the far end of a big tenant takes a few short pages, never one whole-tenant scan.
pub async fn a_rare_contact_search_examines_a_bounded_window_per_page(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let rows = u32::try_from(SEARCH_SCAN_ROWS).expect("small") + 7;
    let seeds: Vec<SeedConversation> = (0..rows)
        .map(|i| {
            let name = if i + 1 == rows {
                "Zebra Langka"
            } else {
                "Filler"
            };
            let mut s = SeedConversation::new(contact(i, &format!("{name} {i}")));
            s.last_message_at = Some(Timestamp::from_millis(NOW - i64::from(i) * 1000));
            s
        })
        .collect();
    h.seed
        .seed_conversations(team.ws, seeds)
        .await
        .expect("seed");
    let filter = ContactFilter {
        q: Some(SearchText::parse("langka").expect("q")),
        ..ContactFilter::default()
    };
    let first = h
        .repo
        .contacts(
            team.owner,
            ContactQuery {
                filter: filter.clone(),
                limit: Limit::new(20).expect("limit"),
                after: None,
            },
        )
        .await
        .expect("list");
    assert!(first.items.is_empty(), "the first window holds no match");
    assert!(first.next.is_some(), "and says where to go on");
    let found = all_contacts(&h, team.owner, &filter, 20).await;
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].name.as_deref(),
        Some(&*format!("Zebra Langka {}", rows - 1))
    );
}

async fn conversation_of(h: &Harness, actor: Actor, contact: &Contact) -> ConversationId {
    h.repo
        .contact_by_phone(actor, contact.phone.as_ref().expect("phone"))
        .await
        .expect("lookup")
        .expect("found")
        .conversation_id
        .expect("every contact has its conversation")
}

fn by_tag(tag: &str) -> ConversationFilter {
    ConversationFilter {
        tags: Some(TagFilter::parse(tag).expect("tag")),
        ..ConversationFilter::default()
    }
}

pub async fn create_makes_the_contact_and_its_waiting_conversation(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let before = event_count(&h).await;
    let mut new = contact(1, "Budi");
    new.email = Some("budi@example.com".into());
    new.tags = Tags::parse(&["VIP", "repeat"]).expect("tags");
    new.lead_status = LeadStatus::Hot;
    new.lead_score = LeadScore::new(70).expect("score");
    new.assigned_to = Some(team.member.user_id);
    new.metadata = Metadata::parse(serde_json::json!({"city": "Bandung"})).expect("metadata");
    let created = h
        .repo
        .create_contact(team.admin, new)
        .await
        .expect("create");
    assert_eq!(created.source, ContactSource::Api);
    assert_eq!(created.tags.keys(), ["vip", "repeat"]);
    assert_eq!(created.metadata.as_map()["city"], "Bandung");
    assert_eq!(created.last_activity_at, None);
    assert_eq!(
        h.repo.contact(team.owner, created.id).await.expect("read"),
        Some(created.clone())
    );
    assert_eq!(
        event_count(&h).await,
        before + 2,
        "contact.updated + conversation.created"
    );

    let conversation_id = conversation_of(&h, team.owner, &created).await;
    let conversation = h
        .repo
        .conversation(team.member, conversation_id)
        .await
        .expect("read")
        .expect("the member sees their contact's conversation");
    assert_eq!(
        conversation.status,
        inbox_domain::conversation::ConversationStatus::Closed
    );
    assert_eq!(conversation.last_message_at, None);
    assert_eq!(conversation.contact.lead_status, LeadStatus::Hot);
    assert_eq!(conversation.contact.display_name(), "Budi");
    assert_eq!(
        ids(&all_pages(&h, team.owner, &by_tag("vip"), 10).await),
        [conversation_id]
    );
    assert_eq!(
        ids(&all_pages(&h, team.owner, &by_tag("REPEAT"), 10).await),
        [conversation_id]
    );
}

pub async fn duplicate_phones_conflict_and_name_the_existing_contact(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let first = h
        .repo
        .create_contact(team.owner, contact(1, "Budi"))
        .await
        .expect("first");
    let before = event_count(&h).await;
    assert_eq!(
        h.repo
            .create_contact(team.owner, contact(1, "Budi again"))
            .await,
        Err(ActionError::Store(StoreError::Duplicate("phone".into())))
    );
    assert_eq!(
        event_count(&h).await,
        before,
        "a refused create writes nothing"
    );
    assert_eq!(
        h.repo
            .contact_id_by_phone(team.ws, &phone(1))
            .await
            .expect("read"),
        Some(first.id)
    );
    assert_eq!(
        h.repo
            .contact_id_by_phone(team.ws, &phone(2))
            .await
            .expect("read"),
        None
    );
    // Another workspace may hold the same phone.
    let other = Team::new(&h, "beta").await;
    h.repo
        .create_contact(other.owner, contact(1, "Budi"))
        .await
        .expect("same phone elsewhere");
    assert_eq!(
        h.repo
            .contact_id_by_phone(team.ws, &phone(1))
            .await
            .expect("read"),
        Some(first.id)
    );
}

pub async fn assignees_must_be_members_and_members_assign_only_themselves(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let outsider = Team::new(&h, "beta").await;
    let mut new = contact(1, "Budi");
    new.assigned_to = Some(outsider.owner.user_id);
    assert_eq!(
        h.repo.create_contact(team.owner, new).await,
        Err(ActionError::AssigneeNotMember)
    );
    let mut new = contact(1, "Budi");
    new.assigned_to = Some(team.member2.user_id);
    assert_eq!(
        h.repo.create_contact(team.member, new).await,
        Err(ActionError::Forbidden)
    );
    let mut new = contact(1, "Budi");
    new.assigned_to = Some(team.member.user_id);
    let mine = h
        .repo
        .create_contact(team.member, new)
        .await
        .expect("own contact");
    let patch = ContactPatch {
        assigned_to: Some(Some(UserId::new())),
        ..ContactPatch::default()
    };
    assert_eq!(
        h.repo.update_contact(team.owner, mine.id, patch).await,
        Err(ActionError::AssigneeNotMember)
    );
    let patch = ContactPatch {
        assigned_to: Some(Some(team.member2.user_id)),
        ..ContactPatch::default()
    };
    assert_eq!(
        h.repo.update_contact(team.member, mine.id, patch).await,
        Err(ActionError::Forbidden)
    );
    assert_eq!(
        h.repo
            .contact(team.member, mine.id)
            .await
            .expect("read")
            .and_then(|c| c.assigned_to),
        Some(team.member.user_id),
        "refused patches change nothing"
    );
}

pub async fn patches_keep_the_conversation_copies_in_step(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let mut new = contact(1, "Budi");
    new.tags = Tags::parse(&["vip"]).expect("tags");
    new.assigned_to = Some(team.member.user_id);
    let created = h
        .repo
        .create_contact(team.owner, new)
        .await
        .expect("create");
    let conversation_id = conversation_of(&h, team.owner, &created).await;
    h.seed
        .seed_message(
            conversation_id,
            SeedMessage {
                direction: Direction::Inbound,
                text: "halo".into(),
                sent_at: Timestamp::from_millis(NOW),
            },
        )
        .await
        .expect("message");

    let before = event_count(&h).await;
    let patched = h
        .repo
        .update_contact(
            team.owner,
            created.id,
            ContactPatch {
                name: Some(Some("Budi Santoso".into())),
                tags: Some(Tags::parse(&["Repeat", "client-2024"]).expect("tags")),
                lead_status: Some(LeadStatus::Client),
                lead_score: Some(LeadScore::new(90).expect("score")),
                assigned_to: Some(Some(team.member2.user_id)),
                ..ContactPatch::default()
            },
        )
        .await
        .expect("patch");
    assert_eq!(
        event_count(&h).await,
        before + 2,
        "contact.updated + conversation.updated"
    );
    assert_eq!(patched.name.as_deref(), Some("Budi Santoso"));
    assert_eq!(patched.phone, created.phone, "the phone stays");

    assert!(
        all_pages(&h, team.owner, &by_tag("vip"), 10)
            .await
            .is_empty()
    );
    let repeat = all_pages(&h, team.owner, &by_tag("repeat"), 10).await;
    assert_eq!(ids(&repeat), [conversation_id]);
    assert_eq!(repeat[0].contact.lead_score, 90);
    assert_eq!(repeat[0].last_message_at, Some(Timestamp::from_millis(NOW)));
    let clients = ConversationFilter {
        lead_status: Some(LeadStatusFilter::parse("client").expect("lead")),
        ..ConversationFilter::default()
    };
    assert_eq!(
        ids(&all_pages(&h, team.owner, &clients, 10).await),
        [conversation_id]
    );
    assert_eq!(
        h.repo
            .conversation(team.member, conversation_id)
            .await
            .expect("read"),
        None
    );
    assert!(
        h.repo
            .conversation(team.member2, conversation_id)
            .await
            .expect("read")
            .is_some()
    );
    assert_eq!(
        h.repo.contact(team.member, created.id).await.expect("read"),
        None
    );

    // A later message keeps the moved tag rows in list order.
    h.seed
        .seed_message(
            conversation_id,
            SeedMessage {
                direction: Direction::Outbound,
                text: "thanks".into(),
                sent_at: Timestamp::from_millis(NOW + HOUR),
            },
        )
        .await
        .expect("message");
    let repeat = all_pages(&h, team.owner, &by_tag("client-2024"), 10).await;
    assert_eq!(
        repeat[0].last_message_at,
        Some(Timestamp::from_millis(NOW + HOUR))
    );

    // Fields the conversation view does not show change only the contact.
    let before = event_count(&h).await;
    let patched = h
        .repo
        .update_contact(
            team.owner,
            created.id,
            ContactPatch {
                email: Some(Some("budi@example.com".into())),
                metadata: Some(Metadata::parse(serde_json::json!({"vip": true})).expect("md")),
                ..ContactPatch::default()
            },
        )
        .await
        .expect("patch");
    assert_eq!(event_count(&h).await, before + 1, "contact.updated only");
    assert_eq!(patched.email.as_deref(), Some("budi@example.com"));
    assert_eq!(
        patched.name.as_deref(),
        Some("Budi Santoso"),
        "untouched fields stay"
    );
    let cleared = h
        .repo
        .update_contact(
            team.owner,
            created.id,
            ContactPatch {
                email: Some(None),
                ..ContactPatch::default()
            },
        )
        .await
        .expect("patch");
    assert_eq!(cleared.email, None);
}

pub async fn delete_cascades_and_is_for_owners(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let mut new = contact(1, "Budi");
    new.tags = Tags::parse(&["vip"]).expect("tags");
    new.assigned_to = Some(team.member.user_id);
    let created = h
        .repo
        .create_contact(team.owner, new)
        .await
        .expect("create");
    let keep = h
        .repo
        .create_contact(team.owner, contact(2, "Siti"))
        .await
        .expect("create");
    let conversation_id = conversation_of(&h, team.owner, &created).await;
    for i in 0..3 {
        h.seed
            .seed_message(
                conversation_id,
                SeedMessage {
                    direction: Direction::Inbound,
                    text: format!("m{i}"),
                    sent_at: Timestamp::from_millis(NOW + i),
                },
            )
            .await
            .expect("message");
    }
    assert_eq!(
        h.repo.delete_contact(team.admin, created.id).await,
        Err(ActionError::Forbidden)
    );
    assert_eq!(
        h.repo.delete_contact(team.member, created.id).await,
        Err(ActionError::Forbidden)
    );
    assert_eq!(
        h.repo.delete_contact(team.member, keep.id).await,
        Err(ActionError::Store(StoreError::NotFound)),
        "invisible contacts are not found, not forbidden"
    );
    let before = event_count(&h).await;
    h.repo
        .delete_contact(team.owner, created.id)
        .await
        .expect("delete");
    assert_eq!(event_count(&h).await, before + 2);
    assert_eq!(
        h.repo.contact(team.owner, created.id).await.expect("read"),
        None
    );
    assert_eq!(
        h.repo
            .conversation(team.owner, conversation_id)
            .await
            .expect("read"),
        None
    );
    assert_eq!(h.raw.count("SELECT COUNT(*) FROM messages").await, 0);
    assert_eq!(
        h.raw.count("SELECT COUNT(*) FROM conversation_tags").await,
        0
    );
    assert_eq!(h.raw.count("SELECT COUNT(*) FROM conversations").await, 1);
    assert_eq!(
        h.repo.delete_contact(team.owner, created.id).await,
        Err(ActionError::Store(StoreError::NotFound))
    );
    assert!(
        h.repo
            .contact(team.owner, keep.id)
            .await
            .expect("read")
            .is_some()
    );
}

pub async fn by_phone_lookup_gives_bots_the_context(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let mut new = contact(1, "Budi");
    new.assigned_to = Some(team.member.user_id);
    let created = h
        .repo
        .create_contact(team.owner, new)
        .await
        .expect("create");
    let conversation_id = conversation_of(&h, team.owner, &created).await;
    for i in 0..12_i64 {
        h.seed
            .seed_message(
                conversation_id,
                SeedMessage {
                    direction: if i % 2 == 0 {
                        Direction::Inbound
                    } else {
                        Direction::Outbound
                    },
                    text: format!("m{i}"),
                    sent_at: Timestamp::from_millis(NOW + i * 1000),
                },
            )
            .await
            .expect("message");
    }
    let found = h
        .repo
        .contact_by_phone(team.member, &phone(1))
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.contact.id, created.id);
    assert_eq!(found.conversation_id, Some(conversation_id));
    assert_eq!(
        found.last_interaction,
        Some(Timestamp::from_millis(NOW + 11_000))
    );
    let texts: Vec<_> = found
        .recent_messages
        .iter()
        .filter_map(|m| m.text.clone())
        .collect();
    let want: Vec<String> = (2..12).rev().map(|i| format!("m{i}")).collect();
    assert_eq!(texts, want, "the 10 newest, newest first");
    assert_eq!(
        found.contact.last_activity_at,
        Some(Timestamp::from_millis(NOW + 11_000))
    );
    assert_eq!(
        found.contact.last_contact_at,
        Some(Timestamp::from_millis(NOW + 11_000))
    );
    assert_eq!(
        h.repo
            .contact_by_phone(team.owner, &phone(9))
            .await
            .expect("lookup"),
        None
    );
    assert_eq!(
        h.repo
            .contact_by_phone(team.member2, &phone(1))
            .await
            .expect("lookup"),
        None,
        "members look up only their contacts"
    );
}

pub async fn contact_list_filters_and_pages(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let assignees = [None, Some(team.member.user_id), Some(team.admin.user_id)];
    let tag_sets: [&[&str]; 4] = [&[], &["VIP"], &["repeat"], &["vip", "other"]];
    let seeds: Vec<SeedConversation> = (0..40_u32)
        .map(|i| {
            let n = usize::try_from(i).expect("small");
            let mut c = contact(
                i,
                &format!("{} {i}", if i % 2 == 0 { "Budi" } else { "Siti" }),
            );
            c.assigned_to = assignees[n % 3];
            c.lead_status = LeadStatus::ALL[(n / 3) % 4];
            c.tags = Tags::parse(tag_sets[n % 4]).expect("tags");
            let mut s = SeedConversation::new(c);
            s.last_message_at =
                (i % 9 != 0).then(|| Timestamp::from_millis(NOW - i64::from(i / 2) * HOUR));
            s
        })
        .collect();
    let seeded = h
        .seed
        .seed_conversations(team.ws, seeds.clone())
        .await
        .expect("seed");
    let specs: Vec<(SeedConversation, ContactId)> = seeds
        .into_iter()
        .zip(seeded.iter().map(|s| s.contact_id))
        .collect();
    let expect = |actor: Actor, f: &ContactFilter| -> Vec<ContactId> {
        let mut hits: Vec<&(SeedConversation, ContactId)> = specs
            .iter()
            .filter(|(s, _)| {
                let c = &s.contact;
                actor.sees_contact(c.assigned_to)
                    && f.assigned_to
                        .is_none_or(|a| a.resolve(actor.user_id) == c.assigned_to)
                    && f.lead_status
                        .as_ref()
                        .is_none_or(|l| l.as_slice().contains(&c.lead_status))
                    && f.tags
                        .as_ref()
                        .is_none_or(|t| t.keys().iter().any(|k| c.tags.keys().contains(k)))
                    && f.q.as_ref().is_none_or(|q| {
                        c.name
                            .as_deref()
                            .unwrap_or("")
                            .to_lowercase()
                            .contains(q.as_str())
                            || c.phone
                                .as_ref()
                                .is_some_and(|p| p.as_str().contains(q.as_str()))
                    })
            })
            .collect();
        hits.sort_by_key(|(s, id)| {
            std::cmp::Reverse((
                s.last_message_at.map_or(0, Timestamp::as_millis),
                id.as_uuid(),
            ))
        });
        hits.iter().map(|(_, id)| *id).collect()
    };
    let none = ContactFilter::default;
    let filters = [
        none(),
        ContactFilter {
            q: Some(SearchText::parse("budi 1").expect("q")),
            ..none()
        },
        ContactFilter {
            q: Some(SearchText::parse("0000003").expect("q")),
            ..none()
        },
        ContactFilter {
            lead_status: Some(LeadStatusFilter::parse("hot,client").expect("l")),
            ..none()
        },
        ContactFilter {
            tags: Some(TagFilter::parse("VIP").expect("t")),
            ..none()
        },
        ContactFilter {
            assigned_to: Some(AssigneeFilter::Me),
            ..none()
        },
        ContactFilter {
            assigned_to: Some(AssigneeFilter::Unassigned),
            ..none()
        },
        ContactFilter {
            assigned_to: Some(AssigneeFilter::User(team.member.user_id)),
            ..none()
        },
        ContactFilter {
            lead_status: Some(LeadStatusFilter::parse("new,cold").expect("l")),
            tags: Some(TagFilter::parse("vip,repeat").expect("t")),
            q: Some(SearchText::parse("siti").expect("q")),
            ..none()
        },
    ];
    for actor in [team.owner, team.member, team.member2] {
        for f in &filters {
            let got: Vec<ContactId> = all_contacts(&h, actor, f, 3)
                .await
                .iter()
                .map(|c| c.id)
                .collect();
            assert_eq!(got, expect(actor, f), "{f:?} as {:?}", actor.role);
        }
    }
    let everyone = all_contacts(&h, team.owner, &none(), 7).await;
    assert_eq!(everyone.len(), 40);
    assert_eq!(
        everyone.iter().map(|c| c.id).collect::<HashSet<_>>().len(),
        40
    );
    let member_view = all_contacts(&h, team.member, &none(), 50).await;
    assert!(!member_view.is_empty());
    assert!(
        member_view
            .iter()
            .all(|c| c.assigned_to == Some(team.member.user_id))
    );
    let _: &NewContact = &specs[0].0.contact;
}
