//! Bad input gets its documented status and code, and a message naming the field.

use reqwest::Method;
use serde_json::{Value, json};

use super::Coverage;
use crate::team::{ApiRequest, Direct, RequestBody as Body, Transport};

/// Each kind of bad input (`Full`), or one of each route family (`Sample`), answers 422
/// `validation_failed` naming the field; with `Full` also the owner's settings rules (no
/// number claimed, secrets never echoed). `acme` and `bravo` must not exist yet.
///
/// # Panics
/// When an answer differs.
pub async fn each_kind_of_bad_input_gets_its_code_and_names_the_field<T: Transport>(
    direct: &Direct,
    api: &T,
    coverage: Coverage,
) {
    let team = direct.team("acme").await;
    let bravo = direct.team("bravo").await;
    let conversation = direct
        .seed
        .seed_conversations(
            team.ws,
            vec![inbox_store::testing::SeedConversation::new(
                crate::team::contact(1, "Budi"),
            )],
        )
        .await
        .expect("seed")[0];
    let c = format!("/api/conversations/{}", conversation.conversation_id);
    let k = format!("/api/contacts/{}", conversation.contact_id);
    let long = |n: usize| "x".repeat(n);
    let new_contact = |extra: Value| {
        let mut body = json!({"workspace": "acme", "phone": "081234567890"});
        for (key, value) in extra.as_object().expect("object") {
            body[key] = value.clone();
        }
        Body::Json(body)
    };
    let list = "/api/conversations?workspace=acme";

    let cases: Vec<(Method, String, Body, &str)> = vec![
        (
            Method::GET,
            format!("{list}&stauts=open"),
            Body::Empty,
            "stauts",
        ),
        (
            Method::GET,
            format!("{list}&cursor=garbage!"),
            Body::Empty,
            "cursor",
        ),
        (
            Method::GET,
            format!("{list}&cursor=MTIz"),
            Body::Empty,
            "cursor",
        ),
        (Method::GET, format!("{list}&limit=0"), Body::Empty, "limit"),
        (
            Method::GET,
            format!("{list}&limit=201"),
            Body::Empty,
            "limit",
        ),
        (
            Method::GET,
            format!("{list}&limit=ten"),
            Body::Empty,
            "limit",
        ),
        (
            Method::GET,
            "/api/conversations".into(),
            Body::Empty,
            "workspace",
        ),
        (
            Method::GET,
            format!("{list}&status=pending"),
            Body::Empty,
            "status",
        ),
        (
            Method::GET,
            format!("{list}&status=open&status=closed"),
            Body::Empty,
            "status",
        ),
        (
            Method::GET,
            format!("{list}&window=ajar"),
            Body::Empty,
            "window",
        ),
        (
            Method::GET,
            format!("{list}&unread=yes"),
            Body::Empty,
            "unread",
        ),
        (
            Method::GET,
            format!("{list}&ai_paused=2"),
            Body::Empty,
            "ai_paused",
        ),
        (
            Method::GET,
            format!("{list}&assigned_to=someone"),
            Body::Empty,
            "assigned_to",
        ),
        (
            Method::GET,
            format!("{list}&lead_status=warm"),
            Body::Empty,
            "lead_status",
        ),
        (
            Method::GET,
            format!("{list}&tags=a,,b"),
            Body::Empty,
            "tags",
        ),
        (
            Method::GET,
            format!("{list}&q={}", long(101)),
            Body::Empty,
            "q",
        ),
        (Method::GET, format!("{list}&q=ab"), Body::Empty, "q"),
        (
            Method::GET,
            "/api/contacts?workspace=acme&q=%20a%20".into(),
            Body::Empty,
            "q",
        ),
        (
            Method::GET,
            "/api/conversations/counts?workspace=acme&x=1".into(),
            Body::Empty,
            "x",
        ),
        (
            Method::GET,
            "/api/conversations/not-a-uuid".into(),
            Body::Empty,
            "id",
        ),
        (
            Method::POST,
            "/api/conversations/123/read".into(),
            Body::Empty,
            "id",
        ),
        (
            Method::GET,
            "/api/contacts/not-a-uuid".into(),
            Body::Empty,
            "id",
        ),
        (
            Method::GET,
            format!("{c}/messages?before=x"),
            Body::Empty,
            "before",
        ),
        (
            Method::GET,
            format!("{c}/messages?before=1&after=2"),
            Body::Empty,
            "after",
        ),
        (
            Method::GET,
            format!("{c}/messages?limit=0"),
            Body::Empty,
            "limit",
        ),
        (
            Method::GET,
            format!("{c}/messages?page=2"),
            Body::Empty,
            "page",
        ),
        (
            Method::POST,
            format!("{c}/assign"),
            Body::Json(json!({"assigned_to": "nope"})),
            "assigned_to",
        ),
        (
            Method::POST,
            format!("{c}/assign"),
            Body::Json(json!({"assigned_to": null, "x": 1})),
            "x",
        ),
        (
            Method::POST,
            format!("{c}/status"),
            Body::Json(json!({"status": "pending"})),
            "status",
        ),
        (
            Method::POST,
            format!("{c}/status"),
            Body::Json(json!({"status": 1})),
            "status",
        ),
        (
            Method::POST,
            format!("{c}/handover"),
            Body::Json(json!({"ai_paused": "yes"})),
            "ai_paused",
        ),
        (
            Method::POST,
            format!("{c}/handover"),
            Body::Json(json!({})),
            "ai_paused",
        ),
        (
            Method::POST,
            format!("{c}/handover"),
            Body::Raw("{\"ai_paused\": tru".into()),
            "body",
        ),
        (
            Method::POST,
            "/api/contacts".into(),
            Body::Raw("{\"workspace\":".into()),
            "body",
        ),
        (
            Method::POST,
            "/api/contacts".into(),
            Body::Raw("[]".into()),
            "body",
        ),
        (
            Method::POST,
            "/api/contacts".into(),
            new_contact(json!({"phone": "hello"})),
            "phone",
        ),
        (
            Method::POST,
            "/api/contacts".into(),
            new_contact(json!({"phone": "0812"})),
            "phone",
        ),
        (
            Method::POST,
            "/api/contacts".into(),
            Body::Json(json!({"workspace": "acme"})),
            "phone",
        ),
        (
            Method::POST,
            "/api/contacts".into(),
            new_contact(json!({"nmae": "Budi"})),
            "nmae",
        ),
        (
            Method::POST,
            "/api/contacts".into(),
            new_contact(json!({"lead_score": "high"})),
            "lead_score",
        ),
        (
            Method::POST,
            "/api/contacts".into(),
            new_contact(json!({"lead_score": 101})),
            "lead_score",
        ),
        (
            Method::POST,
            "/api/contacts".into(),
            new_contact(json!({"lead_status": "warm"})),
            "lead_status",
        ),
        (
            Method::POST,
            "/api/contacts".into(),
            new_contact(json!({"name": long(201)})),
            "name",
        ),
        (
            Method::POST,
            "/api/contacts".into(),
            new_contact(json!({"email": "nope"})),
            "email",
        ),
        (
            Method::POST,
            "/api/contacts".into(),
            new_contact(json!({"tags": [long(33)]})),
            "tags[0]",
        ),
        (
            Method::POST,
            "/api/contacts".into(),
            new_contact(json!({"tags": "vip"})),
            "tags",
        ),
        (
            Method::POST,
            "/api/contacts".into(),
            new_contact(json!({"metadata": [1]})),
            "metadata",
        ),
        (
            Method::POST,
            "/api/contacts".into(),
            new_contact(json!({"metadata": {"blob": long(17 * 1024)}})),
            "metadata",
        ),
        (
            Method::PATCH,
            k.clone(),
            Body::Json(json!({"phone": "081234567891"})),
            "phone",
        ),
        (
            Method::PATCH,
            k.clone(),
            Body::Json(json!({"workspace": "bravo"})),
            "workspace",
        ),
        (
            Method::PATCH,
            k.clone(),
            Body::Json(json!({"name": ""})),
            "name",
        ),
        (
            Method::PATCH,
            k.clone(),
            Body::Json(json!({"assigned_to": 5})),
            "assigned_to",
        ),
        (
            Method::GET,
            "/api/contacts?workspace=acme&limit=201".into(),
            Body::Empty,
            "limit",
        ),
        (
            Method::GET,
            "/api/contacts?workspace=acme&cursor=%%%".into(),
            Body::Empty,
            "cursor",
        ),
        (
            Method::GET,
            "/api/contacts?workspace=acme&sort=name".into(),
            Body::Empty,
            "sort",
        ),
        (
            Method::GET,
            "/api/contacts/by-phone?workspace=acme&phone=hello".into(),
            Body::Empty,
            "phone",
        ),
        (
            Method::GET,
            "/api/contacts/by-phone?workspace=acme".into(),
            Body::Empty,
            "phone",
        ),
        (
            Method::PATCH,
            "/api/workspaces/acme".into(),
            Body::Json(json!({"name": long(101)})),
            "name",
        ),
        (
            Method::PATCH,
            "/api/workspaces/acme".into(),
            Body::Json(json!({"default_country": "XX"})),
            "default_country",
        ),
        (
            Method::PATCH,
            "/api/workspaces/acme".into(),
            Body::Json(json!({"kapso_phone_number_id": long(65)})),
            "kapso_phone_number_id",
        ),
        (
            Method::PATCH,
            "/api/workspaces/acme".into(),
            Body::Json(json!({"auto_create_contacts": "yes"})),
            "auto_create_contacts",
        ),
        (
            Method::PATCH,
            "/api/workspaces/acme".into(),
            Body::Json(json!({"slug": "x"})),
            "slug",
        ),
    ];
    // One row of each family through the binary: a list's query, an action's malformed body,
    // a new contact's field, a workspace setting.
    let sample = [
        (Method::GET, format!("{list}&stauts=open")),
        (Method::POST, format!("{c}/handover")),
        (Method::POST, "/api/contacts".to_owned()),
        (Method::PATCH, "/api/workspaces/acme".to_owned()),
    ];
    let sample_fields = ["stauts", "body", "phone", "default_country"];
    let cases: Vec<_> = match coverage {
        Coverage::Full => cases,
        Coverage::Sample => {
            let mut picked = Vec::new();
            for (route, field) in sample.iter().zip(sample_fields) {
                let at = cases
                    .iter()
                    .position(|(method, path, _, f)| {
                        (method, path) == (&route.0, &route.1) && *f == field
                    })
                    .expect("every sampled row is in the table");
                picked.push(cases[at].clone());
            }
            picked
        }
    };
    for (method, path, body, field) in cases {
        let (status, answer) = api
            .send(ApiRequest {
                method: method.clone(),
                path: path.clone(),
                token: Some(team.owner.token.clone()),
                body,
            })
            .await;
        assert_eq!(status, 422, "{method} {path}: {answer}");
        assert_eq!(
            answer["error"]["code"], "validation_failed",
            "{method} {path}"
        );
        assert_eq!(
            answer["error"]["details"][0]["field"], field,
            "{method} {path}: {answer}"
        );
        let message = answer["error"]["message"].as_str().expect("message");
        assert!(message.contains(field), "{method} {path}: {message}");
    }

    if coverage == Coverage::Sample {
        return;
    }

    // Routing belongs to the operator: an owner may not claim a number (another workspace's
    // or any other); secrets are never echoed.
    let patch = |token: String, body: Value| {
        let api = api.clone();
        async move {
            api.call(
                Method::PATCH,
                "/api/workspaces/acme",
                Some(&token),
                Some(&body),
            )
            .await
        }
    };
    for (slug, token) in [("bravo", &bravo.owner.token), ("acme", &team.owner.token)] {
        let (status, body) = api
            .call(
                Method::PATCH,
                &format!("/api/workspaces/{slug}"),
                Some(token),
                Some(&json!({"kapso_phone_number_id": "pn-1"})),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (403, json!("forbidden")),
            "{body}"
        );
    }
    let (status, body) = patch(
        team.owner.token.clone(),
        json!({"kapso_api_key": "sk-very-secret", "webhook_secret": "whsec-hidden",
               "default_country": "us", "auto_create_contacts": false, "name": "Acme Co"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["has_kapso_api_key"].clone(),
            body["has_webhook_secret"].clone()
        ),
        (json!(true), json!(true))
    );
    assert_eq!(body["default_country"], "US");
    assert_eq!(body["auto_create_contacts"], false);
    assert_eq!(body["kapso_phone_number_id"], Value::Null);
    let shown = api.get_ok("/api/workspaces/acme", &team.owner.token).await;
    assert_eq!(shown, body);
    assert!(
        !shown.to_string().contains("sk-very-secret")
            && !shown.to_string().contains("whsec-hidden")
    );
    let (status, body) = patch(team.owner.token.clone(), json!({"kapso_api_key": null})).await;
    assert_eq!(
        (status, body["has_kapso_api_key"].clone()),
        (200, json!(false))
    );
}

/// A body over 1 MiB answers 413 `payload_too_large`; unknown routes and methods and a missing
/// token answer in the error shape. Makes workspace `slug`, which must not exist yet.
///
/// # Panics
/// When an answer differs.
pub async fn bodies_over_a_mebibyte_get_413_and_routes_answer_in_the_error_shape<T: Transport>(
    direct: &Direct,
    api: &T,
    slug: &str,
) {
    let team = direct.team(slug).await;
    let huge = format!(
        "{{\"workspace\": \"{slug}\", \"phone\": \"081234567890\", \"name\": \"{}\"}}",
        "x".repeat(1024 * 1024 + 1)
    );
    let (status, body) = api
        .send(ApiRequest {
            method: Method::POST,
            path: "/api/contacts".to_owned(),
            token: Some(team.owner.token.clone()),
            body: Body::Raw(huge),
        })
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (413, json!("payload_too_large"))
    );

    for (method, path, status, code) in [
        (
            Method::DELETE,
            "/api/conversations",
            405,
            "method_not_allowed",
        ),
        (
            Method::PUT,
            "/api/contacts/by-phone",
            405,
            "method_not_allowed",
        ),
        (Method::GET, "/api/nothing-here", 404, "not_found"),
        (Method::GET, "/api/contacts", 401, "unauthorized"),
    ] {
        let token = (status != 401).then_some(team.owner.token.as_str());
        let (got, body) = api.call(method.clone(), path, token, None).await;
        assert_eq!(
            (got, body["error"]["code"].clone()),
            (status, json!(code)),
            "{method} {path}"
        );
    }
}

