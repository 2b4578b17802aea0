//! Signed sample deliveries, written the way Kapso and Meta post them (feature `samples`).
//!
//! The project carries its own samples in `crates/kapso/samples/`, one JSON file each:
//! `{"description", "headers", "body"}`, where `body` is the exact raw request body and the
//! signature header is computed over those bytes. This module is where they come from:
//! [`generate`] builds every sample from the wire formats, `cargo xtask samples` writes them to
//! disk, and a test checks the files on disk still say what [`generate`] says. Tests, the demo
//! and the bench read the files through [`load`] and [`all`], so a sample is posted byte for
//! byte as it is stored.
//!
//! The story they tell, for the test workspace (Kapso `phone_number_id` [`PHONE_NUMBER_ID`],
//! webhook secret [`KAPSO_SECRET`], Meta app secret [`META_SECRET`]): customer John Doe
//! (+1 555 123 4567) writes a text, a photo and a voice note, then two texts buffered as one
//! batch; the business answers from the WhatsApp Business app and through the Cloud API
//! (`wamid.OUT1`, sent, delivered, read), one outbound message fails (`wamid.OUT2`, Meta error
//! 131047) before Inbox has seen it, and Kapso opens a conversation. In Meta's own format: a
//! text from another customer, three statuses in one payload (one for a message never seen,
//! `wamid.OUT3`), and two entries with three messages from two customers.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::signature::{sign_kapso, sign_meta};

/// The webhook secret every Kapso sample is signed with.
pub const KAPSO_SECRET: &str = "wh_sec_test_123";
/// The Meta app secret every Meta sample is signed with.
pub const META_SECRET: &str = "meta_app_secret_abc";
/// The test workspace's Kapso `phone_number_id`, named by every sample.
pub const PHONE_NUMBER_ID: &str = "123456789012345";

/// Where the samples live in the repository.
#[must_use]
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

/// One signed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The file stem, e.g. `v2-received-text`.
    pub name: String,
    /// What the delivery is and what storing it must do.
    pub description: String,
    /// Request headers, in the order they are sent.
    pub headers: Vec<(String, String)>,
    /// The exact raw body the signature covers.
    pub body: String,
}

impl Sample {
    /// A header's value, by case-insensitive name.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The file's text: pretty JSON with a trailing newline.
    #[must_use]
    pub fn to_file(&self) -> String {
        let headers: serde_json::Map<String, Value> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let file = json!({
            "description": self.description,
            "headers": headers,
            "body": self.body,
        });
        let mut text = serde_json::to_string_pretty(&file).expect("a JSON value serialises");
        text.push('\n');
        text
    }

    /// Reads a sample file's text.
    ///
    /// # Errors
    /// When the text is not a sample file.
    pub fn from_file(name: &str, text: &str) -> Result<Self, String> {
        let json: Value = serde_json::from_str(text).map_err(|e| format!("{name}: {e}"))?;
        let field = |key: &str| {
            json[key]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("{name}: `{key}` is not a string"))
        };
        let headers = json["headers"]
            .as_object()
            .ok_or_else(|| format!("{name}: `headers` is not an object"))?
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|v| (k.clone(), v.to_owned()))
                    .ok_or_else(|| format!("{name}: header {k} is not a string"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name: name.to_owned(),
            description: field("description")?,
            headers,
            body: field("body")?,
        })
    }
}

/// Reads one sample from the repository by file stem.
///
/// # Panics
/// When the file is missing or is not a sample: the samples are part of the repository.
#[must_use]
pub fn load(name: &str) -> Sample {
    let path = dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading the sample {}: {e}", path.display()));
    Sample::from_file(name, &text).unwrap_or_else(|e| panic!("{e}"))
}

/// Every sample in the repository, in name order.
///
/// # Panics
/// As [`load`].
#[must_use]
pub fn all() -> Vec<Sample> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir().display()))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "json")
                .then(|| path.file_stem()?.to_str().map(str::to_owned))
                .flatten()
        })
        .collect();
    names.sort();
    names.iter().map(|name| load(name)).collect()
}

