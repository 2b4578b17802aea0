//! A local stand-in for Kapso's API (feature `fake`), for tests, the demo and benchmarks.
//!
//! [`FakeKapso::start`] serves, on `127.0.0.1` and a free port, the endpoints
//! [`KapsoClient`](crate::KapsoClient) calls: sends and read receipts, the conversation lookup,
//! the workflow-execution list and the execution update. It records every request for
//! assertions and answers each one with the next scripted [`FakeReply`], or the default reply
//! once the script is used up (history reads excepted: they always answer from the history). Workflow data lives in memory: seed it with
//! [`FakeKapso::add_conversation`] and [`FakeKapso::add_execution`], read it back with
//! [`FakeKapso::executions`].
//!
//! Every send it accepts is kept as a history record, served as Kapso serves its message history
//! (`GET /meta/whatsapp/{version}/{phone_number_id}/messages`, Graph-style paging with
//! `paging.cursors.after`), with the `biz_opaque_callback_data` the send carried;
//! [`FakeKapso::echo_of`] builds the `whatsapp.message.sent` event Kapso would deliver for it.
//! [`FakeKapso::set_answer_latency`] makes Kapso accept a send at once but answer late, the case
//! where a client's timeout leaves the outcome unknown.
//!
//! ```no_run
//! # async fn demo() {
//! use inbox_kapso::fake::{FakeKapso, FakeReply};
//!
//! let kapso = FakeKapso::start().await;
//! kapso.script(FakeReply::window_closed());
//! let client = inbox_kapso::KapsoClient::with_base_url(&kapso.base_url()).expect("a local URL");
//! // ... send with `client`, then inspect `kapso.sends()`.
//! # }
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How the fake answers one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FakeReply {
    /// Behave like Kapso: a send gets a generated wamid (`wamid.FAKE.<n>`), the workflow
    /// endpoints read and change the in-memory data.
    Success,
    /// Meta's Graph error envelope with `code`, e.g. 131047 (window closed) or 131026.
    MetaError {
        /// HTTP status.
        status: u16,
        /// Meta's error code.
        code: i64,
        /// `error.message`, e.g. `(#131026) Message undeliverable`.
        message: String,
        /// `error.error_data.details`.
        details: String,
    },
    /// Kapso's own `{"error": ..., "message"?: ...}` body.
    KapsoError {
        /// HTTP status.
        status: u16,
        /// `error`.
        error: String,
        /// `message`, when present.
        message: Option<String>,
    },
    /// 429 with `Retry-After: <seconds>` and Kapso's rate-limit body.
    RateLimited {
        /// The `Retry-After` value.
        retry_after_secs: u64,
    },
    /// Kapso's 409: another message is in flight for this conversation.
    InFlight,
    /// A 5xx with a Kapso-style body.
    ServerError {
        /// HTTP status, 500..=599.
        status: u16,
    },
    /// Never answer; the request ends when the client gives up or the fake is dropped.
    Hang,
}

impl FakeReply {
    /// Meta's envelope for `code`, with the HTTP status Meta uses for it (reference section
    /// 4.3: 401 for auth, 403 for integrity, 404 for a missing template, 500 for service
    /// errors, 400 for the rest).
    #[must_use]
    pub fn meta_error(code: i64) -> Self {
        let status = match code {
            0 | 190 => 401,
            368 | 131_005 => 403,
            132_001 => 404,
            131_000 | 131_045 | 131_057 => 500,
            _ => 400,
        };
        let (title, details) = match code {
            131_047 => (
                "Re-engagement message",
                "More than 24 hours have passed since the recipient last replied to the sender number.",
            ),
            131_026 => (
                "Message undeliverable",
                "Unable to deliver message. The recipient may not be on WhatsApp.",
            ),
            130_429 => (
                "Rate limit hit",
                "Cloud API message throughput has been reached.",
            ),
            _ => ("Error", "A scripted error of the fake Kapso."),
        };
        Self::MetaError {
            status,
            code,
            message: format!("(#{code}) {title}"),
            details: details.to_owned(),
        }
    }

    /// Meta's 131047: the 24-hour window is closed.
    #[must_use]
    pub fn window_closed() -> Self {
        Self::meta_error(131_047)
    }

