//! Per-token limits through the real binary: requests a minute, open streams, replay depth.

use std::time::Duration;

use inbox_tests::{Deliveries, SseClient, TestEnv, str_field};
use reqwest::StatusCode;

inbox_store::on_both_backends!(inbox_tests::TestEnv;
    a_token_past_its_requests_a_minute_gets_429_with_retry_after,
    the_ninth_stream_of_a_token_is_refused,
    a_resume_point_past_the_replay_cap_gets_resync,
);

async fn get_me(http: &reqwest::Client, url: &str, token: &str) -> reqwest::Response {
    http.get(format!("{url}/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("answer")
}

async fn a_token_past_its_requests_a_minute_gets_429_with_retry_after(env: TestEnv) {
    let seeded = env.workspace_with_owner().await;
    let other = str_field(
        &env.admin(&["token", "create", "--user", &seeded.user_id])
            .await,
        "token",
    );
    let api = env.api(&[("INBOX_REQUESTS_PER_MINUTE", "5")]).await;
    let http = reqwest::Client::new();
    for _ in 0..5 {
        assert_eq!(
            get_me(&http, &api.base_url, &seeded.token).await.status(),
            StatusCode::OK
        );
    }
    let refused = get_me(&http, &api.base_url, &seeded.token).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!(retry_after >= 1);
    let body: serde_json::Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(
        get_me(&http, &api.base_url, &other).await.status(),
        StatusCode::OK,
        "another token has its own budget"
    );
}

async fn the_ninth_stream_of_a_token_is_refused(env: TestEnv) {
    let seeded = env.workspace_with_owner().await;
    let other = str_field(
        &env.admin(&["token", "create", "--user", &seeded.user_id])
            .await,
        "token",
    );
    let api = env.api(&[]).await;
    let mut open = Vec::new();
    for _ in 0..8 {
        open.push(SseClient::connect(&api, "acme", &seeded.token, None).await);
    }
    let ninth = reqwest::Client::new()
        .get(api.url("/api/events?workspace=acme"))
        .bearer_auth(&seeded.token)
        .send()
        .await
        .expect("answer");
    assert_eq!(ninth.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(ninth.headers().contains_key("retry-after"));
    let body: serde_json::Value = ninth.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "rate_limited");
    // Another token of the same person is counted apart.
    open.push(SseClient::connect(&api, "acme", &other, None).await);
}

async fn a_resume_point_past_the_replay_cap_gets_resync(env: TestEnv) {
    let seeded = env.workspace_with_owner().await;
    env.connect_kapso().await;
    let api = env.api(&[("INBOX_EVENT_REPLAY_MAX", "5")]).await;
    let http = reqwest::Client::new();
    let mut deliveries = Deliveries::default();
    let response = deliveries
        .inbound_batch("6281111111111", 10)
        .post(&http, &api)
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    let mut from_start = SseClient::connect(&api, "acme", &seeded.token, Some("0")).await;
    let first = from_start
        .next(Duration::from_secs(10))
        .await
        .expect("a frame");
    assert_eq!(first.event, "resync", "{first:?}");

    // A resume point within the cap replays as before.
    let mut live = SseClient::connect(&api, "acme", &seeded.token, None).await;
    let response = deliveries
        .inbound_batch("6281111111111", 1)
        .post(&http, &api)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let latest = loop {
        let frame = live.next(Duration::from_secs(10)).await.expect("a frame");
        if frame.event == "message.created" {
            break frame;
        }
    };
    let id: i64 = latest.id.as_deref().expect("id").parse().expect("number");
    let mut near =
        SseClient::connect(&api, "acme", &seeded.token, Some(&(id - 1).to_string())).await;
    let replayed = near.next(Duration::from_secs(10)).await.expect("a frame");
    assert_ne!(replayed.event, "resync", "{replayed:?}");
}
