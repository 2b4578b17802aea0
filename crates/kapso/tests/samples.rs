//! Every sample delivery the repository carries: the files say what their generator says, their
//! signatures verify, and each parses into the facts its description promises.

use inbox_domain::Timestamp;
use inbox_domain::ingest::{DeliveryFacts, Fact, IncomingMessage, StatusUpdate};
use inbox_domain::message::{DeliveryStatus, Direction, Media, MessageError, SenderType};
use inbox_kapso::parse_delivery;
use inbox_kapso::samples::{self, PHONE_NUMBER_ID, Sample};
use inbox_kapso::signature::{self, SignatureError};
use serde_json::Value;

const KAPSO_SECRET: &[u8] = samples::KAPSO_SECRET.as_bytes();
const META_SECRET: &[u8] = samples::META_SECRET.as_bytes();

struct Fixture {
    name: String,
    sample: Sample,
    body: Vec<u8>,
}

impl Fixture {
    fn load(name: &str) -> Self {
        let sample = samples::load(name);
        Self {
            name: name.to_owned(),
            body: sample.body.as_bytes().to_vec(),
            sample,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.sample.header(name)
    }

    fn parse(&self) -> DeliveryFacts {
        parse_delivery(self.header("X-Webhook-Event"), &self.body)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", self.name))
    }
}

fn all_fixture_names() -> Vec<String> {
    samples::all().into_iter().map(|s| s.name).collect()
}

/// The files on disk are what `cargo xtask samples` writes today. Bodies are compared as JSON
/// (a map's key order may differ between builds), so the file's own signature must verify over
/// the file's own bytes.
#[test]
fn the_sample_files_match_their_generator() {
    let on_disk = samples::all();
    let generated = samples::generate();
    let names = |list: &[Sample]| list.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&on_disk),
        names(&generated),
        "run `cargo xtask samples`"
    );
    let unsigned = |s: &Sample| {
        let mut headers: Vec<(String, String)> = s
            .headers
            .iter()
            .filter(|(k, _)| !k.to_ascii_lowercase().contains("signature"))
            .cloned()
            .collect();
        headers.sort();
        headers
    };
    for (file, fresh) in on_disk.iter().zip(&generated) {
        let name = &file.name;
        assert_eq!(
            file.description, fresh.description,
            "{name}: run `cargo xtask samples`"
        );
        assert_eq!(
            unsigned(file),
            unsigned(fresh),
            "{name}: run `cargo xtask samples`"
        );
        let body: Value = serde_json::from_str(&file.body).expect("JSON body");
        let fresh_body: Value = serde_json::from_str(&fresh.body).expect("JSON body");
        assert_eq!(body, fresh_body, "{name}: run `cargo xtask samples`");
        assert!(file.to_file().ends_with('\n'));
    }
}

/// The signing helper agrees with an HMAC-SHA256 computed outside Rust
/// (`printf %s "$body" | openssl dgst -sha256 -hmac wh_sec_test_123`).
#[test]
fn the_signing_secret_matches_an_independent_hmac() {
    let body = br#"{"phone_number_id":"123456789012345","message":{"id":"wamid.VECTOR"}}"#;
    assert_eq!(
        signature::sign_kapso(KAPSO_SECRET, body),
        "d2f70447ed327991cec921b9bd8ffd03452dabab0af97a5a3513754908f27cf0"
    );
}

fn only(facts: &DeliveryFacts) -> &Fact {
    assert_eq!(facts.items.len(), 1, "{facts:#?}");
    &facts.items[0]
}