/// Builds every sample afresh, in name order.
#[must_use]
pub fn generate() -> Vec<Sample> {
    let mut samples = vec![
        kapso(
            "v2-received-text",
            "whatsapp.message.received",
            &envelope(
                inbound("wamid.TEXT1", 1_730_092_800, "text", json!({"text": {"body": "Hello"}}))
                    .kapso(json!({"content": "Hello"})),
                true,
            ),
            "A text from a customer Inbox has never seen: creates contact +15551234567 \
             (WhatsApp name John Doe), its one conversation and one inbound message.",
        ),
        kapso(
            "v2-received-image",
            "whatsapp.message.received",
            &envelope(
                inbound(
                    "wamid.IMG1",
                    1_730_093_000,
                    "image",
                    json!({"image": {"caption": "Photo description", "id": "media_id_123"}}),
                )
                .kapso(json!({
                    "has_media": true,
                    "content": "Photo description Image attached (photo.jpg)",
                    "media_url": "https://api.kapso.ai/media/photo.jpg",
                    "media_data": {
                        "url": "https://api.kapso.ai/media/photo.jpg",
                        "filename": "photo.jpg",
                        "content_type": "image/jpeg",
                        "byte_size": 204_800
                    },
                    "message_type_data": {"caption": "Photo description"}
                })),
                false,
            ),
            "A photo with a caption; Kapso adds its media data (URL, file name, type, size).",
        ),
        kapso(
            "v2-received-audio",
            "whatsapp.message.received",
            &envelope(
                inbound(
                    "wamid.AUD1",
                    1_730_093_100,
                    "audio",
                    json!({"audio": {"id": "media_id_456", "voice": true}}),
                )
                .kapso(json!({
                    "has_media": true,
                    "content": "[Audio attached] (voice.ogg)\nTranscript: Hello, I need help with my order",
                    "transcript": {"text": "Hello, I need help with my order"},
                    "media_url": "https://api.kapso.ai/media/voice.ogg",
                    "media_data": {
                        "url": "https://api.kapso.ai/media/voice.ogg",
                        "filename": "voice.ogg",
                        "content_type": "audio/ogg",
                        "byte_size": 51_200
                    }
                })),
                false,
            ),
            "A voice note; Kapso adds its transcript, which becomes the message's text.",
        ),
        kapso_batch(
            "v2-batch-received",
            "whatsapp.message.received",
            vec![
                envelope(
                    inbound("wamid.B1", 1_730_092_801, "text", json!({"text": {"body": "First in batch"}}))
                        .kapso(json!({})),
                    false,
                ),
                envelope(
                    inbound("wamid.B2", 1_730_092_802, "text", json!({"text": {"body": "Second in batch"}}))
                        .kapso(json!({})),
                    false,
                ),
            ],
            "Two texts Kapso buffered into one batch: both are stored, in order.",
        ),
        kapso(
            "v2-sent-echo-business-app",
            "whatsapp.message.sent",
            &envelope(
                outbound(
                    "wamid.ECHO1",
                    "Typed on the phone",
                    "business_app",
                    &[("sent", 1_730_092_860, None)],
                ),
                false,
            ),
            "A reply typed in the WhatsApp Business app: outbound, sent by someone outside \
             this API (sender type external).",
        ),
        kapso(
            "v2-sent",
            "whatsapp.message.sent",
            &envelope(
                outbound(
                    "wamid.OUT1",
                    "On my way",
                    "cloud_api",
                    &[("sent", 1_730_092_860, None)],
                ),
                false,
            ),
            "Kapso reports wamid.OUT1 sent through the Cloud API.",
        ),
        kapso(
            "v2-delivered",
            "whatsapp.message.delivered",
            &envelope(
                outbound(
                    "wamid.OUT1",
                    "On my way",
                    "cloud_api",
                    &[("sent", 1_730_092_860, None), ("delivered", 1_730_092_888, None)],
                ),
                false,
            ),
            "wamid.OUT1 reached the customer's phone.",
        ),
        kapso(
            "v2-read",
            "whatsapp.message.read",
            &envelope(
                outbound(
                    "wamid.OUT1",
                    "On my way",
                    "cloud_api",
                    &[
                        ("sent", 1_730_092_860, None),
                        ("delivered", 1_730_092_888, None),
                        ("read", 1_730_092_900, None),
                    ],
                ),
                false,
            ),
            "The customer read wamid.OUT1; a delivered status arriving after it must not move \
             it back.",
        ),
        kapso(
            "v2-failed",
            "whatsapp.message.failed",
            &envelope(
                outbound(
                    "wamid.OUT2",
                    "This message failed",
                    "cloud_api",
                    &[
                        ("sent", 1_730_093_100, None),
                        (
                            "failed",
                            1_730_093_200,
                            Some(json!({
                                "code": 131_047,
                                "title": "Re-engagement message",
                                "message": "More than 24 hours have passed since the recipient last replied"
                            })),
                        ),
                    ],
                ),
                false,
            ),
            "wamid.OUT2 failed with Meta error 131047 (the 24-hour window had closed); Inbox \
             has not seen the message yet, so the failure waits for it.",
        ),
        kapso(
            "v2-conversation-created",
            "whatsapp.conversation.created",
            &json!({"conversation": conversation(), "phone_number_id": PHONE_NUMBER_ID}),
            "Kapso opened a conversation with John Doe; no message comes with it.",
        ),
        meta(
            "meta-messages-text",
            vec![change(
                json!([{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}]),
                json!({"messages": [{
                    "from": "16505551234", "id": "wamid.META1", "timestamp": "1749416383",
                    "type": "text", "text": {"body": "Does it come in another color?"}
                }]}),
            )],
            "A text in Meta's own format, signed with X-Hub-Signature-256.",
        ),
        meta(
            "meta-statuses",
            vec![change(
                Value::Null,
                json!({"statuses": [
                    meta_status("wamid.OUT1", "delivered", 1_750_030_080, None),
                    meta_status("wamid.OUT1", "read", 1_750_030_090, None),
                    meta_status("wamid.OUT3", "failed", 1_750_030_095, Some(json!({
                        "code": 131_026,
                        "title": "Message undeliverable",
                        "message": "Message undeliverable"
                    }))),
                ]}),
            )],
            "Three statuses in one Meta payload, one of them for a message Inbox never saw \
             (wamid.OUT3): every one is applied or kept until its message arrives.",
        ),
        meta(
            "meta-multi-entry",
            vec![
                change(
                    json!([
                        {"profile": {"name": "Ana"}, "wa_id": "5511987654321"},
                        {"profile": {"name": "Budi"}, "wa_id": "6281234567890"}
                    ]),
                    json!({"messages": [
                        {"from": "5511987654321", "id": "wamid.MULTI1", "timestamp": "1749416400",
                         "type": "text", "text": {"body": "Olá"}},
                        {"from": "6281234567890", "id": "wamid.MULTI2", "timestamp": "1749416401",
                         "type": "reaction", "reaction": {"message_id": "wamid.META1", "emoji": "👍"}}
                    ]}),
                ),
                change(
                    json!([{"profile": {"name": "Ana"}, "wa_id": "5511987654321"}]),
                    json!({"messages": [
                        {"from": "5511987654321", "id": "wamid.MULTI3", "timestamp": "1749416402",
                         "type": "location",
                         "location": {"latitude": -23.55, "longitude": -46.63, "name": "Paulista"}}
                    ]}),
                ),
            ],
            "Two entries, two customers, three messages (a text, a reaction and a location): \
             all are stored, each customer once.",
        ),
    ];
    samples.sort_by(|a, b| a.name.cmp(&b.name));
    samples
}

