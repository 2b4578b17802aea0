//! Random signed deliveries: valid envelopes with random nesting, kinds, element counts,
//! unicode (NUL included) and numbers written as strings or numbers, some naming another
//! tenant's number, some badly signed. Whatever arrives: no panic, no 5xx but 503, nothing
//! stored for a refused delivery, every message of an accepted one stored exactly once, and a
//! repeat changes nothing.

use axum::http::StatusCode;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use crate::{Harness, KAPSO_SECRET, PHONE_NUMBER_ID, Post, hmac_hex, post};

/// Deliveries posted per backend.
pub const CASES: u32 = 250;

/// Another workspace's number: naming it in a body signed by ours must be refused.
const OTHER_NUMBER: &str = "777777777777777";

#[derive(Clone, Debug)]
struct Element {
    kind: &'static str,
    text: String,
    from_digits: u64,
    timestamp_as_number: bool,
    number_as_integer: bool,
    foreign: bool,
    junk: Value,
}

#[derive(Clone, Debug)]
enum Shape {
    Single,
    Wrapped,
    Batch,
}

#[derive(Clone, Debug)]
struct Case {
    shape: Shape,
    elements: Vec<Element>,
    bad_signature: bool,
}

fn junk() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn element() -> impl Strategy<Value = Element> {
    (
        prop::sample::select(vec!["text", "image", "reaction", "location", "sticker_v9"]),
        prop_oneof!["\\PC{0,40}", "[a-z\u{0}\u{1F600}\u{202E} ]{0,20}"],
        0u64..50,
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.08),
        junk(),
    )
        .prop_map(
            |(kind, text, from_digits, timestamp_as_number, number_as_integer, foreign, junk)| {
                Element {
                    kind,
                    text,
                    from_digits,
                    timestamp_as_number,
                    number_as_integer,
                    foreign,
                    junk,
                }
            },
        )
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![
            Just(Shape::Single),
            Just(Shape::Wrapped),
            Just(Shape::Batch)
        ],
        prop::collection::vec(element(), 1..12),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(shape, mut elements, bad_signature)| {
            if !matches!(shape, Shape::Batch) {
                elements.truncate(1);
            }
            Case {
                shape,
                elements,
                bad_signature,
            }
        })
}

fn number(e: &Element) -> Value {
    let number = if e.foreign {
        OTHER_NUMBER
    } else {
        PHONE_NUMBER_ID
    };
    if e.number_as_integer {
        json!(number.parse::<u64>().expect("digits"))
    } else {
        json!(number)
    }
}

fn event_json(e: &Element, wamid: &str) -> Value {
    let timestamp = if e.timestamp_as_number {
        json!(1_730_092_800 + e.from_digits)
    } else {
        json!((1_730_092_800 + e.from_digits).to_string())
    };
    let content = match e.kind {
        "text" => json!({"text": {"body": e.text}}),
        "image" => json!({"image": {"id": "media_1", "caption": e.text}}),
        "reaction" => json!({"reaction": {"message_id": "wamid.SOMEWHERE", "emoji": e.text}}),
        "location" => json!({"location": {"latitude": "-6.2", "longitude": 106.8, "name": e.text}}),
        _ => json!({ e.kind: {"anything": e.junk} }),
    };
    let mut message = json!({
        "id": wamid,
        "timestamp": timestamp,
        "type": e.kind,
        "from": format!("1555000{:04}", e.from_digits),
        "kapso": {"direction": "inbound", "status": "received", "extra": e.junk},
    });
    for (key, value) in content.as_object().expect("object") {
        message[key] = value.clone();
    }
    json!({
        "message": message,
        "conversation": {"id": "conv_p", "phone_number_id": number(e), "kapso": {"contact_name": e.text}},
        "phone_number_id": number(e),
        "junk": e.junk,
    })
}

