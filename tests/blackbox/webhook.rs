//! Webhook intake through the real binaries: `inbox-webhook` on its own and `inbox-api`'s
//! merged receiver, and the admin CLI's delivery log.

use inbox_tests::{TestEnv, fixture};
use reqwest::StatusCode;
use serde_json::Value;

inbox_store::on_both_backends!(inbox_tests::TestEnv;
    deliveries_are_stored_once_then_listed_and_replayed,
    refused_deliveries_leave_no_trace,
    a_shared_webhook_secret_is_refused_at_start_with_two_tenants,
    owners_set_their_number_only_when_allowed_and_kapso_confirms_it,
);

async fn delivery_log(env: &TestEnv, failed: bool) -> Vec<Value> {
    let mut args = vec!["deliveries", "list"];
    if failed {
        args.push("--failed");
    }
    env.admin(&args).await["deliveries"]
        .as_array()
        .expect("deliveries")
        .clone()
}

async fn deliveries_are_stored_once_then_listed_and_replayed(env: TestEnv) {
    env.workspace_with_owner().await;
    env.connect_kapso().await;
    let webhook = env.webhook(&[]).await;
    let http = reqwest::Client::new();
    let text = fixture("v2-received-text");

    for attempt in 0..3 {
        let response = text.post(&http, &webhook).await;
        assert_eq!(response.status(), StatusCode::OK, "attempt {attempt}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body, serde_json::json!({"received": true}));
    }
    let log = delivery_log(&env, false).await;
    assert_eq!(log.len(), 1, "one delivery per idempotency key: {log:?}");
    assert_eq!(log[0]["outcome"], "processed");
    assert!(delivery_log(&env, true).await.is_empty());

    let id = log[0]["id"].as_str().expect("id");
    let replayed = env.admin(&["deliveries", "replay", id]).await;
    assert_eq!(replayed["id"], id);
    assert_eq!(
        replayed["outcome"], "processed",
        "replaying is idempotent: {replayed}"
    );
    let all = env.admin(&["deliveries", "replay", "--failed"]).await;
    assert_eq!(all["still_failed"], 0);
}

async fn refused_deliveries_leave_no_trace(env: TestEnv) {
    env.workspace_with_owner().await;
    env.connect_kapso().await;
    let api = env.api(&[]).await;
    let http = reqwest::Client::new();
    let mut forged = fixture("v2-received-text");
    for (key, value) in &mut forged.headers {
        if key.eq_ignore_ascii_case("X-Webhook-Signature") {
            *value = "0".repeat(64);
        }
    }
    let response = forged.post(&http, &api).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(
        delivery_log(&env, false).await.is_empty(),
        "nothing stored for a forged delivery"
    );

    // The same bytes, correctly signed, go through the API's merged receiver.
    let response = fixture("v2-received-text").post(&http, &api).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(delivery_log(&env, false).await.len(), 1);
}

/// A deployment-wide secret identifies a tenant only while there is one: with two, both
/// binaries refuse to start and name the fix.
async fn a_shared_webhook_secret_is_refused_at_start_with_two_tenants(env: TestEnv) {
    env.admin(&["workspace", "create", "--slug", "one", "--name", "One"])
        .await;
    let lone = env
        .api(&[("INBOX_KAPSO_WEBHOOK_SECRET", "shared_secret")])
        .await;
    lone.stop().await;
    env.admin(&["workspace", "create", "--slug", "two", "--name", "Two"])
        .await;
    for (program, args) in [("inbox-api", vec!["serve"]), ("inbox-webhook", vec![])] {
        let output = env
            .command(program)
            .args(&args)
            .env("INBOX_LISTEN", "127.0.0.1:0")
            .env("INBOX_KAPSO_WEBHOOK_SECRET", "shared_secret")
            .output()
            .await
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{program} started: {stderr}");
        assert!(
            stderr.contains("INBOX_KAPSO_WEBHOOK_SECRET is set but 2 workspaces exist")
                && stderr.contains("set-kapso"),
            "{program}: {stderr}"
        );
        assert!(
            !stderr.contains("shared_secret"),
            "the secret is never printed"
        );
    }
}

/// Which inbox a delivery lands in is decided by the number, so an owner may set it only when
/// the operator allows it, and only for a number Kapso lists for the owner's own API key.
async fn owners_set_their_number_only_when_allowed_and_kapso_confirms_it(env: TestEnv) {
    use inbox_kapso::fake::{FakeKapso, FakeReply};
    use inbox_tests::team::Api;
    use reqwest::Method;
    use serde_json::json;

    let direct = env.direct().await;
    let acme = direct.team("acme").await;
    let bravo = direct.team("bravo").await;
    let kapso = FakeKapso::start().await;
    kapso.add_phone_number("pn-acme");
    let patch = |api: Api, slug: &'static str, token: String, body: Value| async move {
        api.call(
            Method::PATCH,
            &format!("/api/workspaces/{slug}"),
            Some(&token),
            Some(&body),
        )
        .await
    };

    let default = env
        .api(&[("INBOX_KAPSO_BASE_URL", &kapso.base_url())])
        .await;
    let (status, body) = patch(
        Api::new(&default),
        "acme",
        acme.owner.token.clone(),
        json!({"kapso_api_key": "acme-key", "kapso_phone_number_id": "pn-acme"}),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("forbidden")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("set-kapso")),
        "{body}"
    );
    assert!(kapso.requests().is_empty(), "nothing asked of Kapso");
    default.stop().await;

    let allowed = env
        .api(&[
            ("INBOX_KAPSO_BASE_URL", &kapso.base_url()),
            ("INBOX_OWNERS_MAY_SET_NUMBER", "true"),
        ])
        .await;
    let api = Api::new(&allowed);
    let refused = |body: &Value| {
        (
            body["error"]["code"].clone(),
            body["error"]["details"][0]["field"].clone(),
        )
    };
    let (status, body) = patch(
        api.clone(),
        "acme",
        acme.owner.token.clone(),
        json!({"kapso_phone_number_id": "pn-acme"}),
    )
    .await;
    assert_eq!(status, 422, "no API key to check with: {body}");
    assert_eq!(
        refused(&body),
        (json!("validation_failed"), json!("kapso_phone_number_id"))
    );
    let (status, body) = patch(
        api.clone(),
        "acme",
        acme.owner.token.clone(),
        json!({"kapso_api_key": "acme-key", "kapso_phone_number_id": "pn-not-ours"}),
    )
    .await;
    assert_eq!(status, 422, "not in the project: {body}");
    let (status, body) = patch(
        api.clone(),
        "acme",
        acme.owner.token.clone(),
        json!({"kapso_api_key": "acme-key", "kapso_phone_number_id": "pn-acme"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kapso_phone_number_id"], "pn-acme");
    assert!(
        kapso
            .requests()
            .iter()
            .all(|r| r.header("x-api-key") == Some("acme-key")),
        "checked with the workspace's own key"
    );
    let (status, body) = patch(
        api.clone(),
        "bravo",
        bravo.owner.token.clone(),
        json!({"kapso_api_key": "bravo-key", "kapso_phone_number_id": "pn-acme"}),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("conflict")),
        "{body}"
    );
    kapso.add_phone_number("pn-second");
    kapso.script(FakeReply::ServerError { status: 503 });
    let (status, body) = patch(
        api,
        "acme",
        acme.owner.token.clone(),
        json!({"kapso_phone_number_id": "pn-second"}),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("unavailable")),
        "{body}"
    );
    allowed.stop().await;
}
