//! The HTTP client for Kapso's API: sending WhatsApp messages through Kapso's Meta proxy, marking
//! messages read, and pausing or resuming the business's Kapso workflows for a handover.
//!
//! Every call takes the workspace's `phone_number_id` and its decrypted API key, so one client
//! (one connection pool) serves every tenant. The key travels only in the `X-API-Key` header,
//! marked sensitive, and is never logged; neither are phone numbers or message bodies.

mod error;
mod phone_numbers;
mod workflows;

use std::time::{Duration, Instant};

use inbox_domain::message::MessageText;
use inbox_domain::phone::PhoneE164;
use inbox_domain::workspace::Secret;
use reqwest::header::{ACCEPT, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{Value, json};

pub use error::{KapsoError, WINDOW_CLOSED_CODE};
pub use workflows::{ExecutionStatus, KapsoConversation, WorkflowExecution, WorkflowUpdate};

/// Kapso's production API.
pub const DEFAULT_BASE_URL: &str = "https://api.kapso.ai";

/// The Graph API version of Kapso's Meta proxy, pinned as Kapso's own inbox pins it.
pub const GRAPH_VERSION: &str = "v24.0";

/// The header that carries the project API key.
const API_KEY_HEADER: &str = "X-API-Key";

/// Where Kapso lives and how long to wait for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KapsoClientConfig {
    /// Base URL without the API path, e.g. `https://api.kapso.ai` or a local fake's
    /// `http://127.0.0.1:PORT` (the app reads it from `INBOX_KAPSO_BASE_URL`).
    pub base_url: String,
    /// How long to wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// How long a whole request may take, answer included. Kapso's own webhook deadline is
    /// 10 s, and a send slower than that is better retried in the background than awaited.
    pub request_timeout: Duration,
}

impl Default for KapsoClientConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a [`KapsoClient`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// The base URL is not an absolute `http` or `https` URL without query or fragment.
    #[error("`{0}` is not a usable Kapso base URL (expected http(s)://host[:port][/path])")]
    InvalidBaseUrl(String),
    /// The HTTP stack could not be initialised (TLS roots, for instance).
    #[error("the HTTP client could not be built: {0}")]
    Http(#[from] reqwest::Error),
}

/// What Kapso answered to an accepted send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMessage {
    /// The WhatsApp message id (`messages[0].id`); webhooks refer to the message by it.
    pub wamid: String,
}

/// A client for Kapso's API. Cheap to clone: clones share one connection pool.
#[derive(Clone, Debug)]
pub struct KapsoClient {
    http: reqwest::Client,
    base: Url,
}

