//! The inbox over HTTP: every filter alone and combined, keyset paging (also while messages
//! arrive), counters that agree with the list, the thread, and actions that change exactly
//! what they say.

use std::collections::HashSet;

use inbox_domain::contact::{LeadStatus, NewContact, Tags};
use inbox_domain::conversation::ConversationStatus;
use inbox_domain::message::Direction;
use inbox_domain::{ConversationId, Timestamp, UserId};
use inbox_store::testing::{SeedConversation, SeedMessage};
use inbox_tests::TestEnv;
use inbox_tests::team::{Api, contact};
use reqwest::Method;
use serde_json::{Value, json};

inbox_store::on_both_backends!(inbox_tests::TestEnv;
    every_filter_alone_and_combined_returns_exactly_the_matches,
    paging_a_thousand_conversations_returns_each_once_in_order,
    paging_while_messages_arrive_never_repeats_a_conversation,
    thread_pages_and_actions_change_only_what_they_say,
);

const HOUR: i64 = 3_600_000;

/// Every page of a list with `limit`, concatenated, as ids.
async fn all_ids(api: &Api, token: &str, query: &str, limit: u32) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let mut path = format!("/api/conversations?{query}&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = api.get_ok(&path, token).await;
        let items = page["conversations"].as_array().expect("conversations");
        assert!(items.len() <= limit as usize);
        ids.extend(
            items
                .iter()
                .map(|c| c["id"].as_str().expect("id").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
    panic!("paging never ended");
}

/// A seeded conversation and the attributes the filters look at.
struct Row {
    id: ConversationId,
    seed: SeedConversation,
}

impl Row {
    fn sort_key(&self) -> (i64, ConversationId) {
        (
            self.seed.last_message_at.map_or(0, Timestamp::as_millis),
            self.id,
        )
    }
}

/// Ids in list order: newest message first, never-messaged last, ties by id descending.
fn ordered<'a>(rows: impl Iterator<Item = &'a Row>) -> Vec<String> {
    let mut rows: Vec<&Row> = rows.collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.sort_key()));
    rows.iter().map(|r| r.id.to_string()).collect()
}

