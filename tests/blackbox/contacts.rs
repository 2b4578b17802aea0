//! Contacts over HTTP: create with phone normalisation and conflicts, read, patch, the list,
//! the by-phone lookup and delete.

use std::collections::HashSet;

use inbox_domain::contact::{LeadStatus, NewContact, Tags};
use inbox_domain::message::Direction;
use inbox_domain::{Timestamp, UserId};
use inbox_store::testing::{SeedConversation, SeedMessage};
use inbox_tests::TestEnv;
use inbox_tests::team::{Api, contact};
use reqwest::Method;
use serde_json::{Value, json};

inbox_store::on_both_backends!(inbox_tests::TestEnv;
    create_normalises_the_phone_and_conflicts_name_the_existing_contact,
    the_contact_list_filters_and_pages,
    by_phone_gives_bots_the_contact_and_its_ten_newest_messages,
);

async fn create_normalises_the_phone_and_conflicts_name_the_existing_contact(env: TestEnv) {
    let direct = env.direct().await;
    let team = direct.team("acme").await;
    let server = env.api(&[]).await;
    let api = Api::new(&server);
    let token = Some(team.owner.token.as_str());

    let body = json!({
        "workspace": "acme", "phone": "0812-3456-7890", "name": "Budi", "email": "budi@example.com",
        "tags": ["VIP", "vip", "repeat"], "lead_status": "hot", "lead_score": 70,
        "assigned_to": team.member.id.to_string(), "metadata": {"source": "fair"}
    });
    let (status, created) = api
        .call(Method::POST, "/api/contacts", token, Some(&body))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["phone"], "+6281234567890");
    assert_eq!(created["display_name"], "Budi");
    assert_eq!(created["tags"], json!(["VIP", "repeat"]));
    assert_eq!(created["lead_status"], "hot");
    assert_eq!(created["lead_score"], 70);
    assert_eq!(created["source"], "api");
    assert_eq!(created["metadata"], json!({"source": "fair"}));
    assert_eq!(created["assigned_to"], team.member.id.to_string());
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(
        api.get_ok(&format!("/api/contacts/{id}"), &team.owner.token)
            .await,
        created
    );

    // The same number written another way is the same contact.
    let (status, conflict) = api
        .call(
            Method::POST,
            "/api/contacts",
            token,
            Some(&json!({"workspace": "acme", "phone": "+62 812 3456 7890"})),
        )
        .await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["error"]["code"], "conflict");
    assert_eq!(conflict["error"]["existing_id"], id.as_str());
    assert!(
        conflict["error"]["message"]
            .as_str()
            .expect("message")
            .contains(&id)
    );
    // A member who may not see that contact learns it exists, not which one it is.
    let (status, hidden) = api
        .call(
            Method::POST,
            "/api/contacts",
            Some(team.member2.token.as_str()),
            Some(&json!({"workspace": "acme", "phone": "+62 812 3456 7890"})),
        )
        .await;
    assert_eq!(
        (status, &hidden["error"]["code"]),
        (409, &json!("conflict")),
        "{hidden}"
    );
    assert!(
        hidden["error"]
            .get("existing_id")
            .is_none_or(Value::is_null),
        "{hidden}"
    );
    assert!(!hidden.to_string().contains(&id), "{hidden}");

    // Patch: only the fields sent change; null clears; the phone is not editable.
    let path = format!("/api/contacts/{id}");
    let (status, patched) = api
        .call(
            Method::PATCH,
            &path,
            token,
            Some(&json!({"name": null, "tags": ["new"], "lead_score": 5, "assigned_to": null})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], Value::Null);
    assert_eq!(patched["display_name"], "+6281234567890");
    assert_eq!(patched["tags"], json!(["new"]));
    assert_eq!(patched["lead_score"], 5);
    assert_eq!(patched["lead_status"], "hot");
    assert_eq!(patched["email"], "budi@example.com");
    assert_eq!(patched["assigned_to"], Value::Null);
    let (status, refused) = api
        .call(
            Method::PATCH,
            &path,
            token,
            Some(&json!({"phone": "+6281111111111"})),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(refused["error"]["details"][0]["field"], "phone");
    assert_eq!(
        api.get_ok(&path, &team.owner.token).await["phone"],
        "+6281234567890"
    );

    // A member may not create a contact for someone else.
    let (status, _) = api
        .call(
            Method::POST,
            "/api/contacts",
            Some(&team.member.token),
            Some(&json!({"workspace": "acme", "phone": "081299990000",
                         "assigned_to": team.admin.id.to_string()})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = api
        .call(
            Method::POST,
            "/api/contacts",
            token,
            Some(&json!({"workspace": "acme", "phone": "081299990000",
                         "assigned_to": UserId::new().to_string()})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["details"][0]["field"].clone()),
        (422, json!("assigned_to"))
    );

    // Delete removes the contact and its conversation.
    let conversation = api
        .get_ok("/api/conversations?workspace=acme", &team.owner.token)
        .await["conversations"][0]["id"]
        .as_str()
        .expect("its conversation")
        .to_owned();
    let (status, body) = api.call(Method::DELETE, &path, token, None).await;
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(api.call(Method::GET, &path, token, None).await.0, 404);
    assert_eq!(
        api.call(
            Method::GET,
            &format!("/api/conversations/{conversation}"),
            token,
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(api.call(Method::DELETE, &path, token, None).await.0, 404);
}

async fn the_contact_list_filters_and_pages(env: TestEnv) {
    let direct = env.direct().await;
    let team = direct.team("acme").await;
    let now = Timestamp::now().as_millis();
    let specs: Vec<SeedConversation> = (0..30_u32)
        .map(|i| SeedConversation {
            contact: NewContact {
                lead_status: LeadStatus::ALL[(i % 4) as usize],
                tags: Tags::parse(if i % 3 == 0 { &["VIP"][..] } else { &[][..] }).expect("tags"),
                assigned_to: (i % 2 == 0).then_some(team.member.id),
                ..contact(
                    i,
                    &format!("{} {i}", if i % 5 == 0 { "Siti" } else { "Andi" }),
                )
            },
            last_message_at: (i != 7).then(|| Timestamp::from_millis(now - i64::from(i) * 60_000)),
            ..SeedConversation::new(NewContact::default())
        })
        .collect();
    let seeded = direct
        .seed
        .seed_conversations(team.ws, specs.clone())
        .await
        .expect("seed");
    let server = env.api(&[]).await;
    let api = Api::new(&server);
    let pages = |token: String, query: &'static str, limit: u32| {
        let api = api.clone();
        async move {
            let mut ids = Vec::new();
            let mut cursor = String::new();
            loop {
                let page = api
                    .get_ok(
                        &format!("/api/contacts?workspace=acme&limit={limit}{query}{cursor}"),
                        &token,
                    )
                    .await;
                for c in page["contacts"].as_array().expect("contacts") {
                    ids.push(c["id"].as_str().expect("id").to_owned());
                }
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = format!("&cursor={next}"),
                    None => return ids,
                }
            }
        }
    };
    // Newest activity first, never-active last.
    let mut order: Vec<usize> = (0..30).filter(|i| *i != 7).collect();
    order.push(7);
    let expect = |keep: &dyn Fn(usize) -> bool| -> Vec<String> {
        order
            .iter()
            .filter(|i| keep(**i))
            .map(|i| seeded[*i].contact_id.to_string())
            .collect()
    };
    let owner = team.owner.token.clone();
    assert_eq!(pages(owner.clone(), "", 4).await, expect(&|_| true));
    assert_eq!(
        pages(owner.clone(), "&q=siti", 4).await,
        expect(&|i| i % 5 == 0)
    );
    assert_eq!(
        pages(owner.clone(), "&lead_status=hot,new", 4).await,
        expect(&|i| i % 4 == 0 || i % 4 == 2)
    );
    assert_eq!(
        pages(owner.clone(), "&tags=vip", 4).await,
        expect(&|i| i % 3 == 0)
    );
    assert_eq!(
        pages(owner.clone(), "&assigned_to=unassigned", 4).await,
        expect(&|i| i % 2 == 1)
    );
    assert_eq!(
        pages(owner.clone(), "&tags=VIP&assigned_to=unassigned&q=andi", 2).await,
        expect(&|i| i % 3 == 0 && i % 2 == 1 && i % 5 != 0)
    );
    // A member lists only the contacts assigned to them.
    assert_eq!(
        pages(team.member.token.clone(), "", 50).await,
        expect(&|i| i % 2 == 0)
    );
    assert_eq!(
        pages(team.member2.token.clone(), "", 50).await,
        Vec::<String>::new()
    );
    let all: HashSet<String> = pages(owner, "", 200).await.into_iter().collect();
    assert_eq!(all.len(), 30);
}

async fn lookup(api: &Api, token: &str, phone: &str) -> Value {
    api.get_ok(
        &format!("/api/contacts/by-phone?workspace=acme&phone={phone}"),
        token,
    )
    .await
}

async fn by_phone_gives_bots_the_contact_and_its_ten_newest_messages(env: TestEnv) {
    let direct = env.direct().await;
    let team = direct.team("acme").await;
    let s = direct
        .seed
        .seed_conversations(team.ws, vec![SeedConversation::new(contact(1, "Budi"))])
        .await
        .expect("seed")[0];
    let t0 = Timestamp::now().as_millis() - 3_600_000;
    for i in 0..12_i64 {
        direct
            .seed
            .seed_message(
                s.conversation_id,
                SeedMessage {
                    direction: if i % 2 == 0 {
                        Direction::Inbound
                    } else {
                        Direction::Outbound
                    },
                    text: format!("m{i}"),
                    sent_at: Timestamp::from_millis(t0 + i * 1000),
                },
            )
            .await
            .expect("message");
    }
    let server = env.api(&[]).await;
    let api = Api::new(&server);

    // Local form, read with the workspace's country (ID).
    let found = lookup(&api, &team.owner.token, "081200000001").await;
    assert_eq!(found["found"], true, "{found}");
    assert_eq!(found["contact"]["id"], s.contact_id.to_string());
    assert_eq!(found["conversation_id"], s.conversation_id.to_string());
    let recent = found["recent_messages"].as_array().expect("recent");
    assert_eq!(recent.len(), 10);
    let texts: Vec<&str> = recent.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(
        texts,
        ["m11", "m10", "m9", "m8", "m7", "m6", "m5", "m4", "m3", "m2"]
    );
    assert_eq!(recent[0]["direction"], "outbound");
    assert_eq!(recent[1]["direction"], "inbound");
    assert_eq!(recent[0].as_object().map(|o| o.len()), Some(3));
    assert_eq!(found["last_interaction"], recent[0]["sent_at"]);

    let missing = lookup(&api, &team.owner.token, "%2B6281299999999").await;
    assert_eq!(missing, json!({"found": false}));
    // A member who is not assigned the contact learns nothing.
    let hidden = lookup(&api, &team.member.token, "081200000001").await;
    assert_eq!(hidden, json!({"found": false}));
}