impl KapsoClient {
    /// Builds a client.
    ///
    /// # Errors
    /// [`ClientBuildError`] when the base URL is unusable or the HTTP stack cannot start.
    pub fn new(config: &KapsoClientConfig) -> Result<Self, ClientBuildError> {
        let invalid = || ClientBuildError::InvalidBaseUrl(config.base_url.clone());
        let base = Url::parse(config.base_url.trim()).map_err(|_| invalid())?;
        let usable = matches!(base.scheme(), "http" | "https")
            && !base.cannot_be_a_base()
            && base.query().is_none()
            && base.fragment().is_none();
        if !usable {
            return Err(invalid());
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // A redirect would carry `X-API-Key` to wherever it points (reqwest strips only
            // the standard credential headers), and Kapso's API does not redirect.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("inbox-kapso/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, base })
    }

    /// A client for `base_url` with the default timeouts (connect 3 s, request 10 s).
    ///
    /// # Errors
    /// As [`KapsoClient::new`].
    pub fn with_base_url(base_url: &str) -> Result<Self, ClientBuildError> {
        Self::new(&KapsoClientConfig {
            base_url: base_url.to_owned(),
            ..KapsoClientConfig::default()
        })
    }

    /// The base URL requests go to.
    #[must_use]
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// Sends a free-form text message, optionally quoting `reply_to_wamid`.
    ///
    /// `POST {base}/meta/whatsapp/v24.0/{phone_number_id}/messages` with Meta's text body; `to`
    /// is the contact's digits without `+`, as Kapso's examples write it.
    ///
    /// # Errors
    /// [`KapsoError::WindowClosed`] outside the 24-hour window; [`KapsoError::Transient`] for
    /// timeouts, 5xx, 429 and 409; [`KapsoError::Permanent`] for anything else Kapso refuses.
    pub async fn send_text(
        &self,
        phone_number_id: &str,
        api_key: &Secret,
        to: &PhoneE164,
        text: &MessageText,
        reply_to_wamid: Option<&str>,
    ) -> Result<SentMessage, KapsoError> {
        let mut body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to.digits(),
            "type": "text",
            "text": { "body": text.as_str(), "preview_url": false },
        });
        if let Some(wamid) = reply_to_wamid {
            body["context"] = json!({ "message_id": wamid });
        }
        self.send("send_text", phone_number_id, api_key, &body)
            .await
    }

    /// Sends a template message (allowed outside the 24-hour window).
    ///
    /// `template` is `{name, language, components?}` as the API client gave it. `language` may
    /// be Meta's `{"code": "en_US"}` object or just the code (`"en_US"`), which is wrapped; every
    /// other field is passed through unchanged.
    ///
    /// # Errors
    /// [`KapsoError::Permanent`] with code `invalid_template`, before anything is sent, when
    /// `template` is not an object with a non-empty `name` and a `language`; otherwise as
    /// [`KapsoClient::send_text`].
    pub async fn send_template(
        &self,
        phone_number_id: &str,
        api_key: &Secret,
        to: &PhoneE164,
        template: &Value,
    ) -> Result<SentMessage, KapsoError> {
        let template = template_body(template)?;
        let body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to.digits(),
            "type": "template",
            "template": template,
        });
        self.send("send_template", phone_number_id, api_key, &body)
            .await
    }

    /// Marks an inbound message (and every earlier one) read on the customer's phone.
    ///
    /// # Errors
    /// As [`KapsoClient::send_text`].
    pub async fn mark_read(
        &self,
        phone_number_id: &str,
        api_key: &Secret,
        wamid: &str,
    ) -> Result<(), KapsoError> {
        let body = json!({
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": wamid,
        });
        let url = self.url(&messages_path(phone_number_id))?;
        self.call("mark_read", Method::POST, url, api_key, Some(&body))
            .await
            .map(drop)
    }

    async fn send(
        &self,
        operation: &'static str,
        phone_number_id: &str,
        api_key: &Secret,
        body: &Value,
    ) -> Result<SentMessage, KapsoError> {
        let url = self.url(&messages_path(phone_number_id))?;
        let (status, answer) = self
            .call(operation, Method::POST, url, api_key, Some(body))
            .await?;
        let wamid = answer
            .pointer("/messages/0/id")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|id| !id.is_empty());
        match wamid {
            Some(wamid) => Ok(SentMessage {
                wamid: wamid.to_owned(),
            }),
            None => Err(KapsoError::unexpected_response(
                status,
                "Kapso accepted the message but returned no message id (messages[0].id)",
            )),
        }
    }

    /// `{base}/<segments...>`, each segment percent-encoded so an id cannot change the path.
    fn url(&self, segments: &[&str]) -> Result<Url, KapsoError> {
        let mut url = self.base.clone();
        // `new` refused bases that cannot have a path, so this branch is only a guard.
        let Ok(mut path) = url.path_segments_mut() else {
            return Err(KapsoError::invalid_request(
                "invalid_base_url",
                "the Kapso base URL cannot take a path",
            ));
        };
        path.pop_if_empty().extend(segments);
        drop(path);
        Ok(url)
    }

    /// One request: sends it, classifies a failure, and parses a 2xx body as JSON (an empty body
    /// is `null`). Logs the operation, status and duration only.
    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        url: Url,
        api_key: &Secret,
        body: Option<&Value>,
    ) -> Result<(reqwest::StatusCode, Value), KapsoError> {
        let mut key = HeaderValue::from_str(api_key.expose()).map_err(|_| {
            KapsoError::invalid_request(
                "invalid_api_key",
                "the Kapso API key contains characters a header cannot carry",
            )
        })?;
        // Keeps the key out of reqwest's and hyper's own debug output.
        key.set_sensitive(true);
        let mut request = self
            .http
            .request(method, url)
            .header(API_KEY_HEADER, key)
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }

        let started = Instant::now();
        let outcome = async {
            let response = request.send().await.map_err(KapsoError::from_transport)?;
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response.bytes().await.map_err(KapsoError::from_transport)?;
            Ok::<_, KapsoError>((status, headers, bytes))
        }
        .await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);

        let (status, headers, bytes) = match outcome {
            Ok(answer) => answer,
            Err(error) => {
                tracing::debug!(kapso.operation = operation, elapsed_ms, %error, "kapso call failed");
                return Err(error);
            }
        };
        tracing::debug!(
            kapso.operation = operation,
            http.status = status.as_u16(),
            elapsed_ms,
            "kapso call"
        );
        if !status.is_success() {
            return Err(KapsoError::from_response(status, &headers, &bytes));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok((status, Value::Null));
        }
        serde_json::from_slice(&bytes)
            .map(|json| (status, json))
            .map_err(|_| {
                KapsoError::unexpected_response(status, "Kapso answered with invalid JSON")
            })
    }
}

