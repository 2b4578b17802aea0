//! The permission matrix: every route against every kind of caller, asserting the exact status
//! and that nothing a caller may not see reaches them, whatever ids they guess.

use inbox_domain::message::Direction;
use inbox_domain::user::Role;
use inbox_domain::{Timestamp, UserId};
use inbox_store::testing::{SeedConversation, SeedMessage, Seeded};
use reqwest::Method;
use serde_json::{Value, json};

use super::Coverage;
use crate::team::{Direct, Transport, contact};

/// Who calls, in the order of each row's expected statuses.
const CALLERS: [&str; 6] = [
    "owner",
    "admin",
    "member",
    "member2",
    "outsider",
    "anonymous",
];

struct World {
    tokens: [Option<String>; 6],
    member: UserId,
    owner: UserId,
    x: Seeded,
    y: Seeded,
    z: Seeded,
    w: Seeded,
}

/// `acme` with X (conversation and contact assigned to `member`), Y (unassigned) and Z (contact
/// assigned to `member`); `bravo` with W. Names and phones are markers for the leak checks.
async fn world(direct: &Direct) -> World {
    let a = direct.team("acme").await;
    let b = direct.team("bravo").await;
    let member = Some(a.member.id);
    let mut x = SeedConversation::new(inbox_domain::contact::NewContact {
        assigned_to: member,
        ..contact(1, "Xavier Secret")
    });
    x.assigned_to = member;
    let y = SeedConversation::new(contact(2, "Yolanda Hidden"));
    let z = SeedConversation::new(inbox_domain::contact::NewContact {
        assigned_to: member,
        ..contact(3, "Zed Doomed")
    });
    let seeded = direct
        .seed
        .seed_conversations(a.ws, vec![x, y, z])
        .await
        .expect("seed acme");
    let w = direct
        .seed
        .seed_conversations(
            b.ws,
            vec![SeedConversation::new(contact(4, "Walter Bravo"))],
        )
        .await
        .expect("seed bravo")[0];
    for s in &seeded {
        direct
            .seed
            .seed_message(
                s.conversation_id,
                SeedMessage {
                    direction: Direction::Inbound,
                    text: "hello there".into(),
                    sent_at: Timestamp::now(),
                },
            )
            .await
            .expect("message");
    }
    World {
        tokens: [
            Some(a.owner.token),
            Some(a.admin.token),
            Some(a.member.token),
            Some(a.member2.token),
            Some(b.owner.token),
            None,
        ],
        member: a.member.id,
        owner: a.owner.id,
        x: seeded[0],
        y: seeded[1],
        z: seeded[2],
        w,
    }
}

/// What each caller must never be shown.
fn secrets(caller: &str) -> &'static [&'static str] {
    match caller {
        "owner" | "admin" => &[],
        "member" => &["Yolanda", "+6281200000002"],
        _ => &[
            "Xavier",
            "Yolanda",
            "Zed",
            "+6281200000001",
            "+6281200000002",
            "+6281200000003",
        ],
    }
}

type Body = Box<dyn Fn(usize) -> Value>;

fn fixed(value: Value) -> Option<Body> {
    Some(Box::new(move |_| value.clone()))
}

