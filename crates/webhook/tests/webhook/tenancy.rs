//! One signature binds a delivery to one tenant: a body signed with one workspace's secret can
//! write into that workspace only, and a Meta delivery naming several numbers is routed per
//! number, never whole to the first.

use axum::http::StatusCode;
use inbox_domain::WorkspaceId;
use inbox_domain::phone::CountryCode;
use inbox_domain::workspace::{NewWorkspace, Secret, WorkspacePatch, WorkspaceSlug};
use inbox_webhook::WebhookSettings;
use serde_json::{Value, json};

use crate::{Harness, KAPSO_SECRET, META_SECRET, PHONE_NUMBER_ID, Post, hmac_hex, post};

const VICTIM_NUMBER: &str = "222222222222222";
const VICTIM_SECRET: &str = "victim_secret";

/// A second workspace, with its own number and secret.
async fn victim(h: &Harness, secret: Option<&str>) -> WorkspaceId {
    let ws = h
        .repo
        .create_workspace(NewWorkspace {
            slug: WorkspaceSlug::parse("victim").expect("slug"),
            name: inbox_domain::workspace::WorkspaceName::parse("Victim").expect("name"),
            default_country: CountryCode::default(),
        })
        .await
        .expect("workspace");
    let patch = WorkspacePatch {
        kapso_phone_number_id: Some(Some(VICTIM_NUMBER.into())),
        webhook_secret: Some(secret.map(Secret::new)),
        ..WorkspacePatch::default()
    };
    h.repo.update_workspace(ws.id, patch).await.expect("patch");
    ws.id
}

fn message(wamid: &str, text: &str, from: &str) -> Value {
    json!({
        "id": wamid,
        "timestamp": "1730092800",
        "type": "text",
        "from": from,
        "text": {"body": text},
        "kapso": {"direction": "inbound", "status": "received", "origin": "cloud_api"}
    })
}

fn conversation(number: &str) -> Value {
    json!({"id": "conv_x", "phone_number": "+15550001111", "phone_number_id": number})
}

fn meta_change(number: &str, wamid: &str, from: &str) -> Value {
    json!({"id": "waba", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "1555", "phone_number_id": number},
        "contacts": [{"profile": {"name": "Someone"}, "wa_id": from}],
        "messages": [{"from": from, "id": wamid, "timestamp": "1749416383", "type": "text",
                      "text": {"body": "hi"}}]
    }}]})
}

fn signed_by_me(key: &str, body: &Value) -> Post {
    Post::kapso(
        "whatsapp.message.received",
        key,
        body.to_string().as_bytes(),
        KAPSO_SECRET,
    )
}

