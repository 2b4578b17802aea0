//! Kapso's failures, classified by what the caller should do next.
//!
//! Two error shapes reach us through Kapso's proxy (reference section 4.3): Meta's Graph envelope
//! `{"error": {"message", "type", "code", "error_subcode", "error_data": {"details"}}}` and Kapso's
//! own `{"error": "<text>", "message"?: "<text>"}`. A Meta code decides the class when we know it
//! (the reference's retry-or-not table); otherwise the HTTP status does.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::Value;

pub use inbox_domain::ports::{KapsoError, WINDOW_CLOSED_CODE};

/// How much of a non-JSON error body is kept, in characters: enough to recognise a proxy's error
/// page, not enough to carry a whole HTML document around.
const BODY_EXCERPT_CHARS: usize = 200;

/// The ways this client builds a [`KapsoError`] from what happened on the wire.
pub(crate) trait Classify: Sized {
    /// A request we refuse to send because it cannot succeed (a malformed template, an API key
    /// that is not a valid header value).
    fn invalid_request(code: &str, message: impl Into<String>) -> Self;
    /// A 2xx answer whose body is not what the endpoint documents.
    fn unexpected_response(status: StatusCode, what: &str) -> Self;
    /// A failure below HTTP: no answer at all, or an answer cut short.
    fn from_transport(error: reqwest::Error) -> Self;
    /// A non-2xx answer, classified by Meta's code when there is one, else by the status.
    fn from_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self;
}

impl Classify for KapsoError {
    fn invalid_request(code: &str, message: impl Into<String>) -> Self {
        Self::Permanent {
            status: None,
            code: Some(code.to_owned()),
            title: "Invalid request".to_owned(),
            message: message.into(),
        }
    }

    /// A 2xx answer whose body is not what the endpoint documents. Permanent, not transient:
    /// for a send, Kapso did accept something, and repeating it could message the customer twice.
    fn unexpected_response(status: StatusCode, what: &str) -> Self {
        Self::Permanent {
            status: Some(status.as_u16()),
            code: None,
            title: "Unexpected response from Kapso".to_owned(),
            message: what.to_owned(),
        }
    }

    /// A failure below HTTP: no answer at all, or an answer cut short.
    fn from_transport(error: reqwest::Error) -> Self {
        // The URL can carry a customer's phone number (the conversation lookup), so it is
        // dropped before the error is formatted anywhere.
        let error = error.without_url();
        // Only a failure to connect proves that nothing was sent; after that, the request may
        // have been written and acted on before the answer was lost.
        let outcome_unknown = !error.is_connect();
        let reason = if error.is_connect() {
            format!("could not connect to Kapso: {}", source_chain(&error))
        } else if error.is_timeout() {
            "the request to Kapso timed out".to_owned()
        } else {
            format!("the request to Kapso failed: {}", source_chain(&error))
        };
        Self::Transient {
            reason,
            retry_after: None,
            outcome_unknown,
        }
    }

    /// Classifies a non-2xx answer from its status, headers and body.
    fn from_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let retry_after = retry_after(headers);
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let described = match json.as_ref().and_then(|j| j.get("error")) {
            Some(Value::Object(meta)) => meta_error(meta),
            Some(Value::String(error)) => Described {
                code: None,
                title: error.clone(),
                message: json
                    .as_ref()
                    .and_then(|j| j.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or(error)
                    .to_owned(),
            },
            _ => Described {
                code: None,
                title: status
                    .canonical_reason()
                    .unwrap_or("Unexpected status")
                    .to_owned(),
                message: body_excerpt(body),
            },
        };
        let class = described
            .code
            .as_deref()
            .and_then(meta_class)
            .unwrap_or_else(|| status_class(status));
        match class {
            Class::WindowClosed => Self::WindowClosed {
                message: described.message,
            },
            Class::Transient => Self::Transient {
                reason: transient_reason(status, &described),
                retry_after,
                outcome_unknown: false,
            },
            Class::Permanent => Self::Permanent {
                status: Some(status.as_u16()),
                code: described.code,
                title: described.title,
                message: described.message,
            },
        }
    }
}

/// What an error body says, whatever its shape.
struct Described {
    code: Option<String>,
    title: String,
    message: String,
}

