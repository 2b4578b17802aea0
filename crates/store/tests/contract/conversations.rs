use std::collections::HashSet;

use inbox_domain::contact::{LeadStatus, NewContact, Tags};
use inbox_domain::conversation::{
    AssigneeFilter, ConversationFilter, ConversationStatus, LeadStatusFilter, ReplyWindow,
    SearchText, TagFilter,
};
use inbox_domain::message::Direction;
use inbox_domain::ports::{ActionError, StoreError};
use inbox_domain::user::{Actor, Visibility};
use inbox_domain::{ConversationId, Timestamp, UserId};
use inbox_store::SEARCH_SCAN_ROWS;
use inbox_store::testing::{SeedConversation, SeedMessage};
use uuid::Uuid;

use crate::Harness;
use crate::fixtures::{HOUR, NOW, Team, all_pages, contact, event_count, every_page, ids, phone};

/// A seeded conversation and what the filters should see of it.
struct Spec {
    seed: SeedConversation,
    id: ConversationId,
}

impl Spec {
    fn sort_key(&self) -> (i64, Uuid) {
        (
            self.seed.last_message_at.map_or(0, Timestamp::as_millis),
            self.id.as_uuid(),
        )
    }

    fn visible_to(&self, actor: &Actor) -> bool {
        actor.sees_conversation(self.seed.assigned_to, self.seed.contact.assigned_to)
    }

    /// The filter semantics of API.md, written plainly.
    fn matches(&self, actor: &Actor, f: &ConversationFilter) -> bool {
        let s = &self.seed;
        let cut = NOW - 24 * HOUR;
        let window_open = s.last_inbound_at.is_some_and(|t| t.as_millis() > cut);
        let keys = s.contact.tags.keys();
        let display = inbox_domain::contact::display_name(
            s.contact.name.as_deref(),
            s.contact.whatsapp_name.as_deref(),
            s.contact.phone.as_ref().map(|p| p.as_str()),
            None,
        )
        .to_lowercase();
        let phone = s.contact.phone.as_ref().map_or("", |p| p.as_str());
        f.status.is_none_or(|st| st == s.status)
            && f.assigned_to
                .is_none_or(|a| a.resolve(actor.user_id) == s.assigned_to)
            && f.lead_status
                .as_ref()
                .is_none_or(|l| l.as_slice().contains(&s.contact.lead_status))
            && f.tags
                .as_ref()
                .is_none_or(|t| t.keys().iter().any(|k| keys.contains(k)))
            && f.unread.is_none_or(|u| u == (s.unread_count > 0))
            && f.window
                .is_none_or(|w| (w == ReplyWindow::Open) == window_open)
            && f.ai_paused.is_none_or(|p| p == s.ai_paused)
            && f.q
                .as_ref()
                .is_none_or(|q| display.contains(q.as_str()) || phone.contains(q.as_str()))
    }
}

/// 96 conversations whose attributes cycle at different periods, so every filter value and
/// many combinations occur; pairs share a `last_message_at` (ties), some were never messaged.
async fn seed_mix(h: &Harness, team: &Team) -> Vec<Spec> {
    let conversation_assignees = [
        None,
        Some(team.member.user_id),
        Some(team.admin.user_id),
        None,
        Some(team.member2.user_id),
    ];
    let contact_assignees = [
        None,
        Some(team.member.user_id),
        None,
        Some(team.member2.user_id),
    ];
    let tag_sets: [&[&str]; 6] = [
        &[],
        &["VIP"],
        &["repeat"],
        &["vip", "Repeat"],
        &["cold-lead"],
        &["Vip"],
    ];
    let mut seeds = Vec::new();
    for i in 0..96_u32 {
        let n = usize::try_from(i).expect("small");
        let last = (i % 11 != 10).then(|| NOW - i64::from(i / 2) * 3 * HOUR);
        let inbound = last
            .filter(|_| i % 4 != 0)
            .map(|t| t - i64::from(i % 3) * 10 * HOUR);
        let mut c = if i % 8 == 0 {
            NewContact {
                phone: Some(phone(i)),
                whatsapp_name: Some(format!("Siti {i}")),
                ..NewContact::default()
            }
        } else {
            contact(i, &format!("Budi {i}"))
        };
        c.lead_status = LeadStatus::ALL[(n / 2) % 4];
        c.tags = Tags::parse(tag_sets[n % 6]).expect("tags");
        c.assigned_to = contact_assignees[n % 4];
        seeds.push(SeedConversation {
            contact: c,
            assigned_to: conversation_assignees[n % 5],
            status: if i % 3 == 0 {
                ConversationStatus::Closed
            } else {
                ConversationStatus::Open
            },
            ai_paused: (i * 7) % 5 < 2,
            unread_count: i64::from(if i % 7 < 3 { i % 7 } else { 0 }),
            last_message_at: last.map(Timestamp::from_millis),
            last_inbound_at: inbound.map(Timestamp::from_millis),
        });
    }
    let seeded = h
        .seed
        .seed_conversations(team.ws, seeds.clone())
        .await
        .expect("seed");
    seeds
        .into_iter()
        .zip(seeded)
        .map(|(seed, s)| Spec {
            seed,
            id: s.conversation_id,
        })
        .collect()
}

