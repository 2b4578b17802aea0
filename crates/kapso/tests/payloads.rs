//! Hand-written payloads: every message type of the reference, identity edge cases, event-name
//! resolution, and bodies that must be refused.

use inbox_domain::Timestamp;
use inbox_domain::ingest::{DeliveryFacts, Fact, IncomingMessage, StatusUpdate};
use inbox_domain::message::{DeliveryStatus, Direction, Media, SenderType};
use inbox_kapso::{ParseError, parse_delivery};
use serde_json::{Value, json};

const RECEIVED: &str = "whatsapp.message.received";

/// A v2 single `whatsapp.message.received` body around `message`.
fn v2(message: &Value) -> Vec<u8> {
    json!({
        "message": message,
        "conversation": { "id": "conv_1", "phone_number": "+6281234567890", "status": "active",
                          "phone_number_id": "123456789012345",
                          "kapso": { "contact_name": "Budi" } },
        "is_new_conversation": false,
        "phone_number_id": "123456789012345"
    })
    .to_string()
    .into_bytes()
}

/// A Meta payload whose single change carries `value`.
fn meta(value: &Value) -> Vec<u8> {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "1", "changes": [{ "field": "messages", "value": value }] }]
    })
    .to_string()
    .into_bytes()
}

fn parse(event: Option<&str>, body: &[u8]) -> DeliveryFacts {
    parse_delivery(event, body).expect("the payload parses")
}

