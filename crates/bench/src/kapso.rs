//! Signed Kapso v2 `whatsapp.message.received` deliveries, built from an index so that any
//! delivery can be rebuilt byte for byte (to re-post it) and its wamid known in advance.

use std::sync::Arc;

use bytes::Bytes;
use hyper::Method;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use inbox_kapso::signature::sign_kapso;
use serde_json::json;

use super::dataset::{BUSY_PHONE_NUMBER_ID, NEW_PHONE_PREFIX, PHONE_PREFIX, WEBHOOK_SECRET};
use super::load::Request;

/// Makes deliveries for one scenario run.
#[derive(Clone)]
pub struct Deliveries {
    /// `http://host:port/api/webhook/kapso`.
    pub url: String,
    /// Distinguishes this run's wamids and idempotency keys: `wamid.bench.<tag>.<i>`.
    pub tag: String,
    /// Seeded conversation indexes (phones) to write to.
    pub existing: Arc<Vec<u32>>,
    /// Share of deliveries from a new customer (a contact and conversation created).
    pub new_share: f64,
    /// Unix seconds of the run's start, the base of message timestamps.
    pub base_secs: i64,
}

/// A stable pseudo-random 64-bit value of `i` (splitmix64), so delivery `i` always targets the
/// same customer.
pub fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Deliveries {
    /// The wamid of delivery `i`.
    pub fn wamid(&self, i: u64) -> String {
        format!("wamid.bench.{}.{i}", self.tag)
    }

    /// The customer phone (E.164) delivery `i` comes from.
    pub fn phone(&self, i: u64) -> String {
        let roll = mix(i);
        let new = (roll % 10_000) as f64 / 10_000.0 < self.new_share;
        if new || self.existing.is_empty() {
            format!("{NEW_PHONE_PREFIX}{:07}", i % 10_000_000)
        } else {
            let pick = self.existing[((roll >> 20) % self.existing.len() as u64) as usize];
            format!("{PHONE_PREFIX}{pick:07}")
        }
    }

    /// Delivery `i`, with `text` as the message body.
    pub fn request(&self, i: u64, text: &str) -> Request {
        let phone = self.phone(i);
        let digits = phone.trim_start_matches('+');
        let wamid = self.wamid(i);
        let at = self.base_secs + (i / 1000) as i64;
        let body = json!({
            "message": {
                "id": wamid,
                "timestamp": at.to_string(),
                "type": "text",
                "from": digits,
                "text": {"body": text},
                "kapso": {
                    "direction": "inbound", "status": "received", "processing_status": "pending",
                    "origin": "cloud_api", "has_media": false, "content": text,
                },
            },
            "conversation": {
                "id": format!("kconv-bench-{digits}"),
                "phone_number": phone,
                "status": "active",
                "metadata": {},
                "phone_number_id": BUSY_PHONE_NUMBER_ID,
                "kapso": {"contact_name": "Bench Customer", "messages_count": 1},
            },
            "is_new_conversation": false,
            "phone_number_id": BUSY_PHONE_NUMBER_ID,
        })
        .to_string();
        let signature = sign_kapso(WEBHOOK_SECRET.as_bytes(), body.as_bytes());
        let header = |name: &'static str, value: &str| {
            (
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("x")),
            )
        };
        Request {
            method: Method::POST,
            url: self.url.clone(),
            headers: vec![
                (CONTENT_TYPE, HeaderValue::from_static("application/json")),
                header("x-webhook-event", "whatsapp.message.received"),
                header("x-webhook-signature", &signature),
                header("x-idempotency-key", &format!("bench-{}-{i}", self.tag)),
                header("x-webhook-payload-version", "v2"),
            ],
            body: Bytes::from(body),
        }
    }
}
