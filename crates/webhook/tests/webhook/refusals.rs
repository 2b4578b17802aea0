//! Everything the receiver refuses, and what it writes then: nothing.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use inbox_domain::workspace::{Secret, WorkspacePatch};
use inbox_webhook::WebhookSettings;
use tower::ServiceExt;

use crate::fixtures::load;
use crate::{Harness, META_SECRET, Post, VERIFY_TOKEN, hmac_hex, post};

fn assert_unauthorized(answer: &(StatusCode, serde_json::Value), what: &str) {
    assert_eq!(answer.0, StatusCode::UNAUTHORIZED, "{what}");
    assert_eq!(answer.1["error"]["code"], "unauthorized", "{what}");
}

pub async fn bad_signatures_are_refused_and_write_nothing(h: Harness) {
    let app = h.app();
    let empty = h.counts().await;
    let good = load("v2-received-text");
    let signature = good
        .header("X-Webhook-Signature")
        .expect("signed")
        .to_owned();
    let other = load("v2-sent");
    let cases = [
        ("missing", good.clone().without("X-Webhook-Signature")),
        ("empty", good.clone().with("X-Webhook-Signature", "")),
        (
            "wrong",
            good.clone()
                .with("X-Webhook-Signature", &hmac_hex("nope", &good.body)),
        ),
        (
            "truncated",
            good.clone().with("X-Webhook-Signature", &signature[..40]),
        ),
        (
            "another body's",
            good.clone().with(
                "X-Webhook-Signature",
                other.header("X-Webhook-Signature").expect("signed"),
            ),
        ),
        (
            "not hex",
            good.clone().with("X-Webhook-Signature", &"z".repeat(64)),
        ),
    ];
    for (what, request) in cases {
        assert_unauthorized(&post(&app, &request).await, what);
    }
    let meta = load("meta-messages-text");
    let meta_sig = meta
        .header("X-Hub-Signature-256")
        .expect("signed")
        .to_owned();
    let meta_cases = [
        ("meta missing", meta.clone().without("X-Hub-Signature-256")),
        (
            "meta truncated",
            meta.clone().with("X-Hub-Signature-256", &meta_sig[..30]),
        ),
        (
            "meta without prefix",
            meta.clone().with(
                "X-Hub-Signature-256",
                meta_sig.trim_start_matches("sha256="),
            ),
        ),
        (
            "meta wrong secret",
            meta.clone().with(
                "X-Hub-Signature-256",
                &format!("sha256={}", hmac_hex("nope", &meta.body)),
            ),
        ),
    ];
    for (what, request) in meta_cases {
        assert_unauthorized(&post(&app, &request).await, what);
    }
    assert_eq!(h.counts().await, empty, "nothing written");
    assert_eq!(
        post(&app, &good).await.0,
        StatusCode::OK,
        "the untouched delivery passes"
    );
    assert_eq!(
        post(&app, &meta).await.0,
        StatusCode::OK,
        "the untouched Meta delivery passes"
    );
}

pub async fn no_usable_secret_fails_closed(h: Harness) {
    let patch = WorkspacePatch {
        webhook_secret: Some(None),
        ..WorkspacePatch::default()
    };
    h.repo
        .update_workspace(h.workspace, patch)
        .await
        .expect("clear secret");
    let app = h.app_with(WebhookSettings::default());
    let empty = h.counts().await;
    assert_unauthorized(
        &post(&app, &load("v2-received-text")).await,
        "no Kapso secret",
    );
    assert_unauthorized(
        &post(&app, &load("meta-messages-text")).await,
        "no Meta secret",
    );
    assert_eq!(h.counts().await, empty);

    // With the deployment-wide secret, the workspace without its own is served.
    let app = h.app_with(WebhookSettings {
        kapso_webhook_secret: Some(Secret::new(crate::KAPSO_SECRET)),
        ..WebhookSettings::default()
    });
    assert_eq!(
        post(&app, &load("v2-received-text")).await.0,
        StatusCode::OK
    );
}

