//! A workspace connected to a fake Kapso, with a customer who has written: what the sending and
//! handover tests start from. State is read back through the storage ports on the same
//! database (the conversation routes live on another branch), and waits poll with a deadline.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use inbox_domain::event::{EventKind, LogPosition};
use inbox_domain::message::{Message, ThreadPosition, ThreadQuery};
use inbox_domain::page::Limit;
use inbox_domain::ports::Repository;
use inbox_domain::user::{Actor, Role};
use inbox_domain::{ConversationId, MessageId, UserId, WorkspaceId};
use inbox_kapso::fake::FakeKapso;
use inbox_store::SecretKey;
use inbox_tests::{Seeded, Server, TEST_SECRET_KEY, TestEnv};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The business number's Kapso id.
pub const PHONE_NUMBER_ID: &str = "123456789012345";
/// The workspace's Kapso API key.
pub const API_KEY: &str = "kapso_key_for_tests";
/// The webhook secret.
pub const WEBHOOK_SECRET: &str = "wh_sec_test_123";
/// The customer, as WhatsApp writes the number (digits).
pub const CUSTOMER: &str = "6281234567890";

/// Settings that keep retries fast: a short Kapso timeout and backoff, a quick poll.
pub const FAST_RETRIES: [(&str, &str); 5] = [
    ("INBOX_KAPSO_TIMEOUT_MS", "500"),
    ("INBOX_SEND_ECHO_WINDOW_MS", "100"),
    ("INBOX_SEND_RETRY_BASE_MS", "50"),
    ("INBOX_SEND_RETRY_MAX_MS", "400"),
    ("INBOX_SEND_POLL_MS", "25"),
];

/// A running system with a fake Kapso and one conversation.
pub struct Inbox {
    pub env: TestEnv,
    pub seeded: Seeded,
    pub kapso: FakeKapso,
    api: Option<Server>,
    pub http: reqwest::Client,
    pub repo: Arc<dyn Repository>,
    pub conversation_id: String,
    /// The customer's first message.
    pub inbound_id: String,
}

impl Inbox {
    /// Sets everything up; the customer last wrote `inbound_age` ago.
    pub async fn start(env: TestEnv, inbound_age: Duration, extra_env: &[(&str, &str)]) -> Self {
        let seeded = env.workspace_with_owner().await;
        env.admin(&[
            "workspace",
            "set-kapso",
            "--workspace",
            "acme",
            "--phone-number-id",
            PHONE_NUMBER_ID,
            "--api-key",
            API_KEY,
            "--webhook-secret",
            WEBHOOK_SECRET,
        ])
        .await;
        let kapso = FakeKapso::start().await;
        let api = start_api(&env, &kapso, extra_env).await;
        let http = reqwest::Client::new();
        let key = SecretKey::from_base64(TEST_SECRET_KEY).expect("test key");
        let repo = inbox_store::open(env.database_url(), &key)
            .await
            .expect("open the test database");
        post_event(
            &http,
            &api,
            "whatsapp.message.received",
            &inbound("wamid.IN1", "Halo", inbound_age),
        )
        .await;
        let mut inbox = Self {
            env,
            seeded,
            kapso,
            api: Some(api),
            http,
            repo,
            conversation_id: String::new(),
            inbound_id: String::new(),
        };
        let created = inbox
            .wait_for("the conversation", async |inbox| {
                inbox
                    .events(EventKind::MessageCreated)
                    .await
                    .first()
                    .and_then(|e| Some((e.conversation_id?, e.message_id?)))
            })
            .await;
        inbox.conversation_id = created.0.to_string();
        inbox.inbound_id = created.1.to_string();
        inbox
    }

    /// The running API.
    pub fn api(&self) -> &Server {
        self.api.as_ref().expect("the API is running")
    }

    /// Stops the API with SIGTERM and waits for it to exit.
    pub async fn stop_api(&mut self) -> std::process::ExitStatus {
        self.api.take().expect("the API is running").stop().await
    }

