//! `POST /api/messages/send` through the real binary against a fake Kapso: the request Kapso
//! receives, the 24-hour window, idempotency, retries of transient failures (also across a
//! restart), permanent failures, Kapso's echo of our own send, and the rate limit.

use std::time::Duration;

use futures::future::join_all;
use inbox_domain::event::EventKind;
use inbox_domain::message::Message;
use inbox_kapso::fake::FakeReply;
use inbox_tests::TestEnv;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::kapso::{
    API_KEY, CUSTOMER, Inbox, PHONE_NUMBER_ID, delivered, echo, outbound_echo, send,
};

inbox_store::on_both_backends!(inbox_tests::TestEnv;
    replies_reach_kapso_exactly_as_meta_expects,
    invalid_sends_are_refused_before_anything_is_stored,
    outside_the_window_only_templates_go_through,
    one_idempotency_key_sends_once,
    transient_failures_are_retried_until_sent,
    permanent_failures_fail_the_message_and_answer_502,
    a_pending_send_survives_a_restart,
    kapso_echoes_and_early_statuses_find_our_message,
    the_31st_send_in_a_minute_is_rate_limited,
    a_client_hanging_up_does_not_send_twice,
    a_send_kapso_answers_late_is_not_sent_again,
    a_crash_before_the_wamid_is_stored_does_not_send_again,
    a_workflows_template_does_not_claim_our_pending_template,
    a_history_guess_never_takes_another_messages_wamid,
    a_status_carrying_our_callback_data_finds_our_pending_send,
);

const HOUR: Duration = Duration::from_secs(3600);

fn id_of(body: &Value) -> String {
    body["message"]["id"]
        .as_str()
        .expect("message id")
        .to_owned()
}

async fn replies_reach_kapso_exactly_as_meta_expects(env: TestEnv) {
    let inbox = Inbox::start(env, HOUR, &[]).await;
    let (status, body, _) = inbox
        .send(&inbox.text("Pesanan Anda dikirim hari ini."), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let message = &body["message"];
    assert_eq!(message["status"], "sent");
    assert_eq!(message["wamid"], "wamid.FAKE.1");
    assert_eq!(message["direction"], "outbound");
    assert_eq!(message["sender_type"], "user");
    assert_eq!(message["sender_user_id"], inbox.seeded.user_id.as_str());
    assert_eq!(message["seq"], 2);

    let sends = inbox.kapso.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(
        sends[0].path,
        format!("/meta/whatsapp/v24.0/{PHONE_NUMBER_ID}/messages")
    );
    assert_eq!(sends[0].header("x-api-key"), Some(API_KEY));
    assert_eq!(
        sends[0].body,
        Some(json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": CUSTOMER,
            "type": "text",
            "text": {"body": "Pesanan Anda dikirim hari ini.", "preview_url": false},
            "biz_opaque_callback_data": message["id"],
        }))
    );

    // A quoted reply carries the quoted message's wamid.
    let quoted = json!({"conversation_id": inbox.conversation_id, "text": "Ya",
                        "reply_to_message_id": inbox.inbound_id});
    let (status, body, _) = inbox.send(&quoted, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["message"]["reply_to_wamid"], "wamid.IN1");
    let sent = &inbox.kapso.sends()[1];
    assert_eq!(
        sent.body.as_ref().expect("json")["context"],
        json!({"message_id": "wamid.IN1"})
    );

    // Stored once each, created pending then updated once; unread untouched.
    let id = id_of(&body);
    assert_eq!(
        inbox
            .message_events(EventKind::MessageCreated, &id, 1)
            .await,
        1
    );
    assert_eq!(
        inbox
            .message_events(EventKind::MessageUpdated, &id, 1)
            .await,
        1
    );
    let messages = inbox.messages().await;
    assert_eq!(
        messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let conversation = inbox
        .repo
        .conversation(inbox.actor(), inbox.conversation_id.parse().expect("id"))
        .await
        .expect("read")
        .expect("conversation");
    assert_eq!(conversation.unread_count, 1);
    assert_eq!(conversation.last_message_preview.as_deref(), Some("Ya"));
}