fn expected(specs: &[Spec], actor: &Actor, f: &ConversationFilter) -> Vec<ConversationId> {
    let mut hits: Vec<&Spec> = specs
        .iter()
        .filter(|s| s.visible_to(actor) && s.matches(actor, f))
        .collect();
    hits.sort_by_key(|s| std::cmp::Reverse(s.sort_key()));
    hits.iter().map(|s| s.id).collect()
}

fn filters(team: &Team) -> Vec<(&'static str, ConversationFilter)> {
    let tags = |t: &str| Some(TagFilter::parse(t).expect("tags"));
    let leads = |l: &str| Some(LeadStatusFilter::parse(l).expect("leads"));
    let q = |t: &str| Some(SearchText::parse(t).expect("q"));
    let none = ConversationFilter::default;
    vec![
        ("none", none()),
        (
            "status=open",
            ConversationFilter {
                status: Some(ConversationStatus::Open),
                ..none()
            },
        ),
        (
            "status=closed",
            ConversationFilter {
                status: Some(ConversationStatus::Closed),
                ..none()
            },
        ),
        (
            "assigned=me",
            ConversationFilter {
                assigned_to: Some(AssigneeFilter::Me),
                ..none()
            },
        ),
        (
            "assigned=unassigned",
            ConversationFilter {
                assigned_to: Some(AssigneeFilter::Unassigned),
                ..none()
            },
        ),
        (
            "assigned=admin",
            ConversationFilter {
                assigned_to: Some(AssigneeFilter::User(team.admin.user_id)),
                ..none()
            },
        ),
        (
            "assigned=member",
            ConversationFilter {
                assigned_to: Some(AssigneeFilter::User(team.member.user_id)),
                ..none()
            },
        ),
        (
            "lead=hot",
            ConversationFilter {
                lead_status: leads("hot"),
                ..none()
            },
        ),
        (
            "lead=hot,cold",
            ConversationFilter {
                lead_status: leads("hot,cold"),
                ..none()
            },
        ),
        (
            "tags=vip",
            ConversationFilter {
                tags: tags("vip"),
                ..none()
            },
        ),
        (
            "tags=VIP,repeat",
            ConversationFilter {
                tags: tags("VIP,repeat"),
                ..none()
            },
        ),
        (
            "tags=nobody-has-this",
            ConversationFilter {
                tags: tags("nobody-has-this"),
                ..none()
            },
        ),
        (
            "unread=true",
            ConversationFilter {
                unread: Some(true),
                ..none()
            },
        ),
        (
            "unread=false",
            ConversationFilter {
                unread: Some(false),
                ..none()
            },
        ),
        (
            "window=open",
            ConversationFilter {
                window: Some(ReplyWindow::Open),
                ..none()
            },
        ),
        (
            "window=closed",
            ConversationFilter {
                window: Some(ReplyWindow::Closed),
                ..none()
            },
        ),
        (
            "ai_paused=true",
            ConversationFilter {
                ai_paused: Some(true),
                ..none()
            },
        ),
        (
            "ai_paused=false",
            ConversationFilter {
                ai_paused: Some(false),
                ..none()
            },
        ),
        (
            "q=budi 1",
            ConversationFilter {
                q: q("BUDI 1"),
                ..none()
            },
        ),
        (
            "q=siti",
            ConversationFilter {
                q: q("siti"),
                ..none()
            },
        ),
        (
            "q=phone",
            ConversationFilter {
                q: q("000001"),
                ..none()
            },
        ),
        (
            "q=wildcard",
            ConversationFilter {
                q: q("%_%"),
                ..none()
            },
        ),
        (
            "open+vip",
            ConversationFilter {
                status: Some(ConversationStatus::Open),
                tags: tags("vip"),
                ..none()
            },
        ),
        (
            "unassigned+hot,cold+unread",
            ConversationFilter {
                assigned_to: Some(AssigneeFilter::Unassigned),
                lead_status: leads("hot,cold"),
                unread: Some(true),
                ..none()
            },
        ),
        (
            "repeat+window open+not paused",
            ConversationFilter {
                tags: tags("repeat"),
                window: Some(ReplyWindow::Open),
                ai_paused: Some(false),
                ..none()
            },
        ),
        (
            "budi+closed",
            ConversationFilter {
                q: q("budi"),
                status: Some(ConversationStatus::Closed),
                ..none()
            },
        ),
        (
            "me+vip",
            ConversationFilter {
                assigned_to: Some(AssigneeFilter::Me),
                tags: tags("vip"),
                ..none()
            },
        ),
        (
            "client+window closed",
            ConversationFilter {
                lead_status: leads("client"),
                window: Some(ReplyWindow::Closed),
                ..none()
            },
        ),
        (
            "paused+open+unread=false",
            ConversationFilter {
                ai_paused: Some(true),
                status: Some(ConversationStatus::Open),
                unread: Some(false),
                ..none()
            },
        ),
        (
            "everything",
            ConversationFilter {
                status: Some(ConversationStatus::Open),
                assigned_to: Some(AssigneeFilter::Unassigned),
                lead_status: leads("new,cold,hot"),
                tags: tags("vip,repeat,cold-lead"),
                unread: Some(false),
                window: Some(ReplyWindow::Open),
                ai_paused: Some(false),
                q: q("budi"),
            },
        ),
    ]
}