pub async fn a_body_signed_by_one_tenant_naming_another_lands_nowhere(h: Harness) {
    victim(&h, Some(VICTIM_SECRET)).await;
    let app = h.app();
    let empty = h.counts().await;
    let forged = [
        (
            "a wrapped event naming the victim inside",
            json!({"phone_number_id": PHONE_NUMBER_ID, "data": {
                "phone_number_id": VICTIM_NUMBER,
                "message": message("wamid.FORGED1", "forged", "15550001111"),
                "conversation": conversation(VICTIM_NUMBER)
            }}),
        ),
        (
            "a Meta-shaped body with my number on top",
            json!({"phone_number_id": PHONE_NUMBER_ID, "object": "whatsapp_business_account",
                   "entry": [meta_change(VICTIM_NUMBER, "wamid.FORGED2", "15550001111")]}),
        ),
        (
            "a batch whose second element names the victim",
            json!({"type": "whatsapp.message.received", "batch": true, "data": [
                {"phone_number_id": PHONE_NUMBER_ID,
                 "message": message("wamid.FORGED3", "mine", "15550001111")},
                {"phone_number_id": VICTIM_NUMBER,
                 "message": message("wamid.FORGED4", "forged", "15550001111")}
            ]}),
        ),
        (
            "a single event whose conversation names the victim",
            json!({"phone_number_id": PHONE_NUMBER_ID,
                   "message": message("wamid.FORGED5", "forged", "15550001111"),
                   "conversation": conversation(VICTIM_NUMBER)}),
        ),
        (
            "a single event whose message names the victim",
            json!({"phone_number_id": PHONE_NUMBER_ID,
                   "message": {"id": "wamid.FORGED6", "timestamp": "1730092800", "type": "text",
                               "from": "15550001111", "text": {"body": "forged"},
                               "kapso": {"direction": "inbound", "phone_number_id": VICTIM_NUMBER}}}),
        ),
    ];
    for (i, (what, body)) in forged.iter().enumerate() {
        let (status, answer) = post(&app, &signed_by_me(&format!("forged-{i}"), body)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {answer}");
        assert_eq!(answer["error"]["code"], "unauthorized", "{what}");
    }
    assert_eq!(h.counts().await, empty, "nothing stored, in any workspace");

    // The same shapes naming only my own number are mine to send.
    let mine = json!({"phone_number_id": PHONE_NUMBER_ID, "data": {
        "phone_number_id": PHONE_NUMBER_ID,
        "message": message("wamid.MINE1", "mine", "15550001111"),
        "conversation": conversation(PHONE_NUMBER_ID)
    }});
    assert_eq!(
        post(&app, &signed_by_me("mine", &mine)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        h.int("SELECT COUNT(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id JOIN workspaces w ON w.id = c.workspace_id WHERE w.slug = 'acme'")
            .await,
        1
    );
}

pub async fn a_meta_delivery_is_routed_per_number(h: Harness) {
    victim(&h, Some(VICTIM_SECRET)).await;
    let app = h.app();
    let body = json!({"object": "whatsapp_business_account", "entry": [
        meta_change(PHONE_NUMBER_ID, "wamid.SPLIT1", "15550001111"),
        meta_change(VICTIM_NUMBER, "wamid.SPLIT2", "15550002222"),
        meta_change("999999999999999", "wamid.SPLIT3", "15550003333"),
    ]})
    .to_string();
    let request = Post {
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            (
                "X-Hub-Signature-256".into(),
                format!("sha256={}", hmac_hex(META_SECRET, body.as_bytes())),
            ),
        ],
        body: body.into_bytes(),
    };
    assert_eq!(post(&app, &request).await.0, StatusCode::OK);
    let in_workspace = |slug: &str| {
        format!(
            "SELECT m.wamid FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             JOIN workspaces w ON w.id = c.workspace_id WHERE w.slug = '{slug}' ORDER BY m.wamid"
        )
    };
    assert_eq!(
        h.texts(&in_workspace("acme")).await,
        [Some("wamid.SPLIT1".to_owned())]
    );
    assert_eq!(
        h.texts(&in_workspace("victim")).await,
        [Some("wamid.SPLIT2".to_owned())]
    );
    assert_eq!(h.int("SELECT COUNT(*) FROM messages").await, 2);
    assert_eq!(
        h.texts("SELECT outcome FROM webhook_deliveries ORDER BY outcome")
            .await,
        [
            Some("ignored".to_owned()),
            Some("processed".to_owned()),
            Some("processed".to_owned())
        ],
        "one record per number, the unknown one ignored"
    );
    let before = h.counts().await;
    assert_eq!(post(&app, &request).await.0, StatusCode::OK);
    assert_eq!(h.counts().await, before, "a repeat changes nothing");
}

pub async fn the_deployment_secret_serves_only_a_lone_workspace(h: Harness) {
    let no_own_secret = WorkspacePatch {
        webhook_secret: Some(None),
        ..WorkspacePatch::default()
    };
    h.repo
        .update_workspace(h.workspace, no_own_secret)
        .await
        .expect("clear secret");
    let app = h.app_with(WebhookSettings {
        kapso_webhook_secret: Some(Secret::new("deployment_secret")),
        ..WebhookSettings::default()
    });
    let body = json!({"phone_number_id": PHONE_NUMBER_ID,
                      "message": message("wamid.LONE1", "hi", "15550001111")});
    let deployment = |key: &str| {
        Post::kapso(
            "whatsapp.message.received",
            key,
            body.to_string().as_bytes(),
            "deployment_secret",
        )
    };
    assert_eq!(post(&app, &deployment("lone-1")).await.0, StatusCode::OK);

    // A second tenant exists: the shared secret no longer says which one signed.
    victim(&h, None).await;
    let empty = h.counts().await;
    assert_eq!(
        post(&app, &deployment("lone-2")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let victim_body = json!({"phone_number_id": VICTIM_NUMBER,
                             "message": message("wamid.LONE2", "hi", "15550001111")});
    let to_victim = Post::kapso(
        "whatsapp.message.received",
        "lone-3",
        victim_body.to_string().as_bytes(),
        "deployment_secret",
    );
    assert_eq!(post(&app, &to_victim).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(h.counts().await, empty);
}