/// A WhatsApp message object under construction, before its `kapso` block is added.
struct Message(Value);

impl Message {
    /// Adds Kapso's `kapso` block: the inbound defaults overlaid with `extra`.
    fn kapso(mut self, extra: Value) -> Value {
        let mut block = json!({
            "direction": "inbound",
            "status": "received",
            "processing_status": "pending",
            "origin": "cloud_api",
            "has_media": false
        });
        merge(&mut block, extra);
        self.0["kapso"] = block;
        self.0
    }
}

fn inbound(wamid: &str, at: i64, kind: &str, content: Value) -> Message {
    let mut message = json!({
        "id": wamid,
        "timestamp": at.to_string(),
        "type": kind,
        "from": "15551234567"
    });
    merge(&mut message, content);
    Message(message)
}

/// An outbound message as Kapso reports it, with its status history; the last status is the
/// message's current one.
fn outbound(
    wamid: &str,
    text: &str,
    origin: &str,
    history: &[(&str, i64, Option<Value>)],
) -> Value {
    let statuses: Vec<Value> = history
        .iter()
        .map(|(status, at, error)| meta_status(wamid, status, *at, error.clone()))
        .collect();
    let (status, at, _) = history.last().expect("a status history is never empty");
    json!({
        "id": wamid,
        "timestamp": at.to_string(),
        "type": "text",
        "text": {"body": text},
        "kapso": {
            "direction": "outbound",
            "status": status,
            "processing_status": "completed",
            "origin": origin,
            "has_media": false,
            "statuses": statuses
        }
    })
}