pub async fn every_filter_alone_and_combined_matches_exactly(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let specs = seed_mix(&h, &team).await;
    for actor in [team.owner, team.admin, team.member, team.member2] {
        for (name, filter) in filters(&team) {
            let want = expected(&specs, &actor, &filter);
            let got = ids(&all_pages(&h, actor, &filter, 4).await);
            assert_eq!(got, want, "{name} as {:?}", actor.role);
        }
    }
    // The mix must exercise the filters, not pass vacuously.
    let vip = ConversationFilter {
        tags: Some(TagFilter::parse("vip").expect("tag")),
        ..ConversationFilter::default()
    };
    assert!(expected(&specs, &team.owner, &vip).len() > 20);
    assert!(expected(&specs, &team.member, &ConversationFilter::default()).len() > 20);
}

pub async fn paging_a_thousand_with_limit_seven_returns_each_once_in_order(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let seeds: Vec<SeedConversation> = (0..1000_u32)
        .map(|i| {
            let mut s = SeedConversation::new(contact(i, &format!("C {i}")));
            // Groups of three share a time; every tenth never had a message.
            s.last_message_at =
                (i % 10 != 0).then(|| Timestamp::from_millis(NOW - i64::from(i / 3) * 1000));
            s
        })
        .collect();
    h.seed
        .seed_conversations(team.ws, seeds)
        .await
        .expect("seed");
    let got = all_pages(&h, team.owner, &ConversationFilter::default(), 7).await;
    assert_eq!(got.len(), 1000);
    let unique: HashSet<ConversationId> = got.iter().map(|c| c.id).collect();
    assert_eq!(unique.len(), 1000);
    let keys: Vec<(i64, Uuid)> = got
        .iter()
        .map(|c| {
            (
                c.last_message_at.map_or(0, Timestamp::as_millis),
                c.id.as_uuid(),
            )
        })
        .collect();
    assert!(keys.windows(2).all(|w| w[0] > w[1]), "strictly descending");
}