async fn every_filter_alone_and_combined_returns_exactly_the_matches(env: TestEnv) {
    let direct = env.direct().await;
    let team = direct.team("acme").await;
    let now = Timestamp::now().as_millis();
    let member = team.member.id;
    let specs: Vec<SeedConversation> = (0..60_u32)
        .map(|i| {
            let name = if i % 8 == 0 {
                format!("Budi {i}")
            } else {
                format!("Person {i}")
            };
            let tags: &[&str] = match i % 5 {
                0 => &["VIP"],
                1 => &["repeat"],
                2 => &["vip", "Repeat"],
                _ => &[],
            };
            let last = (i % 10 != 9)
                .then(|| Timestamp::from_millis(now - i64::from(i * 7 % 48) * HOUR - HOUR / 2));
            SeedConversation {
                contact: NewContact {
                    lead_status: LeadStatus::ALL[(i % 4) as usize],
                    tags: Tags::parse(tags).expect("tags"),
                    assigned_to: (i % 11 == 0).then_some(member),
                    ..contact(100 + i, &name)
                },
                assigned_to: match i % 3 {
                    0 => Some(team.owner.id),
                    1 => Some(member),
                    _ => None,
                },
                status: if i % 2 == 0 {
                    ConversationStatus::Open
                } else {
                    ConversationStatus::Closed
                },
                ai_paused: i % 6 == 0,
                unread_count: if i % 7 < 3 { 2 } else { 0 },
                last_message_at: last,
                last_inbound_at: last.filter(|_| i % 4 != 3),
            }
        })
        .collect();
    let seeded = direct
        .seed
        .seed_conversations(team.ws, specs.clone())
        .await
        .expect("seed");
    let rows: Vec<Row> = seeded
        .iter()
        .zip(specs)
        .map(|(s, seed)| Row {
            id: s.conversation_id,
            seed,
        })
        .collect();
    let server = env.api(&[]).await;
    let api = Api::new(&server);

    let window_open = move |r: &Row| {
        r.seed
            .last_inbound_at
            .is_some_and(|t| t.as_millis() > now - 24 * HOUR)
    };
    let has_tag = |r: &Row, tag: &str| r.seed.contact.tags.keys().iter().any(|k| k == tag);
    let owner = team.owner.id;
    let who = move |r: &Row, u: Option<UserId>| r.seed.assigned_to == u;
    let name_has = |r: &Row, q: &str| {
        r.seed
            .contact
            .name
            .as_deref()
            .unwrap_or_default()
            .to_lowercase()
            .contains(q)
    };
    type Pred<'a> = Box<dyn Fn(&Row) -> bool + 'a>;
    let cases: Vec<(String, Pred<'_>)> = vec![
        ("status=all".into(), Box::new(|_| true)),
        ("status=open".into(), Box::new(|r| r.seed.status == ConversationStatus::Open)),
        ("status=closed".into(), Box::new(|r| r.seed.status == ConversationStatus::Closed)),
        ("assigned_to=me".into(), Box::new(move |r| who(r, Some(owner)))),
        ("assigned_to=unassigned".into(), Box::new(move |r| who(r, None))),
        (format!("assigned_to={member}"), Box::new(move |r| who(r, Some(member)))),
        (
            "lead_status=hot,cold".into(),
            Box::new(|r| matches!(r.seed.contact.lead_status, LeadStatus::Hot | LeadStatus::Cold)),
        ),
        ("lead_status=client".into(), Box::new(|r| r.seed.contact.lead_status == LeadStatus::Client)),
        ("tags=VIP".into(), Box::new(move |r| has_tag(r, "vip"))),
        ("tags=repeat,vip".into(), Box::new(move |r| has_tag(r, "vip") || has_tag(r, "repeat"))),
        ("unread=true".into(), Box::new(|r| r.seed.unread_count > 0)),
        ("unread=false".into(), Box::new(|r| r.seed.unread_count == 0)),
        ("window=open".into(), Box::new(window_open)),
        ("window=closed".into(), Box::new(move |r| !window_open(r))),
        ("ai_paused=true".into(), Box::new(|r| r.seed.ai_paused)),
        ("ai_paused=false".into(), Box::new(|r| !r.seed.ai_paused)),
        ("q=BUDI".into(), Box::new(move |r| name_has(r, "budi"))),
        (
            "q=%2B628120000011".into(),
            Box::new(|r| {
                r.seed.contact.phone.as_ref().is_some_and(|p| p.as_str().contains("+628120000011"))
            }),
        ),
        (
            "status=open&tags=vip&window=open".into(),
            Box::new(move |r| {
                r.seed.status == ConversationStatus::Open && has_tag(r, "vip") && window_open(r)
            }),
        ),
        (
            "lead_status=new,hot&assigned_to=unassigned&unread=true".into(),
            Box::new(move |r| {
                matches!(r.seed.contact.lead_status, LeadStatus::New | LeadStatus::Hot)
                    && who(r, None)
                    && r.seed.unread_count > 0
            }),
        ),
        (
            "q=budi&status=open&ai_paused=false".into(),
            Box::new(move |r| {
                name_has(r, "budi") && r.seed.status == ConversationStatus::Open && !r.seed.ai_paused
            }),
        ),
        (
            "status=open&assigned_to=me&lead_status=new,cold,hot,client&tags=vip,repeat&unread=true&window=open&ai_paused=true&q=person".into(),
            Box::new(move |r| {
                r.seed.status == ConversationStatus::Open
                    && who(r, Some(owner))
                    && (has_tag(r, "vip") || has_tag(r, "repeat"))
                    && r.seed.unread_count > 0
                    && window_open(r)
                    && r.seed.ai_paused
                    && name_has(r, "person")
            }),
        ),
    ];
    let mut empty = Vec::new();
    for (query, pred) in &cases {
        let expected = ordered(rows.iter().filter(|r| pred(r)));
        if expected.is_empty() {
            empty.push(query.clone());
        }
        for limit in [200, 7] {
            let got = all_ids(
                &api,
                &team.owner.token,
                &format!("workspace=acme&{query}"),
                limit,
            )
            .await;
            assert_eq!(got, expected, "{query} (limit {limit})");
        }
    }
    assert!(
        empty.is_empty(),
        "the fixture leaves these filters untested: {empty:?}"
    );

    // A member: only what is assigned to them (the conversation or its contact), and counts
    // that agree with the list, for them and for the owner.
    let visible = ordered(rows.iter().filter(|r| {
        r.seed.assigned_to == Some(member) || r.seed.contact.assigned_to == Some(member)
    }));
    assert_eq!(
        all_ids(&api, &team.member.token, "workspace=acme", 200).await,
        visible
    );
    for token in [&team.owner.token, &team.member.token] {
        let counts = api
            .get_ok("/api/conversations/counts?workspace=acme", token)
            .await;
        let len = |q: &'static str| {
            let api = api.clone();
            async move {
                all_ids(&api, token, &format!("workspace=acme&{q}"), 200)
                    .await
                    .len()
            }
        };
        assert_eq!(counts["all"], len("status=all").await, "{counts}");
        assert_eq!(counts["open"], len("status=open").await);
        assert_eq!(counts["unread"], len("unread=true").await);
        assert_eq!(counts["unassigned"], len("assigned_to=unassigned").await);
        assert_eq!(counts["mine"], len("assigned_to=me").await);
        assert_eq!(counts["window_open"], len("window=open").await);
        for (key, q) in [
            ("new", "lead_status=new"),
            ("cold", "lead_status=cold"),
            ("hot", "lead_status=hot"),
            ("client", "lead_status=client"),
        ] {
            assert_eq!(counts["by_lead_status"][key], len(q).await, "{key}");
        }
    }
}