fn message(fact: &Fact) -> &IncomingMessage {
    match fact {
        Fact::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn status(fact: &Fact) -> &StatusUpdate {
    match fact {
        Fact::Status(s) => s,
        other => panic!("expected a status, got {other:?}"),
    }
}

fn phone(m: &inbox_domain::ingest::CustomerRef) -> Option<&str> {
    m.phone.as_ref().map(|p| p.as_str())
}

fn secs(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(seconds)
}

#[test]
fn every_fixture_is_signed_with_the_test_secret_and_parses() {
    let names = all_fixture_names();
    assert_eq!(names.len(), 13, "{names:?}");
    for name in names {
        let fixture = Fixture::load(&name);
        let verdict = match (
            fixture.header("X-Webhook-Signature"),
            fixture.header("X-Hub-Signature-256"),
        ) {
            (Some(kapso), _) => signature::verify_kapso(KAPSO_SECRET, &fixture.body, Some(kapso)),
            (None, Some(meta)) => signature::verify_meta(META_SECRET, &fixture.body, Some(meta)),
            (None, None) => panic!("{name} has no signature header"),
        };
        assert_eq!(verdict, Ok(()), "{name}");
        let facts = fixture.parse();
        assert_eq!(
            facts.phone_number_id.as_deref(),
            Some(PHONE_NUMBER_ID),
            "{name}"
        );
        assert!(!facts.items.is_empty(), "{name}");
    }
}

#[test]
fn fixture_signatures_fail_on_another_body_or_secret() {
    for name in all_fixture_names() {
        let fixture = Fixture::load(&name);
        let mut other = fixture.body.clone();
        other.push(b' ');
        if let Some(kapso) = fixture.header("X-Webhook-Signature") {
            assert_eq!(
                signature::verify_kapso(KAPSO_SECRET, &other, Some(kapso)),
                Err(SignatureError::Mismatch),
                "{name}"
            );
            assert_eq!(
                signature::verify_kapso(META_SECRET, &fixture.body, Some(kapso)),
                Err(SignatureError::Mismatch),
                "{name}"
            );
        }
        if let Some(meta) = fixture.header("X-Hub-Signature-256") {
            assert_eq!(
                signature::verify_meta(META_SECRET, &other, Some(meta)),
                Err(SignatureError::Mismatch),
                "{name}"
            );
            let bare = meta.trim_start_matches("sha256=");
            assert_eq!(
                signature::verify_meta(META_SECRET, &fixture.body, Some(bare)),
                Err(SignatureError::Malformed),
                "{name}"
            );
        }
    }
}

#[test]
fn v2_received_text_creates_an_inbound_message_from_a_new_customer() {
    let facts = Fixture::load("v2-received-text").parse();
    let m = message(only(&facts));
    assert_eq!(m.wamid, "wamid.TEXT1");
    assert_eq!(m.direction, Direction::Inbound);
    assert_eq!(m.sender_type, SenderType::Contact);
    assert_eq!(m.status, DeliveryStatus::Received);
    assert_eq!(m.kind.as_str(), "text");
    assert_eq!(m.text.as_deref(), Some("Hello"));
    assert_eq!(m.media, None);
    assert_eq!(m.reply_to_wamid, None);
    assert_eq!(m.sent_at, secs(1_730_092_800));
    assert_eq!(phone(&m.customer), Some("+15551234567"));
    assert_eq!(m.customer.profile_name.as_deref(), Some("John Doe"));
    assert_eq!(m.customer.bsuid, None);
    assert_eq!(m.kapso_conversation_id.as_deref(), Some("conv_123"));
    assert_eq!(m.raw["kapso"]["content"], "Hello");
    assert_eq!(m.raw["id"], "wamid.TEXT1");
}

#[test]
fn v2_received_image_carries_caption_and_kapso_media() {
    let facts = Fixture::load("v2-received-image").parse();
    let m = message(only(&facts));
    assert_eq!(m.wamid, "wamid.IMG1");
    assert_eq!(m.direction, Direction::Inbound);
    assert_eq!(m.kind.as_str(), "image");
    assert_eq!(m.text.as_deref(), Some("Photo description"));
    assert_eq!(
        m.media,
        Some(Media {
            url: Some("https://api.kapso.ai/media/photo.jpg".to_owned()),
            mime_type: Some("image/jpeg".to_owned()),
            filename: Some("photo.jpg".to_owned()),
            size_bytes: Some(204_800),
            provider_media_id: Some("media_id_123".to_owned()),
        })
    );
    assert_eq!(m.sent_at, secs(1_730_093_000));
}

#[test]
fn v2_received_audio_is_a_voice_note_with_its_transcript() {
    let facts = Fixture::load("v2-received-audio").parse();
    let m = message(only(&facts));
    assert_eq!(m.wamid, "wamid.AUD1");
    assert_eq!(m.kind.as_str(), "audio");
    assert_eq!(m.text.as_deref(), Some("Hello, I need help with my order"));
    assert_eq!(
        m.media,
        Some(Media {
            url: Some("https://api.kapso.ai/media/voice.ogg".to_owned()),
            mime_type: Some("audio/ogg".to_owned()),
            filename: Some("voice.ogg".to_owned()),
            size_bytes: Some(51_200),
            provider_media_id: Some("media_id_456".to_owned()),
        })
    );
    assert_eq!(m.raw["audio"]["voice"], true);
}

#[test]
fn v2_batch_yields_both_messages_in_order() {
    let facts = Fixture::load("v2-batch-received").parse();
    assert_eq!(facts.items.len(), 2);
    let first = message(&facts.items[0]);
    let second = message(&facts.items[1]);
    assert_eq!(
        (first.wamid.as_str(), second.wamid.as_str()),
        ("wamid.B1", "wamid.B2")
    );
    assert_eq!(first.text.as_deref(), Some("First in batch"));
    assert_eq!(second.text.as_deref(), Some("Second in batch"));
    for m in [first, second] {
        assert_eq!(m.direction, Direction::Inbound);
        assert_eq!(m.status, DeliveryStatus::Received);
        assert_eq!(phone(&m.customer), Some("+15551234567"));
    }
    assert!(first.sent_at < second.sent_at);
}

#[test]
fn v2_batch_without_the_event_header_takes_the_envelope_type() {
    let fixture = Fixture::load("v2-batch-received");
    let with_header = fixture.parse();
    let without = parse_delivery(None, &fixture.body).expect("the envelope names its type");
    assert_eq!(with_header, without);
}

#[test]
fn v2_sent_is_an_outbound_message_from_outside_this_api() {
    let facts = Fixture::load("v2-sent").parse();
    let m = message(only(&facts));
    assert_eq!(m.wamid, "wamid.OUT1");
    assert_eq!(m.direction, Direction::Outbound);
    assert_eq!(m.sender_type, SenderType::External);
    assert_eq!(m.status, DeliveryStatus::Sent);
    assert_eq!(m.text.as_deref(), Some("On my way"));
    assert_eq!(m.sent_at, secs(1_730_092_860));
    assert_eq!(phone(&m.customer), Some("+15551234567"));
}

#[test]
fn v2_business_app_echo_is_outbound_external() {
    let facts = Fixture::load("v2-sent-echo-business-app").parse();
    let m = message(only(&facts));
    assert_eq!(m.wamid, "wamid.ECHO1");
    assert_eq!(m.direction, Direction::Outbound);
    assert_eq!(m.sender_type, SenderType::External);
    assert_eq!(m.status, DeliveryStatus::Sent);
    assert_eq!(m.text.as_deref(), Some("Typed on the phone"));
    assert_eq!(phone(&m.customer), Some("+15551234567"));
    assert_eq!(m.raw["kapso"]["origin"], "business_app");
}

#[test]
fn v2_delivered_and_read_are_status_updates_at_the_status_time() {
    let delivered = Fixture::load("v2-delivered").parse();
    let d = status(only(&delivered));
    assert_eq!(d.wamid, "wamid.OUT1");
    assert_eq!(d.status, DeliveryStatus::Delivered);
    assert_eq!(d.at, secs(1_730_092_888));
    assert_eq!(d.error, None);
    assert_eq!(phone(&d.customer), Some("+15551234567"));
    assert_eq!(d.kapso_conversation_id.as_deref(), Some("conv_123"));

    let read = Fixture::load("v2-read").parse();
    let r = status(only(&read));
    assert_eq!(r.wamid, "wamid.OUT1");
    assert_eq!(r.status, DeliveryStatus::Read);
    assert_eq!(r.at, secs(1_730_092_900));
    // Applying `delivered` after `read` must not move the status back.
    assert_eq!(r.status.advance(d.status), None);
}

#[test]
fn v2_failed_carries_the_meta_error() {
    let facts = Fixture::load("v2-failed").parse();
    let s = status(only(&facts));
    assert_eq!(s.wamid, "wamid.OUT2");
    assert_eq!(s.status, DeliveryStatus::Failed);
    assert_eq!(s.at, secs(1_730_093_200));
    assert_eq!(
        s.error,
        Some(MessageError {
            code: Some("131047".to_owned()),
            title: Some("Re-engagement message".to_owned()),
            message: Some(
                "More than 24 hours have passed since the recipient last replied".to_owned()
            ),
        })
    );
}

#[test]
fn v2_conversation_created_is_a_conversation_notice() {
    let facts = Fixture::load("v2-conversation-created").parse();
    let Fact::Conversation(notice) = only(&facts) else {
        panic!("expected a conversation notice: {facts:?}");
    };
    assert_eq!(notice.event, "whatsapp.conversation.created");
    assert_eq!(notice.kapso_conversation_id.as_deref(), Some("conv_123"));
    assert_eq!(phone(&notice.customer), Some("+15551234567"));
    assert_eq!(notice.customer.profile_name.as_deref(), Some("John Doe"));
    assert_eq!(
        Some(notice.at),
        Timestamp::parse_rfc3339("2025-10-28T14:25:01Z").ok()
    );
}

#[test]
fn meta_text_is_inbound_with_the_profile_name() {
    let facts = Fixture::load("meta-messages-text").parse();
    let m = message(only(&facts));
    assert_eq!(m.wamid, "wamid.META1");
    assert_eq!(m.direction, Direction::Inbound);
    assert_eq!(m.sender_type, SenderType::Contact);
    assert_eq!(m.status, DeliveryStatus::Received);
    assert_eq!(m.text.as_deref(), Some("Does it come in another color?"));
    assert_eq!(phone(&m.customer), Some("+16505551234"));
    assert_eq!(m.customer.profile_name.as_deref(), Some("Sheena Nelson"));
    assert_eq!(m.sent_at, secs(1_749_416_383));
    assert_eq!(m.kapso_conversation_id, None);
}

#[test]
fn meta_multi_entry_yields_all_three_messages() {
    let facts = Fixture::load("meta-multi-entry").parse();
    assert_eq!(facts.items.len(), 3);
    let text = message(&facts.items[0]);
    let reaction = message(&facts.items[1]);
    let location = message(&facts.items[2]);

    assert_eq!(text.wamid, "wamid.MULTI1");
    assert_eq!(text.text.as_deref(), Some("Olá"));
    assert_eq!(phone(&text.customer), Some("+5511987654321"));
    assert_eq!(text.customer.profile_name.as_deref(), Some("Ana"));

    assert_eq!(reaction.wamid, "wamid.MULTI2");
    assert_eq!(reaction.kind.as_str(), "reaction");
    assert_eq!(reaction.text.as_deref(), Some("👍"));
    assert_eq!(reaction.reply_to_wamid.as_deref(), Some("wamid.META1"));
    assert_eq!(phone(&reaction.customer), Some("+6281234567890"));
    assert_eq!(reaction.customer.profile_name.as_deref(), Some("Budi"));

    assert_eq!(location.wamid, "wamid.MULTI3");
    assert_eq!(location.kind.as_str(), "location");
    assert_eq!(
        location.text.as_deref(),
        Some("Location: Paulista (-23.55, -46.63)")
    );
    assert_eq!(location.customer.profile_name.as_deref(), Some("Ana"));

    for m in [text, reaction, location] {
        assert_eq!(m.direction, Direction::Inbound);
        assert_eq!(m.status, DeliveryStatus::Received);
    }
}

#[test]
fn meta_statuses_are_all_applied() {
    let facts = Fixture::load("meta-statuses").parse();
    assert_eq!(facts.items.len(), 3);
    let got: Vec<(&str, DeliveryStatus)> = facts
        .items
        .iter()
        .map(|f| {
            let s = status(f);
            (s.wamid.as_str(), s.status)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("wamid.OUT1", DeliveryStatus::Delivered),
            ("wamid.OUT1", DeliveryStatus::Read),
            ("wamid.OUT3", DeliveryStatus::Failed),
        ]
    );
    let failed = status(&facts.items[2]);
    assert_eq!(failed.at, secs(1_750_030_095));
    assert_eq!(
        failed.error,
        Some(MessageError {
            code: Some("131026".to_owned()),
            title: Some("Message undeliverable".to_owned()),
            message: Some("Message undeliverable".to_owned()),
        })
    );
    assert_eq!(phone(&failed.customer), Some("+15551234567"));
    assert_eq!(status(&facts.items[0]).error, None);
}