/// Reads Meta's envelope. The title is Meta's message without its `(#131047) ` prefix; the
/// message prefers `error_data.details`, the only part Meta documents as stable.
fn meta_error(meta: &serde_json::Map<String, Value>) -> Described {
    let code = match meta.get("code") {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    };
    let text = |key: &str| {
        meta.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let raw_message = text("message").unwrap_or("Unknown WhatsApp error");
    let title = text("error_user_title")
        .map(str::to_owned)
        .unwrap_or_else(|| strip_code_prefix(raw_message).to_owned());
    let details = meta
        .get("error_data")
        .and_then(|d| d.get("details"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let message = details
        .or_else(|| text("error_user_msg"))
        .unwrap_or(raw_message)
        .to_owned();
    Described {
        code,
        title,
        message,
    }
}

/// `(#131047) Re-engagement message` -> `Re-engagement message`.
fn strip_code_prefix(message: &str) -> &str {
    message
        .strip_prefix("(#")
        .and_then(|rest| rest.split_once(')'))
        .map_or(message, |(_, rest)| rest.trim_start())
}

enum Class {
    Permanent,
    Transient,
    WindowClosed,
}

/// The reference's error-code table (section 4.3). Codes not listed there are left to the HTTP
/// status.
fn meta_class(code: &str) -> Option<Class> {
    let class = match code {
        WINDOW_CLOSED_CODE => Class::WindowClosed,
        // Throughput and pair rate limits, and Meta's unknown / unavailable / maintenance errors:
        // back off and retry.
        "4" | "80007" | "130429" | "131056" | "131000" | "131016" | "131057" => Class::Transient,
        // Auth, spam limit, per-user marketing limits, undeliverable, bad parameters, media,
        // templates, integrity, billing and registration: retrying cannot help. 131048 (spam
        // rate limit) is here on purpose: the reference says not to hammer it. 131045 arrives
        // with HTTP 500 but needs an operator, so it must not fall through to the 5xx rule.
        "0" | "190" | "131048" | "131049" | "131050" | "131026" | "131021" | "100" | "131008"
        | "131009" | "135000" | "33" | "131051" | "131052" | "131053" | "132000" | "132001"
        | "132005" | "132007" | "132012" | "132015" | "132016" | "368" | "130497" | "131031"
        | "131042" | "131037" | "131045" | "133010" | "1026" => Class::Permanent,
        _ => return None,
    };
    Some(class)
}

/// 408, 409 (Kapso: another message in flight for this conversation), 429 and every 5xx may
/// succeed later; every other status will not.
fn status_class(status: StatusCode) -> Class {
    match status {
        StatusCode::REQUEST_TIMEOUT | StatusCode::CONFLICT | StatusCode::TOO_MANY_REQUESTS => {
            Class::Transient
        }
        s if s.is_server_error() => Class::Transient,
        _ => Class::Permanent,
    }
}

fn transient_reason(status: StatusCode, described: &Described) -> String {
    let what = match status {
        StatusCode::TOO_MANY_REQUESTS => "rate limited",
        StatusCode::CONFLICT => "another message is in flight for this conversation",
        _ => "temporary failure",
    };
    let code = described
        .code
        .as_deref()
        .map(|c| format!(" code {c}"))
        .unwrap_or_default();
    format!(
        "{what} (HTTP {}{code}): {}",
        status.as_u16(),
        described.message
    )
}

/// `Retry-After` in seconds, as Kapso sends it (`Retry-After: 60`). The HTTP-date form is not
/// used by Kapso and is ignored rather than guessed at.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "empty response body".to_owned();
    }
    text.chars().take(BODY_EXCERPT_CHARS).collect()
}

/// `error: cause: cause`, because reqwest's own message ("error sending request") hides the part
/// that helps (connection refused, certificate, ...).
fn source_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, retry: Option<&str>, body: &str) -> KapsoError {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry {
            headers.insert(RETRY_AFTER, value.parse().expect("a valid header value"));
        }
        let status = StatusCode::from_u16(status).expect("a valid status");
        KapsoError::from_response(status, &headers, body.as_bytes())
    }

    fn meta(code: i64) -> String {
        serde_json::json!({"error": {"message": format!("(#{code}) Something"), "type": "OAuthException",
                                     "code": code, "error_data": {"details": "Details."}}})
        .to_string()
    }

    #[test]
    fn meta_codes_from_the_reference_table_decide_over_the_status() {
        for code in [4, 80007, 130_429, 131_056, 131_000, 131_016, 131_057] {
            assert!(classify(400, None, &meta(code)).is_transient(), "{code}");
        }
        // 131045 comes with a 500 but needs an operator.
        assert!(matches!(
            classify(500, None, &meta(131_045)),
            KapsoError::Permanent { .. }
        ));
        assert!(matches!(
            classify(400, None, &meta(131_047)),
            KapsoError::WindowClosed { .. }
        ));
    }

    #[test]
    fn unknown_codes_fall_back_to_the_status() {
        assert!(classify(503, None, &meta(999_999)).is_transient());
        assert!(matches!(
            classify(400, None, &meta(999_999)),
            KapsoError::Permanent { .. }
        ));
    }

    #[test]
    fn meta_titles_lose_their_code_prefix() {
        assert_eq!(
            strip_code_prefix("(#131047) Re-engagement message"),
            "Re-engagement message"
        );
        assert_eq!(strip_code_prefix("No prefix"), "No prefix");
        assert_eq!(strip_code_prefix("(#broken"), "(#broken");
    }

    #[test]
    fn string_codes_and_missing_fields_are_tolerated() {
        let body = r#"{"error": {"code": "131026"}}"#;
        assert_eq!(
            classify(400, None, body),
            KapsoError::Permanent {
                status: Some(400),
                code: Some("131026".to_owned()),
                title: "Unknown WhatsApp error".to_owned(),
                message: "Unknown WhatsApp error".to_owned(),
            }
        );
    }

    #[test]
    fn retry_after_is_seconds_only() {
        assert_eq!(
            classify(429, Some("60"), "{}").retry_after(),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            classify(429, Some("Wed, 21 Oct 2015 07:28:00 GMT"), "{}").retry_after(),
            None
        );
    }

    #[test]
    fn non_json_bodies_are_cut_short() {
        let page = "x".repeat(10_000);
        match classify(418, None, &page) {
            KapsoError::Permanent { message, .. } => {
                assert_eq!(message.chars().count(), BODY_EXCERPT_CHARS);
            }
            other => panic!("expected a permanent error, got {other:?}"),
        }
    }
}
