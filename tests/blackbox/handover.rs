//! Handover against the fake Kapso: pausing moves the customer's running and waiting workflow
//! executions to `handoff`, resuming moves them back to `waiting`, and a Kapso failure leaves
//! the local flag changed with `kapso.ok` false.

use std::time::Duration;

use inbox_kapso::fake::FakeReply;
use inbox_tests::TestEnv;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::kapso::{CUSTOMER, Inbox};

inbox_store::on_both_backends!(inbox_tests::TestEnv;
    handover_pauses_and_resumes_the_kapso_workflows,
    a_kapso_failure_does_not_undo_the_handover,
);

async fn handover(inbox: &Inbox, ai_paused: bool) -> (StatusCode, Value) {
    let response = inbox
        .http
        .post(inbox.api().url(&format!(
            "/api/conversations/{}/handover",
            inbox.conversation_id
        )))
        .bearer_auth(&inbox.seeded.token)
        .json(&json!({ "ai_paused": ai_paused }))
        .send()
        .await
        .expect("handover request");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

async fn flag(inbox: &Inbox) -> Value {
    inbox
        .http
        .get(inbox.api().url(&format!(
            "/api/conversations/{}/handover",
            inbox.conversation_id
        )))
        .bearer_auth(&inbox.seeded.token)
        .send()
        .await
        .expect("handover state")
        .json()
        .await
        .expect("json")
}

async fn handover_pauses_and_resumes_the_kapso_workflows(env: TestEnv) {
    let inbox = Inbox::start(env, Duration::from_secs(60), &[]).await;
    inbox
        .kapso
        .add_conversation(&format!("+{CUSTOMER}"), "kconv_1");
    let running = inbox.kapso.add_execution("kconv_1", "running");
    let waiting = inbox.kapso.add_execution("kconv_1", "waiting");
    let ended = inbox.kapso.add_execution("kconv_1", "ended");
    inbox
        .kapso
        .add_conversation("+6289999999999", "kconv_other");
    let other = inbox.kapso.add_execution("kconv_other", "running");

    let (status, body) = handover(&inbox, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["conversation"]["ai_paused"], true);
    assert_eq!(body["kapso"]["ok"], true, "{body}");
    assert_eq!(body["kapso"]["executions_updated"], 2);
    let status_of = |id: &str| inbox.kapso.execution_status(id).expect("execution");
    assert_eq!(status_of(&running), "handoff");
    assert_eq!(status_of(&waiting), "handoff");
    assert_eq!(status_of(&ended), "ended");
    assert_eq!(
        status_of(&other),
        "running",
        "another customer's bot is untouched"
    );
    assert_eq!(flag(&inbox).await, json!({"ai_paused": true}));

    let (status, body) = handover(&inbox, false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["conversation"]["ai_paused"], false);
    assert_eq!(body["kapso"]["ok"], true);
    assert_eq!(body["kapso"]["executions_updated"], 2);
    assert_eq!(status_of(&running), "waiting");
    assert_eq!(status_of(&waiting), "waiting");
    assert_eq!(status_of(&ended), "ended");
    assert_eq!(flag(&inbox).await, json!({"ai_paused": false}));
}

async fn a_kapso_failure_does_not_undo_the_handover(env: TestEnv) {
    let inbox = Inbox::start(env, Duration::from_secs(60), &[]).await;
    inbox
        .kapso
        .add_conversation(&format!("+{CUSTOMER}"), "kconv_1");
    let running = inbox.kapso.add_execution("kconv_1", "running");
    inbox
        .kapso
        .set_default(FakeReply::ServerError { status: 500 });

    let (status, body) = handover(&inbox, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["conversation"]["ai_paused"], true);
    assert_eq!(body["kapso"]["ok"], false);
    assert_eq!(body["kapso"]["executions_updated"], 0);
    assert!(
        body["kapso"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(
        inbox.kapso.execution_status(&running).as_deref(),
        Some("running")
    );
    assert_eq!(
        flag(&inbox).await,
        json!({"ai_paused": true}),
        "the local change stands"
    );

    let missing = inbox
        .http
        .post(
            inbox
                .api()
                .url("/api/conversations/0190d5a4-0000-7000-8000-000000000000/handover"),
        )
        .bearer_auth(&inbox.seeded.token)
        .json(&json!({"ai_paused": true}))
        .send()
        .await
        .expect("request");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
