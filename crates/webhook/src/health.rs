//! `/healthz` (the process is alive) and `/readyz` (the database answers), served by both
//! binaries without authentication.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use inbox_domain::ports::Health;
use serde_json::json;

/// The probe routes.
pub fn router(health: Arc<dyn Health>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .with_state(health)
}

async fn ready(State(health): State<Arc<dyn Health>>) -> Response {
    match health.ping().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": {"code": "unavailable", "message": "The database is not reachable."}})),
            )
                .into_response()
        }
    }
}