/// A search for a word only the oldest conversation has must not read the tenant's whole list in
/// one request: each page examines at most `SEARCH_SCAN_ROWS` conversations and, when it stops
/// short, hands out a cursor to go on from. Following the cursors still finds every match once.
pub async fn a_rare_search_examines_a_bounded_window_per_page(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let rows = u32::try_from(SEARCH_SCAN_ROWS).expect("small") * 2 + 10;
    let seeds: Vec<SeedConversation> = (0..rows)
        .map(|i| {
            let name = if i + 1 == rows {
                "Zebra Langka"
            } else {
                "Filler"
            };
            let mut c = contact(i, &format!("{name} {i}"));
            c.assigned_to = (i % 2 == 0).then_some(team.member.user_id);
            let mut s = SeedConversation::new(c);
            s.last_message_at = Some(Timestamp::from_millis(NOW - i64::from(i) * 1000));
            s
        })
        .collect();
    h.seed
        .seed_conversations(team.ws, seeds)
        .await
        .expect("seed");
    let filter = ConversationFilter {
        q: Some(SearchText::parse("zebra").expect("q")),
        ..ConversationFilter::default()
    };
    for actor in [team.owner, team.member] {
        let pages = every_page(&h, actor, &filter, 20).await;
        let found: Vec<_> = pages
            .iter()
            .flatten()
            .map(|c| c.contact.name.clone())
            .collect();
        let pages = pages.len();
        let visible = if actor.role == team.owner.role {
            rows
        } else {
            rows / 2
        };
        let bound = usize::try_from(SEARCH_SCAN_ROWS).expect("small");
        assert_eq!(
            pages,
            usize::try_from(visible).expect("small").div_ceil(bound),
            "one page per {bound} visible conversations, as {:?}",
            actor.role
        );
        let want = usize::from(actor.role == team.owner.role);
        assert_eq!(found.len(), want, "{found:?} as {:?}", actor.role);
    }
}

pub async fn paging_while_messages_arrive_never_repeats(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let seeds: Vec<SeedConversation> = (0..60_u32)
        .map(|i| {
            let mut s = SeedConversation::new(contact(i, &format!("C {i}")));
            s.contact.tags = Tags::parse(&["vip"]).expect("tag");
            s.last_message_at = Some(Timestamp::from_millis(NOW - i64::from(i) * HOUR));
            s
        })
        .collect();
    let seeded = h
        .seed
        .seed_conversations(team.ws, seeds)
        .await
        .expect("seed");
    for filter in [
        ConversationFilter::default(),
        ConversationFilter {
            tags: Some(TagFilter::parse("vip").expect("tag")),
            ..ConversationFilter::default()
        },
    ] {
        let mut seen: Vec<ConversationId> = Vec::new();
        let mut bumped: HashSet<ConversationId> = HashSet::new();
        let mut after = None;
        let mut clock = NOW;
        for round in 0.. {
            let page = h
                .repo
                .conversations(
                    team.owner,
                    inbox_domain::conversation::ConversationQuery {
                        filter: filter.clone(),
                        now: Timestamp::from_millis(NOW),
                        limit: inbox_domain::page::Limit::new(5).expect("limit"),
                        after,
                    },
                )
                .await
                .expect("page");
            seen.extend(page.items.iter().map(|c| c.id));
            let Some(next) = page.next else { break };
            after = Some(next);
            // Between pages, a conversation already shown and one not yet shown get messages
            // and jump to the top.
            for target in [seeded[round % 60], seeded[(round * 7 + 31) % 60]] {
                clock += 1000;
                h.seed
                    .seed_message(
                        target.conversation_id,
                        SeedMessage {
                            direction: Direction::Inbound,
                            text: "again".into(),
                            sent_at: Timestamp::from_millis(clock),
                        },
                    )
                    .await
                    .expect("message");
                bumped.insert(target.conversation_id);
            }
        }
        let unique: HashSet<ConversationId> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "a conversation came twice");
        for s in &seeded {
            if !bumped.contains(&s.conversation_id) {
                assert!(
                    unique.contains(&s.conversation_id),
                    "a quiet one was skipped"
                );
            }
        }
    }
}