fn received(message: &Value) -> IncomingMessage {
    let facts = parse(Some(RECEIVED), &v2(message));
    assert_eq!(facts.items.len(), 1, "{facts:?}");
    match facts.items.into_iter().next() {
        Some(Fact::Message(m)) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn inbound(kind: &str, content: &Value) -> IncomingMessage {
    let mut message = json!({ "id": format!("wamid.{kind}"), "timestamp": "1730092800",
                              "type": kind, "from": "6281234567890" });
    message[kind] = content.clone();
    received(&message)
}

fn only_status(facts: &DeliveryFacts) -> &StatusUpdate {
    match facts.items.as_slice() {
        [Fact::Status(s)] => s,
        other => panic!("expected one status, got {other:?}"),
    }
}

fn unhandled(facts: &DeliveryFacts) -> Vec<&str> {
    facts
        .items
        .iter()
        .map(|f| match f {
            Fact::Unhandled { event } => event.as_str(),
            other => panic!("expected unhandled, got {other:?}"),
        })
        .collect()
}

#[test]
fn text_replies_keep_the_quoted_wamid() {
    let m = received(&json!({
        "id": "wamid.R", "timestamp": "1730092800", "type": "text", "from": "6281234567890",
        "context": { "from": "15550783881", "id": "wamid.ORIG" },
        "text": { "body": "  yes please  " }
    }));
    assert_eq!(
        m.text.as_deref(),
        Some("  yes please  "),
        "text is kept as sent"
    );
    assert_eq!(m.reply_to_wamid.as_deref(), Some("wamid.ORIG"));
    assert_eq!(
        m.customer.phone.as_ref().map(|p| p.as_str()),
        Some("+6281234567890")
    );
    assert_eq!(m.customer.profile_name.as_deref(), Some("Budi"));

    let alt = received(&json!({
        "id": "wamid.R2", "timestamp": "1730092800", "type": "text",
        "context": { "message_id": "wamid.ORIG2" }, "text": { "body": "ok" }
    }));
    assert_eq!(alt.reply_to_wamid.as_deref(), Some("wamid.ORIG2"));
}

#[test]
fn media_types_take_their_caption_and_meta_fields_without_kapso_data() {
    let video = inbound(
        "video",
        &json!({ "caption": "Look", "mime_type": "video/mp4", "id": "v1",
                 "url": "https://lookaside.example/v1" }),
    );
    assert_eq!(video.text.as_deref(), Some("Look"));
    assert_eq!(
        video.media,
        Some(Media {
            url: Some("https://lookaside.example/v1".to_owned()),
            mime_type: Some("video/mp4".to_owned()),
            filename: None,
            size_bytes: None,
            provider_media_id: Some("v1".to_owned()),
        })
    );

    let document = inbound(
        "document",
        &json!({ "filename": "invoice.pdf", "mime_type": "application/pdf", "id": "d1" }),
    );
    assert_eq!(document.text.as_deref(), Some("invoice.pdf"));
    let media = document.media.expect("a document has media");
    assert_eq!(media.filename.as_deref(), Some("invoice.pdf"));
    assert_eq!(media.url, None);

    let sticker = inbound(
        "sticker",
        &json!({ "mime_type": "image/webp", "id": "s1", "animated": true }),
    );
    assert_eq!(
        sticker.text, None,
        "a sticker has no words; the kind says it"
    );
    assert_eq!(
        sticker.media.and_then(|m| m.provider_media_id).as_deref(),
        Some("s1")
    );
}

#[test]
fn kapso_media_url_wins_over_meta_url() {
    let m = received(&json!({
        "id": "wamid.I", "timestamp": "1730092800", "type": "image", "from": "6281234567890",
        "image": { "id": "m1", "url": "https://lookaside.example/m1", "mime_type": "image/png" },
        "kapso": { "direction": "inbound", "media_url": "https://api.kapso.ai/media/x.png",
                   "media_data": { "byte_size": "1234", "filename": "x.png" },
                   "content": { "any": ["object"] } }
    }));
    let media = m.media.expect("media");
    assert_eq!(
        media.url.as_deref(),
        Some("https://api.kapso.ai/media/x.png")
    );
    assert_eq!(media.mime_type.as_deref(), Some("image/png"));
    assert_eq!(media.size_bytes, Some(1234));
    assert_eq!(
        m.text, None,
        "Kapso's rendering of media is not the caption"
    );
    assert_eq!(m.raw["kapso"]["content"], json!({ "any": ["object"] }));
}

#[test]
fn locations_and_contacts_are_described() {
    let location = inbound(
        "location",
        &json!({ "address": "101 Forest Ave", "latitude": 37.5, "longitude": "-122.25",
                 "name": "Philz Coffee" }),
    );
    assert_eq!(
        location.text.as_deref(),
        Some("Location: Philz Coffee, 101 Forest Ave (37.5, -122.25)")
    );
    let bare = inbound("location", &json!({ "latitude": 1, "longitude": 2 }));
    assert_eq!(bare.text.as_deref(), Some("Location: (1, 2)"));

    let contacts = inbound(
        "contacts",
        &json!([
            { "name": { "first_name": "Barbara", "last_name": "Johnson",
                        "formatted_name": "Barbara J. Johnson" },
              "phones": [{ "phone": "+1 (415) 555-0829", "wa_id": "14155550829" }] },
            { "name": { "first_name": "Ana" } }
        ]),
    );
    assert_eq!(
        contacts.text.as_deref(),
        Some("Contacts: Barbara J. Johnson (+1 (415) 555-0829); Ana")
    );
}

#[test]
fn interactive_replies_buttons_and_reactions_read_as_what_was_tapped() {
    let button_reply = inbound(
        "interactive",
        &json!({ "type": "button_reply", "button_reply": { "id": "b1", "title": "Change" } }),
    );
    assert_eq!(button_reply.text.as_deref(), Some("Change"));
    let list_reply = inbound(
        "interactive",
        &json!({ "type": "list_reply",
                 "list_reply": { "id": "p", "title": "Priority Mail", "description": "Next day" } }),
    );
    assert_eq!(list_reply.text.as_deref(), Some("Priority Mail"));
    let flow = inbound(
        "interactive",
        &json!({ "type": "nfm_reply", "nfm_reply": { "name": "flow", "response_json": "{}" } }),
    );
    assert_eq!(flow.text.as_deref(), Some("Form submitted: flow"));

    let button = inbound(
        "button",
        &json!({ "payload": "UNSUB", "text": "Unsubscribe" }),
    );
    assert_eq!(button.text.as_deref(), Some("Unsubscribe"));

    let reaction = inbound(
        "reaction",
        &json!({ "message_id": "wamid.TARGET", "emoji": "❤️" }),
    );
    assert_eq!(reaction.text.as_deref(), Some("❤️"));
    assert_eq!(reaction.reply_to_wamid.as_deref(), Some("wamid.TARGET"));

    for removed in [
        json!({ "message_id": "wamid.TARGET", "emoji": "" }),
        json!({ "message_id": "wamid.TARGET" }),
    ] {
        let m = inbound("reaction", &removed);
        assert_eq!(m.text, None, "a removed reaction has no text");
        assert_eq!(m.reply_to_wamid.as_deref(), Some("wamid.TARGET"));
    }
}

#[test]
fn orders_system_templates_and_unsupported_are_kept() {
    let order = inbound(
        "order",
        &json!({ "catalog_id": "c", "product_items": [{ "product_retailer_id": "a" }, {}] }),
    );
    assert_eq!(order.text.as_deref(), Some("Order: 2 items"));
    let noted = inbound(
        "order",
        &json!({ "text": "Gift wrap", "product_items": [] }),
    );
    assert_eq!(noted.text.as_deref(), Some("Gift wrap"));

    let system = inbound(
        "system",
        &json!({ "body": "User changed number", "type": "user_changed_number", "wa_id": "1" }),
    );
    assert_eq!(system.text.as_deref(), Some("User changed number"));

    let template = inbound("template", &json!({ "name": "order_update" }));
    assert_eq!(template.text.as_deref(), Some("Template: order_update"));

    let unsupported = received(&json!({
        "id": "wamid.U", "timestamp": "1730092800", "type": "unsupported", "from": "6281234567890",
        "errors": [{ "code": 131051, "title": "Message type unknown" }],
        "unsupported": { "type": "edit" }
    }));
    assert_eq!(unsupported.kind.as_str(), "unsupported");
    assert_eq!(unsupported.text, None);
    assert_eq!(unsupported.raw["unsupported"]["type"], "edit");
}

#[test]
fn unknown_types_and_fields_are_kept_not_dropped() {
    let m = received(&json!({
        "id": "wamid.NEW", "timestamp": 1_730_092_800, "type": "hologram", "from": "6281234567890",
        "hologram": { "body": "Beam me up", "depth": 3 },
        "brand_new_field": { "x": [1, 2, 3] },
        "kapso": { "direction": "inbound", "status": "received" }
    }));
    assert_eq!(m.kind.as_str(), "hologram");
    assert_eq!(m.text.as_deref(), Some("Beam me up"));
    assert_eq!(m.sent_at, Timestamp::from_unix_seconds(1_730_092_800));
    assert_eq!(m.raw["brand_new_field"], json!({ "x": [1, 2, 3] }));

    let fallback = received(&json!({
        "id": "wamid.NEW2", "timestamp": "1730092800", "type": "call_log",
        "kapso": { "content": "Missed voice call" }
    }));
    assert_eq!(fallback.text.as_deref(), Some("Missed voice call"));

    let typeless = received(&json!({ "id": "wamid.NOTYPE", "timestamp": "1" }));
    assert_eq!(typeless.kind.as_str(), "unsupported");
}

#[test]
fn wrongly_typed_fields_read_as_absent() {
    let m = received(&json!({
        "id": "wamid.W", "timestamp": "soon", "type": "image", "from": ["not", "a", "phone"],
        "image": "not an object", "context": 5,
        "kapso": { "media_url": 42, "media_data": { "byte_size": "big" }, "statuses": "none" }
    }));
    assert_eq!(m.wamid, "wamid.W");
    assert_eq!(m.kind.as_str(), "image");
    assert_eq!(m.reply_to_wamid, None);
    // Without a `from`, the conversation's phone is used.
    assert_eq!(
        m.customer.phone.as_ref().map(|p| p.as_str()),
        Some("+6281234567890")
    );
    // An unreadable timestamp becomes the time of parsing, so the message is still stored.
    assert!(m.sent_at > Timestamp::from_unix_seconds(1_730_092_800));
}

#[test]
fn username_only_customers_keep_their_bsuid() {
    let body = json!({
        "message": { "id": "wamid.BS", "timestamp": "1730092800", "type": "text",
                     "from_user_id": "US.13491208655302741918", "username": "@testusername",
                     "text": { "body": "Hi" } },
        "conversation": { "id": "conv_9", "business_scoped_user_id": "US.13491208655302741918",
                          "username": "@testusername", "phone_number": null },
        "phone_number_id": "123456789012345"
    });
    let facts = parse(Some(RECEIVED), body.to_string().as_bytes());
    let Some(Fact::Message(m)) = facts.items.first() else {
        panic!("expected a message: {facts:?}");
    };
    assert_eq!(m.customer.phone, None);
    assert_eq!(m.customer.bsuid.as_deref(), Some("US.13491208655302741918"));

    // A BSUID where Meta puts the phone is read as a BSUID, not a phone.
    let value = json!({
        "metadata": { "phone_number_id": "123456789012345" },
        "contacts": [{ "profile": { "name": "Ana" } }],
        "messages": [{ "from": "US.13491208655302741918", "id": "wamid.BS2",
                       "timestamp": "1", "type": "text", "text": { "body": "Hi" } }]
    });
    let facts = parse(None, &meta(&value));
    let Some(Fact::Message(m)) = facts.items.first() else {
        panic!("expected a message: {facts:?}");
    };
    assert_eq!(m.customer.phone, None);
    assert_eq!(m.customer.bsuid.as_deref(), Some("US.13491208655302741918"));
    assert_eq!(m.customer.profile_name.as_deref(), Some("Ana"));
}

#[test]
fn phones_are_normalised_and_junk_is_not_a_phone() {
    let phone_of = |from: &str| {
        let body = json!({
            "message": { "id": "wamid.P", "timestamp": "1", "type": "text", "from": from },
            "phone_number_id": "1"
        });
        match parse(Some(RECEIVED), body.to_string().as_bytes())
            .items
            .first()
        {
            Some(Fact::Message(m)) => m.customer.phone.as_ref().map(|p| p.as_str().to_owned()),
            other => panic!("expected a message, got {other:?}"),
        }
    };
    assert_eq!(phone_of("6281234567890").as_deref(), Some("+6281234567890"));
    assert_eq!(phone_of("+14155552671").as_deref(), Some("+14155552671"));
    // Kapso's samples use fictional 555 numbers, which libphonenumber refuses; WhatsApp's
    // own ids are kept.
    assert_eq!(phone_of("15551234567").as_deref(), Some("+15551234567"));
    for junk in [
        "",
        "12345",
        "0812345678",
        "@someone",
        "62-812",
        "1234567890123456",
    ] {
        assert_eq!(phone_of(junk), None, "{junk}");
    }
}

#[test]
fn echoes_are_outbound_even_under_the_received_event() {
    let m = received(&json!({
        "id": "wamid.E", "timestamp": "1730092800", "type": "text", "to": "6281234567890",
        "text": { "body": "from the phone" },
        "kapso": { "direction": "outbound", "status": "delivered", "origin": "business_app" }
    }));
    assert_eq!(m.direction, Direction::Outbound);
    assert_eq!(m.sender_type, SenderType::External);
    assert_eq!(m.status, DeliveryStatus::Delivered);
}

#[test]
fn event_name_comes_from_header_then_event_then_type_then_the_message() {
    let message = json!({ "id": "wamid.X", "timestamp": "1", "type": "text",
                          "from": "6281234567890", "text": { "body": "x" },
                          "kapso": { "direction": "inbound", "status": "received" } });
    // The header wins over the body.
    let body = json!({ "event": "whatsapp.message.read", "message": message });
    let facts = parse(Some(RECEIVED), body.to_string().as_bytes());
    assert!(matches!(facts.items.as_slice(), [Fact::Message(_)]));
    // `body.event` without a header.
    let facts = parse(None, body.to_string().as_bytes());
    assert_eq!(only_status(&facts).status, DeliveryStatus::Read);
    // `body.type` without either.
    let body = json!({ "type": "whatsapp.message.delivered", "message": message });
    assert_eq!(
        only_status(&parse(None, body.to_string().as_bytes())).status,
        DeliveryStatus::Delivered
    );
    // Nothing names it: the message's own Kapso status does.
    let body = json!({ "message": message });
    assert!(matches!(
        parse(None, body.to_string().as_bytes()).items.as_slice(),
        [Fact::Message(m)] if m.direction == Direction::Inbound
    ));
    // A blank header counts as none.
    assert!(matches!(
        parse(Some("  "), body.to_string().as_bytes())
            .items
            .as_slice(),
        [Fact::Message(_)]
    ));
}

#[test]
fn event_wrapper_with_a_data_object_is_unwrapped() {
    let body = json!({
        "event": "whatsapp.message.received",
        "data": { "message": { "id": "wamid.WR", "timestamp": "1", "type": "text",
                               "from": "6281234567890", "text": { "body": "wrapped" } },
                  "phone_number_id": "123" }
    });
    let facts = parse(None, body.to_string().as_bytes());
    assert_eq!(facts.phone_number_id.as_deref(), Some("123"));
    assert!(matches!(
        facts.items.as_slice(),
        [Fact::Message(m)] if m.text.as_deref() == Some("wrapped")
    ));
}

#[test]
fn other_events_are_recorded_by_name() {
    let project = br#"{"phone_number_id":"123","project":{"id":"p"},"customer":{"id":"c"}}"#;
    let facts = parse(Some("whatsapp.phone_number.created"), project);
    assert_eq!(unhandled(&facts), ["whatsapp.phone_number.created"]);
    assert_eq!(facts.phone_number_id.as_deref(), Some("123"));

    let message = v2(&json!({ "id": "wamid.Q", "timestamp": "1", "type": "text" }));
    let facts = parse(Some("whatsapp.message.edited"), &message);
    assert_eq!(unhandled(&facts), ["whatsapp.message.edited"]);

    // A message event without a message (or without its wamid) cannot be stored: recorded.
    let facts = parse(Some(RECEIVED), br#"{"phone_number_id":"1"}"#);
    assert_eq!(unhandled(&facts), [RECEIVED]);
    let facts = parse(Some(RECEIVED), &v2(&json!({ "type": "text" })));
    assert_eq!(unhandled(&facts), [RECEIVED]);
}

#[test]
fn conversation_events_without_a_timestamp_still_notify() {
    let body = json!({ "conversation": { "id": "conv_2", "status": "ended" },
                       "phone_number_id": "1" });
    let facts = parse(
        Some("whatsapp.conversation.ended"),
        body.to_string().as_bytes(),
    );
    match facts.items.as_slice() {
        [Fact::Conversation(n)] => {
            assert_eq!(n.event, "whatsapp.conversation.ended");
            assert_eq!(n.kapso_conversation_id.as_deref(), Some("conv_2"));
            assert_eq!(n.customer, Default::default());
        }
        other => panic!("expected a conversation notice, got {other:?}"),
    }
}

#[test]
fn failed_without_a_status_history_reads_the_message_errors() {
    let body = json!({
        "message": { "id": "wamid.F", "timestamp": "1730093200", "type": "text",
                     "errors": [{ "code": "131026", "error_data": { "details": "no phone" } }] },
        "conversation": { "id": "c", "phone_number": "6281234567890" },
        "phone_number_id": "1"
    });
    let facts = parse(Some("whatsapp.message.failed"), body.to_string().as_bytes());
    let s = only_status(&facts);
    assert_eq!(s.status, DeliveryStatus::Failed);
    let error = s.error.clone().expect("an error");
    assert_eq!(error.code.as_deref(), Some("131026"));
    assert_eq!(error.title, None);
    assert_eq!(error.message.as_deref(), Some("no phone"));
}

#[test]
fn meta_echoes_played_statuses_and_other_fields() {
    let value = json!({
        "metadata": { "phone_number_id": "123456789012345" },
        "message_echoes": [{ "from": "15550783881", "to": "6281234567890", "id": "wamid.ECHO",
                             "timestamp": "5", "type": "text", "text": { "body": "hi" } }],
        "statuses": [
            { "id": "wamid.V", "status": "played", "timestamp": "6", "recipient_id": "6281234567890" },
            { "id": "wamid.V", "status": "deleted", "timestamp": "7" },
            { "status": "read" }
        ]
    });
    let facts = parse(None, &meta(&value));
    assert_eq!(facts.items.len(), 4);
    match &facts.items[0] {
        Fact::Message(m) => {
            assert_eq!(m.direction, Direction::Outbound);
            assert_eq!(m.sender_type, SenderType::External);
            assert_eq!(m.status, DeliveryStatus::Sent);
            assert_eq!(
                m.customer.phone.as_ref().map(|p| p.as_str()),
                Some("+6281234567890")
            );
        }
        other => panic!("expected the echo, got {other:?}"),
    }
    assert!(matches!(&facts.items[1], Fact::Status(s) if s.status == DeliveryStatus::Read));
    assert!(
        matches!(&facts.items[2], Fact::Unhandled { event } if event == "meta.statuses.deleted")
    );
    assert!(matches!(&facts.items[3], Fact::Unhandled { event } if event == "meta.statuses.read"));

    let template_update = json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "1", "changes": [
            { "field": "message_template_status_update", "value": { "event": "APPROVED" } },
            { "field": "messages", "value": { "errors": [{ "code": 131000 }] } }
        ] }]
    });
    let facts = parse(None, template_update.to_string().as_bytes());
    assert_eq!(
        unhandled(&facts),
        [
            "meta.message_template_status_update",
            "meta.messages.errors"
        ]
    );
    assert_eq!(facts.phone_number_id, None);
}

