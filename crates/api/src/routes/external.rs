//! Documentation of the routes this crate serves but does not build from the documented route
//! list: the OpenAPI document itself, the health probes and the webhook receiver (whose routers
//! live in `inbox-webhook` and are merged beside the API). These functions are never called;
//! their annotations put the routes into the OpenAPI document, so that it lists every route a
//! client can reach.

use crate::error::ErrorBody;

/// This OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of every route", content_type = "application/json"))
)]
pub async fn openapi_json() {}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "meta",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", content_type = "application/json"))
)]
pub async fn healthz() {}

/// Readiness: the database answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "meta",
    responses(
        (status = 200, description = "The database answers", content_type = "application/json"),
        (status = 503, description = "The database is unavailable", content_type = "application/json"),
    )
)]
pub async fn readyz() {}

/// Kapso v2 deliveries (single or batch) and Meta-format deliveries, signed with HMAC-SHA256
/// of the raw body. Served unless `inbox-api` runs with `--no-webhook`.
#[utoipa::path(
    post,
    path = "/api/webhook/kapso",
    tag = "webhook",
    request_body(content = Object, description = "A Kapso v2 event, a Kapso batch, or a Meta `whatsapp_business_account` payload", content_type = "application/json"),
    params(
        ("X-Webhook-Signature" = Option<String>, Header, description = "Kapso's hex HMAC-SHA256 of the raw body"),
        ("X-Hub-Signature-256" = Option<String>, Header, description = "Meta's `sha256=<hex>` signature"),
        ("X-Idempotency-Key" = Option<String>, Header, description = "Kapso's delivery key; a repeat has no further effect"),
    ),
    responses(
        (status = 200, description = "`{\"received\": true}`: durably stored (also for a repeated delivery)", content_type = "application/json"),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "Bad or missing signature", body = ErrorBody),
        (status = 413, description = "Body over 3 MiB", body = ErrorBody),
        (status = 503, description = "The database is unavailable; Kapso retries", body = ErrorBody),
    )
)]
pub async fn webhook_receive() {}

/// Meta's verification handshake.
#[utoipa::path(
    get,
    path = "/api/webhook/kapso",
    tag = "webhook",
    params(
        ("hub.mode" = String, Query, description = "`subscribe`"),
        ("hub.verify_token" = String, Query, description = "Must equal the configured verify token"),
        ("hub.challenge" = String, Query, description = "Echoed back"),
    ),
    responses(
        (status = 200, description = "The challenge, as `text/plain`", content_type = "text/plain"),
        (status = 403, description = "The token does not match", body = ErrorBody),
    )
)]
pub async fn webhook_handshake() {}