async fn invalid_sends_are_refused_before_anything_is_stored(env: TestEnv) {
    let inbox = Inbox::start(env, HOUR, &[]).await;
    let cases = [
        (inbox.text(""), "text"),
        (inbox.text(&"a".repeat(4097)), "text"),
        (json!({"conversation_id": inbox.conversation_id}), "text"),
        (
            json!({"conversation_id": inbox.conversation_id, "text": "x", "colour": 1}),
            "colour",
        ),
        (
            json!({"conversation_id": inbox.conversation_id, "text": "x",
                   "reply_to_message_id": "0190d5a4-0000-7000-8000-000000000000"}),
            "reply_to_message_id",
        ),
    ];
    for (body, field) in cases {
        let (status, answer, _) = inbox.send(&body, None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "validation_failed");
        assert_eq!(answer["error"]["details"][0]["field"], field, "{answer}");
    }
    let (status, _, _) = inbox
        .send(
            &json!({"conversation_id": "0190d5a4-0000-7000-8000-000000000000", "text": "x"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, answer, _) = inbox.send(&inbox.text("x"), Some(&"k".repeat(256))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(inbox.kapso.sends().is_empty());
    assert_eq!(inbox.messages().await.len(), 1);
}

async fn outside_the_window_only_templates_go_through(env: TestEnv) {
    let inbox = Inbox::start(env, 25 * HOUR, &[]).await;
    let (status, body, _) = inbox.send(&inbox.text("Halo lagi"), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "reply_window_closed");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("closed at") && message.contains("template"),
        "{message}"
    );
    assert!(inbox.kapso.sends().is_empty(), "nothing reaches Kapso");
    assert_eq!(inbox.messages().await.len(), 1, "nothing is stored");

    let components = json!([{"type": "body", "parameters": [{"type": "text", "text": "ORD-1"}]}]);
    let template = json!({"conversation_id": inbox.conversation_id,
                          "template": {"name": "order_update", "language": "id", "components": components}});
    let (status, body, _) = inbox.send(&template, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["message"]["kind"], "template");
    assert_eq!(body["message"]["status"], "sent");
    let sends = inbox.kapso.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(
        sends[0].body,
        Some(json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": CUSTOMER,
            "type": "template",
            "template": {"name": "order_update", "language": {"code": "id"}, "components": components},
            "biz_opaque_callback_data": body["message"]["id"],
        }))
    );
}

async fn one_idempotency_key_sends_once(env: TestEnv) {
    let inbox = Inbox::start(env, HOUR, &[]).await;
    // Slow Kapso down so that the five requests overlap the first one's attempt.
    inbox.kapso.set_latency(Some(Duration::from_millis(300)));
    let body = inbox.text("Sekali saja");
    let answers = join_all((0..5).map(|_| {
        send(
            &inbox.http,
            inbox.api(),
            &inbox.seeded.token,
            &body,
            Some("key-1"),
        )
    }))
    .await;
    assert_eq!(inbox.kapso.sends().len(), 1, "one Kapso request");
    // The first request and one waiting repeat get the answer; the other repeats, arriving
    // while both are busy, are told the request is in progress instead of piling up.
    let created: Vec<&Value> = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::CREATED)
        .map(|(_, answer, _)| answer)
        .collect();
    assert!(created.len() >= 2, "{answers:?}");
    assert!(
        created.iter().all(|a| *a == created[0]),
        "identical answers"
    );
    let in_progress: Vec<&Value> = answers
        .iter()
        .filter(|(status, _, _)| *status != StatusCode::CREATED)
        .map(|(_, answer, _)| answer)
        .collect();
    assert!(!in_progress.is_empty(), "{answers:?}");
    for answer in in_progress {
        assert_eq!(answer["error"]["code"], "request_in_progress", "{answer}");
    }
    assert_eq!(created[0]["message"]["status"], "sent");
    assert_eq!(inbox.messages().await.len(), 2);

    let (status, again, _) = inbox.send(&body, Some("key-1")).await;
    assert_eq!((status, &again), (StatusCode::CREATED, created[0]));
    let (status, other, _) = inbox.send(&inbox.text("Lain"), Some("key-1")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{other}");
    assert_eq!(other["error"]["code"], "idempotency_key_reused");
    assert_eq!(inbox.kapso.sends().len(), 1);
}