    /// Kills the API with SIGKILL, as a crash would.
    pub async fn kill_api(&mut self) {
        self.api.take().expect("the API is running").kill().await;
    }

    /// Starts the API again with the same settings.
    pub async fn restart(&mut self, extra_env: &[(&str, &str)]) {
        self.api = Some(start_api(&self.env, &self.kapso, extra_env).await);
    }

    /// `POST /api/messages/send`.
    pub async fn send(
        &self,
        body: &Value,
        key: Option<&str>,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        send(&self.http, self.api(), &self.seeded.token, body, key).await
    }

    /// A text send body for the conversation.
    pub fn text(&self, text: &str) -> Value {
        json!({"conversation_id": self.conversation_id, "text": text})
    }

    pub fn workspace_id(&self) -> WorkspaceId {
        self.seeded.workspace_id.parse().expect("workspace id")
    }

    pub fn actor(&self) -> Actor {
        Actor {
            user_id: self.seeded.user_id.parse::<UserId>().expect("user id"),
            workspace_id: self.workspace_id(),
            role: Role::Owner,
        }
    }

    /// Every message of the conversation, in seq order.
    pub async fn messages(&self) -> Vec<Message> {
        let id: ConversationId = self.conversation_id.parse().expect("conversation id");
        let query = ThreadQuery {
            position: ThreadPosition::Newest,
            limit: Limit::new(200).expect("limit"),
        };
        self.repo
            .messages(self.actor(), id, query)
            .await
            .expect("read the thread")
            .expect("the conversation")
            .messages
    }

    /// One message.
    pub async fn message(&self, id: &str) -> Message {
        let id: MessageId = id.parse().expect("message id");
        self.repo
            .message(self.workspace_id(), id)
            .await
            .expect("read a message")
            .expect("the message")
    }

    /// The workspace's events of one kind, in log order.
    pub async fn events(&self, kind: EventKind) -> Vec<inbox_domain::event::Event> {
        self.repo
            .events_after(LogPosition::START, Some(self.workspace_id()), 10_000)
            .await
            .expect("read the event log")
            .into_iter()
            .map(|logged| logged.event)
            .filter(|event| event.kind == kind)
            .collect()
    }

    /// How many events of `kind` name message `id`, once there are at least `at_least`. On
    /// PostgreSQL the log shows an event only when no older transaction is still running
    /// (anywhere on the server), so a just-committed event may take a moment to appear.
    pub async fn message_events(&self, kind: EventKind, id: &str, at_least: usize) -> usize {
        let id: MessageId = id.parse().expect("message id");
        self.wait_for(
            &format!("{at_least} {} event(s)", kind.as_str()),
            async |inbox| {
                let count = inbox
                    .events(kind)
                    .await
                    .iter()
                    .filter(|e| e.message_id == Some(id))
                    .count();
                (count >= at_least).then_some(count)
            },
        )
        .await
    }

