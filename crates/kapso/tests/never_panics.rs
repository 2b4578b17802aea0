//! Whatever JSON arrives, parsing answers: facts or a `ParseError`, never a panic.

use inbox_kapso::parse_delivery;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Keys the parser looks at, so that generated objects reach deep into it.
const KEYS: &[&str] = &[
    "event",
    "type",
    "batch",
    "data",
    "message",
    "conversation",
    "phone_number_id",
    "object",
    "entry",
    "changes",
    "field",
    "value",
    "metadata",
    "contacts",
    "messages",
    "statuses",
    "message_echoes",
    "errors",
    "id",
    "timestamp",
    "from",
    "to",
    "text",
    "body",
    "image",
    "audio",
    "document",
    "location",
    "latitude",
    "interactive",
    "button_reply",
    "reaction",
    "emoji",
    "message_id",
    "context",
    "kapso",
    "direction",
    "status",
    "content",
    "media_url",
    "media_data",
    "byte_size",
    "wa_id",
    "profile",
    "name",
    "recipient_id",
    "code",
    "title",
];

const EVENTS: &[&str] = &[
    "whatsapp.message.received",
    "whatsapp.message.sent",
    "whatsapp.message.delivered",
    "whatsapp.message.read",
    "whatsapp.message.failed",
    "whatsapp.conversation.created",
    "something.else",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[0-9]{0,16}".prop_map(Value::String),
        prop::sample::select(EVENTS).prop_map(Value::from),
        prop::sample::select(
            &[
                "text", "image", "reaction", "location", "outbound", "failed"
            ][..]
        )
        .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|pairs| {
                Value::Object(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<String, Value>>(),
                )
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_json_never_panics(
        body in json_value(),
        header in prop::option::of(prop::sample::select(EVENTS)),
    ) {
        let bytes = serde_json::to_vec(&body).expect("a Value serialises");
        let _ = parse_delivery(header, &bytes);
    }

    #[test]
    fn arbitrary_messages_in_every_shape_never_panic(
        message in json_value(),
        header in prop::option::of(prop::sample::select(EVENTS)),
    ) {
        let shapes = [
            json!({ "message": message, "phone_number_id": "1" }),
            json!({ "type": "whatsapp.message.received", "batch": true, "data": [message] }),
            json!({ "object": "whatsapp_business_account",
                    "entry": [{ "changes": [{ "field": "messages",
                                "value": { "messages": [message], "statuses": [message] } }] }] }),
        ];
        for shape in shapes {
            let bytes = serde_json::to_vec(&shape).expect("a Value serialises");
            let _ = parse_delivery(header, &bytes);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_delivery(None, &bytes);
    }
}