async fn transient_failures_are_retried_until_sent(env: TestEnv) {
    let inbox = Inbox::start(env, HOUR, &[]).await;
    inbox.kapso.script(FakeReply::RateLimited {
        retry_after_secs: 1,
    });
    inbox.kapso.script(FakeReply::ServerError { status: 503 });
    inbox.kapso.script(FakeReply::InFlight);
    inbox.kapso.script(FakeReply::Hang);
    let (status, body, _) = inbox.send(&inbox.text("Coba lagi"), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["message"]["status"], "pending");
    assert_eq!(body["message"]["wamid"], Value::Null);
    let id = id_of(&body);

    let sent = inbox.wait_for_status(&id, "sent").await;
    assert_eq!(sent.wamid.as_deref(), Some("wamid.FAKE.1"));
    assert_eq!(
        inbox.kapso.sends().len(),
        5,
        "429, 503, 409, timeout, then success"
    );
    assert_eq!(
        inbox
            .message_events(EventKind::MessageCreated, &id, 1)
            .await,
        1
    );
    assert_eq!(
        inbox
            .message_events(EventKind::MessageUpdated, &id, 1)
            .await,
        1,
        "one message.updated when it settles"
    );
}

async fn permanent_failures_fail_the_message_and_answer_502(env: TestEnv) {
    let inbox = Inbox::start(env, HOUR, &[]).await;
    inbox.kapso.script(FakeReply::window_closed());
    let (status, body, _) = inbox.send(&inbox.text("Terlambat"), None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "kapso_error");
    assert_eq!(body["message"]["status"], "failed");
    assert_eq!(body["message"]["error"]["code"], "131047");
    let id = id_of(&body);
    assert_eq!(inbox.message(&id).await.status.as_str(), "failed");
    assert_eq!(
        inbox
            .message_events(EventKind::MessageUpdated, &id, 1)
            .await,
        1
    );

    inbox.kapso.script(FakeReply::meta_error(131_026));
    let (status, body, _) = inbox.send(&inbox.text("Tidak terkirim"), None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["message"]["error"]["code"], "131026");
    assert_eq!(
        inbox.kapso.sends().len(),
        2,
        "permanent failures are not retried"
    );
}

