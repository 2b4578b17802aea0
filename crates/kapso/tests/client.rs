//! The client against the local fake: the exact requests Kapso receives, and how every kind of
//! failure is classified. Only 127.0.0.1 is ever contacted.

use std::time::Duration;

use inbox_domain::Timestamp;
use inbox_domain::message::{MessageError, MessageText};
use inbox_domain::phone::PhoneE164;
use inbox_domain::workspace::Secret;
use inbox_kapso::client::ClientBuildError;
use inbox_kapso::fake::{FakeKapso, FakeReply};
use inbox_kapso::{
    KapsoClient, KapsoClientConfig, KapsoError, SentMessage, SoughtContent, SoughtSend,
};
use serde_json::json;

const PHONE_NUMBER_ID: &str = "123456789012345";
const API_KEY: &str = "kapso_test_key_123";

fn key() -> Secret {
    Secret::new(API_KEY)
}

fn customer() -> PhoneE164 {
    PhoneE164::from_wa_id("6281234567890").expect("a valid wa_id")
}

fn text(body: &str) -> MessageText {
    MessageText::parse(body).expect("valid text")
}

fn client_for(kapso: &FakeKapso) -> KapsoClient {
    KapsoClient::with_base_url(&kapso.base_url()).expect("the fake's URL is valid")
}

async fn send_hello(client: &KapsoClient) -> Result<SentMessage, KapsoError> {
    client
        .send_text(
            PHONE_NUMBER_ID,
            &key(),
            &customer(),
            &text("Halo!"),
            None,
            None,
        )
        .await
}

/// Sends once with `reply` scripted and returns the error.
async fn failure(reply: FakeReply) -> KapsoError {
    let kapso = FakeKapso::start().await;
    kapso.script(reply);
    send_hello(&client_for(&kapso))
        .await
        .expect_err("the scripted reply is a failure")
}

#[tokio::test]
async fn text_is_posted_in_metas_shape_with_the_api_key() {
    let kapso = FakeKapso::start().await;
    let sent = send_hello(&client_for(&kapso)).await.expect("accepted");
    assert_eq!(
        sent,
        SentMessage {
            wamid: "wamid.FAKE.1".to_owned()
        }
    );

    let sends = kapso.sends();
    let [request] = sends.as_slice() else {
        panic!("expected one send, got {sends:?}");
    };
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.path,
        "/meta/whatsapp/v24.0/123456789012345/messages"
    );
    assert_eq!(request.query, None);
    assert_eq!(request.header("X-API-Key"), Some(API_KEY));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("authorization"), None);
    assert_eq!(
        request.body,
        Some(json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "6281234567890",
            "type": "text",
            "text": { "body": "Halo!", "preview_url": false }
        }))
    );
}

#[tokio::test]
async fn a_quoted_reply_carries_the_quoted_wamid() {
    let kapso = FakeKapso::start().await;
    client_for(&kapso)
        .send_text(
            PHONE_NUMBER_ID,
            &key(),
            &customer(),
            &text("Yes, we are open"),
            Some("wamid.HBgLQUOTED"),
            None,
        )
        .await
        .expect("accepted");
    let body = kapso.sends()[0].body.clone().expect("a JSON body");
    assert_eq!(body["context"], json!({ "message_id": "wamid.HBgLQUOTED" }));
    assert_eq!(body["text"]["body"], "Yes, we are open");
}

#[tokio::test]
async fn wamids_follow_the_order_of_sends() {
    let kapso = FakeKapso::start().await;
    let client = client_for(&kapso);
    for expected in ["wamid.FAKE.1", "wamid.FAKE.2", "wamid.FAKE.3"] {
        assert_eq!(send_hello(&client).await.expect("accepted").wamid, expected);
    }
}

