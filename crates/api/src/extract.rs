//! Request extractors whose rejections use the API's error shape and name the offending field.
//! Query and body types deny unknown fields, so a typo is a 422 instead of a silently wider
//! filter.

use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body (at most 1 MiB), deserialised with the field path of any error.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(bytes) => bytes,
            Err(rejection) if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::PayloadTooLarge("1 MiB"));
            }
            Err(_) => return Err(ApiError::invalid("body", "could not be read")),
        };
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let inner = e.inner();
            if inner.is_syntax() || inner.is_eof() {
                ApiError::invalid("body", format!("is not valid JSON ({inner})"))
            } else {
                field_error(&e.path().to_string(), &inner.to_string(), "body")
            }
        })?;
        de.end()
            .map_err(|e| ApiError::invalid("body", format!("is not valid JSON ({e})")))?;
        Ok(Self(value))
    }
}

/// The query string, deserialised with the field name of any error.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Self)
            .map_err(|e| field_error(&e.path().to_string(), &e.inner().to_string(), "query"))
    }
}

/// A path parameter; an id that is not a UUID is a 422 naming the parameter (`id`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|rejection| match rejection {
                PathRejection::FailedToDeserializePathParams(e) => {
                    let field = match e.kind() {
                        ErrorKind::ParseErrorAtKey { key, .. }
                        | ErrorKind::DeserializeError { key, .. }
                        | ErrorKind::InvalidUtf8InPathParam { key } => key.clone(),
                        _ => "id".to_owned(),
                    };
                    ApiError::invalid(field, "must be a UUID")
                }
                other => ApiError::Internal(other.body_text()),
            })
    }
}

/// Deserialises a field that may be absent (`None`), `null` (`Some(None)`) or a value, for
/// patches where `null` clears and absence leaves alone. Use with `#[serde(default)]`.
///
/// # Errors
/// When the value is neither `null` nor a `T`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// Turns a serde error at `path` into a validation error naming the field. serde reports an
/// unknown, missing or repeated field at its parent's path, with the name in backticks; an error
/// with no path at all is blamed on `whole` (the body or the query string).
fn field_error(path: &str, message: &str, whole: &str) -> ApiError {
    let named = message.split('`').nth(1).filter(|_| {
        ["unknown field", "missing field", "duplicate field"]
            .iter()
            .any(|prefix| message.starts_with(prefix))
    });
    let field = match (named, path) {
        (Some(name), "." | "") => name.to_owned(),
        // Some deserialisers (the query string's) already put the unknown key in the path.
        (Some(name), path) if path == name || path.ends_with(&format!(".{name}")) => {
            path.to_owned()
        }
        (Some(name), parent) => format!("{parent}.{name}"),
        (None, "." | "") => whole.to_owned(),
        (None, path) => path.to_owned(),
    };
    let message = message
        .split(", expected one of")
        .next()
        .unwrap_or(message)
        .to_owned();
    ApiError::invalid(field, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(e: ApiError) -> String {
        match e {
            ApiError::Validation(errors) => errors[0].field.clone(),
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn names_unknown_and_missing_fields() {
        assert_eq!(
            field_of(field_error(
                ".",
                "unknown field `stauts`, expected one of `status`",
                "body"
            )),
            "stauts"
        );
        assert_eq!(
            field_of(field_error(".", "missing field `name`", "body")),
            "name"
        );
        assert_eq!(
            field_of(field_error("template", "missing field `name`", "body")),
            "template.name"
        );
        assert_eq!(
            field_of(field_error(
                "limit",
                "invalid digit found in string",
                "query"
            )),
            "limit"
        );
    }
}
