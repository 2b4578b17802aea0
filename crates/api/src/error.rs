//! The one error type of the HTTP API: a stable machine-readable `code`, a human sentence, and
//! nothing internal. Unexpected failures are logged once, with their cause, and answered 500.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use inbox_domain::ValidationError;
use inbox_domain::ports::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

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
    /// The database cannot be reached; retry later.
    #[error("The service is temporarily unavailable; retry shortly.")]
    Unavailable,
    /// A bug or broken data; the detail is logged, never sent.
    #[error("Something went wrong on our side; it has been logged.")]
    Internal(String),
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
            StoreError::Unavailable(reason) => {
                tracing::warn!(error = %reason, "database unavailable");
                Self::Unavailable
            }
            StoreError::Internal(reason) => Self::Internal(reason),
        }
    }
}

/// The error body: `{"error": {"code", "message", "details"?}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: `unauthorized`, `forbidden`, `not_found`,
    /// `validation_failed`, `conflict`, `payload_too_large`, `unavailable`, `internal`, ...
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        let details = match &self {
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
        let existing_id = match &self {
            Self::Conflict { existing_id, .. } => existing_id.clone(),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: self.to_string(),
                details,
                existing_id,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
