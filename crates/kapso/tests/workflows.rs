//! Handover against the local fake: finding the customer's Kapso conversation, pausing its live
//! workflow executions and resuming them.

use inbox_domain::phone::PhoneE164;
use inbox_domain::workspace::Secret;
use inbox_kapso::fake::{FakeKapso, FakeReply};
use inbox_kapso::{KapsoClient, KapsoError, WorkflowUpdate};
use serde_json::json;

const PHONE_NUMBER_ID: &str = "123456789012345";
const API_KEY: &str = "kapso_test_key_123";

fn key() -> Secret {
    Secret::new(API_KEY)
}

fn customer() -> PhoneE164 {
    PhoneE164::from_wa_id("6281234567890").expect("a valid wa_id")
}

fn client_for(kapso: &FakeKapso) -> KapsoClient {
    KapsoClient::with_base_url(&kapso.base_url()).expect("the fake's URL is valid")
}

/// The customer's conversation with a running, a waiting and an ended execution, plus another
/// customer's running execution that a handover must not touch.
struct Seeded {
    kapso: FakeKapso,
    running: String,
    waiting: String,
    ended: String,
    other: String,
}

async fn seeded() -> Seeded {
    let kapso = FakeKapso::start().await;
    kapso.add_conversation("+6281234567890", "conv_budi");
    kapso.add_conversation("+6289999999999", "conv_other");
    let running = kapso.add_execution("conv_budi", "running");
    let waiting = kapso.add_execution("conv_budi", "waiting");
    let ended = kapso.add_execution("conv_budi", "ended");
    let other = kapso.add_execution("conv_other", "running");
    Seeded {
        kapso,
        running,
        waiting,
        ended,
        other,
    }
}

fn status(kapso: &FakeKapso, execution: &str) -> String {
    kapso
        .execution_status(execution)
        .expect("a seeded execution")
}

#[tokio::test]
async fn pausing_hands_off_the_running_and_waiting_executions() {
    let s = seeded().await;
    let update = client_for(&s.kapso)
        .set_workflows_paused(PHONE_NUMBER_ID, &key(), &customer(), true)
        .await
        .expect("Kapso answers");
    assert_eq!(
        update,
        WorkflowUpdate {
            executions_updated: 2,
            message: "Paused 2 workflow executions".to_owned(),
        }
    );
    assert_eq!(status(&s.kapso, &s.running), "handoff");
    assert_eq!(status(&s.kapso, &s.waiting), "handoff");
    assert_eq!(status(&s.kapso, &s.ended), "ended");
    assert_eq!(status(&s.kapso, &s.other), "running");
}