/// 60,000 tags in one PATCH: refused for their count without reading each, 404 to someone who
/// may not see the contact, and the server keeps answering meanwhile. `acme` and `bravo` must
/// not exist yet.
///
/// # Panics
/// When an answer differs.
pub async fn a_tag_bomb_is_refused_by_its_count_and_outsiders_learn_nothing<T: Transport>(
    direct: &Direct,
    api: &T,
) {
    let team = direct.team("acme").await;
    let outsider = direct.team("bravo").await;
    let contact = direct
        .seed
        .seed_conversations(
            team.ws,
            vec![inbox_store::testing::SeedConversation::new(
                crate::team::contact(1, "Budi"),
            )],
        )
        .await
        .expect("seed")[0]
        .contact_id;
    let bomb = json!({"tags": vec![""; 60_000]});
    let path = format!("/api/contacts/{contact}");
    let bombs = [
        (outsider.owner.token.clone(), 404, "not_found"),
        (team.owner.token.clone(), 422, "validation_failed"),
        (outsider.owner.token.clone(), 404, "not_found"),
        (team.owner.token.clone(), 422, "validation_failed"),
    ];
    let sent = bombs.map(|(token, status, code)| {
        let (api, path, bomb) = (api.clone(), path.clone(), bomb.clone());
        tokio::spawn(async move {
            let (got, body) = api
                .call(Method::PATCH, &path, Some(&token), Some(&bomb))
                .await;
            assert_eq!(
                (got, body["error"]["code"].as_str()),
                (status, Some(code)),
                "{body}"
            );
            if status == 422 {
                assert_eq!(body["error"]["details"][0]["field"], "tags", "{body}");
            }
        })
    });
    let (status, _) = api.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        status, 200,
        "the server answers while the bombs are handled"
    );
    for task in sent {
        task.await.expect("bomb answered");
    }
    let (status, body) = api
        .call(
            Method::GET,
            "/api/conversations?workspace=acme&tags="
                .to_owned()
                .as_str(),
            Some(&team.owner.token),
            None,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let filter = format!(
        "/api/conversations?workspace=acme&tags={}",
        ",x".repeat(2_000)
    );
    let (status, body) = api
        .call(Method::GET, &filter, Some(&team.owner.token), None)
        .await;
    assert_eq!(
        (status, body["error"]["details"][0]["field"].as_str()),
        (422, Some("tags")),
        "{body}"
    );
}
