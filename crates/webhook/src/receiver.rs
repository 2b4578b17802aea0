//! `POST /api/webhook/kapso` (Kapso v2 single and batch deliveries, raw Meta payloads) and
//! `GET /api/webhook/kapso` (Meta's verification handshake).
//!
//! A POST is verified on its raw bytes before anything is written, then stored and applied in
//! one transaction by the domain's ingest use case, and answered 200 only once that committed.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use inbox_domain::delivery::NewDelivery;
use inbox_domain::ingest::{DeliveryFacts, IngestOutcome, ingest};
use inbox_domain::ports::{Repository, StoreError};
use inbox_domain::workspace::Secret;
use inbox_domain::{DeliveryId, Timestamp};
use inbox_kapso::signature::{KAPSO_SIGNATURE_HEADER, META_SIGNATURE_HEADER};
use inbox_kapso::webhook::{DELIVERY_HEADERS, EVENT_HEADER, IDEMPOTENCY_HEADER};
use inbox_kapso::{ParseError, parse_routed, peek_phone_number_id};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The path both methods are served on.
pub const WEBHOOK_PATH: &str = "/api/webhook/kapso";

/// Largest accepted body. Kapso batches stay far below it; anything bigger is refused with 413.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Longest accepted `X-Idempotency-Key` (Kapso sends UUIDs).
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 128;

/// The receiver's secrets, parsed once at boot by the binary.
#[derive(Clone, Debug, Default)]
pub struct WebhookSettings {
    /// Deployment-wide Kapso webhook secret (`INBOX_KAPSO_WEBHOOK_SECRET`), used for workspaces
    /// without a secret of their own and for deliveries naming no known workspace.
    pub kapso_webhook_secret: Option<Secret>,
    /// Meta app secret (`INBOX_META_APP_SECRET`), for `X-Hub-Signature-256`.
    pub meta_app_secret: Option<Secret>,
    /// The token Meta's GET handshake must present (`INBOX_META_VERIFY_TOKEN`).
    pub meta_verify_token: Option<Secret>,
}

/// What the receiver's handlers share.
#[derive(Clone)]
pub struct WebhookState {
    repo: Arc<dyn Repository>,
    settings: Arc<WebhookSettings>,
}

impl WebhookState {
    /// The state over a repository and the settings.
    #[must_use]
    pub fn new(repo: Arc<dyn Repository>, settings: WebhookSettings) -> Self {
        Self {
            repo,
            settings: Arc::new(settings),
        }
    }
}

/// The webhook routes, ready to serve or to `merge` into the API's router.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route(WEBHOOK_PATH, get(handshake).post(receive))
        .with_state(state)
}

/// An error answer in the API's shape.
fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn unauthorized() -> Response {
    refuse(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "The webhook signature is missing or does not match the body.",
    )
}

fn unavailable() -> Response {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "The service is temporarily unavailable; retry shortly.",
    )
}

fn internal() -> Response {
    refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Something went wrong on our side; it has been logged.",
    )
}

fn store_failure(error: &StoreError) -> Response {
    match error {
        StoreError::Unavailable(_) | StoreError::Retryable(_) => {
            tracing::warn!(error = %error, "webhook: database unavailable");
            unavailable()
        }
        _ => {
            tracing::error!(error = %error, "webhook: storing the delivery failed");
            internal()
        }
    }
}

