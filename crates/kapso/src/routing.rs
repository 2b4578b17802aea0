//! Which business number a delivery is for, read twice with two different levels of trust.
//!
//! - Before the signature is checked, [`peek_phone_number_id`] reads only the routing fields of
//!   the body, streaming: it builds no JSON tree and keeps no other string, so an unverified
//!   3 MiB body costs one bounded pass. Its answer only chooses which secret to verify with.
//! - After the signature holds, [`parse_routed`] reads the whole body and reports every business
//!   number it names ([`RoutedDelivery::named_numbers`]), so the receiver can insist that a body
//!   signed with one workspace's secret names that workspace alone, and splits a raw Meta
//!   payload into one part per number.

use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;

use inbox_domain::ingest::DeliveryFacts;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, de};
use serde_json::Value;

use crate::ParseError;
use crate::delivery::{is_meta_shape, meta_parts, parse_value};

/// The scalar arms of a visitor that reads only objects: every scalar is skipped as `$none`.
macro_rules! scalars_are_none {
    ($none:expr) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($none)
        }
    };
}

/// Most elements of one Kapso batch: Kapso buffers at most 100 messages per delivery.
pub const MAX_KAPSO_ELEMENTS: usize = 100;
/// Most updates (messages, echoes, statuses) of one raw Meta delivery: Meta aggregates at most
/// 1,000 per POST.
pub const MAX_META_UPDATES: usize = 1_000;

/// A verified delivery, read for routing.
#[derive(Clone, Debug, PartialEq)]
pub struct RoutedDelivery {
    /// The facts, one part per business number, in the order the numbers first appear. A Kapso
    /// v2 delivery is always one part; a raw Meta payload has one per number its changes name
    /// (a change naming none is a part of its own, with no number).
    pub parts: Vec<DeliveryFacts>,
    /// Every business number named anywhere a number could route the delivery: the top level,
    /// each event's own, its conversation's and its message's, and each Meta change's metadata.
    pub named_numbers: BTreeSet<String>,
}

impl RoutedDelivery {
    /// All facts as one part for `phone_number_id`, in payload order.
    #[must_use]
    pub fn into_single(self, phone_number_id: Option<String>) -> DeliveryFacts {
        DeliveryFacts {
            phone_number_id,
            items: self.parts.into_iter().flat_map(|p| p.items).collect(),
        }
    }
}

/// Reads a verified delivery: its facts split per business number, and every number it names.
///
/// # Errors
/// As [`crate::parse_delivery`], and [`ParseError::TooManyElements`] for a Kapso batch of more
/// than [`MAX_KAPSO_ELEMENTS`] elements or a Meta payload of more than [`MAX_META_UPDATES`]
/// updates (checked before any fact is built).
pub fn parse_routed(event_header: Option<&str>, body: &[u8]) -> Result<RoutedDelivery, ParseError> {
    let value: Value = serde_json::from_slice(body).map_err(ParseError::NotJson)?;
    let named_numbers = named_numbers(&value);
    let parts = if is_meta_shape(&value) {
        let updates = meta_updates(&value);
        if updates > MAX_META_UPDATES {
            return Err(ParseError::TooManyElements {
                count: updates,
                max: MAX_META_UPDATES,
            });
        }
        meta_parts(value)
    } else {
        let elements = value
            .get("data")
            .and_then(Value::as_array)
            .map_or(1, Vec::len);
        if elements > MAX_KAPSO_ELEMENTS {
            return Err(ParseError::TooManyElements {
                count: elements,
                max: MAX_KAPSO_ELEMENTS,
            });
        }
        vec![parse_value(event_header, value)?]
    };
    Ok(RoutedDelivery {
        parts,
        named_numbers,
    })
}

/// A routing field's text, as the lenient parser reads it: a string, or a number's digits.
fn number_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
    .filter(|s| !s.trim().is_empty())
}

fn named_numbers(body: &Value) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let mut add = |value: Option<&Value>| named.extend(number_text(value));
    let mut events = vec![body];
    match body.get("data") {
        Some(Value::Array(elements)) => events.extend(elements),
        Some(data @ Value::Object(_)) => events.push(data),
        _ => {}
    }
    for event in events {
        add(event.get("phone_number_id"));
        add(event.pointer("/conversation/phone_number_id"));
        add(event.pointer("/message/kapso/phone_number_id"));
    }
    for change in meta_changes(body) {
        add(change.pointer("/value/metadata/phone_number_id"));
    }
    named
}

fn meta_changes(body: &Value) -> impl Iterator<Item = &Value> {
    body.get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.get("changes").and_then(Value::as_array))
        .flatten()
}

fn meta_updates(body: &Value) -> usize {
    meta_changes(body)
        .filter_map(|change| change.get("value"))
        .map(|value| {
            ["messages", "message_echoes", "statuses"]
                .iter()
                .filter_map(|key| value.get(key).and_then(Value::as_array))
                .map(Vec::len)
                .sum::<usize>()
        })
        .sum()
}