pub async fn the_workspace_secret_wins_over_the_deployment_secret(h: Harness) {
    let app = h.app_with(WebhookSettings {
        kapso_webhook_secret: Some(Secret::new("deployment_secret")),
        ..WebhookSettings::default()
    });
    let fixture = load("v2-received-text");
    let signed_with_deployment = fixture.clone().with(
        "X-Webhook-Signature",
        &hmac_hex("deployment_secret", &fixture.body),
    );
    assert_unauthorized(
        &post(&app, &signed_with_deployment).await,
        "deployment secret",
    );
    assert_eq!(h.int("SELECT COUNT(*) FROM webhook_deliveries").await, 0);
    assert_eq!(post(&app, &fixture).await.0, StatusCode::OK);
}

pub async fn oversized_bodies_are_refused(h: Harness) {
    let app = h.app();
    let mut body = b"{\"phone_number_id\":\"123456789012345\",\"pad\":\"".to_vec();
    body.resize(3 * 1024 * 1024 + 10, b'a');
    body.extend_from_slice(b"\"}");
    let request = Post::kapso(
        "whatsapp.message.received",
        "big",
        &body,
        crate::KAPSO_SECRET,
    );
    let (status, answer) = post(&app, &request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["error"]["code"], "payload_too_large");
    assert!(answer["error"]["message"].is_string());
    assert_eq!(h.int("SELECT COUNT(*) FROM webhook_deliveries").await, 0);
}

pub async fn signed_bodies_that_are_not_json_are_bad_requests(h: Harness) {
    let app = h.app_with(WebhookSettings {
        kapso_webhook_secret: Some(Secret::new("deployment_secret")),
        ..WebhookSettings::default()
    });
    let request = Post::kapso(
        "whatsapp.message.received",
        "k",
        b"not json {",
        "deployment_secret",
    );
    let (status, answer) = post(&app, &request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"]["code"].is_string());
    assert_eq!(h.int("SELECT COUNT(*) FROM webhook_deliveries").await, 0);
    let unsigned = request.with("X-Webhook-Signature", &hmac_hex("nope", b"not json {"));
    assert_eq!(post(&app, &unsigned).await.0, StatusCode::UNAUTHORIZED);
}

pub async fn unknown_phone_number_ids_are_stored_as_ignored(h: Harness) {
    let app = h.app_with(WebhookSettings {
        kapso_webhook_secret: Some(Secret::new("deployment_secret")),
        ..WebhookSettings::default()
    });
    let fixture = load("v2-received-text");
    let body = String::from_utf8(fixture.body.clone())
        .expect("UTF-8")
        .replace("123456789012345", "999999999999999");
    let request = Post::kapso(
        "whatsapp.message.received",
        "unknown-number",
        body.as_bytes(),
        "deployment_secret",
    );
    let (status, answer) = post(&app, &request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, serde_json::json!({"received": true}));
    assert_eq!(
        h.text("SELECT outcome FROM webhook_deliveries")
            .await
            .as_deref(),
        Some("ignored")
    );
    let reason = h
        .text("SELECT error FROM webhook_deliveries")
        .await
        .expect("reason");
    assert!(reason.contains("999999999999999"), "{reason}");
    assert_eq!(h.int("SELECT COUNT(*) FROM messages").await, 0);
    assert_eq!(h.int("SELECT COUNT(*) FROM contacts").await, 0);
}

pub async fn an_unavailable_database_answers_503(h: Harness) {
    let app = h.app();
    h.close().await;
    let (status, answer) = post(&app, &load("v2-received-text")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer["error"]["code"], "unavailable");
}

pub async fn meta_handshake(h: Harness) {
    let get = |app: axum::Router, query: String| async move {
        let request = Request::get(format!("/api/webhook/kapso?{query}"))
            .body(Body::empty())
            .expect("request");
        let response = app.oneshot(request).await.expect("infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (
            status,
            content_type,
            String::from_utf8_lossy(&body).into_owned(),
        )
    };
    let app = h.app();
    let (status, content_type, body) = get(
        app.clone(),
        format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.expect("typed").starts_with("text/plain"));
    assert_eq!(body, "1158201444");
    let (status, ..) = get(
        app.clone(),
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1".into(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, ..) = get(
        app,
        format!("hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let unconfigured = h.app_with(WebhookSettings {
        meta_app_secret: Some(Secret::new(META_SECRET)),
        ..WebhookSettings::default()
    });
    let (status, ..) = get(
        unconfigured,
        format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "no configured token matches nothing"
    );
}