/// Meta's GET handshake: echo `hub.challenge` when `hub.verify_token` is ours.
async fn handshake(
    State(state): State<WebhookState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let expected = state.settings.meta_verify_token.as_ref();
    let mode = query.get("hub.mode").map(String::as_str);
    let token = query.get("hub.verify_token");
    match (mode, token, expected, query.get("hub.challenge")) {
        (Some("subscribe"), Some(token), Some(expected), Some(challenge))
            if constant_time_eq(token.as_bytes(), expected.expose().as_bytes()) =>
        {
            (
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                challenge.clone(),
            )
                .into_response()
        }
        _ => refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            "The verification token does not match.",
        ),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Reads the body up to the limit; `None` when it is larger.
async fn read_body(headers: &HeaderMap, body: Body) -> Option<Bytes> {
    let declared =
        header_str(headers, header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return None;
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES).await.ok()
}

async fn receive(State(state): State<WebhookState>, headers: HeaderMap, body: Body) -> Response {
    let Some(bytes) = read_body(&headers, body).await else {
        return too_large("The webhook body is larger than 3 MiB.");
    };
    let Some(key) = idempotency_key(&headers, &bytes) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "bad_request",
            &format!("X-Idempotency-Key is longer than {MAX_IDEMPOTENCY_KEY_BYTES} bytes."),
        );
    };
    let event = header_str(&headers, EVENT_HEADER);
    // The Kapso secret to verify with depends on the workspace the payload names, so the
    // business number is peeked at first, streaming, without building a tree of the body;
    // nothing is parsed further or written before the signature holds.
    let peeked = peek_phone_number_id(&bytes);
    let signer = match verify(&state, &headers, &bytes, peeked.as_deref()).await {
        Ok(Some(signer)) => signer,
        Ok(None) => {
            tracing::warn!(
                phone_number_id = bounded(peeked.as_deref().unwrap_or("-")),
                "webhook: refused a delivery whose signature does not verify; if it came from \
                 Kapso, the webhook secret stored here differs from Kapso's: set it with \
                 `inbox-api admin workspace set-kapso --workspace <slug> --phone-number-id <id> --webhook-secret -`"
            );
            return unauthorized();
        }
        Err(e) => return store_failure(&e),
    };
    let routed = match parse_routed(event, &bytes) {
        Ok(routed) => routed,
        Err(ParseError::NotJson(_)) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "The webhook body is not JSON.",
            );
        }
        Err(e @ ParseError::TooManyElements { .. }) => return too_large(&e.to_string()),
        Err(e) => return keep_unreadable(&state, &headers, &bytes, key, peeked, &e).await,
    };
    let parts = match signer {
        // One HMAC covers the whole body: a body signed with one workspace's secret speaks
        // for that workspace alone, so every number it names must be the one it was
        // verified for.
        Signer::Kapso => {
            let foreign = routed
                .named_numbers
                .iter()
                .find(|named| Some(named.as_str()) != peeked.as_deref());
            if let Some(foreign) = foreign {
                tracing::warn!(
                    phone_number_id = bounded(peeked.as_deref().unwrap_or("-")),
                    named = bounded(foreign),
                    "webhook: refused a signed delivery that names a business number other than \
                     the one its signature was verified for"
                );
                return unauthorized();
            }
            vec![routed.into_single(peeked)]
        }
        // The deployment's Meta app secret is the operator's: a Meta delivery may carry
        // several numbers, and each part goes to its own workspace.
        Signer::Meta if routed.parts.is_empty() => vec![routed.into_single(None)],
        Signer::Meta => routed.parts,
    };
    let split = parts.len() > 1;
    for facts in &parts {
        let key = match (&facts.phone_number_id, split) {
            (Some(number), true) => format!("{key}#{number}"),
            (None, true) => format!("{key}#-"),
            (_, false) => key.clone(),
        };
        let delivery = NewDelivery {
            id: DeliveryId::new(),
            idempotency_key: Some(key),
            event: event.map(str::to_owned),
            phone_number_id: facts.phone_number_id.clone(),
            headers: kept_headers(&headers),
            body: bytes.to_vec(),
            received_at: Timestamp::now(),
        };
        // A part stored before a later one failed is a duplicate when the sender retries, so
        // answering 503 here loses nothing and stores nothing twice.
        if let Err(response) = accept(&state, &delivery, facts).await {
            return response;
        }
    }
    received()
}

/// Signed, but in a shape we cannot read: kept as failed, for a replay once the parser knows
/// the shape. Answering 200 stops retries that cannot succeed.
async fn keep_unreadable(
    state: &WebhookState,
    headers: &HeaderMap,
    bytes: &Bytes,
    key: String,
    phone_number_id: Option<String>,
    error: &ParseError,
) -> Response {
    let delivery = NewDelivery {
        id: DeliveryId::new(),
        idempotency_key: Some(key),
        event: header_str(headers, EVENT_HEADER).map(str::to_owned),
        phone_number_id,
        headers: kept_headers(headers),
        body: bytes.to_vec(),
        received_at: Timestamp::now(),
    };
    tracing::warn!(delivery.id = %delivery.id, error = %error, "webhook: unreadable delivery stored as failed");
    let recorded = state
        .repo
        .record_delivery(
            &delivery,
            None,
            inbox_domain::delivery::DeliveryOutcome::Failed,
            Some(error.to_string()),
        )
        .await;
    match recorded {
        Ok(_) => received(),
        Err(e) => store_failure(&e),
    }
}

async fn accept(
    state: &WebhookState,
    delivery: &NewDelivery,
    facts: &DeliveryFacts,
) -> Result<(), Response> {
    match ingest(state.repo.as_ref(), delivery, facts).await {
        Ok(outcome) => {
            match &outcome {
                IngestOutcome::Processed | IngestOutcome::Duplicate => {
                    tracing::debug!(delivery.id = %delivery.id, outcome = ?outcome, "webhook: delivery stored");
                }
                IngestOutcome::Ignored(reason) => {
                    tracing::info!(delivery.id = %delivery.id, reason, "webhook: delivery ignored");
                }
                IngestOutcome::Failed(error) => {
                    tracing::error!(delivery.id = %delivery.id, error, "webhook: delivery failed; stored for replay");
                }
            }
            Ok(())
        }
        Err(e) => Err(store_failure(&e)),
    }
}