#[tokio::test]
async fn the_calls_are_the_ones_kapso_documents() {
    let s = seeded().await;
    client_for(&s.kapso)
        .set_workflows_paused(PHONE_NUMBER_ID, &key(), &customer(), true)
        .await
        .expect("Kapso answers");
    let requests = s.kapso.requests();
    assert_eq!(requests.len(), 4, "{requests:#?}");
    for request in &requests {
        assert_eq!(request.header("x-api-key"), Some(API_KEY));
    }

    let lookup = &requests[0];
    assert_eq!(lookup.method, "GET");
    assert_eq!(
        lookup.path,
        "/meta/whatsapp/v24.0/123456789012345/conversations"
    );
    assert_eq!(
        lookup.query_pairs(),
        [
            ("phone_number", "+6281234567890"),
            ("status", "active"),
            ("limit", "1")
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    // The `+` must arrive encoded, or it would decode as a space.
    assert!(
        lookup
            .query
            .as_deref()
            .is_some_and(|q| q.contains("%2B6281234567890"))
    );

    let list = &requests[1];
    assert_eq!(list.method, "GET");
    assert_eq!(
        list.path,
        "/platform/v1/whatsapp/conversations/conv_budi/flow_executions"
    );

    // Newest first, as Kapso lists them: the waiting one was added after the running one.
    for (request, execution) in requests[2..].iter().zip([&s.waiting, &s.running]) {
        assert_eq!(request.method, "PATCH");
        assert_eq!(
            request.path,
            format!("/platform/v1/workflow_executions/{execution}")
        );
        assert_eq!(
            request.body,
            Some(json!({ "workflow_execution": { "status": "handoff" } }))
        );
    }
}

#[tokio::test]
async fn resuming_puts_handed_off_executions_back_to_waiting() {
    let s = seeded().await;
    let client = client_for(&s.kapso);
    client
        .set_workflows_paused(PHONE_NUMBER_ID, &key(), &customer(), true)
        .await
        .expect("paused");
    s.kapso.clear_requests();

    let update = client
        .set_workflows_paused(PHONE_NUMBER_ID, &key(), &customer(), false)
        .await
        .expect("resumed");
    assert_eq!(
        update,
        WorkflowUpdate {
            executions_updated: 2,
            message: "Resumed 2 workflow executions".to_owned(),
        }
    );
    assert_eq!(status(&s.kapso, &s.running), "waiting");
    assert_eq!(status(&s.kapso, &s.waiting), "waiting");
    assert_eq!(status(&s.kapso, &s.ended), "ended");
    assert_eq!(status(&s.kapso, &s.other), "running");
    let patches: Vec<_> = s
        .kapso
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 2);
    for patch in patches {
        assert_eq!(
            patch.body,
            Some(json!({ "workflow_execution": { "status": "waiting" } }))
        );
    }
}

#[tokio::test]
async fn pausing_twice_changes_nothing_the_second_time() {
    let s = seeded().await;
    let client = client_for(&s.kapso);
    client
        .set_workflows_paused(PHONE_NUMBER_ID, &key(), &customer(), true)
        .await
        .expect("paused");
    let again = client
        .set_workflows_paused(PHONE_NUMBER_ID, &key(), &customer(), true)
        .await
        .expect("Kapso answers");
    assert_eq!(
        again,
        WorkflowUpdate {
            executions_updated: 0,
            message: "No running or waiting workflow executions".to_owned(),
        }
    );
}

#[tokio::test]
async fn no_active_conversation_is_success_with_nothing_updated() {
    let kapso = FakeKapso::start().await;
    kapso.add_conversation("+6289999999999", "conv_other");
    let other = kapso.add_execution("conv_other", "running");
    let update = client_for(&kapso)
        .set_workflows_paused(PHONE_NUMBER_ID, &key(), &customer(), true)
        .await
        .expect("Kapso answers");
    assert_eq!(
        update,
        WorkflowUpdate {
            executions_updated: 0,
            message: "No active Kapso conversation".to_owned(),
        }
    );
    assert_eq!(kapso.requests().len(), 1, "only the lookup");
    assert_eq!(kapso.execution_status(&other).as_deref(), Some("running"));
}

#[tokio::test]
async fn a_failed_update_is_reported_after_the_others_were_attempted() {
    let s = seeded().await;
    // Lookup and list succeed, the first PATCH fails, the second goes through.
    s.kapso.script(FakeReply::Success);
    s.kapso.script(FakeReply::Success);
    s.kapso.script(FakeReply::ServerError { status: 500 });
    let error = client_for(&s.kapso)
        .set_workflows_paused(PHONE_NUMBER_ID, &key(), &customer(), true)
        .await
        .expect_err("one update failed");
    assert!(error.is_transient(), "{error:?}");
    assert_eq!(s.kapso.requests().len(), 4);
    assert_eq!(status(&s.kapso, &s.waiting), "waiting", "its PATCH failed");
    assert_eq!(status(&s.kapso, &s.running), "handoff");
}

#[tokio::test]
async fn a_refused_lookup_is_an_error_not_an_empty_success() {
    let s = seeded().await;
    s.kapso
        .script(FakeReply::kapso_error(401, "Invalid or missing API key"));
    let error = client_for(&s.kapso)
        .set_workflows_paused(PHONE_NUMBER_ID, &key(), &customer(), true)
        .await
        .expect_err("refused");
    assert!(
        matches!(
            error,
            KapsoError::Permanent {
                status: Some(401),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(status(&s.kapso, &s.running), "running");
}