    /// Polls `check` until it yields a value, for at most 20 s.
    pub async fn wait_for<T>(&self, what: &str, check: impl AsyncFn(&Self) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(value) = check(self).await {
                return value;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until message `id` has `status`, and returns it.
    pub async fn wait_for_status(&self, id: &str, status: &str) -> Message {
        self.wait_for(&format!("message {id} to be {status}"), async |inbox| {
            let message = inbox.message(id).await;
            (message.status.as_str() == status).then_some(message)
        })
        .await
    }

    /// Posts a signed Kapso v2 event to the API's webhook.
    pub async fn post_event(&self, event: &str, body: &Value) {
        post_event(&self.http, self.api(), event, body).await;
    }
}

async fn start_api(env: &TestEnv, kapso: &FakeKapso, extra_env: &[(&str, &str)]) -> Server {
    let base = kapso.base_url();
    let mut vars: Vec<(&str, &str)> = vec![("INBOX_KAPSO_BASE_URL", base.as_str())];
    vars.extend_from_slice(&FAST_RETRIES);
    vars.extend_from_slice(extra_env);
    env.api(&vars).await
}

/// `POST /api/messages/send` with a bearer token and an optional `Idempotency-Key`.
pub async fn send(
    http: &reqwest::Client,
    api: &Server,
    token: &str,
    body: &Value,
    key: Option<&str>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut request = http
        .post(api.url("/api/messages/send"))
        .bearer_auth(token)
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.expect("send request");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, headers)
}

/// Posts a signed single v2 event.
pub async fn post_event(http: &reqwest::Client, api: &Server, event: &str, body: &Value) {
    let raw = body.to_string();
    let signature = inbox_kapso::signature::sign_kapso(WEBHOOK_SECRET.as_bytes(), raw.as_bytes());
    let response = http
        .post(api.url("/api/webhook/kapso"))
        .header("Content-Type", "application/json")
        .header("X-Webhook-Event", event)
        .header("X-Webhook-Signature", signature)
        .header("X-Idempotency-Key", format!("{event}-{}", uuid_like(&raw)))
        .header("X-Webhook-Payload-Version", "v2")
        .body(raw)
        .send()
        .await
        .expect("post a webhook");
    assert_eq!(response.status(), StatusCode::OK, "webhook refused");
}

fn uuid_like(raw: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    raw.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn unix_seconds(age: Duration) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    (now - age).as_secs().to_string()
}

fn conversation() -> Value {
    json!({"id": "kconv_1", "phone_number": format!("+{CUSTOMER}"), "status": "active",
           "phone_number_id": PHONE_NUMBER_ID, "kapso": {"contact_name": "Budi"}})
}

/// A customer's text message, `age` old.
pub fn inbound(wamid: &str, text: &str, age: Duration) -> Value {
    json!({
        "message": {"id": wamid, "timestamp": unix_seconds(age), "type": "text", "from": CUSTOMER,
                    "text": {"body": text},
                    "kapso": {"direction": "inbound", "status": "received", "origin": "cloud_api"}},
        "conversation": conversation(),
        "is_new_conversation": false,
        "phone_number_id": PHONE_NUMBER_ID
    })
}

/// Kapso's `whatsapp.message.sent` echo of a text message sent to the customer by someone
/// else (the business app, a workflow): no callback data.
pub fn echo(wamid: &str, text: &str) -> Value {
    outbound_echo(wamid, json!({"type": "text", "text": {"body": text}}), None)
}

/// Kapso's `whatsapp.message.sent` echo of an outbound message with `content` (`type` and its
/// object), carrying `callback` as the status's `biz_opaque_callback_data` when given.
pub fn outbound_echo(wamid: &str, content: Value, callback: Option<&str>) -> Value {
    let mut status = json!({"id": wamid, "status": "sent", "recipient_id": CUSTOMER});
    if let Some(callback) = callback {
        status["biz_opaque_callback_data"] = json!(callback);
    }
    let mut message = content;
    message["id"] = json!(wamid);
    message["timestamp"] = json!(unix_seconds(Duration::ZERO));
    message["to"] = json!(CUSTOMER);
    message["kapso"] = json!({"direction": "outbound", "status": "sent", "origin": "cloud_api",
                              "statuses": [status]});
    json!({
        "message": message,
        "conversation": conversation(),
        "is_new_conversation": false,
        "phone_number_id": PHONE_NUMBER_ID
    })
}

/// A `whatsapp.message.delivered` status for an outbound message.
pub fn delivered(wamid: &str) -> Value {
    json!({
        "message": {"id": wamid, "timestamp": unix_seconds(Duration::ZERO), "type": "text",
                    "kapso": {"direction": "outbound", "status": "delivered",
                              "statuses": [{"id": wamid, "status": "delivered", "recipient_id": CUSTOMER}]}},
        "conversation": conversation(),
        "is_new_conversation": false,
        "phone_number_id": PHONE_NUMBER_ID
    })
}