async fn a_pending_send_survives_a_restart(env: TestEnv) {
    let mut inbox = Inbox::start(env, HOUR, &[]).await;
    inbox.kapso.set_default(FakeReply::Hang);
    let http = inbox.http.clone();
    let token = inbox.seeded.token.clone();
    let body = inbox.text("Setelah restart");
    let base = inbox.api().base_url.clone();
    let request = tokio::spawn(async move {
        let response = http
            .post(format!("{base}/api/messages/send"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("send");
        (
            response.status(),
            response.json::<Value>().await.expect("json"),
        )
    });
    inbox
        .wait_for("Kapso to receive the send", async |inbox| {
            (!inbox.kapso.sends().is_empty()).then_some(())
        })
        .await;
    let exit = inbox.stop_api().await;
    assert!(exit.success(), "clean shutdown: {exit:?}");
    let (status, body) = request.await.expect("request task");
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["message"]["status"], "pending");
    let id = id_of(&body);

    // Every attempt so far hung (the worker may have tried again before it stopped).
    let hung = inbox.kapso.sends().len();
    inbox.kapso.set_default(FakeReply::Success);
    inbox.restart(&[]).await;
    let sent = inbox.wait_for_status(&id, "sent").await;
    // The fake numbers only the sends it accepts.
    assert_eq!(
        sent.wamid.as_deref(),
        Some("wamid.FAKE.1"),
        "exactly one successful send"
    );
    assert_eq!(
        inbox.kapso.sends().len(),
        hung + 1,
        "one attempt after the restart"
    );
    assert_eq!(
        inbox
            .message_events(EventKind::MessageUpdated, &id, 1)
            .await,
        1
    );
}

async fn kapso_echoes_and_early_statuses_find_our_message(env: TestEnv) {
    // Retries far away: the echo, not the worker, settles the pending message.
    let inbox = Inbox::start(env, HOUR, &[("INBOX_SEND_RETRY_BASE_MS", "600000")]).await;

    // A status for the wamid Kapso is about to give, before Kapso's answer is recorded.
    inbox
        .post_event("whatsapp.message.delivered", &delivered("wamid.FAKE.1"))
        .await;
    let (status, body, _) = inbox.send(&inbox.text("Pertama"), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["message"]["wamid"], "wamid.FAKE.1");
    assert_eq!(
        body["message"]["status"], "delivered",
        "the early status applies"
    );

    // The echo after the answer: the wamid is known, nothing new is stored. Kapso's echo
    // carries our message id as the callback data the send set.
    let first_id = id_of(&body);
    let first_echo = inbox
        .kapso
        .echo_of("wamid.FAKE.1")
        .expect("an accepted send");
    assert_eq!(
        first_echo["message"]["kapso"]["statuses"][0]["biz_opaque_callback_data"],
        first_id.as_str()
    );
    inbox.post_event("whatsapp.message.sent", &first_echo).await;
    assert_eq!(inbox.messages().await.len(), 2);

    // The echo before the answer: Kapso times out on us, the echo comes in.
    inbox.kapso.script(FakeReply::Hang);
    let (status, body, _) = inbox.send(&inbox.text("Kedua"), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["message"]["status"], "pending");
    let id = id_of(&body);
    // Another sender's message with the same text is not ours: no callback data, so it is
    // stored as a message of its own.
    inbox
        .post_event("whatsapp.message.sent", &echo("wamid.OTHER.2", "Kedua"))
        .await;
    assert_eq!(inbox.message(&id).await.status.as_str(), "pending");
    let text = json!({"type": "text", "text": {"body": "Kedua"}});
    inbox
        .post_event(
            "whatsapp.message.sent",
            &outbound_echo("wamid.ECHO.2", text, Some(&id)),
        )
        .await;
    let settled = inbox.wait_for_status(&id, "sent").await;
    assert_eq!(settled.wamid.as_deref(), Some("wamid.ECHO.2"));
    assert_eq!(settled.sender_type.as_str(), "user");
    assert_eq!(
        inbox.messages().await.len(),
        4,
        "no second message for our echo, one for the other sender's"
    );
    assert_eq!(
        inbox
            .message_events(EventKind::MessageUpdated, &id, 1)
            .await,
        1
    );
    // Someone else's message in the business app is still stored, as external.
    inbox
        .post_event("whatsapp.message.sent", &echo("wamid.APP.3", "Dari HP"))
        .await;
    let messages = inbox.messages().await;
    assert_eq!(messages.len(), 5);
    assert_eq!(messages[3].wamid.as_deref(), Some("wamid.OTHER.2"));
    assert_eq!(messages[3].sender_type.as_str(), "external");
    assert_eq!(messages[4].sender_type.as_str(), "external");
}

async fn the_31st_send_in_a_minute_is_rate_limited(env: TestEnv) {
    let inbox = Inbox::start(env, HOUR, &[]).await;
    for n in 0..30 {
        let (status, body, _) = inbox.send(&inbox.text(&format!("Pesan {n}")), None).await;
        assert_eq!(status, StatusCode::CREATED, "send {n}: {body}");
    }
    let (status, body, headers) = inbox.send(&inbox.text("Satu lagi"), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    let retry_after: u64 = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(inbox.kapso.sends().len(), 30);
}

/// The only outbound message this API sent, once it is `status`.
async fn our_send_settles(inbox: &Inbox, status: &str) -> Message {
    inbox
        .wait_for(&format!("our send to be {status}"), async |inbox| {
            inbox
                .messages()
                .await
                .into_iter()
                .find(|m| m.sender_user_id.is_some() && m.status.as_str() == status)
        })
        .await
}

/// No job is left that could send it again.
async fn no_send_job_left(inbox: &Inbox) {
    assert_eq!(
        inbox.env.scalar("SELECT COUNT(*) FROM send_jobs").await,
        0,
        "a job is left that could send it again"
    );
}

async fn a_client_hanging_up_does_not_send_twice(env: TestEnv) {
    let inbox = Inbox::start(env, HOUR, &[("INBOX_KAPSO_TIMEOUT_MS", "1000")]).await;
    // Kapso takes 0.8 s to accept; the client gives up after 0.2 s.
    inbox.kapso.set_latency(Some(Duration::from_millis(800)));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .expect("a client");
    let result = impatient
        .post(inbox.api().url("/api/messages/send"))
        .bearer_auth(&inbox.seeded.token)
        .json(&inbox.text("Jangan dua kali"))
        .send()
        .await;
    assert!(result.is_err(), "the client hung up before the answer");

    let sent = our_send_settles(&inbox, "sent").await;
    assert_eq!(sent.wamid.as_deref(), Some("wamid.FAKE.1"));
    no_send_job_left(&inbox).await;
    assert_eq!(inbox.kapso.sends().len(), 1, "one Kapso send request");
}

async fn a_send_kapso_answers_late_is_not_sent_again(env: TestEnv) {
    let inbox = Inbox::start(env, HOUR, &[("INBOX_KAPSO_TIMEOUT_MS", "1000")]).await;
    // Kapso accepts at once but answers after 2.5 s, well after our 1 s timeout.
    inbox
        .kapso
        .set_answer_latency(Some(Duration::from_millis(2500)));
    let (status, body, _) = inbox.send(&inbox.text("Terlambat dijawab"), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["message"]["status"], "pending", "{body}");
    let id = id_of(&body);

    let sent = inbox.wait_for_status(&id, "sent").await;
    assert_eq!(sent.wamid.as_deref(), Some("wamid.FAKE.1"));
    no_send_job_left(&inbox).await;
    assert_eq!(inbox.kapso.sends().len(), 1, "one Kapso send request");
    let looked_up = inbox
        .kapso
        .requests()
        .iter()
        .filter(|r| r.is_history_read())
        .map(|r| (r.header("x-api-key").map(str::to_owned), r.query_pairs()))
        .collect::<Vec<_>>();
    let (key, query) = looked_up.first().expect("the history was asked");
    assert_eq!(key.as_deref(), Some(API_KEY));
    assert!(
        query.contains(&("direction".to_owned(), "outbound".to_owned())),
        "{query:?}"
    );
    assert!(query.iter().any(|(name, _)| name == "since"), "{query:?}");
}

async fn a_crash_before_the_wamid_is_stored_does_not_send_again(env: TestEnv) {
    // Time enough to kill the API before its own timeout settles anything.
    let settings = [("INBOX_KAPSO_TIMEOUT_MS", "2000")];
    let mut inbox = Inbox::start(env, HOUR, &settings).await;
    // Kapso accepts, and the API dies before the answer arrives.
    inbox
        .kapso
        .set_answer_latency(Some(Duration::from_secs(600)));
    let http = inbox.http.clone();
    let token = inbox.seeded.token.clone();
    let body = inbox.text("Sebelum crash");
    let url = inbox.api().url("/api/messages/send");
    let request = tokio::spawn(async move {
        // The answer never comes: the server dies.
        let _ = http.post(url).bearer_auth(token).json(&body).send().await;
    });
    inbox
        .wait_for("Kapso to accept the send", async |inbox| {
            (!inbox.kapso.accepted().is_empty()).then_some(())
        })
        .await;
    inbox.kill_api().await;
    request.await.expect("request task");
    let pending = our_send_settles(&inbox, "pending").await;

    inbox.kapso.set_answer_latency(None);
    inbox.restart(&settings).await;
    let sent = inbox.wait_for_status(&pending.id.to_string(), "sent").await;
    assert_eq!(sent.wamid.as_deref(), Some("wamid.FAKE.1"));
    no_send_job_left(&inbox).await;
    assert_eq!(inbox.kapso.sends().len(), 1, "one Kapso send request");
}

async fn a_workflows_template_does_not_claim_our_pending_template(env: TestEnv) {
    // Retries far away: only an echo could settle our message.
    let inbox = Inbox::start(env, HOUR, &[("INBOX_SEND_RETRY_BASE_MS", "600000")]).await;
    let ours = json!({"name": "order_update", "language": {"code": "id"},
                      "components": [{"type": "body", "parameters": [{"type": "text", "text": "ORD-1"}]}]});
    inbox.kapso.script(FakeReply::Hang);
    let (status, body, _) = inbox
        .send(
            &json!({"conversation_id": inbox.conversation_id, "template": ours}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["message"]["status"], "pending");
    let id = id_of(&body);

    // A workflow sends another template, then ours filled in for another order.
    let other = json!({"type": "template", "template": {"name": "welcome", "language": {"code": "id"}, "components": []}});
    let same_name = json!({"type": "template", "template": {"name": "order_update", "language": {"code": "id"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "ORD-2"}]}]}});
    inbox
        .post_event(
            "whatsapp.message.sent",
            &outbound_echo("wamid.FLOW.1", other, None),
        )
        .await;
    inbox
        .post_event(
            "whatsapp.message.sent",
            &outbound_echo("wamid.FLOW.2", same_name, None),
        )
        .await;
    // Even the very same template from a workflow is not ours: our sends carry callback data.
    let identical = json!({"type": "template", "template": ours});
    inbox
        .post_event(
            "whatsapp.message.sent",
            &outbound_echo("wamid.FLOW.3", identical.clone(), None),
        )
        .await;
    let messages = inbox.messages().await;
    assert_eq!(messages.len(), 5, "three workflow messages of their own");
    let mine = inbox.message(&id).await;
    assert_eq!(mine.status.as_str(), "pending");
    assert_eq!(mine.wamid, None);
    assert_eq!(
        inbox.env.scalar("SELECT COUNT(*) FROM send_jobs").await,
        1,
        "our retry is still scheduled"
    );

    // Our own echo, by its callback data, settles it.
    inbox
        .post_event(
            "whatsapp.message.sent",
            &outbound_echo("wamid.OURS.4", identical, Some(&id)),
        )
        .await;
    let settled = inbox.wait_for_status(&id, "sent").await;
    assert_eq!(settled.wamid.as_deref(), Some("wamid.OURS.4"));
    assert_eq!(inbox.messages().await.len(), 5);
}

