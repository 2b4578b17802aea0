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
use inbox_kapso::{ParseError, parse_delivery};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The path both methods are served on.
pub const WEBHOOK_PATH: &str = "/api/webhook/kapso";

/// Largest accepted body. Kapso batches stay far below it; anything bigger is refused with 413.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// The headers kept with a stored delivery (lower case). Never the signatures.
const KEPT_HEADERS: [&str; 6] = [
    "content-type",
    "x-webhook-event",
    "x-idempotency-key",
    "x-webhook-payload-version",
    "x-webhook-batch",
    "x-batch-size",
];

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
        StoreError::Unavailable(_) => {
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
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "The webhook body is larger than 3 MiB.",
        );
    };
    let event = header_str(&headers, "x-webhook-event");
    // The Kapso secret to verify with depends on the workspace the payload names, so the
    // business number is peeked at first; nothing is parsed further or written before the
    // signature holds.
    let peeked = peek_phone_number_id(&bytes);
    match verify(&state, &headers, &bytes, peeked.as_deref()).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(
                phone_number_id = peeked.as_deref().unwrap_or("-"),
                "webhook: refused a delivery whose signature does not verify; if it came from \
                 Kapso, the webhook secret stored here differs from Kapso's: set it with \
                 `inbox-api admin workspace set-kapso --workspace <slug> --phone-number-id <id> --webhook-secret -`"
            );
            return unauthorized();
        }
        Err(e) => return store_failure(&e),
    }
    let parsed = parse_delivery(event, &bytes);
    let phone_number_id = match &parsed {
        Ok(facts) => facts.phone_number_id.clone().or(peeked),
        Err(_) => peeked,
    };

    let delivery = NewDelivery {
        id: DeliveryId::new(),
        idempotency_key: Some(idempotency_key(&headers, &bytes)),
        event: event.map(str::to_owned),
        phone_number_id,
        headers: kept_headers(&headers),
        body: bytes.to_vec(),
        received_at: Timestamp::now(),
    };
    match parsed {
        Ok(facts) => accept(&state, &delivery, &facts).await,
        Err(ParseError::NotJson(_)) => refuse(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The webhook body is not JSON.",
        ),
        Err(e) => {
            // Signed by Kapso but in a shape we cannot read: keep it, as failed, for a replay
            // once the parser knows the shape. Answering 200 stops retries that cannot succeed.
            tracing::warn!(delivery.id = %delivery.id, error = %e, "webhook: unreadable delivery stored as failed");
            let recorded = state
                .repo
                .record_delivery(
                    &delivery,
                    None,
                    inbox_domain::delivery::DeliveryOutcome::Failed,
                    Some(e.to_string()),
                )
                .await;
            match recorded {
                Ok(_) => received(),
                Err(e) => store_failure(&e),
            }
        }
    }
}

async fn accept(state: &WebhookState, delivery: &NewDelivery, facts: &DeliveryFacts) -> Response {
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
            received()
        }
        Err(e) => store_failure(&e),
    }
}

fn received() -> Response {
    axum::Json(json!({"received": true})).into_response()
}

/// Whether the body carries a valid signature under the secret that applies; fails closed when
/// no secret applies.
async fn verify(
    state: &WebhookState,
    headers: &HeaderMap,
    body: &[u8],
    phone_number_id: Option<&str>,
) -> Result<bool, StoreError> {
    if let Some(signature) = header_str(headers, KAPSO_SIGNATURE_HEADER) {
        let Some(secret) = kapso_secret(state, phone_number_id).await? else {
            return Ok(false);
        };
        return Ok(inbox_kapso::signature::verify_kapso(
            secret.expose().as_bytes(),
            body,
            Some(signature),
        )
        .is_ok());
    }
    if let Some(signature) = header_str(headers, META_SIGNATURE_HEADER) {
        let Some(secret) = &state.settings.meta_app_secret else {
            return Ok(false);
        };
        return Ok(inbox_kapso::signature::verify_meta(
            secret.expose().as_bytes(),
            body,
            Some(signature),
        )
        .is_ok());
    }
    Ok(false)
}

/// The workspace's own webhook secret, else the deployment-wide one.
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
    Ok(state.settings.kapso_webhook_secret.clone())
}

fn body_json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

/// The business number a body names, for bodies the parser could not read: the first
/// `phone_number_id` found where Kapso v2 and Meta put it.
fn peek_phone_number_id(body: &[u8]) -> Option<String> {
    let value = body_json(body);
    let candidates = [
        value.pointer("/phone_number_id"),
        value.pointer("/data/0/phone_number_id"),
        value.pointer("/data/phone_number_id"),
        value.pointer("/conversation/phone_number_id"),
        value.pointer("/message/kapso/phone_number_id"),
        value.pointer("/entry/0/changes/0/value/metadata/phone_number_id"),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(Value::as_str)
        .map(str::to_owned)
}

/// `X-Idempotency-Key`, or for senders without one (Meta) a hash of the body, so that an
/// identical re-delivery is still recognised.
fn idempotency_key(headers: &HeaderMap, body: &[u8]) -> String {
    match header_str(headers, "x-idempotency-key").map(str::trim) {
        Some(key) if !key.is_empty() => key.to_owned(),
        _ => format!("sha256:{}", hex::encode(Sha256::digest(body))),
    }
}

fn kept_headers(headers: &HeaderMap) -> Value {
    let kept: serde_json::Map<String, Value> = KEPT_HEADERS
        .iter()
        .filter_map(|name| header_str(headers, name).map(|v| ((*name).to_owned(), json!(v))))
        .collect();
    Value::Object(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeks_where_kapso_and_meta_put_the_phone_number_id() {
        assert_eq!(
            peek_phone_number_id(br#"{"phone_number_id":"1"}"#).as_deref(),
            Some("1")
        );
        assert_eq!(
            peek_phone_number_id(br#"{"data":[{"phone_number_id":"2"}]}"#).as_deref(),
            Some("2")
        );
        assert_eq!(
            peek_phone_number_id(
                br#"{"entry":[{"changes":[{"value":{"metadata":{"phone_number_id":"3"}}}]}]}"#
            )
            .as_deref(),
            Some("3")
        );
        assert_eq!(peek_phone_number_id(b"not json"), None);
    }

    #[test]
    fn idempotency_falls_back_to_a_body_hash() {
        let mut headers = HeaderMap::new();
        assert!(idempotency_key(&headers, b"{}").starts_with("sha256:"));
        assert_eq!(
            idempotency_key(&headers, b"{}"),
            idempotency_key(&headers, b"{}")
        );
        headers.insert("x-idempotency-key", "abc".parse().expect("header value"));
        assert_eq!(idempotency_key(&headers, b"{}"), "abc");
    }

    #[test]
    fn signatures_are_never_kept() {
        let mut headers = HeaderMap::new();
        headers.insert("x-webhook-signature", "s".parse().expect("header value"));
        headers.insert("x-webhook-event", "e".parse().expect("header value"));
        assert_eq!(kept_headers(&headers), json!({"x-webhook-event": "e"}));
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
