//! The one error type of the HTTP API: a stable machine-readable `code`, a human sentence, and
//! nothing internal. Unexpected failures are logged once, with their cause, and answered 500.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use inbox_domain::ports::StoreError;
use inbox_domain::sending::SendRefused;
use inbox_domain::{Timestamp, ValidationError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::routes::views::MessageView;

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No, unknown or revoked token.
    #[error("Authentication required: send `Authorization: Bearer <token>` with a valid token.")]
    Unauthorized,
    /// The caller is not a member of the workspace, or their role does not allow the action.
    #[error("{0}")]
    Forbidden(String),
    /// Missing, or outside the caller's visibility (never revealed to exist).
    #[error("{0} not found.")]
    NotFound(&'static str),
    /// Input that does not make valid values.
    #[error("{}", validation_message(.0))]
    Validation(Vec<ValidationError>),
    /// The route exists but does not answer this method.
    #[error("This route does not support this method.")]
    MethodNotAllowed,
    /// A uniqueness rule refused the change.
    #[error("{message}")]
    Conflict {
        /// What collided.
        message: String,
        /// The id of the existing resource, when there is one to name.
        existing_id: Option<String>,
    },
    /// The request body is over the limit.
    #[error("The request body is larger than {0}.")]
    PayloadTooLarge(&'static str),
    /// Free-form text outside the 24-hour customer-service window; only a template may be sent.
    #[error("{}", window_message(*.closed_at))]
    ReplyWindowClosed {
        /// When the window closed; `None` when the contact never wrote.
        closed_at: Option<Timestamp>,
    },
    /// An `Idempotency-Key` reused with a different request.
    #[error(
        "This Idempotency-Key was already used with a different request; use a new key for a new message."
    )]
    IdempotencyKeyReused,
    /// Too many requests; retry after the given seconds.
    #[error("Too many messages sent in the last minute; retry in {retry_after_secs} s.")]
    RateLimited {
        /// Seconds to wait (`Retry-After`).
        retry_after_secs: u64,
    },
    /// A repeat of a keyed send whose first request is still being processed, while another
    /// repeat of it already waits for the answer.
    #[error(
        "A request with this Idempotency-Key is still being processed and another repeat already waits for it; retry shortly."
    )]
    RequestInProgress,
    /// A per-token limit other than sends: too many requests a minute, or too many open event
    /// streams.
    #[error("{message}")]
    TooManyRequests {
        /// Which limit, and what to do.
        message: String,
        /// Seconds to wait (`Retry-After`).
        retry_after_secs: u64,
    },
    /// Kapso refused the message for good. For a send, the stored `failed` message comes along.
    #[error("{reason}")]
    Kapso {
        /// A sentence naming what Kapso said.
        reason: String,
        /// The message as stored, `failed` with the error.
        message: Option<Box<MessageView>>,
    },
    /// The database cannot be reached; retry later.
    #[error("The service is temporarily unavailable; retry shortly.")]
    Unavailable,
    /// A bug or broken data; the detail is logged, never sent.
    #[error("Something went wrong on our side; it has been logged.")]
    Internal(String),
}

fn window_message(closed_at: Option<Timestamp>) -> String {
    match closed_at {
        Some(at) => format!(
            "The 24-hour reply window closed at {at}; send a template instead."
        ),
        None => "This contact has never written, so the 24-hour reply window is not open; send a template instead.".to_owned(),
    }
}

fn validation_message(errors: &[ValidationError]) -> String {
    match errors {
        [one] => format!(
            "Invalid `{}`: {}.",
            one.field,
            one.message.trim_end_matches('.')
        ),
        _ => {
            let fields: Vec<_> = errors.iter().map(|e| format!("`{}`", e.field)).collect();
            format!("Invalid fields: {}.", fields.join(", "))
        }
    }
}

impl ApiError {
    /// A single-field validation failure.
    #[must_use]
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![ValidationError::new(field, message)])
    }

    /// The status code and stable code of this error.
    #[must_use]
    pub const fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::ReplyWindowClosed { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "reply_window_closed")
            }
            Self::IdempotencyKeyReused => (StatusCode::CONFLICT, "idempotency_key_reused"),
            Self::RequestInProgress => (StatusCode::CONFLICT, "request_in_progress"),
            Self::RateLimited { .. } | Self::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
            }
            Self::Kapso { .. } => (StatusCode::BAD_GATEWAY, "kapso_error"),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::Validation(vec![e])
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("Resource"),
            StoreError::Duplicate(field) => Self::Conflict {
                message: format!("A resource with this `{field}` already exists."),
                existing_id: None,
            },
            StoreError::MissingReference(field) => {
                Self::invalid(field.clone(), format!("no such {field}"))
            }
            StoreError::Unavailable(reason) | StoreError::Retryable(reason) => {
                tracing::warn!(error = %reason, "database unavailable");
                Self::Unavailable
            }
            StoreError::Internal(reason) => Self::Internal(reason),
        }
    }
}

impl From<SendRefused> for ApiError {
    fn from(e: SendRefused) -> Self {
        match e {
            SendRefused::ReplyWindowClosed { closed_at } => Self::ReplyWindowClosed { closed_at },
            SendRefused::Invalid { field, message } => Self::invalid(field, message),
            SendRefused::RateLimited { retry_after_secs } => Self::RateLimited { retry_after_secs },
            SendRefused::Store(e) => e.into(),
        }
    }
}

/// The error body: `{"error": {"code", "message", "details"?}}`, and for a send Kapso refused,
/// the stored `failed` message beside it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
    /// For `kapso_error` on a send: the message as stored, `failed` with Kapso's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageView>,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: `unauthorized`, `forbidden`, `not_found`,
    /// `validation_failed`, `conflict`, `reply_window_closed`, `idempotency_key_reused`,
    /// `payload_too_large`, `rate_limited`, `kapso_error`, `unavailable`, `internal`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// For `validation_failed`: each refused field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<FieldError>>,
    /// For `conflict`: the existing resource's id, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing_id: Option<String>,
}

/// One refused field.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldError {
    /// The field, as the client named it.
    pub field: String,
    /// What a valid value looks like.
    pub message: String,
}

impl ApiError {
    /// The JSON body of this error.
    #[must_use]
    pub fn body(&self) -> ErrorBody {
        let (_, code) = self.status_and_code();
        let details = match self {
            Self::Validation(errors) => Some(
                errors
                    .iter()
                    .map(|e| FieldError {
                        field: e.field.clone(),
                        message: e.message.clone(),
                    })
                    .collect(),
            ),
            _ => None,
        };
        let existing_id = match self {
            Self::Conflict { existing_id, .. } => existing_id.clone(),
            _ => None,
        };
        let message = match self {
            Self::Kapso { message, .. } => message.as_deref().cloned(),
            _ => None,
        };
        ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: self.to_string(),
                details,
                existing_id,
            },
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.status_and_code();
        if let Self::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        let mut response = (status, Json(self.body())).into_response();
        if let Self::RateLimited { retry_after_secs }
        | Self::TooManyRequests {
            retry_after_secs, ..
        } = &self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