/// `meta/whatsapp/v24.0/{phone_number_id}/messages`.
fn messages_path(phone_number_id: &str) -> [&str; 5] {
    [
        "meta",
        "whatsapp",
        GRAPH_VERSION,
        phone_number_id,
        "messages",
    ]
}

/// Meta's `template` object from what the API client gave: `language` as a bare code is wrapped
/// in `{"code": ...}`; everything else is kept as given.
fn template_body(template: &Value) -> Result<Value, KapsoError> {
    let invalid = |why: &str| KapsoError::invalid_request("invalid_template", why);
    let Value::Object(fields) = template else {
        return Err(invalid("the template must be a JSON object"));
    };
    let named = fields
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|name| !name.trim().is_empty());
    if !named {
        return Err(invalid("the template needs a non-empty `name`"));
    }
    let language = match fields.get("language") {
        Some(Value::String(code)) if !code.trim().is_empty() => json!({ "code": code.trim() }),
        Some(Value::Object(language))
            if language
                .get("code")
                .and_then(Value::as_str)
                .is_some_and(|code| !code.trim().is_empty()) =>
        {
            Value::Object(language.clone())
        }
        _ => {
            return Err(invalid(
                "the template needs a `language`: a code such as \"en_US\" or {\"code\": \"en_US\"}",
            ));
        }
    };
    let mut body = fields.clone();
    body.insert("language".to_owned(), language);
    Ok(Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_must_be_http_without_query() {
        for bad in [
            "",
            "api.kapso.ai",
            "ftp://x",
            "mailto:a@b",
            "http://x/?q=1",
            "http://x/#f",
        ] {
            assert!(KapsoClient::with_base_url(bad).is_err(), "{bad}");
        }
        assert!(KapsoClient::with_base_url("http://127.0.0.1:9/prefix/").is_ok());
    }

    #[test]
    fn urls_keep_a_base_path_and_encode_segments() {
        let client = KapsoClient::with_base_url("http://127.0.0.1:9/prefix/").expect("valid");
        let url = client
            .url(&messages_path("12/../x?y"))
            .expect("a base URL with a path");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/prefix/meta/whatsapp/v24.0/12%2F..%2Fx%3Fy/messages"
        );
    }

    #[test]
    fn template_language_codes_are_wrapped_and_the_rest_kept() {
        let given =
            json!({"name": "order_update", "language": "id", "components": [{"type": "body"}]});
        assert_eq!(
            template_body(&given).expect("valid"),
            json!({"name": "order_update", "language": {"code": "id"}, "components": [{"type": "body"}]})
        );
        let meta = json!({"name": "x", "language": {"code": "en_US", "policy": "deterministic"}});
        assert_eq!(template_body(&meta).expect("valid"), meta);
    }

    #[test]
    fn templates_without_name_or_language_are_refused_before_sending() {
        for bad in [
            json!("order_update"),
            json!({"language": "id"}),
            json!({"name": " ", "language": "id"}),
            json!({"name": "x"}),
            json!({"name": "x", "language": {}}),
            json!({"name": "x", "language": 7}),
        ] {
            let error = template_body(&bad).expect_err("refused");
            assert!(
                matches!(&error, KapsoError::Permanent { status: None, code: Some(c), .. } if c == "invalid_template"),
                "{bad}: {error:?}"
            );
        }
    }
}