/// The business number an unverified body names first, looked for where Kapso v2 and Meta put
/// it (top level, a batch's elements, a wrapped event, the conversation, the message's `kapso`
/// block, a Meta change's metadata). Streams over the body without building a JSON tree; a
/// body that is not JSON, or repeats a routing key, names none.
#[must_use]
pub fn peek_phone_number_id(body: &[u8]) -> Option<String> {
    let peek: PeekEvent = serde_json::from_slice(body).ok()?;
    peek.first_number()
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct PeekEvent {
    phone_number_id: Number,
    conversation: Object<HasNumber>,
    message: Object<PeekMessage>,
    data: Events,
    entry: List<PeekEntry>,
}

impl PeekEvent {
    fn own_number(&self) -> Option<String> {
        self.phone_number_id
            .0
            .clone()
            .or_else(|| self.conversation.0.as_ref()?.phone_number_id.0.clone())
            .or_else(|| {
                let kapso = self.message.0.as_ref()?.kapso.0.as_ref()?;
                kapso.phone_number_id.0.clone()
            })
    }

    fn first_number(&self) -> Option<String> {
        self.own_number()
            .or_else(|| self.data.0.iter().find_map(PeekEvent::own_number))
            .or_else(|| {
                self.entry
                    .0
                    .iter()
                    .flat_map(|entry| &entry.changes.0)
                    .find_map(|change| {
                        let metadata = change.value.0.as_ref()?.metadata.0.as_ref()?;
                        metadata.phone_number_id.0.clone()
                    })
            })
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct HasNumber {
    phone_number_id: Number,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct PeekMessage {
    kapso: Object<HasNumber>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct PeekEntry {
    changes: List<PeekChange>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct PeekChange {
    value: Object<PeekValue>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct PeekValue {
    metadata: Object<HasNumber>,
}

/// A string or a number at a routing position; any other value is skipped unread.
#[derive(Default)]
struct Number(Option<String>);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor;
        impl<'de> Visitor<'de> for NumberVisitor {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Number, E> {
                Ok(Number(Some(v.to_owned()).filter(|s| !s.trim().is_empty())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                Ok(Number(Some(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                Ok(Number(Some(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Number, E> {
                Ok(Number(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Number, E> {
                Ok(Number(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Number, E> {
                Ok(Number(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Number, A::Error> {
                skip_seq(seq).map(|()| Number(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Number, A::Error> {
                skip_map(map).map(|()| Number(None))
            }
        }
        deserializer.deserialize_any(NumberVisitor)
    }
}

/// An object read as `T`; any other value is skipped unread.
struct Object<T>(Option<T>);

impl<T> Default for Object<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ShapeVisitor::<T, false>(PhantomData))
    }
}

/// An array of objects read as `T` (other elements skipped); any other value is empty.
struct List<T>(Vec<T>);

impl<T> Default for List<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(ShapeVisitor::<T, true>(PhantomData))
            .map(|found| List(found.0.unwrap_or_default()))
    }
}

/// `data`: a batch's array of events, or one wrapped event.
#[derive(Default)]
struct Events(Vec<PeekEvent>);

impl<'de> Deserialize<'de> for Events {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let found = deserializer.deserialize_any(ShapeVisitor::<PeekEvent, true>(PhantomData))?;
        Ok(Events(found.0.unwrap_or_default()))
    }
}

/// Reads objects as `T`: one object when `LIST` is false; when it is true, the objects of an
/// array, or a lone object as a list of one. Every other value is skipped without allocation.
struct ShapeVisitor<T, const LIST: bool>(PhantomData<T>);

/// What a [`ShapeVisitor`] found: one `T` (as `Object`) or several (as `List`).
struct Found<V>(Option<V>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ShapeVisitor<T, false> {
    type Value = Object<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(|t| Object(Some(t)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        skip_seq(seq).map(|()| Object(None))
    }
    scalars_are_none!(Object(None));
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for ShapeVisitor<T, true> {
    type Value = Found<Vec<T>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(|t| Found(Some(vec![t])))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut found = Vec::new();
        while let Some(element) = seq.next_element::<Object<T>>()? {
            found.extend(element.0);
        }
        Ok(Found(Some(found)))
    }
    scalars_are_none!(Found(None));
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use inbox_domain::ingest::Fact;
    use serde_json::json;

    use super::*;

    #[test]
    fn peeks_where_kapso_and_meta_put_the_phone_number_id() {
        let peek = |body: &str| peek_phone_number_id(body.as_bytes());
        assert_eq!(peek(r#"{"phone_number_id":"1"}"#).as_deref(), Some("1"));
        assert_eq!(peek(r#"{"phone_number_id":12}"#).as_deref(), Some("12"));
        assert_eq!(
            peek(r#"{"data":[{"phone_number_id":"2"}]}"#).as_deref(),
            Some("2")
        );
        assert_eq!(
            peek(r#"{"data":{"phone_number_id":"4"}}"#).as_deref(),
            Some("4")
        );
        assert_eq!(
            peek(r#"{"conversation":{"phone_number_id":"5"}}"#).as_deref(),
            Some("5")
        );
        assert_eq!(
            peek(r#"{"message":{"kapso":{"phone_number_id":"6"}}}"#).as_deref(),
            Some("6")
        );
        assert_eq!(
            peek(r#"{"entry":[{"changes":[{"value":{"metadata":{"phone_number_id":"3"}}}]}]}"#)
                .as_deref(),
            Some("3")
        );
        // Odd shapes at routing positions are skipped, not fatal.
        assert_eq!(
            peek(r#"{"conversation":"x","message":[1,{"a":2}],"data":7,"entry":{"changes":null},"phone_number_id":"8"}"#)
                .as_deref(),
            Some("8")
        );
        assert_eq!(peek("not json"), None);
        assert_eq!(peek(r#"{"phone_number_id":""}"#), None);
        // A repeated routing key could be read two ways: it names nothing.
        assert_eq!(
            peek(r#"{"phone_number_id":"1","phone_number_id":"2"}"#),
            None
        );
    }

    #[test]
    fn every_routing_position_is_named() {
        let body = json!({
            "phone_number_id": "1",
            "conversation": {"phone_number_id": "2"},
            "message": {"kapso": {"phone_number_id": 3}},
            "data": [{"phone_number_id": "4", "conversation": {"phone_number_id": "5"}}],
            "entry": [{"changes": [{"value": {"metadata": {"phone_number_id": "6"}}}]}]
        });
        let named: Vec<String> = named_numbers(&body).into_iter().collect();
        assert_eq!(named, ["1", "2", "3", "4", "5", "6"]);
    }

    #[test]
    fn a_meta_payload_is_split_per_number_in_order_of_appearance() {
        let change = |number: &str, wamid: &str| {
            json!({"changes": [{"field": "messages", "value": {
                "metadata": {"phone_number_id": number},
                "messages": [{"from": "15550001111", "id": wamid, "timestamp": "1749416383",
                              "type": "text", "text": {"body": "hi"}}]}}]})
        };
        let body = json!({"object": "whatsapp_business_account", "entry": [
            change("B", "w1"), change("A", "w2"), change("B", "w3")
        ]});
        let routed = parse_routed(None, body.to_string().as_bytes()).expect("parses");
        let parts: Vec<(Option<&str>, usize)> = routed
            .parts
            .iter()
            .map(|p| (p.phone_number_id.as_deref(), p.items.len()))
            .collect();
        assert_eq!(parts, [(Some("B"), 2), (Some("A"), 1)]);
    }

    #[test]
    fn oversized_deliveries_are_refused_before_any_fact_is_built() {
        let element = json!({"phone_number_id": "1", "message": {"id": "w", "type": "text"}});
        let batch = |n: usize| {
            json!({"type": "whatsapp.message.received", "batch": true,
                   "data": vec![element.clone(); n]})
            .to_string()
        };
        assert!(parse_routed(None, batch(MAX_KAPSO_ELEMENTS).as_bytes()).is_ok());
        assert!(matches!(
            parse_routed(None, batch(MAX_KAPSO_ELEMENTS + 1).as_bytes()),
            Err(ParseError::TooManyElements {
                count: 101,
                max: 100
            })
        ));
        let statuses = vec![json!({"id": "w", "status": "read", "timestamp": "1"}); 1_001];
        let meta = json!({"object": "whatsapp_business_account", "entry": [{"changes": [
            {"field": "messages", "value": {"metadata": {"phone_number_id": "1"}, "statuses": statuses}}
        ]}]});
        assert!(matches!(
            parse_routed(None, meta.to_string().as_bytes()),
            Err(ParseError::TooManyElements { .. })
        ));
    }

    #[test]
    fn nul_characters_are_removed_from_every_string_and_key() {
        let body = json!({
            "phone_number_id": "1",
            "message": {"id": "wamid.N\u{0}UL", "timestamp": "1730092800", "type": "text",
                        "from": "15550001111", "text": {"body": "a\u{0}b"},
                        "kapso": {"direction": "inbound", "we\u{0}ird": "x\u{0}"}}
        });
        let facts = parse_routed(
            Some("whatsapp.message.received"),
            body.to_string().as_bytes(),
        )
        .expect("parses")
        .into_single(Some("1".into()));
        let Fact::Message(message) = &facts.items[0] else {
            panic!("a message: {facts:?}");
        };
        assert_eq!(message.text.as_deref(), Some("ab"));
        assert_eq!(message.wamid, "wamid.NUL");
        assert!(
            !message.raw.to_string().contains("\\u0000"),
            "{}",
            message.raw
        );
        assert_eq!(message.raw["kapso"]["weird"], "x");
    }
}