    /// Kapso's `{"error": error}` with `status`.
    #[must_use]
    pub fn kapso_error(status: u16, error: &str) -> Self {
        Self::KapsoError {
            status,
            error: error.to_owned(),
            message: None,
        }
    }
}

/// One request the fake received.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, `PATCH`, ...
    pub method: String,
    /// The path, as sent (percent-encoded).
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// Headers by lower-case name; repeated headers are joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The body, when it was JSON.
    pub body: Option<Value>,
}

impl RecordedRequest {
    /// A header's value, by name in any case.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The decoded query parameters, in order.
    #[must_use]
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query
            .as_deref()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default()
    }

    /// Whether this reads the message history (`GET .../{phone_number_id}/messages`).
    #[must_use]
    pub fn is_history_read(&self) -> bool {
        self.method == "GET" && self.path.starts_with("/meta/") && self.path.ends_with("/messages")
    }

    /// Whether this is a message send (not a read receipt).
    #[must_use]
    pub fn is_send(&self) -> bool {
        self.method == "POST"
            && self.path.ends_with("/messages")
            && self.body.as_ref().and_then(|b| b.get("status")).is_none()
    }
}

/// A Kapso conversation the fake knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeConversation {
    /// Kapso's id.
    pub id: String,
    /// The customer's number, digits without `+`.
    pub phone_digits: String,
    /// `active` or `ended`.
    pub status: String,
}

/// A workflow execution the fake knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeExecution {
    /// Kapso's id (`exec_<n>`).
    pub id: String,
    /// The Kapso conversation it runs in.
    pub conversation_id: String,
    /// `running`, `waiting`, `handoff`, `ended`, ...
    pub status: String,
}

/// A message the fake accepted: one record of its message history.
#[derive(Clone, Debug, PartialEq)]
pub struct AcceptedMessage {
    /// The wamid it answered with (`wamid.FAKE.<n>`).
    pub wamid: String,
    /// The business number it was sent from.
    pub phone_number_id: String,
    /// The recipient, digits without `+`.
    pub to: String,
    /// The send's `biz_opaque_callback_data`, if it carried one.
    pub biz_opaque_callback_data: Option<String>,
    /// The message content as sent: `type` and its type-specific object (`text`, `template`,
    /// ...), plus `context` when it quoted a message.
    pub content: Value,
    /// When it was accepted, in Unix seconds.
    pub timestamp: i64,
}

/// A running fake Kapso. Dropping it stops the server and releases hung requests.
#[derive(Debug)]
pub struct FakeKapso {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    server: JoinHandle<()>,
    // Held only to be dropped: receivers (hung requests) wake when it goes.
    _stop: watch::Sender<()>,
}

impl FakeKapso {
    /// Starts a fake on `127.0.0.1` and a free port.
    ///
    /// # Panics
    /// When no local port can be bound, which only a broken test machine causes.
    pub async fn start() -> Self {
        Self::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("a free port on 127.0.0.1 for the fake Kapso")
    }