async fn a_history_guess_never_takes_another_messages_wamid(env: TestEnv) {
    let inbox = Inbox::start(env, HOUR, &[]).await;
    // A history without callback data: a lookup can only compare content.
    inbox.kapso.set_history_keeps_callback_data(false);
    let (status, first, _) = inbox.send(&inbox.text("Ya"), None).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["message"]["wamid"], "wamid.FAKE.1");
    // The same words again; this attempt times out without reaching Kapso's history.
    inbox.kapso.script(FakeReply::Hang);
    let (status, second, _) = inbox.send(&inbox.text("Ya"), None).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["message"]["status"], "pending");

    // The history's only "Ya" is the first message: not this one, which is sent after all.
    let sent = inbox.wait_for_status(&id_of(&second), "sent").await;
    assert_eq!(sent.wamid.as_deref(), Some("wamid.FAKE.2"));
    let kept = inbox.message(&id_of(&first)).await;
    assert_eq!(kept.wamid.as_deref(), Some("wamid.FAKE.1"));
    assert_eq!(
        inbox.kapso.sends().len(),
        3,
        "the first, the hung one, the retry"
    );
}

async fn a_status_carrying_our_callback_data_finds_our_pending_send(env: TestEnv) {
    // Retries far away: only the status can settle our message.
    let inbox = Inbox::start(env, HOUR, &[("INBOX_SEND_RETRY_BASE_MS", "600000")]).await;
    inbox.kapso.script(FakeReply::Hang);
    let (status, body, _) = inbox.send(&inbox.text("Sampai?"), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["message"]["status"], "pending");
    let id = id_of(&body);

    // Someone else's status for a wamid we do not know is kept for later, not given to us.
    let mut stranger = delivered("wamid.ELSE.1");
    stranger["message"]["kapso"]["statuses"][0]["biz_opaque_callback_data"] = json!("crm-7f3a");
    inbox
        .post_event("whatsapp.message.delivered", &stranger)
        .await;
    assert_eq!(inbox.message(&id).await.wamid, None);

    // Kapso's `delivered` for our send, its answer and echo lost: the callback data finds it.
    let mut ours = delivered("wamid.OURS.1");
    ours["message"]["kapso"]["statuses"][0]["biz_opaque_callback_data"] = json!(id);
    inbox.post_event("whatsapp.message.delivered", &ours).await;
    let settled = inbox.wait_for_status(&id, "delivered").await;
    assert_eq!(settled.wamid.as_deref(), Some("wamid.OURS.1"));
    assert_eq!(inbox.messages().await.len(), 2, "no message of its own");
    assert_eq!(
        inbox
            .message_events(EventKind::MessageUpdated, &id, 1)
            .await,
        1
    );
}