#[tokio::test]
async fn a_template_is_sent_as_given_with_a_bare_language_code_wrapped() {
    let kapso = FakeKapso::start().await;
    let components = json!([
        { "type": "body", "parameters": [ { "type": "text", "text": "ORD-12345" } ] },
        { "type": "button", "sub_type": "url", "index": "0",
          "parameters": [ { "type": "text", "text": "ORD-123" } ] }
    ]);
    let template = json!({ "name": "order_update", "language": "id", "components": components });
    let sent = client_for(&kapso)
        .send_template(PHONE_NUMBER_ID, &key(), &customer(), &template, None)
        .await
        .expect("accepted");
    assert_eq!(sent.wamid, "wamid.FAKE.1");
    assert_eq!(
        kapso.sends()[0].body,
        Some(json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "6281234567890",
            "type": "template",
            "template": { "name": "order_update", "language": { "code": "id" }, "components": components }
        }))
    );
}

#[tokio::test]
async fn a_template_in_metas_own_shape_is_passed_through() {
    let kapso = FakeKapso::start().await;
    let template = json!({ "name": "hello_world", "language": { "code": "en_US" } });
    client_for(&kapso)
        .send_template(PHONE_NUMBER_ID, &key(), &customer(), &template, None)
        .await
        .expect("accepted");
    let body = kapso.sends()[0].body.clone().expect("a JSON body");
    assert_eq!(body["template"], template);
}

#[tokio::test]
async fn a_malformed_template_is_refused_without_calling_kapso() {
    let kapso = FakeKapso::start().await;
    let error = client_for(&kapso)
        .send_template(
            PHONE_NUMBER_ID,
            &key(),
            &customer(),
            &json!({ "name": "x" }),
            None,
        )
        .await
        .expect_err("no language");
    assert!(
        matches!(&error, KapsoError::Permanent { status: None, code: Some(code), .. } if code == "invalid_template"),
        "{error:?}"
    );
    assert!(kapso.requests().is_empty());
}

#[tokio::test]
async fn mark_read_posts_a_read_status_that_is_not_a_send() {
    let kapso = FakeKapso::start().await;
    client_for(&kapso)
        .mark_read(PHONE_NUMBER_ID, &key(), "wamid.INBOUND")
        .await
        .expect("accepted");
    let requests = kapso.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].path,
        "/meta/whatsapp/v24.0/123456789012345/messages"
    );
    assert_eq!(requests[0].header("x-api-key"), Some(API_KEY));
    assert_eq!(
        requests[0].body,
        Some(
            json!({ "messaging_product": "whatsapp", "status": "read", "message_id": "wamid.INBOUND" })
        )
    );
    assert!(kapso.sends().is_empty());
}

#[tokio::test]
async fn a_meta_envelope_is_a_permanent_error_with_metas_code_and_details() {
    let error = failure(FakeReply::meta_error(131_026)).await;
    assert_eq!(
        error,
        KapsoError::Permanent {
            status: Some(400),
            code: Some("131026".to_owned()),
            title: "Message undeliverable".to_owned(),
            message: "Unable to deliver message. The recipient may not be on WhatsApp.".to_owned(),
        }
    );
    assert!(!error.is_transient());
    assert_eq!(
        error.as_message_error(),
        MessageError {
            code: Some("131026".to_owned()),
            title: Some("Message undeliverable".to_owned()),
            message: Some(
                "Unable to deliver message. The recipient may not be on WhatsApp.".to_owned()
            ),
        }
    );
}

#[tokio::test]
async fn code_131047_means_the_reply_window_is_closed() {
    let error = failure(FakeReply::window_closed()).await;
    assert_eq!(
        error,
        KapsoError::WindowClosed {
            message: "More than 24 hours have passed since the recipient last replied to the sender number."
                .to_owned()
        }
    );
    assert_eq!(error.retry_after(), None);
    let stored = error.as_message_error();
    assert_eq!(stored.code.as_deref(), Some("131047"));
    assert_eq!(stored.title.as_deref(), Some("Re-engagement message"));
}