    /// Starts a fake on `addr` (port 0 picks a free one).
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::bind_with(addr, false).await
    }

    async fn bind_with(addr: SocketAddr, print_requests: bool) -> io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (stop, stopped) = watch::channel(());
        let app = Router::new().fallback(handle).with_state(Ctx {
            shared: Arc::clone(&shared),
            stopped,
            print_requests,
        });
        let server = tokio::spawn(async move {
            // Ends only on an accept error or when aborted by `Drop`; there is nobody to
            // report an accept error to, and the tests that use the fake would then fail on
            // connection errors anyway.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            shared,
            server,
            _stop: stop,
        })
    }

    /// The base URL to give [`KapsoClient`](crate::KapsoClient), e.g. `http://127.0.0.1:40123`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the fake listens on.
    #[must_use]
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, oldest first.
    #[must_use]
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// The message sends received so far (read receipts excluded), oldest first.
    #[must_use]
    pub fn sends(&self) -> Vec<RecordedRequest> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.is_send())
            .cloned()
            .collect()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// Answers the next request (after those already scripted) with `reply`.
    pub fn script(&self, reply: FakeReply) {
        self.lock().script.push_back(reply);
    }

    /// Answers the next `times` requests with `reply`; with the default [`FakeReply::Success`]
    /// this is "succeed after `times` failures".
    pub fn script_times(&self, reply: FakeReply, times: usize) {
        let mut shared = self.lock();
        shared.script.extend(std::iter::repeat_n(reply, times));
    }

    /// Answers every request the script does not cover with `reply` (initially
    /// [`FakeReply::Success`]).
    pub fn set_default(&self, reply: FakeReply) {
        self.lock().default = reply;
    }

    /// Delays every answer by `latency` (`None` for none), to give benchmarks a realistic
    /// round trip. The delay comes before the request is handled: a send is accepted (and
    /// recorded in the history) only once it has passed.
    pub fn set_latency(&self, latency: Option<Duration>) {
        self.lock().latency = latency;
    }

    /// Delays the answer to every accepted send by `latency` (`None` for none), *after* the
    /// message is accepted and recorded in the history: a client that gives up meanwhile does
    /// not know that its message went out.
    pub fn set_answer_latency(&self, latency: Option<Duration>) {
        self.lock().answer_latency = latency;
    }

    /// Whether the message history shows the `biz_opaque_callback_data` of sends (initially
    /// `true`). The reference does not promise it does; `false` tries the lookup without it.
    pub fn set_history_keeps_callback_data(&self, keeps: bool) {
        self.lock().history_hides_callback_data = !keeps;
    }

    /// Every message accepted so far, oldest first, as the history lists them.
    #[must_use]
    pub fn accepted(&self) -> Vec<AcceptedMessage> {
        self.lock().accepted.clone()
    }

    /// Kapso's `whatsapp.message.sent` event (payload v2) for an accepted message, with the
    /// `biz_opaque_callback_data` its send carried in `kapso.statuses[]`, as Kapso delivers it
    /// for any outbound message. `None` when no accepted message has that wamid.
    #[must_use]
    pub fn echo_of(&self, wamid: &str) -> Option<Value> {
        let shared = self.lock();
        let sent = shared.accepted.iter().find(|m| m.wamid == wamid)?;
        let mut status = json!({
            "id": sent.wamid,
            "status": "sent",
            "timestamp": sent.timestamp.to_string(),
            "recipient_id": sent.to,
        });
        if let Some(callback) = &sent.biz_opaque_callback_data {
            status["biz_opaque_callback_data"] = json!(callback);
        }
        let mut message = sent.content.clone();
        message["id"] = json!(sent.wamid);
        message["timestamp"] = json!(sent.timestamp.to_string());
        message["to"] = json!(sent.to);
        message["kapso"] = json!({
            "direction": "outbound",
            "status": "sent",
            "processing_status": "completed",
            "origin": "cloud_api",
            "has_media": false,
            "statuses": [status],
        });
        Some(json!({
            "message": message,
            "conversation": {
                "phone_number": format!("+{}", sent.to),
                "status": "active",
                "phone_number_id": sent.phone_number_id,
            },
            "is_new_conversation": false,
            "phone_number_id": sent.phone_number_id,
        }))
    }

    /// Adds a WhatsApp number to the project (`GET /platform/v1/whatsapp/phone_numbers`).
    pub fn add_phone_number(&self, phone_number_id: &str) {
        self.lock().phone_numbers.push(phone_number_id.to_owned());
    }

    /// Adds an active Kapso conversation for `phone` (E.164 or digits).
    pub fn add_conversation(&self, phone: &str, kapso_conversation_id: &str) {
        self.lock().conversations.push(FakeConversation {
            id: kapso_conversation_id.to_owned(),
            phone_digits: digits(phone).to_owned(),
            status: "active".to_owned(),
        });
    }

    /// Adds a workflow execution with `status` to a conversation; returns its id.
    pub fn add_execution(&self, kapso_conversation_id: &str, status: &str) -> String {
        let mut shared = self.lock();
        shared.next_execution += 1;
        let id = format!("exec_{}", shared.next_execution);
        shared.executions.push(FakeExecution {
            id: id.clone(),
            conversation_id: kapso_conversation_id.to_owned(),
            status: status.to_owned(),
        });
        id
    }

    /// Every execution, in the order they were added.
    #[must_use]
    pub fn executions(&self) -> Vec<FakeExecution> {
        self.lock().executions.clone()
    }

    /// One execution's status.
    #[must_use]
    pub fn execution_status(&self, execution_id: &str) -> Option<String> {
        self.lock()
            .executions
            .iter()
            .find(|e| e.id == execution_id)
            .map(|e| e.status.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        lock(&self.shared)
    }
}