fn body(case: &Case, prefix: &str) -> (Value, Vec<String>) {
    let wamids: Vec<String> = (0..case.elements.len())
        .map(|i| format!("wamid.{prefix}.{i}"))
        .collect();
    let events: Vec<Value> = case
        .elements
        .iter()
        .zip(&wamids)
        .map(|(e, w)| event_json(e, w))
        .collect();
    let body = match case.shape {
        Shape::Single => events[0].clone(),
        Shape::Wrapped => json!({"event": "whatsapp.message.received", "data": events[0]}),
        Shape::Batch => json!({"type": "whatsapp.message.received", "batch": true, "data": events}),
    };
    (body, wamids)
}

pub async fn random_signed_deliveries_are_stored_exactly_once_or_not_at_all(h: Harness) {
    let app = h.app();
    // A second workspace owning the foreign number, so a forged element has a victim.
    let victim = h
        .repo
        .create_workspace(inbox_domain::workspace::NewWorkspace {
            slug: inbox_domain::workspace::WorkspaceSlug::parse("victim").expect("slug"),
            name: inbox_domain::workspace::WorkspaceName::parse("Victim").expect("name"),
            default_country: inbox_domain::phone::CountryCode::default(),
        })
        .await
        .expect("workspace");
    let patch = inbox_domain::workspace::WorkspacePatch {
        kapso_phone_number_id: Some(Some(OTHER_NUMBER.into())),
        webhook_secret: Some(Some(inbox_domain::workspace::Secret::new("victim_secret"))),
        ..Default::default()
    };
    h.repo
        .update_workspace(victim.id, patch)
        .await
        .expect("patch");

    let mut runner = TestRunner::new(Config {
        cases: CASES,
        ..Config::default()
    });
    let strategy = case();
    let (mut accepted, mut refused) = (0, 0);
    for n in 0..CASES {
        let case = strategy.new_tree(&mut runner).expect("a case").current();
        let (body, wamids) = body(&case, &format!("P{n}"));
        let bytes = body.to_string().into_bytes();
        let secret = if case.bad_signature {
            "not_the_secret"
        } else {
            KAPSO_SECRET
        };
        let request = Post {
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("X-Webhook-Event".into(), "whatsapp.message.received".into()),
                ("X-Idempotency-Key".into(), format!("prop-{n}")),
                ("X-Webhook-Signature".into(), hmac_hex(secret, &bytes)),
            ],
            body: bytes,
        };
        let before = h.counts().await;
        let (status, answer) = post(&app, &request).await;
        assert!(
            !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
            "case {n}: {status} {answer} for {body}"
        );
        let must_refuse = case.bad_signature || case.elements.iter().any(|e| e.foreign);
        if must_refuse {
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "case {n}: {answer} for {body}"
            );
        }
        if status != StatusCode::OK {
            refused += 1;
            assert_eq!(
                h.counts().await,
                before,
                "case {n}: a refusal stores nothing"
            );
            continue;
        }
        accepted += 1;
        for wamid in &wamids {
            let stored = h
                .int(&format!(
                    "SELECT COUNT(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id \
                     WHERE m.wamid = '{wamid}' AND c.workspace_id = (SELECT id FROM workspaces WHERE slug = 'acme')"
                ))
                .await;
            assert_eq!(
                stored, 1,
                "case {n}: {wamid} stored once, in its workspace, from {body}"
            );
        }
        let after = h.counts().await;
        let (status, _) = post(&app, &request).await;
        assert_eq!(status, StatusCode::OK, "case {n}: a repeat is acknowledged");
        assert_eq!(
            h.counts().await,
            after,
            "case {n}: a repeat changes nothing"
        );
    }
    assert_eq!(
        h.int("SELECT COUNT(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE c.workspace_id <> (SELECT id FROM workspaces WHERE slug = 'acme')")
            .await,
        0,
        "nothing ever reached the other tenant"
    );
    assert!(
        accepted > 0 && refused > 0,
        "both paths exercised: {accepted} accepted, {refused} refused"
    );
    println!("property: {CASES} deliveries, {accepted} accepted, {refused} refused");
}