pub async fn counts_agree_with_the_list(h: Harness) {
    let team = Team::new(&h, "acme").await;
    seed_mix(&h, &team).await;
    let none = ConversationFilter::default;
    for actor in [team.owner, team.admin, team.member, team.member2] {
        let counts = h
            .repo
            .conversation_counts(actor, Timestamp::from_millis(NOW))
            .await
            .expect("counts");
        let n = |f: ConversationFilter| {
            let h = &h;
            async move { i64::try_from(all_pages(h, actor, &f, 200).await.len()).expect("small") }
        };
        let lead = |l: &str| ConversationFilter {
            lead_status: Some(LeadStatusFilter::parse(l).expect("lead")),
            ..none()
        };
        assert_eq!(counts.all, n(none()).await);
        assert_eq!(
            counts.open,
            n(ConversationFilter {
                status: Some(ConversationStatus::Open),
                ..none()
            })
            .await
        );
        assert_eq!(
            counts.unread,
            n(ConversationFilter {
                unread: Some(true),
                ..none()
            })
            .await
        );
        assert_eq!(
            counts.unassigned,
            n(ConversationFilter {
                assigned_to: Some(AssigneeFilter::Unassigned),
                ..none()
            })
            .await
        );
        assert_eq!(
            counts.mine,
            n(ConversationFilter {
                assigned_to: Some(AssigneeFilter::Me),
                ..none()
            })
            .await
        );
        assert_eq!(
            counts.window_open,
            n(ConversationFilter {
                window: Some(ReplyWindow::Open),
                ..none()
            })
            .await
        );
        assert_eq!(counts.by_lead_status.new, n(lead("new")).await);
        assert_eq!(counts.by_lead_status.cold, n(lead("cold")).await);
        assert_eq!(counts.by_lead_status.hot, n(lead("hot")).await);
        assert_eq!(counts.by_lead_status.client, n(lead("client")).await);
        let b = counts.by_lead_status;
        assert_eq!(b.new + b.cold + b.hot + b.client, counts.all);
        assert!(counts.all > 0);
    }
}

pub async fn members_never_see_unassigned_conversations(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let specs = seed_mix(&h, &team).await;
    let Visibility::AssignedTo(me) = team.member.visibility() else {
        unreachable!("a member");
    };
    let listed = all_pages(&h, team.member, &ConversationFilter::default(), 50).await;
    assert!(!listed.is_empty());
    for c in &listed {
        assert!(c.assigned_to == Some(me) || c.contact.assigned_to == Some(me));
    }
    let hidden = specs
        .iter()
        .find(|s| s.seed.assigned_to.is_none() && s.seed.contact.assigned_to.is_none())
        .expect("an unassigned conversation");
    let id = hidden.id;
    assert_eq!(
        h.repo.conversation(team.member, id).await.expect("read"),
        None
    );
    assert!(
        h.repo
            .conversation(team.owner, id)
            .await
            .expect("read")
            .is_some()
    );
    let thread = inbox_domain::message::ThreadQuery {
        position: inbox_domain::message::ThreadPosition::Newest,
        limit: inbox_domain::page::Limit::default(),
    };
    assert_eq!(
        h.repo
            .messages(team.member, id, thread)
            .await
            .expect("read"),
        None
    );
    assert_eq!(
        h.repo.mark_read(team.member, id).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        h.repo.assign_conversation(team.member, id, Some(me)).await,
        Err(ActionError::Store(StoreError::NotFound)),
        "a member cannot grab what they cannot see"
    );
    // Their contact's conversation is theirs to see even when the conversation is not assigned.
    let via_contact = specs
        .iter()
        .find(|s| s.seed.assigned_to.is_none() && s.seed.contact.assigned_to == Some(me))
        .expect("seeded");
    assert!(
        h.repo
            .conversation(team.member, via_contact.id)
            .await
            .expect("read")
            .is_some()
    );
}

pub async fn another_workspace_reads_and_changes_nothing_by_id(h: Harness) {
    let a = Team::new(&h, "acme").await;
    let b = Team::new(&h, "beta").await;
    let created = h
        .repo
        .create_contact(a.owner, contact(1, "Budi"))
        .await
        .expect("contact");
    let lookup = h
        .repo
        .contact_by_phone(a.owner, &phone(1))
        .await
        .expect("lookup")
        .expect("found");
    let conversation_id = lookup.conversation_id.expect("conversation");
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
    let thread = inbox_domain::message::ThreadQuery {
        position: inbox_domain::message::ThreadPosition::Newest,
        limit: inbox_domain::page::Limit::default(),
    };
    for intruder in [b.owner, b.admin] {
        assert_eq!(
            h.repo
                .conversation(intruder, conversation_id)
                .await
                .expect("read"),
            None
        );
        assert_eq!(
            h.repo.contact(intruder, created.id).await.expect("read"),
            None
        );
        assert_eq!(
            h.repo
                .messages(intruder, conversation_id, thread)
                .await
                .expect("read"),
            None
        );
        assert_eq!(
            h.repo
                .contact_by_phone(intruder, &phone(1))
                .await
                .expect("read"),
            None
        );
        assert!(
            all_pages(&h, intruder, &ConversationFilter::default(), 50)
                .await
                .is_empty()
        );
        assert_eq!(
            h.repo
                .set_status(intruder, conversation_id, ConversationStatus::Closed)
                .await,
            Err(StoreError::NotFound)
        );
        assert_eq!(
            h.repo.delete_contact(intruder, created.id).await,
            Err(ActionError::Store(StoreError::NotFound))
        );
        assert_eq!(
            h.repo
                .update_contact(
                    intruder,
                    created.id,
                    inbox_domain::contact::ContactPatch::default()
                )
                .await,
            Err(ActionError::Store(StoreError::NotFound))
        );
    }
    assert!(
        h.repo
            .conversation(a.owner, conversation_id)
            .await
            .expect("read")
            .is_some()
    );
}