impl Drop for FakeKapso {
    fn drop(&mut self) {
        // Stops accepting; `_stop` is dropped right after, which releases hung handlers.
        self.server.abort();
    }
}

/// Serves a fake Kapso on `addr` until `shutdown` resolves, printing its URL and one line per
/// request (method, path, status; never bodies or query strings, which carry phone numbers).
/// For `cargo xtask fake-kapso` and the demo.
///
/// # Errors
/// When the address cannot be bound.
pub async fn run_standalone(
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let fake = FakeKapso::bind_with(addr, true).await?;
    println!("Fake Kapso listening on {}", fake.base_url());
    println!(
        "Point the app at it: INBOX_KAPSO_BASE_URL={}",
        fake.base_url()
    );
    shutdown.await;
    Ok(())
}

#[derive(Debug)]
struct Shared {
    requests: Vec<RecordedRequest>,
    script: VecDeque<FakeReply>,
    default: FakeReply,
    latency: Option<Duration>,
    answer_latency: Option<Duration>,
    accepted: Vec<AcceptedMessage>,
    history_hides_callback_data: bool,
    next_wamid: u64,
    next_execution: u64,
    conversations: Vec<FakeConversation>,
    executions: Vec<FakeExecution>,
    phone_numbers: Vec<String>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            requests: Vec::new(),
            script: VecDeque::new(),
            default: FakeReply::Success,
            latency: None,
            answer_latency: None,
            accepted: Vec::new(),
            history_hides_callback_data: false,
            next_wamid: 0,
            next_execution: 0,
            conversations: Vec::new(),
            executions: Vec::new(),
            phone_numbers: Vec::new(),
        }
    }
}

#[derive(Clone)]
struct Ctx {
    shared: Arc<Mutex<Shared>>,
    stopped: watch::Receiver<()>,
    print_requests: bool,
}