fn conversation() -> Value {
    json!({
        "id": "conv_123",
        "phone_number": "+15551234567",
        "status": "active",
        "last_active_at": "2025-10-28T14:25:01Z",
        "created_at": "2025-10-28T13:40:00Z",
        "updated_at": "2025-10-28T14:25:01Z",
        "metadata": {},
        "phone_number_id": PHONE_NUMBER_ID,
        "kapso": {
            "contact_name": "John Doe",
            "messages_count": 1,
            "last_inbound_at": "2025-10-28T14:25:01Z",
            "last_outbound_at": null
        }
    })
}

/// Kapso's v2 envelope of one message event.
fn envelope(message: Value, new_conversation: bool) -> Value {
    json!({
        "message": message,
        "conversation": conversation(),
        "is_new_conversation": new_conversation,
        "phone_number_id": PHONE_NUMBER_ID
    })
}

/// One `messages` change of a Meta payload for the test number; `contacts` is left out when
/// null.
fn change(contacts: Value, mut value: Value) -> Value {
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] = json!({
        "display_phone_number": "15550783881",
        "phone_number_id": PHONE_NUMBER_ID
    });
    if !contacts.is_null() {
        value["contacts"] = contacts;
    }
    json!({"id": "102290129340398", "changes": [{"field": "messages", "value": value}]})
}

/// A raw Meta status object, as Meta's payloads and Kapso's status histories carry it.
fn meta_status(wamid: &str, status: &str, at: i64, error: Option<Value>) -> Value {
    let mut entry = json!({
        "id": wamid,
        "status": status,
        "timestamp": at.to_string(),
        "recipient_id": "15551234567"
    });
    if let Some(error) = error {
        entry["errors"] = json!([error]);
    }
    entry
}

fn merge(into: &mut Value, extra: Value) {
    if let (Some(into), Value::Object(extra)) = (into.as_object_mut(), extra) {
        into.extend(extra);
    }
}

fn kapso(name: &str, event: &str, payload: &Value, description: &str) -> Sample {
    signed_kapso(name, event, payload, description, None)
}

fn kapso_batch(name: &str, event: &str, elements: Vec<Value>, description: &str) -> Sample {
    let size = elements.len();
    let payload = json!({
        "type": event,
        "batch": true,
        "data": elements,
        "batch_info": {
            "size": size,
            "window_ms": 5000,
            "first_sequence": 101,
            "last_sequence": 100 + size,
            "conversation_id": "conv_123"
        }
    });
    signed_kapso(name, event, &payload, description, Some(size))
}

fn signed_kapso(
    name: &str,
    event: &str,
    payload: &Value,
    description: &str,
    batch_size: Option<usize>,
) -> Sample {
    let body = payload.to_string();
    let mut headers = vec![
        ("Content-Type", "application/json".to_owned()),
        ("X-Webhook-Event", event.to_owned()),
        (
            "X-Webhook-Signature",
            sign_kapso(KAPSO_SECRET.as_bytes(), body.as_bytes()),
        ),
        ("X-Idempotency-Key", idempotency_key(name)),
        ("X-Webhook-Payload-Version", "v2".to_owned()),
    ];
    if let Some(size) = batch_size {
        headers.push(("X-Webhook-Batch", "true".to_owned()));
        headers.push(("X-Batch-Size", size.to_string()));
    }
    sample(name, description, headers, body)
}

fn meta(name: &str, entries: Vec<Value>, description: &str) -> Sample {
    let body = json!({"object": "whatsapp_business_account", "entry": entries}).to_string();
    let headers = vec![
        ("Content-Type", "application/json".to_owned()),
        (
            "X-Hub-Signature-256",
            sign_meta(META_SECRET.as_bytes(), body.as_bytes()),
        ),
    ];
    sample(name, description, headers, body)
}

fn sample(name: &str, description: &str, headers: Vec<(&str, String)>, body: String) -> Sample {
    Sample {
        name: name.to_owned(),
        description: description.to_owned(),
        headers: headers
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        body,
    }
}

/// A stable UUID-shaped key per sample, so re-posting a sample is a repeat of the same delivery.
fn idempotency_key(name: &str) -> String {
    let digest = Sha256::digest(format!("inbox-sample/{name}").as_bytes());
    let hex = hex::encode(&digest[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