#[tokio::test]
async fn a_meta_rate_limit_code_is_transient_even_with_a_400() {
    let error = failure(FakeReply::meta_error(130_429)).await;
    assert!(error.is_transient(), "{error:?}");
}

#[tokio::test]
async fn a_kapso_error_string_is_permanent() {
    let error = failure(FakeReply::kapso_error(401, "Invalid or missing API key")).await;
    assert_eq!(
        error,
        KapsoError::Permanent {
            status: Some(401),
            code: None,
            title: "Invalid or missing API key".to_owned(),
            message: "Invalid or missing API key".to_owned(),
        }
    );
    assert_eq!(error.as_message_error().code, None);
}

#[tokio::test]
async fn a_kapso_error_with_a_message_keeps_both() {
    let error = failure(FakeReply::KapsoError {
        status: 422,
        error: "Validation failed".to_owned(),
        message: Some("to is not a valid phone number".to_owned()),
    })
    .await;
    assert!(
        matches!(&error, KapsoError::Permanent { status: Some(422), title, message, .. }
                 if title == "Validation failed" && message == "to is not a valid phone number"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_429_is_transient_and_carries_retry_after() {
    let error = failure(FakeReply::RateLimited {
        retry_after_secs: 60,
    })
    .await;
    assert!(error.is_transient(), "{error:?}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(60)));
    assert!(
        matches!(&error, KapsoError::Transient { reason, .. } if reason.contains("rate limited") && reason.contains("429")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_409_in_flight_is_transient() {
    let error = failure(FakeReply::InFlight).await;
    assert!(
        matches!(&error, KapsoError::Transient { reason, retry_after: None, .. } if reason.contains("in flight")),
        "{error:?}"
    );
}

#[tokio::test]
async fn server_errors_are_transient() {
    for status in [500, 502, 503] {
        let error = failure(FakeReply::ServerError { status }).await;
        assert!(error.is_transient(), "{status}: {error:?}");
        assert_eq!(error.as_message_error().code, None);
    }
}

#[tokio::test]
async fn a_hung_request_ends_with_the_client_timeout_as_transient() {
    let kapso = FakeKapso::start().await;
    kapso.set_default(FakeReply::Hang);
    let client = KapsoClient::new(&KapsoClientConfig {
        base_url: kapso.base_url(),
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_millis(200),
    })
    .expect("a valid config");
    let error = send_hello(&client).await.expect_err("Kapso never answers");
    assert!(
        matches!(&error, KapsoError::Transient { reason, .. } if reason.contains("timed out")),
        "{error:?}"
    );
    assert_eq!(kapso.sends().len(), 1, "the request did reach Kapso");
}

#[tokio::test]
async fn an_unreachable_kapso_is_transient() {
    let base_url = {
        let kapso = FakeKapso::start().await;
        kapso.base_url()
        // Dropped here: nothing listens on that port any more.
    };
    let client = KapsoClient::with_base_url(&base_url).expect("a valid URL");
    let error = send_hello(&client).await.expect_err("connection refused");
    assert!(error.is_transient(), "{error:?}");
}

#[tokio::test]
async fn sends_succeed_once_the_scripted_failures_are_used_up() {
    let kapso = FakeKapso::start().await;
    kapso.script_times(FakeReply::ServerError { status: 503 }, 2);
    let client = client_for(&kapso);
    assert!(send_hello(&client).await.expect_err("1st").is_transient());
    assert!(send_hello(&client).await.expect_err("2nd").is_transient());
    assert_eq!(
        send_hello(&client).await.expect("3rd").wamid,
        "wamid.FAKE.1"
    );
    assert_eq!(kapso.sends().len(), 3);
}

#[tokio::test]
async fn latency_delays_answers_without_changing_them() {
    let kapso = FakeKapso::start().await;
    kapso.set_latency(Some(Duration::from_millis(5)));
    let started = std::time::Instant::now();
    send_hello(&client_for(&kapso)).await.expect("accepted");
    assert!(started.elapsed() >= Duration::from_millis(5));
}

#[tokio::test]
async fn an_api_key_that_cannot_be_a_header_is_refused_before_sending() {
    let kapso = FakeKapso::start().await;
    let error = client_for(&kapso)
        .send_text(
            PHONE_NUMBER_ID,
            &Secret::new("key\nX-Injected: 1"),
            &customer(),
            &text("hi"),
            None,
            None,
        )
        .await
        .expect_err("refused");
    assert!(
        matches!(&error, KapsoError::Permanent { status: None, code: Some(code), .. } if code == "invalid_api_key"),
        "{error:?}"
    );
    // The key must not leak through the error either.
    assert!(!error.to_string().contains("key\n"));
    assert!(kapso.requests().is_empty());
}

#[test]
fn unusable_base_urls_are_refused() {
    assert!(matches!(
        KapsoClient::with_base_url("api.kapso.ai"),
        Err(ClientBuildError::InvalidBaseUrl(_))
    ));
    let client = KapsoClient::new(&KapsoClientConfig::default()).expect("the default is valid");
    assert_eq!(client.base_url(), "https://api.kapso.ai/");
}

#[tokio::test]
async fn a_project_number_is_found_on_any_page_with_the_projects_key() {
    let kapso = FakeKapso::start().await;
    for i in 0..250 {
        kapso.add_phone_number(&format!("1000{i:04}"));
    }
    kapso.add_phone_number(PHONE_NUMBER_ID);
    let client = client_for(&kapso);
    assert!(
        client
            .project_has_phone_number(&key(), PHONE_NUMBER_ID)
            .await
            .expect("listed")
    );
    let asked: Vec<_> = kapso.requests();
    assert_eq!(asked.len(), 3, "three pages of 100");
    assert!(
        asked
            .iter()
            .all(|r| r.path == "/platform/v1/whatsapp/phone_numbers"
                && r.header("x-api-key") == Some(API_KEY))
    );
    kapso.clear_requests();
    assert!(
        !client
            .project_has_phone_number(&key(), "999")
            .await
            .expect("listed")
    );
    assert_eq!(kapso.requests().len(), 3, "stops after the last page");
    kapso.script(FakeReply::ServerError { status: 503 });
    assert!(
        client
            .project_has_phone_number(&key(), PHONE_NUMBER_ID)
            .await
            .expect_err("Kapso is down")
            .is_transient()
    );
}

fn sought<'a>(callback_data: &'a str, to: &'a PhoneE164, text: &'a str) -> SoughtSend<'a> {
    SoughtSend {
        callback_data,
        to,
        content: SoughtContent::Text(text),
        since: Timestamp::from_millis(Timestamp::now().as_millis() - 60_000),
    }
}

#[tokio::test]
async fn a_send_carries_its_callback_data_and_refuses_more_than_512_characters() {
    let kapso = FakeKapso::start().await;
    let client = client_for(&kapso);
    client
        .send_text(
            PHONE_NUMBER_ID,
            &key(),
            &customer(),
            &text("Halo!"),
            None,
            Some("msg-1"),
        )
        .await
        .expect("accepted");
    let template = json!({ "name": "hello_world", "language": "en_US" });
    client
        .send_template(
            PHONE_NUMBER_ID,
            &key(),
            &customer(),
            &template,
            Some("msg-2"),
        )
        .await
        .expect("accepted");
    let sends = kapso.sends();
    assert_eq!(
        sends[0].body.as_ref().expect("json")["biz_opaque_callback_data"],
        "msg-1"
    );
    assert_eq!(
        sends[1].body.as_ref().expect("json")["biz_opaque_callback_data"],
        "msg-2"
    );
    assert_eq!(
        kapso.accepted()[1].biz_opaque_callback_data.as_deref(),
        Some("msg-2")
    );

    let error = client
        .send_text(
            PHONE_NUMBER_ID,
            &key(),
            &customer(),
            &text("x"),
            None,
            Some(&"c".repeat(513)),
        )
        .await
        .expect_err("too long");
    assert!(
        matches!(&error, KapsoError::Permanent { status: None, code: Some(c), .. } if c == "invalid_callback_data"),
        "{error:?}"
    );
    assert_eq!(kapso.sends().len(), 2, "refused before sending");
}

#[tokio::test]
async fn only_a_failure_after_connecting_leaves_the_outcome_unknown() {
    let kapso = FakeKapso::start().await;
    kapso.set_answer_latency(Some(Duration::from_secs(30)));
    let client = KapsoClient::new(&KapsoClientConfig {
        base_url: kapso.base_url(),
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_millis(300),
    })
    .expect("a valid config");
    let error = send_hello(&client).await.expect_err("the answer is late");
    assert!(error.is_transient() && error.outcome_unknown(), "{error:?}");
    assert_eq!(kapso.accepted().len(), 1, "yet Kapso accepted it");

    for known in [
        FakeReply::ServerError { status: 503 },
        FakeReply::InFlight,
        FakeReply::RateLimited {
            retry_after_secs: 1,
        },
    ] {
        let error = failure(known.clone()).await;
        assert!(
            error.is_transient() && !error.outcome_unknown(),
            "{known:?}: {error:?}"
        );
    }
    let base_url = {
        let gone = FakeKapso::start().await;
        gone.base_url()
    };
    let client = KapsoClient::with_base_url(&base_url).expect("a valid URL");
    let error = send_hello(&client).await.expect_err("connection refused");
    assert!(
        error.is_transient() && !error.outcome_unknown(),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_history_finds_a_send_by_its_callback_data_on_any_page() {
    let kapso = FakeKapso::start().await;
    let client = client_for(&kapso);
    let to = customer();
    for n in 0..150 {
        client
            .send_text(
                PHONE_NUMBER_ID,
                &key(),
                &to,
                &text("Sama"),
                None,
                Some(&format!("msg-{n}")),
            )
            .await
            .expect("accepted");
    }
    kapso.clear_requests();
    // Newest first: the oldest send is on the second page.
    let found = client
        .find_sent(PHONE_NUMBER_ID, &key(), &sought("msg-0", &to, "Sama"))
        .await
        .expect("the history answers");
    assert_eq!(
        found,
        Some(SentMessage {
            wamid: "wamid.FAKE.1".to_owned()
        })
    );
    let reads = kapso.requests();
    assert_eq!(reads.len(), 2, "two pages: {reads:?}");
    assert!(
        reads
            .iter()
            .all(|r| r.is_history_read() && r.header("x-api-key") == Some(API_KEY))
    );
    assert_eq!(
        reads[0].path,
        "/meta/whatsapp/v24.0/123456789012345/messages"
    );
    let first = reads[0].query_pairs();
    assert!(
        first.contains(&("direction".to_owned(), "outbound".to_owned())),
        "{first:?}"
    );
    assert!(first.iter().any(|(name, _)| name == "since"), "{first:?}");
    assert!(
        reads[1]
            .query_pairs()
            .contains(&("after".to_owned(), "100".to_owned())),
        "the second page follows paging.cursors.after"
    );

    // Same text and recipient, but callback data that is not ours: never a match.
    let missing = client
        .find_sent(PHONE_NUMBER_ID, &key(), &sought("msg-none", &to, "Sama"))
        .await
        .expect("the history answers");
    assert_eq!(missing, None);
    // Nothing sent since `since`.
    let later = SoughtSend {
        since: Timestamp::from_millis(Timestamp::now().as_millis() + 120_000),
        ..sought("msg-0", &to, "Sama")
    };
    assert_eq!(
        client
            .find_sent(PHONE_NUMBER_ID, &key(), &later)
            .await
            .expect("answers"),
        None
    );
}

#[tokio::test]
async fn without_callback_data_in_the_history_only_one_same_message_is_a_match() {
    let kapso = FakeKapso::start().await;
    let client = client_for(&kapso);
    let to = customer();
    let other = PhoneE164::from_wa_id("6281111111111").expect("valid");
    for (recipient, body) in [(&to, "Satu"), (&to, "Dua"), (&to, "Dua"), (&other, "Tiga")] {
        client
            .send_text(PHONE_NUMBER_ID, &key(), recipient, &text(body), None, None)
            .await
            .expect("accepted");
    }
    let find = async |body: &str, to: &PhoneE164| {
        client
            .find_sent(PHONE_NUMBER_ID, &key(), &sought("msg-x", to, body))
            .await
            .expect("the history answers")
            .map(|sent| sent.wamid)
    };
    assert_eq!(find("Satu", &to).await.as_deref(), Some("wamid.FAKE.1"));
    assert_eq!(find("Dua", &to).await, None, "two candidates: cannot tell");
    assert_eq!(find("Tiga", &to).await, None, "another recipient");
    assert_eq!(find("Empat", &to).await, None);

    // Once the history keeps callback data, content alone never decides.
    client
        .send_text(
            PHONE_NUMBER_ID,
            &key(),
            &to,
            &text("Lima"),
            None,
            Some("msg-5"),
        )
        .await
        .expect("accepted");
    assert_eq!(find("Satu", &to).await, None);
}

#[tokio::test]
async fn a_late_answer_still_finds_the_send_in_the_history() {
    let kapso = FakeKapso::start().await;
    kapso.set_answer_latency(Some(Duration::from_secs(30)));
    let client = KapsoClient::new(&KapsoClientConfig {
        base_url: kapso.base_url(),
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_millis(300),
    })
    .expect("a valid config");
    let to = customer();
    let error = client
        .send_text(
            PHONE_NUMBER_ID,
            &key(),
            &to,
            &text("Halo"),
            None,
            Some("msg-1"),
        )
        .await
        .expect_err("the answer is late");
    assert!(error.outcome_unknown(), "{error:?}");
    // History reads are answered at once, and ignore the script.
    kapso.script(FakeReply::ServerError { status: 503 });
    let found = client
        .find_sent(PHONE_NUMBER_ID, &key(), &sought("msg-1", &to, "Halo"))
        .await
        .expect("the history answers");
    assert_eq!(found.map(|s| s.wamid).as_deref(), Some("wamid.FAKE.1"));
}

#[tokio::test]
async fn the_fakes_echo_of_a_send_carries_its_callback_data() {
    let kapso = FakeKapso::start().await;
    client_for(&kapso)
        .send_text(
            PHONE_NUMBER_ID,
            &key(),
            &customer(),
            &text("Halo"),
            Some("wamid.IN"),
            Some("msg-1"),
        )
        .await
        .expect("accepted");
    let echo = kapso.echo_of("wamid.FAKE.1").expect("accepted");
    assert_eq!(echo["phone_number_id"], PHONE_NUMBER_ID);
    assert_eq!(echo["message"]["type"], "text");
    assert_eq!(echo["message"]["text"]["body"], "Halo");
    assert_eq!(echo["message"]["context"]["message_id"], "wamid.IN");
    assert_eq!(echo["message"]["kapso"]["direction"], "outbound");
    assert_eq!(
        echo["message"]["kapso"]["statuses"][0]["biz_opaque_callback_data"],
        "msg-1"
    );
    // It parses as an outbound message carrying the callback data.
    let raw = echo.to_string();
    let facts = inbox_kapso::parse_delivery(Some("whatsapp.message.sent"), raw.as_bytes());
    let Ok(facts) = facts else {
        panic!("the echo parses: {facts:?}");
    };
    let Some(inbox_domain::ingest::Fact::Message(message)) = facts.items.first() else {
        panic!("a message: {facts:?}");
    };
    assert_eq!(message.callback_data.as_deref(), Some("msg-1"));
    assert!(kapso.echo_of("wamid.NONE").is_none());
}