/// The lock is never held across an await, and a panic while holding it leaves plain data
/// behind, so a poisoned lock is still safe to use.
fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn handle(
    State(ctx): State<Ctx>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let recorded = RecordedRequest {
        method: method.as_str().to_owned(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: header_map(&headers),
        body: serde_json::from_slice(&body).ok(),
    };
    let (reply, latency) = {
        let mut shared = lock(&ctx.shared);
        shared.requests.push(recorded.clone());
        // History reads answer from what the fake accepted and leave the script to the calls
        // it is written for: a scripted run of send failures stays a run of send failures when
        // the sender looks its earlier attempts up in between.
        let reply = if recorded.is_history_read() {
            FakeReply::Success
        } else {
            shared
                .script
                .pop_front()
                .unwrap_or_else(|| shared.default.clone())
        };
        (reply, shared.latency)
    };
    if let Some(latency) = latency {
        // Simulated network time, not synchronisation.
        tokio::time::sleep(latency).await;
    }
    let response = match reply {
        FakeReply::Hang => {
            let mut stopped = ctx.stopped.clone();
            // Resolves (with an error) only when the fake is dropped.
            let _ = stopped.changed().await;
            error_body(StatusCode::SERVICE_UNAVAILABLE, "Fake Kapso stopped", None)
        }
        FakeReply::Success if recorded.header("x-api-key").is_none() => {
            error_body(StatusCode::UNAUTHORIZED, "Invalid or missing API key", None)
        }
        FakeReply::Success => {
            let (response, accepted) = route(&ctx.shared, &recorded);
            let answer_latency = lock(&ctx.shared).answer_latency;
            if let (true, Some(latency)) = (accepted, answer_latency) {
                // Accepted and recorded already; only the answer is late.
                tokio::time::sleep(latency).await;
            }
            response
        }
        other => scripted_failure(other),
    };
    if ctx.print_requests {
        println!(
            "{} {} -> {}",
            recorded.method,
            recorded.path,
            response.status().as_u16()
        );
    }
    response
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        map.entry(name.as_str().to_owned())
            .and_modify(|existing| {
                existing.push_str(", ");
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    map
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn scripted_failure(reply: FakeReply) -> Response {
    match reply {
        FakeReply::MetaError {
            status: code,
            code: meta_code,
            message,
            details,
        } => (
            status(code),
            axum::Json(json!({
                "error": {
                    "message": message,
                    "type": "OAuthException",
                    "code": meta_code,
                    "error_data": { "messaging_product": "whatsapp", "details": details },
                    "fbtrace_id": "FAKE"
                }
            })),
        )
            .into_response(),
        FakeReply::KapsoError {
            status: code,
            error,
            message,
        } => error_body(status(code), &error, message.as_deref()),
        FakeReply::RateLimited { retry_after_secs } => {
            let mut response = error_body(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit exceeded",
                Some("You have exceeded the rate limit. Please try again later."),
            );
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            headers.insert("x-ratelimit-remaining", HeaderValue::from(0_u16));
            response
        }
        FakeReply::InFlight => error_body(
            StatusCode::CONFLICT,
            "Another message in-flight for this conversation. Retry shortly.",
            None,
        ),
        FakeReply::ServerError { status: code } => {
            error_body(status(code), "Internal server error", None)
        }
        // Handled by the caller, which has the request and the stop signal.
        FakeReply::Success | FakeReply::Hang => {
            error_body(StatusCode::INTERNAL_SERVER_ERROR, "unreachable reply", None)
        }
    }
}

fn error_body(code: StatusCode, error: &str, message: Option<&str>) -> Response {
    let body = match message {
        Some(message) => json!({ "error": error, "message": message }),
        None => json!({ "error": error }),
    };
    (code, axum::Json(body)).into_response()
}

fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn paged(data: Vec<Value>) -> Response {
    ok(json!({
        "data": data,
        "paging": { "cursors": { "before": null, "after": null }, "next": null, "previous": null }
    }))
}

/// Kapso's behaviour for a request the script lets through, and whether it accepted a send.
fn route(shared: &Mutex<Shared>, request: &RecordedRequest) -> (Response, bool) {
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    let response = match (request.method.as_str(), segments.as_slice()) {
        ("POST", ["meta", "whatsapp", _, phone_number_id, "messages"]) => {
            return message(shared, request, phone_number_id);
        }
        ("GET", ["meta", "whatsapp", _, phone_number_id, "messages"]) => {
            history(shared, request, phone_number_id)
        }
        ("GET", ["meta", "whatsapp", _, phone_number_id, "conversations"]) => {
            conversations(shared, request, phone_number_id)
        }
        (
            "GET",
            [
                "platform",
                "v1",
                "whatsapp",
                "conversations",
                conversation_id,
                "flow_executions",
            ],
        ) => flow_executions(shared, conversation_id),
        ("GET", ["platform", "v1", "whatsapp", "phone_numbers"]) => phone_numbers(shared, request),
        ("PATCH", ["platform", "v1", "workflow_executions", execution_id]) => {
            update_execution(shared, request, execution_id)
        }
        _ => error_body(StatusCode::NOT_FOUND, "Not found", None),
    };
    (response, false)
}

fn message(
    shared: &Mutex<Shared>,
    request: &RecordedRequest,
    phone_number_id: &str,
) -> (Response, bool) {
    let Some(body) = &request.body else {
        let refused = scripted_failure(FakeReply::MetaError {
            status: 400,
            code: 100,
            message: "(#100) Invalid parameter".to_owned(),
            details: "The request body is not JSON.".to_owned(),
        });
        return (refused, false);
    };
    if body.get("status").and_then(Value::as_str) == Some("read") {
        return (ok(json!({ "success": true })), false);
    }
    let to = body
        .get("to")
        .or_else(|| body.get("recipient"))
        .and_then(Value::as_str);
    let (Some(to), Some(kind)) = (to, body.get("type").and_then(Value::as_str)) else {
        let refused = scripted_failure(FakeReply::MetaError {
            status: 400,
            code: 100,
            message: "(#100) Invalid parameter".to_owned(),
            details: "`to` and `type` are required.".to_owned(),
        });
        return (refused, false);
    };
    let callback = body.get("biz_opaque_callback_data").and_then(Value::as_str);
    if callback.is_some_and(|c| c.chars().count() > MAX_CALLBACK_DATA_CHARS) {
        let refused = scripted_failure(FakeReply::MetaError {
            status: 400,
            code: 100,
            message: "(#100) Invalid parameter".to_owned(),
            details: "biz_opaque_callback_data is longer than 512 characters.".to_owned(),
        });
        return (refused, false);
    }
    let mut content = json!({ "type": kind });
    for field in [kind, "context"] {
        if let Some(value) = body.get(field) {
            content[field] = value.clone();
        }
    }
    let wamid = {
        let mut shared = lock(shared);
        shared.next_wamid += 1;
        let wamid = format!("wamid.FAKE.{}", shared.next_wamid);
        shared.accepted.push(AcceptedMessage {
            wamid: wamid.clone(),
            phone_number_id: phone_number_id.to_owned(),
            to: digits(to).to_owned(),
            biz_opaque_callback_data: callback.map(str::to_owned),
            content,
            timestamp: unix_now(),
        });
        wamid
    };
    let answer = ok(json!({
        "messaging_product": "whatsapp",
        "contacts": [{ "input": to, "wa_id": digits(to) }],
        "messages": [{ "id": wamid }]
    }));
    (answer, true)
}

/// Meta's limit on `biz_opaque_callback_data`.
const MAX_CALLBACK_DATA_CHARS: usize = 512;

/// Most records one history page holds, as Kapso caps `limit`.
const MAX_HISTORY_PAGE: usize = 100;

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Kapso's message history of one number: the outbound messages the fake accepted (it has no
/// inbound ones), newest first, filtered by `direction` and `since` (RFC 3339 or Unix seconds),
/// `limit` (1..=100, default 20) per page, the next page behind `paging.cursors.after`.
fn history(shared: &Mutex<Shared>, request: &RecordedRequest, phone_number_id: &str) -> Response {
    let query = request.query_pairs();
    let param = |name: &str| {
        query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let limit = param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, MAX_HISTORY_PAGE);
    let since = match param("since").map(since_seconds) {
        None => None,
        Some(Some(seconds)) => Some(seconds),
        Some(None) => {
            return error_body(
                StatusCode::BAD_REQUEST,
                "since must be an ISO 8601 time",
                None,
            );
        }
    };
    let skip = match param("after").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(skip)) => skip,
        Some(Err(_)) => return error_body(StatusCode::BAD_REQUEST, "Invalid cursor", None),
    };
    let outbound_wanted = param("direction").is_none_or(|d| d == "outbound");
    let shared = lock(shared);
    let matching: Vec<&AcceptedMessage> = shared
        .accepted
        .iter()
        .rev()
        .filter(|m| outbound_wanted && m.phone_number_id == phone_number_id)
        .filter(|m| since.is_none_or(|since| m.timestamp >= since))
        .collect();
    let data: Vec<Value> = matching
        .iter()
        .skip(skip)
        .take(limit)
        .map(|m| history_record(m, !shared.history_hides_callback_data))
        .collect();
    let more = skip + data.len() < matching.len();
    let after = more.then(|| (skip + data.len()).to_string());
    let before = (skip > 0).then(|| skip.to_string());
    ok(json!({
        "data": data,
        "paging": {
            "cursors": { "before": before, "after": after },
            "next": after.as_ref().map(|after| format!("{}?after={after}", request.path)),
            "previous": null,
        }
    }))
}

/// One history record: the message as Meta shapes it, Kapso's fields under `kapso`.
fn history_record(sent: &AcceptedMessage, with_callback_data: bool) -> Value {
    let mut record = sent.content.clone();
    record["id"] = json!(sent.wamid);
    record["timestamp"] = json!(sent.timestamp.to_string());
    record["to"] = json!(sent.to);
    if let Some(callback) = sent
        .biz_opaque_callback_data
        .as_ref()
        .filter(|_| with_callback_data)
    {
        record["biz_opaque_callback_data"] = json!(callback);
    }
    record["kapso"] = json!({
        "direction": "outbound",
        "status": "sent",
        "phone_number": format!("+{}", sent.to),
        "has_media": false,
    });
    record
}

/// `since` as Unix seconds: an RFC 3339 time or plain seconds.
fn since_seconds(raw: &str) -> Option<i64> {
    if let Ok(seconds) = raw.trim().parse::<i64>() {
        return Some(seconds);
    }
    inbox_domain::Timestamp::parse_rfc3339(raw.trim())
        .ok()
        .map(|at| at.as_millis().div_euclid(1000))
}

fn conversations(
    shared: &Mutex<Shared>,
    request: &RecordedRequest,
    phone_number_id: &str,
) -> Response {
    let query = request.query_pairs();
    let param = |name: &str| {
        query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let limit = param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(20);
    let shared = lock(shared);
    let data = shared
        .conversations
        .iter()
        .rev()
        .filter(|c| param("phone_number").is_none_or(|p| digits(p) == c.phone_digits))
        .filter(|c| param("status").is_none_or(|s| s == c.status))
        .take(limit)
        .map(|c| {
            json!({
                "id": c.id,
                "phone_number": format!("+{}", c.phone_digits),
                "phone_number_id": phone_number_id,
                "status": c.status,
            })
        })
        .collect();
    paged(data)
}

/// The project's numbers, page-based as Kapso's Platform API lists them.
fn phone_numbers(shared: &Mutex<Shared>, request: &RecordedRequest) -> Response {
    let query = request.query_pairs();
    let param = |name: &str| {
        query
            .iter()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| value.parse::<usize>().ok())
    };
    let page = param("page").unwrap_or(1).max(1);
    let per_page = param("per_page").unwrap_or(20).clamp(1, 100);
    let shared = lock(shared);
    let total = shared.phone_numbers.len();
    let data = shared
        .phone_numbers
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|id| {
            json!({
                "phone_number_id": id,
                "display_phone_number": "+1 555 000 0000",
                "status": "CONNECTED",
                "inbound_processing_enabled": true,
            })
        })
        .collect::<Vec<_>>();
    ok(json!({
        "data": data,
        "meta": {
            "page": page,
            "per_page": per_page,
            "total_pages": total.div_ceil(per_page).max(1),
            "total_count": total,
        }
    }))
}

fn flow_executions(shared: &Mutex<Shared>, conversation_id: &str) -> Response {
    let shared = lock(shared);
    // Newest first, as Kapso lists them.
    let data = shared
        .executions
        .iter()
        .rev()
        .filter(|e| e.conversation_id == conversation_id)
        .map(execution_json)
        .collect();
    paged(data)
}

fn update_execution(
    shared: &Mutex<Shared>,
    request: &RecordedRequest,
    execution_id: &str,
) -> Response {
    let wanted = request
        .body
        .as_ref()
        .and_then(|b| b.pointer("/workflow_execution/status"))
        .and_then(Value::as_str);
    let Some(wanted @ ("ended" | "handoff" | "waiting")) = wanted else {
        return error_body(
            StatusCode::UNPROCESSABLE_ENTITY,
            "workflow_execution.status must be one of ended, handoff, waiting",
            None,
        );
    };
    let mut shared = lock(shared);
    let Some(execution) = shared.executions.iter_mut().find(|e| e.id == execution_id) else {
        return error_body(StatusCode::NOT_FOUND, "Workflow execution not found", None);
    };
    if matches!(execution.status.as_str(), "ended" | "failed" | "completed") {
        return error_body(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid status transition from a terminal state",
            None,
        );
    }
    wanted.clone_into(&mut execution.status);
    ok(json!({ "data": execution_json(execution) }))
}

fn execution_json(execution: &FakeExecution) -> Value {
    json!({
        "id": execution.id,
        "status": execution.status,
        "whatsapp_conversation_id": execution.conversation_id,
    })
}

fn digits(phone: &str) -> &str {
    phone.trim().trim_start_matches('+')
}