#[test]
fn unreadable_bodies_are_refused_with_a_reason() {
    assert!(matches!(
        parse_delivery(Some(RECEIVED), b"not json"),
        Err(ParseError::NotJson(_))
    ));
    assert!(matches!(
        parse_delivery(Some(RECEIVED), b""),
        Err(ParseError::NotJson(_))
    ));
    assert!(matches!(
        parse_delivery(Some(RECEIVED), b"[1, 2]"),
        Err(ParseError::NotAnObject)
    ));
    assert!(matches!(
        parse_delivery(
            Some(RECEIVED),
            br#"{"type":"x","batch":true,"data":"oops"}"#
        ),
        Err(ParseError::MalformedBatch)
    ));
    assert!(matches!(
        parse_delivery(None, br#"{"hello":"world"}"#),
        Err(ParseError::Unrecognised)
    ));
    assert!(matches!(
        parse_delivery(None, br#"{"message":{"id":"wamid.1"}}"#),
        Err(ParseError::MissingEvent)
    ));
}

#[test]
fn batch_elements_may_name_their_own_event() {
    let body = json!({
        "batch": true,
        "data": [
            { "event": RECEIVED,
              "message": { "id": "wamid.1", "timestamp": "1", "type": "text", "from": "6281234567890" },
              "phone_number_id": "999" },
            { "type": "whatsapp.message.read", "message": { "id": "wamid.0", "timestamp": "2" } }
        ]
    });
    let facts = parse(None, body.to_string().as_bytes());
    assert_eq!(facts.phone_number_id.as_deref(), Some("999"));
    assert_eq!(facts.items.len(), 2);
    assert!(matches!(&facts.items[0], Fact::Message(_)));
    assert!(matches!(&facts.items[1], Fact::Status(s) if s.wamid == "wamid.0"));
}

#[test]
fn unusable_batch_elements_are_recorded_not_dropped() {
    let body = json!({
        "type": RECEIVED,
        "batch": true,
        "data": [
            "garbage",
            { "message": { "id": "wamid.ok", "timestamp": "1", "type": "text" } },
            { "message": { "timestamp": "1" } }
        ]
    });
    let facts = parse(None, body.to_string().as_bytes());
    assert_eq!(facts.items.len(), 3);
    assert!(matches!(&facts.items[0], Fact::Unhandled { event } if event == RECEIVED));
    assert!(matches!(&facts.items[1], Fact::Message(m) if m.wamid == "wamid.ok"));
    assert!(matches!(&facts.items[2], Fact::Unhandled { event } if event == RECEIVED));
    assert_eq!(facts.phone_number_id, None);

    let empty = parse(Some(RECEIVED), br#"{"type":"x","batch":true,"data":[]}"#);
    assert!(empty.items.is_empty());
}

#[test]
fn callback_data_and_templates_of_our_sends_are_read_where_kapso_puts_them() {
    // Meta's status carries it directly.
    let facts = parse(
        None,
        &meta(&json!({
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881", "phone_number_id": "123456789012345" },
            "statuses": [{ "id": "wamid.S1", "status": "sent", "timestamp": "1750030073",
                           "recipient_id": "6281234567890", "biz_opaque_callback_data": "msg-1" }]
        })),
    );
    assert_eq!(only_status(&facts).callback_data.as_deref(), Some("msg-1"));

    // Kapso's delivered event lists the statuses, where WhatsApp echoes it.
    let delivered = json!({ "id": "wamid.S2", "timestamp": "1730092888", "type": "text",
        "text": { "body": "On my way" },
        "kapso": { "direction": "outbound", "status": "delivered", "statuses": [
            { "id": "wamid.S2", "status": "sent", "timestamp": "1730092860",
              "recipient_id": "6281234567890", "biz_opaque_callback_data": "msg-2" },
            { "id": "wamid.S2", "status": "delivered", "timestamp": "1730092888",
              "recipient_id": "6281234567890" } ] } });
    let facts = parse(Some("whatsapp.message.delivered"), &v2(&delivered));
    assert_eq!(only_status(&facts).callback_data.as_deref(), Some("msg-2"));

    // The sent echo of a template: the callback data and what the template says.
    let sent = json!({ "id": "wamid.S3", "timestamp": "1730092860", "type": "template",
        "template": { "name": "order_confirmation", "language": { "code": "en_US" },
                      "components": [{ "type": "body", "parameters": [{ "type": "text", "text": "ORD-1" }] }] },
        "kapso": { "direction": "outbound", "status": "sent", "statuses": [
            { "id": "wamid.S3", "status": "sent", "recipient_id": "6281234567890",
              "biz_opaque_callback_data": "msg-3" } ] } });
    let facts = parse(Some("whatsapp.message.sent"), &v2(&sent));
    let [Fact::Message(echo)] = facts.items.as_slice() else {
        panic!("one message: {facts:?}");
    };
    assert_eq!(echo.callback_data.as_deref(), Some("msg-3"));
    let template = echo.template.as_deref().expect("a template");
    assert_eq!(
        (template.name.as_str(), template.language.as_str()),
        ("order_confirmation", "en_US")
    );
    assert_eq!(template.components.len(), 1);

    // What the customer sends never carries ours.
    let mut inbound = json!({ "id": "wamid.IN", "timestamp": "1730092800", "type": "text",
        "from": "6281234567890", "text": { "body": "hi" }, "biz_opaque_callback_data": "forged" });
    inbound["kapso"] = json!({ "direction": "inbound" });
    assert_eq!(received(&inbound).callback_data, None);
}
