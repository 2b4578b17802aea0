//! The fake's own behaviour where it imitates Kapso beyond what the client exercises: refusing
//! requests without a key, unknown paths, invalid workflow transitions, and the standalone mode.

use std::net::{Ipv4Addr, SocketAddr};

use inbox_kapso::fake::{FakeKapso, run_standalone};
use serde_json::{Value, json};

async fn call(
    kapso: &FakeKapso,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", kapso.base_url()));
    if let Some(key) = key {
        request = request.header("X-API-Key", key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the fake answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn requests_without_an_api_key_are_refused_but_recorded() {
    let kapso = FakeKapso::start().await;
    let (status, body) = call(
        &kapso,
        reqwest::Method::POST,
        "/meta/whatsapp/v24.0/1/messages",
        None,
        Some(json!({"messaging_product": "whatsapp", "to": "1", "type": "text"})),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body, json!({ "error": "Invalid or missing API key" }));
    assert_eq!(kapso.requests().len(), 1);
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let kapso = FakeKapso::start().await;
    let (status, _) = call(&kapso, reqwest::Method::GET, "/nowhere", Some("k"), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn terminal_executions_cannot_be_handed_off() {
    let kapso = FakeKapso::start().await;
    let ended = kapso.add_execution("conv_1", "ended");
    let (status, _) = call(
        &kapso,
        reqwest::Method::PATCH,
        &format!("/platform/v1/workflow_executions/{ended}"),
        Some("k"),
        Some(json!({ "workflow_execution": { "status": "handoff" } })),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(kapso.execution_status(&ended).as_deref(), Some("ended"));
}

#[tokio::test]
async fn standalone_mode_serves_until_shutdown() {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    // The shutdown future is already complete, so this returns once the fake has bound and
    // printed its URL.
    run_standalone(addr, async {})
        .await
        .expect("a free local port");
}