fn received() -> Response {
    axum::Json(json!({"received": true})).into_response()
}

fn too_large(message: &str) -> Response {
    refuse(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
}

/// Who vouched for a verified body.
enum Signer {
    /// A workspace's Kapso webhook secret (or the deployment-wide one of a lone workspace).
    Kapso,
    /// The deployment's Meta app secret.
    Meta,
}

/// Who signed the body, under the secret that applies; `None` when the signature does not
/// verify or no secret applies (fail closed).
async fn verify(
    state: &WebhookState,
    headers: &HeaderMap,
    body: &[u8],
    phone_number_id: Option<&str>,
) -> Result<Option<Signer>, StoreError> {
    if let Some(signature) = header_str(headers, KAPSO_SIGNATURE_HEADER) {
        let Some(secret) = kapso_secret(state, phone_number_id).await? else {
            return Ok(None);
        };
        let valid =
            inbox_kapso::signature::verify_kapso(secret.expose().as_bytes(), body, Some(signature))
                .is_ok();
        return Ok(valid.then_some(Signer::Kapso));
    }
    if let Some(signature) = header_str(headers, META_SIGNATURE_HEADER) {
        let Some(secret) = &state.settings.meta_app_secret else {
            return Ok(None);
        };
        let valid =
            inbox_kapso::signature::verify_meta(secret.expose().as_bytes(), body, Some(signature))
                .is_ok();
        return Ok(valid.then_some(Signer::Meta));
    }
    Ok(None)
}

/// The workspace's own webhook secret; else the deployment-wide one, but only while at most one
/// workspace exists: with two, a shared secret no longer says which tenant signed.
async fn kapso_secret(
    state: &WebhookState,
    phone_number_id: Option<&str>,
) -> Result<Option<Secret>, StoreError> {
    if let Some(id) = phone_number_id {
        let own = state
            .repo
            .kapso_credentials_by_phone_number_id(id)
            .await?
            .and_then(|c| c.webhook_secret);
        if own.is_some() {
            return Ok(own);
        }
    }
    let Some(deployment) = &state.settings.kapso_webhook_secret else {
        return Ok(None);
    };
    Ok((state.repo.workspace_count().await? <= 1).then(|| deployment.clone()))
}

/// At most 64 bytes of a string the sender chose, for a log line.
fn bounded(text: &str) -> &str {
    let mut end = text.len().min(64);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `X-Idempotency-Key`, or for senders without one (Meta) a hash of the body, so that an
/// identical re-delivery is still recognised; `None` when the key is longer than
/// [`MAX_IDEMPOTENCY_KEY_BYTES`].
fn idempotency_key(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    match header_str(headers, IDEMPOTENCY_HEADER).map(str::trim) {
        Some(key) if key.len() > MAX_IDEMPOTENCY_KEY_BYTES => None,
        Some(key) if !key.is_empty() => Some(key.to_owned()),
        _ => Some(format!("sha256:{}", hex::encode(Sha256::digest(body)))),
    }
}

fn kept_headers(headers: &HeaderMap) -> Value {
    let kept: serde_json::Map<String, Value> = DELIVERY_HEADERS
        .iter()
        .filter_map(|name| header_str(headers, name).map(|v| ((*name).to_owned(), json!(v))))
        .collect();
    Value::Object(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_falls_back_to_a_body_hash() {
        let mut headers = HeaderMap::new();
        let hashed = idempotency_key(&headers, b"{}").expect("no key is fine");
        assert!(hashed.starts_with("sha256:"));
        assert_eq!(idempotency_key(&headers, b"{}"), Some(hashed));
        headers.insert("x-idempotency-key", "abc".parse().expect("header value"));
        assert_eq!(idempotency_key(&headers, b"{}").as_deref(), Some("abc"));
        let long = "k".repeat(MAX_IDEMPOTENCY_KEY_BYTES + 1);
        headers.insert("x-idempotency-key", long.parse().expect("header value"));
        assert_eq!(idempotency_key(&headers, b"{}"), None);
    }

    #[test]
    fn signatures_are_never_kept() {
        let mut headers = HeaderMap::new();
        headers.insert("x-webhook-signature", "s".parse().expect("header value"));
        headers.insert("x-webhook-event", "e".parse().expect("header value"));
        assert_eq!(kept_headers(&headers), json!({"x-webhook-event": "e"}));
    }

    #[test]
    fn logged_sender_strings_are_bounded() {
        assert_eq!(bounded("short"), "short");
        assert_eq!(bounded(&"x".repeat(1000)).len(), 64);
        assert!(bounded(&"é".repeat(100)).len() <= 64);
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