async fn paging_a_thousand_conversations_returns_each_once_in_order(env: TestEnv) {
    let direct = env.direct().await;
    let team = direct.team("acme").await;
    let base = Timestamp::now().as_millis() - HOUR;
    let specs: Vec<SeedConversation> = (0..1000_u32)
        .map(|i| SeedConversation {
            // Many ties, and some never messaged.
            last_message_at: (i % 50 != 0)
                .then(|| Timestamp::from_millis(base - i64::from(i % 300) * 1000)),
            ..SeedConversation::new(contact(i, &format!("C{i}")))
        })
        .collect();
    let seeded = direct
        .seed
        .seed_conversations(team.ws, specs.clone())
        .await
        .expect("seed");
    let rows: Vec<Row> = seeded
        .iter()
        .zip(specs)
        .map(|(s, seed)| Row {
            id: s.conversation_id,
            seed,
        })
        .collect();
    let server = env.api(&[]).await;
    let api = Api::new(&server);
    let got = all_ids(&api, &team.owner.token, "workspace=acme", 7).await;
    assert_eq!(got.len(), 1000);
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), 1000);
    assert_eq!(got, ordered(rows.iter()));
}

async fn paging_while_messages_arrive_never_repeats_a_conversation(env: TestEnv) {
    let direct = env.direct().await;
    let team = direct.team("acme").await;
    let base = Timestamp::now().as_millis() - HOUR;
    let specs: Vec<SeedConversation> = (0..150_u32)
        .map(|i| SeedConversation {
            last_message_at: Some(Timestamp::from_millis(base - i64::from(i) * 1000)),
            ..SeedConversation::new(contact(i, &format!("C{i}")))
        })
        .collect();
    let seeded = direct
        .seed
        .seed_conversations(team.ws, specs)
        .await
        .expect("seed");
    let server = env.api(&[]).await;
    let api = Api::new(&server);
    let mut seen: Vec<String> = Vec::new();
    let mut moved: HashSet<String> = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut tick = 0_i64;
    for page_no in 0..100_usize {
        let path = match &cursor {
            Some(c) => format!("/api/conversations?workspace=acme&limit=10&cursor={c}"),
            None => "/api/conversations?workspace=acme&limit=10".to_owned(),
        };
        let page = api.get_ok(&path, &team.owner.token).await;
        for c in page["conversations"].as_array().expect("list") {
            seen.push(c["id"].as_str().expect("id").to_owned());
        }
        // New messages jump conversations to the top: some already seen, some not yet.
        for pick in [
            page_no * 7 % 150,
            (page_no * 13 + 90) % 150,
            page_no * 10 + 3,
        ] {
            let Some(s) = seeded.get(pick) else { continue };
            tick += 1;
            direct
                .seed
                .seed_message(
                    s.conversation_id,
                    SeedMessage {
                        direction: Direction::Inbound,
                        text: "new".into(),
                        sent_at: Timestamp::from_millis(base + HOUR / 2 + tick),
                    },
                )
                .await
                .expect("message");
            moved.insert(s.conversation_id.to_string());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a conversation came twice");
    for s in &seeded {
        let id = s.conversation_id.to_string();
        assert!(
            moved.contains(&id) || unique.contains(&id),
            "{id} stayed where it was and was skipped"
        );
    }
}

/// The view without the fields an action is allowed to change.
fn without(mut view: Value, fields: &[&str]) -> Value {
    for field in fields.iter().chain(&["updated_at"]) {
        view.as_object_mut().expect("object").remove(*field);
    }
    view
}

async fn thread_pages_and_actions_change_only_what_they_say(env: TestEnv) {
    let direct = env.direct().await;
    let team = direct.team("acme").await;
    let other = direct.team("bravo").await;
    let s = direct
        .seed
        .seed_conversations(team.ws, vec![SeedConversation::new(contact(1, "Budi"))])
        .await
        .expect("seed")[0];
    let t0 = Timestamp::now().as_millis() - HOUR;
    for i in 0..5 {
        direct
            .seed
            .seed_message(
                s.conversation_id,
                SeedMessage {
                    direction: if i == 3 {
                        Direction::Outbound
                    } else {
                        Direction::Inbound
                    },
                    text: format!("m{}", i + 1),
                    sent_at: Timestamp::from_millis(t0 + i64::from(i) * 1000),
                },
            )
            .await
            .expect("message");
    }
    let server = env.api(&[]).await;
    let api = Api::new(&server);
    let token = team.owner.token.as_str();
    let path = format!("/api/conversations/{}", s.conversation_id);
    let seqs = |page: &Value| -> Vec<i64> {
        page["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter_map(|m| m["seq"].as_i64())
            .collect()
    };

    let newest = api.get_ok(&format!("{path}/messages?limit=2"), token).await;
    assert_eq!(
        (seqs(&newest), newest["has_more"].clone()),
        (vec![4, 5], json!(true))
    );
    assert_eq!(newest["messages"][1]["text"], "m5");
    let back = api
        .get_ok(&format!("{path}/messages?limit=2&before=2"), token)
        .await;
    assert_eq!(
        (seqs(&back), back["has_more"].clone()),
        (vec![1], json!(false))
    );
    let after = api.get_ok(&format!("{path}/messages?after=3"), token).await;
    assert_eq!(
        (seqs(&after), after["has_more"].clone()),
        (vec![4, 5], json!(false))
    );
    let caught = api
        .get_ok(&format!("{path}/messages?after=1&limit=2"), token)
        .await;
    assert_eq!(
        (seqs(&caught), caught["has_more"].clone()),
        (vec![2, 3], json!(true))
    );

    let before = api.get_ok(&path, token).await;
    assert_eq!(before["unread_count"], 4);
    assert_eq!(before["status"], "open");

    // Assignees must be members of this workspace.
    for assignee in [json!(uuid_like()), json!(other.owner.id.to_string())] {
        let (status, body) = api
            .call(
                Method::POST,
                &format!("{path}/assign"),
                Some(token),
                Some(&json!({"assigned_to": assignee})),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["details"][0]["field"], "assigned_to");
    }
    let (status, body) = api
        .call(
            Method::POST,
            &format!("{path}/assign"),
            Some(token),
            Some(&json!({})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["details"][0]["field"].clone()),
        (422, json!("assigned_to"))
    );
    assert_eq!(
        without(api.get_ok(&path, token).await, &[]),
        without(before.clone(), &[])
    );

    let (status, assigned) = api
        .call(
            Method::POST,
            &format!("{path}/assign"),
            Some(token),
            Some(&json!({"assigned_to": team.admin.id.to_string()})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(assigned["assigned_to"], team.admin.id.to_string());
    assert_eq!(
        without(assigned.clone(), &["assigned_to"]),
        without(before.clone(), &["assigned_to"])
    );

    let (status, handed) = api
        .call(
            Method::POST,
            &format!("{path}/handover"),
            Some(token),
            Some(&json!({"ai_paused": true})),
        )
        .await;
    assert_eq!(status, 200, "{handed}");
    assert_eq!(handed["conversation"]["ai_paused"], true);
    assert_eq!(handed["kapso"]["ok"], false);
    assert_eq!(handed["kapso"]["executions_updated"], 0);
    assert!(handed["kapso"]["message"].is_string());
    assert_eq!(
        without(handed["conversation"].clone(), &["ai_paused"]),
        without(assigned.clone(), &["ai_paused"])
    );
    assert_eq!(
        api.get_ok(&format!("{path}/handover"), token).await,
        json!({"ai_paused": true})
    );

    let (status, read) = api
        .call(Method::POST, &format!("{path}/read"), Some(token), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(read["unread_count"], 0);
    assert_eq!(
        without(read.clone(), &["unread_count"]),
        without(handed["conversation"].clone(), &["unread_count"])
    );

    let (status, closed) = api
        .call(
            Method::POST,
            &format!("{path}/status"),
            Some(token),
            Some(&json!({"status": "closed"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(closed["status"], "closed");
    assert_eq!(
        without(closed.clone(), &["status"]),
        without(read.clone(), &["status"])
    );
    assert_eq!(
        without(api.get_ok(&path, token).await, &[]),
        without(closed, &[])
    );

    // The thread itself was not touched by any action.
    assert_eq!(
        api.get_ok(&format!("{path}/messages?limit=2"), token).await,
        newest
    );
}

fn uuid_like() -> String {
    UserId::new().to_string()
}