/// Every route against every caller (`Full`), or one route of each family (`Sample`): the exact
/// status, the error shape, and no secret of anything the caller may not see. `acme` and
/// `bravo` must not exist yet.
///
/// # Panics
/// When an answer differs.
pub async fn every_route_answers_each_caller_exactly<T: Transport>(
    direct: &Direct,
    api: &T,
    coverage: Coverage,
) {
    let w = world(direct).await;
    let (xc, xk) = (w.x.conversation_id, w.x.contact_id);
    let (yc, zk) = (w.y.conversation_id, w.z.contact_id);
    let member = w.member.to_string();
    let owner = w.owner.to_string();

    let ws_ok = [200, 200, 200, 200, 403, 401];
    let x_ok = [200, 200, 200, 404, 404, 401];
    let y_ok = [200, 200, 404, 404, 404, 401];
    let rows: Vec<(Method, String, Option<Body>, [u16; 6])> = vec![
        (Method::GET, "/api/workspaces/acme".into(), None, ws_ok),
        (
            Method::PATCH,
            "/api/workspaces/acme".into(),
            fixed(json!({"name": "Acme Co"})),
            [200, 403, 403, 403, 403, 401],
        ),
        (
            Method::GET,
            "/api/workspaces/acme/members".into(),
            None,
            ws_ok,
        ),
        (
            Method::GET,
            "/api/conversations?workspace=acme".into(),
            None,
            ws_ok,
        ),
        (
            Method::GET,
            "/api/conversations/counts?workspace=acme".into(),
            None,
            ws_ok,
        ),
        (Method::GET, format!("/api/conversations/{xc}"), None, x_ok),
        (Method::GET, format!("/api/conversations/{yc}"), None, y_ok),
        (
            Method::GET,
            format!("/api/conversations/{xc}/messages"),
            None,
            x_ok,
        ),
        (
            Method::GET,
            format!("/api/conversations/{yc}/messages"),
            None,
            y_ok,
        ),
        (
            Method::GET,
            format!("/api/conversations/{xc}/handover"),
            None,
            x_ok,
        ),
        (
            Method::POST,
            format!("/api/conversations/{xc}/handover"),
            fixed(json!({"ai_paused": true})),
            x_ok,
        ),
        (
            Method::POST,
            format!("/api/conversations/{yc}/handover"),
            fixed(json!({"ai_paused": true})),
            y_ok,
        ),
        (
            Method::POST,
            format!("/api/conversations/{xc}/read"),
            None,
            x_ok,
        ),
        (
            Method::POST,
            format!("/api/conversations/{yc}/read"),
            None,
            y_ok,
        ),
        (
            Method::POST,
            format!("/api/conversations/{xc}/status"),
            fixed(json!({"status": "open"})),
            x_ok,
        ),
        (
            Method::POST,
            format!("/api/conversations/{xc}/assign"),
            fixed(json!({"assigned_to": member})),
            x_ok,
        ),
        (
            Method::POST,
            format!("/api/conversations/{xc}/assign"),
            fixed(json!({"assigned_to": owner})),
            [200, 200, 403, 404, 404, 401],
        ),
        (
            Method::POST,
            format!("/api/conversations/{yc}/assign"),
            fixed(json!({"assigned_to": null})),
            y_ok,
        ),
        (
            Method::GET,
            "/api/contacts?workspace=acme".into(),
            None,
            ws_ok,
        ),
        (
            Method::POST,
            "/api/contacts".into(),
            Some(Box::new(move |i| {
                json!({"workspace": "acme", "phone": format!("0812-9999-{i:04}"),
                       "assigned_to": if i == 2 { Some(member.clone()) } else { None }})
            })),
            [201, 201, 201, 201, 403, 401],
        ),
        (
            Method::GET,
            "/api/contacts/by-phone?workspace=acme&phone=%2B6281200000001".into(),
            None,
            ws_ok,
        ),
        (Method::GET, format!("/api/contacts/{xk}"), None, x_ok),
        (
            Method::PATCH,
            format!("/api/contacts/{xk}"),
            fixed(json!({"lead_score": 50})),
            x_ok,
        ),
        (
            Method::DELETE,
            format!("/api/contacts/{zk}"),
            None,
            [204, 403, 403, 404, 404, 401],
        ),
    ];

    // One row of each family through the binary: the owner-only settings, a conversation the
    // member may not see, and the owner-only delete.
    let sample = [
        (Method::PATCH, "/api/workspaces/acme".to_owned()),
        (Method::GET, format!("/api/conversations/{yc}/messages")),
        (Method::DELETE, format!("/api/contacts/{zk}")),
    ];
    let rows: Vec<_> = match coverage {
        Coverage::Full => rows,
        Coverage::Sample => rows
            .into_iter()
            .filter(|(method, path, _, _)| sample.contains(&(method.clone(), path.clone())))
            .collect(),
    };
    assert!(
        coverage == Coverage::Full || rows.len() == sample.len(),
        "every sampled row is in the table"
    );

    // Each row runs from the anonymous caller back to the owner, so a row that changes or
    // removes the resource (the owner's delete) does so last.
    for (method, path, body, expected) in &rows {
        for i in (0..CALLERS.len()).rev() {
            let body = body.as_ref().map(|make| make(i));
            let (status, answer) = api
                .call(method.clone(), path, w.tokens[i].as_deref(), body.as_ref())
                .await;
            assert_eq!(
                status, expected[i],
                "{method} {path} as {}: {answer}",
                CALLERS[i]
            );
            if status >= 400 {
                assert!(answer["error"]["code"].is_string(), "{answer}");
            }
            let text = answer.to_string();
            for secret in secrets(CALLERS[i]) {
                assert!(
                    !text.contains(secret),
                    "{method} {path} showed {secret} to {}: {text}",
                    CALLERS[i]
                );
            }
        }
    }

    if coverage == Coverage::Sample {
        // The event stream refuses a workspace the caller is not in before it streams.
        let (status, body) = api
            .call(
                Method::GET,
                "/api/events?workspace=acme",
                w.tokens[4].as_deref(),
                None,
            )
            .await;
        assert_eq!(status, 403, "GET /api/events as outsider: {body}");
        assert!(!body.to_string().contains("Xavier"));
        return;
    }

    // Members see exactly what is assigned to them.
    let list = api
        .get_ok(
            "/api/conversations?workspace=acme",
            w.tokens[2].as_deref().unwrap_or_default(),
        )
        .await;
    let ids: Vec<&str> = list["conversations"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    // X, and the contact the member created assigned to themself; Y never, Z is deleted.
    assert_eq!(ids.len(), 2, "{list}");
    assert!(ids.contains(&xc.to_string().as_str()), "{list}");
    assert!(!ids.contains(&yc.to_string().as_str()), "{list}");
    let none = api
        .get_ok(
            "/api/conversations?workspace=acme",
            w.tokens[3].as_deref().unwrap_or_default(),
        )
        .await;
    assert_eq!(none["conversations"], json!([]));
    let counts = api
        .get_ok(
            "/api/conversations/counts?workspace=acme",
            w.tokens[3].as_deref().unwrap_or_default(),
        )
        .await;
    assert_eq!(counts["all"], 0, "{counts}");
}

/// Callers from another workspace (and users of both) reach nothing of `acme` but through the
/// workspace that holds it, whatever ids they guess. `acme` and `bravo` must not exist yet.
///
/// # Panics
/// When an answer differs.
pub async fn another_workspace_never_reaches_this_one<T: Transport>(direct: &Direct, api: &T) {
    let w = world(direct).await;
    let outsider = direct
        .person(
            direct
                .repo
                .workspace_by_slug("bravo")
                .await
                .expect("read")
                .expect("bravo")
                .id,
            "bravo member",
            Role::Member,
        )
        .await;
    let acme_id = direct
        .repo
        .workspace_by_slug("acme")
        .await
        .expect("read")
        .expect("acme")
        .id;
    let bravo_owner = w.tokens[4].clone().unwrap_or_default();

    // Their own workspace works, so the refusals below are not vacuous.
    let own = api
        .get_ok(
            &format!("/api/conversations/{}", w.w.conversation_id),
            &bravo_owner,
        )
        .await;
    assert_eq!(own["contact"]["name"], "Walter Bravo");

    for token in [bravo_owner.as_str(), outsider.token.as_str()] {
        for reference in ["acme".to_owned(), acme_id.to_string()] {
            for path in [
                format!("/api/workspaces/{reference}"),
                format!("/api/workspaces/{reference}/members"),
                format!("/api/conversations?workspace={reference}"),
                format!("/api/conversations/counts?workspace={reference}"),
                format!("/api/contacts?workspace={reference}"),
                format!("/api/contacts/by-phone?workspace={reference}&phone=%2B6281200000001"),
                format!("/api/events?workspace={reference}"),
            ] {
                let (status, body) = api.call(Method::GET, &path, Some(token), None).await;
                assert_eq!(status, 403, "GET {path}: {body}");
                assert!(!body.to_string().contains("Xavier"));
            }
        }
        for seeded in [w.x, w.y, w.z] {
            for path in [
                format!("/api/conversations/{}", seeded.conversation_id),
                format!("/api/conversations/{}/messages", seeded.conversation_id),
                format!("/api/conversations/{}/handover", seeded.conversation_id),
                format!("/api/contacts/{}", seeded.contact_id),
                // Ids of one kind guessed as the other.
                format!("/api/conversations/{}", seeded.contact_id),
                format!("/api/contacts/{}", seeded.conversation_id),
            ] {
                let (status, body) = api.call(Method::GET, &path, Some(token), None).await;
                assert_eq!(status, 404, "GET {path}: {body}");
            }
            let (status, _) = api
                .call(
                    Method::POST,
                    &format!("/api/conversations/{}/read", seeded.conversation_id),
                    Some(token),
                    None,
                )
                .await;
            assert_eq!(status, 404);
            let (status, _) = api
                .call(
                    Method::DELETE,
                    &format!("/api/contacts/{}", seeded.contact_id),
                    Some(token),
                    None,
                )
                .await;
            assert_eq!(status, 404);
        }
        // Their own lists never carry acme's data.
        for path in [
            "/api/conversations?workspace=bravo",
            "/api/contacts?workspace=bravo",
            "/api/contacts/by-phone?workspace=bravo&phone=%2B6281200000001",
        ] {
            let body = api.get_ok(path, token).await.to_string();
            for secret in secrets("outsider") {
                assert!(!body.contains(secret), "{path}: {body}");
            }
        }
    }
    // A user of both workspaces reaches each conversation through the workspace that holds
    // it, with their role there: as acme's admin and bravo's owner they see all four; as
    // acme's member (nothing assigned) and bravo's admin, only bravo's W.
    let bravo_id = direct
        .repo
        .workspace_by_slug("bravo")
        .await
        .expect("read")
        .expect("bravo")
        .id;
    let both = direct.person(acme_id, "acme admin", Role::Admin).await;
    direct
        .repo
        .add_member(bravo_id, both.id, Role::Owner)
        .await
        .expect("bravo owner too");
    for seeded in [w.x, w.y, w.z, w.w] {
        for path in [
            format!("/api/conversations/{}", seeded.conversation_id),
            format!("/api/conversations/{}/messages", seeded.conversation_id),
        ] {
            let (status, body) = api.call(Method::GET, &path, Some(&both.token), None).await;
            assert_eq!(status, 200, "GET {path}: {body}");
        }
    }
    let both_member = direct.person(acme_id, "acme member", Role::Member).await;
    direct
        .repo
        .add_member(bravo_id, both_member.id, Role::Admin)
        .await
        .expect("bravo admin too");
    for (seeded, expected) in [(w.x, 404), (w.y, 404), (w.w, 200)] {
        for path in [
            format!("/api/conversations/{}", seeded.conversation_id),
            format!("/api/conversations/{}/messages", seeded.conversation_id),
        ] {
            let (status, body) = api
                .call(Method::GET, &path, Some(&both_member.token), None)
                .await;
            assert_eq!(status, expected, "GET {path}: {body}");
        }
        let (status, _) = api
            .call(
                Method::POST,
                &format!("/api/conversations/{}/read", seeded.conversation_id),
                Some(&both_member.token),
                None,
            )
            .await;
        assert_eq!(status, expected);
    }

    // Nothing above changed acme.
    let x = direct
        .repo
        .conversation(
            inbox_domain::user::Actor {
                user_id: w.owner,
                workspace_id: acme_id,
                role: Role::Owner,
            },
            w.x.conversation_id,
        )
        .await
        .expect("read")
        .expect("x");
    assert_eq!(x.unread_count, 1);
}