pub async fn assignment_rules(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let outsider = Team::new(&h, "beta").await;
    let seeded = h
        .seed
        .seed_conversations(team.ws, vec![SeedConversation::new(contact(1, "Budi"))])
        .await
        .expect("seed");
    let id = seeded[0].conversation_id;
    assert_eq!(
        h.repo
            .assign_conversation(team.owner, id, Some(outsider.member.user_id))
            .await,
        Err(ActionError::AssigneeNotMember)
    );
    assert_eq!(
        h.repo
            .assign_conversation(team.owner, id, Some(UserId::new()))
            .await,
        Err(ActionError::AssigneeNotMember)
    );
    let to_member = h
        .repo
        .assign_conversation(team.admin, id, Some(team.member.user_id))
        .await
        .expect("admin assigns anyone");
    assert_eq!(to_member.assigned_to, Some(team.member.user_id));
    assert_eq!(
        h.repo
            .assign_conversation(team.member, id, Some(team.member2.user_id))
            .await,
        Err(ActionError::Forbidden)
    );
    let released = h
        .repo
        .assign_conversation(team.member, id, None)
        .await
        .expect("members may let go");
    assert_eq!(released.assigned_to, None);
    assert_eq!(
        h.repo.conversation(team.member, id).await.expect("read"),
        None
    );
}

async fn one_update_event(h: &Harness, before: i64) {
    assert_eq!(event_count(h).await, before + 1, "exactly one event");
    let last_is_update = h
        .raw
        .count(
            "SELECT COUNT(*) FROM events WHERE kind = 'conversation.updated' \
             AND id = (SELECT MAX(id) FROM events)",
        )
        .await;
    assert_eq!(last_is_update, 1);
}

pub async fn actions_change_state_and_append_one_event_each(h: Harness) {
    let team = Team::new(&h, "acme").await;
    let mut seed = SeedConversation::new(contact(1, "Budi"));
    seed.unread_count = 3;
    seed.last_message_at = Some(Timestamp::from_millis(NOW));
    seed.last_inbound_at = Some(Timestamp::from_millis(NOW));
    let seeded = h
        .seed
        .seed_conversations(team.ws, vec![seed])
        .await
        .expect("seed");
    let id = seeded[0].conversation_id;
    let before = event_count(&h).await;
    let c = h
        .repo
        .assign_conversation(team.owner, id, Some(team.member.user_id))
        .await
        .expect("assign");
    assert_eq!(c.assigned_to, Some(team.member.user_id));
    one_update_event(&h, before).await;

    let before = event_count(&h).await;
    let c = h
        .repo
        .set_ai_paused(team.member, id, true)
        .await
        .expect("pause");
    assert!(c.ai_paused);
    one_update_event(&h, before).await;

    let before = event_count(&h).await;
    let c = h.repo.mark_read(team.member, id).await.expect("read");
    assert_eq!(c.unread_count, 0);
    one_update_event(&h, before).await;

    let before = event_count(&h).await;
    let c = h
        .repo
        .set_status(team.member, id, ConversationStatus::Closed)
        .await
        .expect("close");
    assert_eq!(c.status, ConversationStatus::Closed);
    one_update_event(&h, before).await;

    // What the actions answered is what is stored, and the event names the conversation.
    assert_eq!(
        h.repo.conversation(team.owner, id).await.expect("read"),
        Some(c)
    );
    let named: i64 = h
        .raw
        .count(&format!(
            "SELECT COUNT(*) FROM events WHERE kind = 'conversation.updated' \
             AND conversation_id = {}",
            h.raw.uuid(id.as_uuid())
        ))
        .await;
    assert_eq!(named, 4);

    // A refused action writes nothing.
    let before = event_count(&h).await;
    assert!(
        h.repo
            .assign_conversation(team.owner, id, Some(UserId::new()))
            .await
            .is_err()
    );
    assert_eq!(event_count(&h).await, before);
}
