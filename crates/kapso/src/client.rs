//! The HTTP client for Kapso's API: sending WhatsApp messages through Kapso's Meta proxy, marking
//! messages read, and pausing or resuming the business's Kapso workflows for a handover.
//!
//! Every call takes the workspace's `phone_number_id` and its decrypted API key, so one client
//! (one connection pool) serves every tenant. The key travels only in the `X-API-Key` header,
//! marked sensitive, and is never logged; neither are phone numbers or message bodies.

mod error;
mod gateway;
mod phone_numbers;
mod workflows;

use std::time::{Duration, Instant};

use inbox_domain::message::MessageText;
use inbox_domain::phone::PhoneE164;
use inbox_domain::sending::TemplateSignature;
use inbox_domain::workspace::Secret;
use reqwest::header::{ACCEPT, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{Value, json};

pub use error::{KapsoError, WINDOW_CLOSED_CODE};
pub use inbox_domain::ports::{SentMessage, SoughtContent, SoughtSend, WorkflowUpdate};

use error::Classify;
pub use workflows::{ExecutionStatus, KapsoConversation, WorkflowExecution};

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
    /// is the contact's digits without `+`, as Kapso's examples write it. `callback_data` (at
    /// most 512 characters) travels as `biz_opaque_callback_data`, which WhatsApp echoes in the
    /// statuses of the message and Kapso keeps in its history.
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
        callback_data: Option<&str>,
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
        with_callback(&mut body, callback_data)?;
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
        callback_data: Option<&str>,
    ) -> Result<SentMessage, KapsoError> {
        let template = template_body(template)?;
        let mut body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to.digits(),
            "type": "template",
            "template": template,
        });
        with_callback(&mut body, callback_data)?;
        self.send("send_template", phone_number_id, api_key, &body)
            .await
    }

    /// Asks Kapso's message history whether a send whose outcome is unknown went out, and with
    /// which wamid.
    ///
    /// `GET {base}/meta/whatsapp/v24.0/{phone_number_id}/messages?direction=outbound&since=...`
    /// page by page (`paging.cursors.after`, at most [`MAX_HISTORY_PAGES`] of 100). A record
    /// carrying `sought.callback_data` as its `biz_opaque_callback_data` is the send. Only when
    /// no record of the window carries any callback data at all (the history does not keep it)
    /// does content decide: exactly one record to the same recipient with the same text (or the
    /// same template: name, language and parameters) is the send; none or several is "not
    /// found", since guessing could take another message's wamid.
    ///
    /// # Errors
    /// As [`KapsoClient::send_text`]; the caller cannot tell then, and must not send again yet.
    pub async fn find_sent(
        &self,
        phone_number_id: &str,
        api_key: &Secret,
        sought: &SoughtSend<'_>,
    ) -> Result<Option<SentMessage>, KapsoError> {
        let since = sought.since.to_string();
        let mut after: Option<String> = None;
        let mut any_callback = false;
        let mut candidates: Vec<String> = Vec::new();
        for _ in 0..MAX_HISTORY_PAGES {
            let mut url = self.url(&messages_path(phone_number_id))?;
            {
                let mut query = url.query_pairs_mut();
                query
                    .append_pair("direction", "outbound")
                    .append_pair("since", &since)
                    .append_pair("limit", "100");
                if let Some(after) = &after {
                    query.append_pair("after", after);
                }
            }
            let (_, page) = self
                .call("message_history", Method::GET, url, api_key, None)
                .await?;
            let records = page.get("data").and_then(Value::as_array);
            for record in records.into_iter().flatten() {
                let Some(wamid) = record
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                else {
                    continue;
                };
                match record_callback(record) {
                    Some(callback) if callback == sought.callback_data => {
                        return Ok(Some(SentMessage {
                            wamid: wamid.to_owned(),
                        }));
                    }
                    Some(_) => any_callback = true,
                    None if same_content(sought, record) => candidates.push(wamid.to_owned()),
                    None => {}
                }
            }
            after = page
                .pointer("/paging/cursors/after")
                .and_then(Value::as_str)
                .filter(|cursor| !cursor.is_empty())
                .map(str::to_owned);
            if after.is_none() || records.is_none_or(Vec::is_empty) {
                break;
            }
        }
        match candidates.as_slice() {
            [only] if !any_callback => Ok(Some(SentMessage {
                wamid: only.clone(),
            })),
            _ => Ok(None),
        }
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

/// How many history pages [`KapsoClient::find_sent`] reads at most: 1,000 outbound messages
/// since the send, more than one number sends in the few seconds a lookup covers.
pub const MAX_HISTORY_PAGES: usize = 10;

/// WhatsApp's limit on `biz_opaque_callback_data`.
pub const MAX_CALLBACK_DATA_CHARS: usize = 512;

/// Whether a history record without callback data is `sought` by recipient and content.
fn same_content(sought: &SoughtSend<'_>, record: &Value) -> bool {
    let to = record
        .get("to")
        .and_then(Value::as_str)
        .or_else(|| {
            record
                .pointer("/kapso/phone_number")
                .and_then(Value::as_str)
        })
        .map(|to| to.trim().trim_start_matches('+'));
    if to != Some(sought.to.digits()) {
        return false;
    }
    match sought.content {
        SoughtContent::Text(text) => {
            record.get("type").and_then(Value::as_str) == Some("text")
                && record.pointer("/text/body").and_then(Value::as_str) == Some(text)
        }
        SoughtContent::Template(template) => {
            record.get("type").and_then(Value::as_str) == Some("template")
                && record
                    .get("template")
                    .and_then(TemplateSignature::from_meta)
                    == TemplateSignature::from_meta(template)
                && TemplateSignature::from_meta(template).is_some()
        }
    }
}

/// The `biz_opaque_callback_data` a history record carries: on the record, or on one of the
/// statuses Kapso lists for it.
fn record_callback(record: &Value) -> Option<&str> {
    let direct = record
        .get("biz_opaque_callback_data")
        .and_then(Value::as_str);
    let statuses = record
        .pointer("/kapso/statuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("biz_opaque_callback_data").and_then(Value::as_str));
    direct.into_iter().chain(statuses).find(|c| !c.is_empty())
}

/// Adds `biz_opaque_callback_data` to a send body.
fn with_callback(body: &mut Value, callback_data: Option<&str>) -> Result<(), KapsoError> {
    if let Some(callback) = callback_data {
        if callback.chars().count() > MAX_CALLBACK_DATA_CHARS {
            return Err(KapsoError::invalid_request(
                "invalid_callback_data",
                "biz_opaque_callback_data is longer than 512 characters",
            ));
        }
        body["biz_opaque_callback_data"] = json!(callback);
    }
    Ok(())
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
