//! One verified webhook delivery, as the domain's [`DeliveryFacts`].

use inbox_domain::Timestamp;
use inbox_domain::ingest::{
    ConversationNotice, CustomerRef, DeliveryFacts, Fact, IncomingMessage, StatusUpdate,
};
use inbox_domain::message::{DeliveryStatus, Direction, MessageError, MessageKind, SenderType};
use inbox_domain::phone::PhoneE164;
use inbox_domain::sending::TemplateSignature;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::content;
use crate::webhook::{
    CONVERSATION_PREFIX, Conversation, MESSAGE_DELIVERED, MESSAGE_FAILED, MESSAGE_READ,
    MESSAGE_RECEIVED, MESSAGE_SENT, MetaChange, MetaContact, MetaError, MetaPayload, MetaStatus,
    MetaValue, V2Batch, V2Event, WaMessage, resolve_event,
};

/// Why a delivery body could not be read at all. Bodies that are readable but say something we
/// do not act on are not errors: they become [`Fact::Unhandled`].
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The body is not JSON.
    #[error("the body is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The body is JSON but not an object.
    #[error("the body is not a JSON object")]
    NotAnObject,
    /// The body says it is a batch but has no `data` array.
    #[error("the body is marked as a batch but has no `data` array")]
    MalformedBatch,
    /// A Kapso event whose name is given nowhere (header, `event`, `type`) and cannot be told
    /// from its message.
    #[error("the delivery does not name its event")]
    MissingEvent,
    /// The body has none of the shapes Kapso sends: v2 event, v2 batch or Meta payload.
    #[error("the body is not a Kapso v2 event, a v2 batch or a Meta payload")]
    Unrecognised,
    /// More elements than one delivery may carry.
    #[error("the delivery carries {count} elements; at most {max} are accepted in one delivery")]
    TooManyElements {
        /// How many it carries.
        count: usize,
        /// The most accepted.
        max: usize,
    },
}

/// Reads one delivery, already verified, into the facts it states.
///
/// The shape is detected from the body: a Meta payload (`object`/`entry`), a v2 batch (a `data`
/// array), a `{ "event", "data": {...} }` wrapper, or a v2 single event. The event name comes
/// from `event_header` (`X-Webhook-Event`), then `body.event`, then `body.type`, then a batch
/// element's own `event`/`type`; failing all of those, a message event is named after its
/// `kapso.status`. Unknown events, and message events whose message or wamid is unusable,
/// become [`Fact::Unhandled`]: a delivery whose event is named is never refused.
///
/// A timestamp that is missing or unreadable is replaced by the time of parsing, so that the
/// message is still stored.
///
/// # Errors
/// [`ParseError`] when the body is not JSON, not an object, a batch without `data`, a Kapso
/// event whose name cannot be found, or none of the known shapes.
pub fn parse_delivery(
    event_header: Option<&str>,
    body: &[u8],
) -> Result<DeliveryFacts, ParseError> {
    let value: Value = serde_json::from_slice(body).map_err(ParseError::NotJson)?;
    parse_value(event_header, value)
}

/// [`parse_delivery`] over a body already read as JSON.
pub(crate) fn parse_value(
    event_header: Option<&str>,
    mut value: Value,
) -> Result<DeliveryFacts, ParseError> {
    strip_nul(&mut value);
    let Value::Object(object) = &value else {
        return Err(ParseError::NotAnObject);
    };
    let event_header = event_header.map(str::trim).filter(|h| !h.is_empty());

    if is_meta_shape(&value) {
        return Ok(meta_facts(read(&value)));
    }
    match object.get("data") {
        Some(Value::Array(_)) => return batch_facts(event_header, &value),
        Some(Value::Object(_)) => return wrapped_facts(event_header, &value),
        _ => {}
    }
    if object.get("batch").is_some_and(|b| b == &Value::Bool(true)) {
        return Err(ParseError::MalformedBatch);
    }
    let event = resolve_event(event_header, &value);
    if event.is_none() && !object.contains_key("message") && !object.contains_key("conversation") {
        return Err(ParseError::Unrecognised);
    }
    let single: V2Event = read(&value);
    let phone_number_id = v2_phone_number_id(&single);
    Ok(DeliveryFacts {
        phone_number_id,
        items: vec![v2_fact(event, single)?],
    })
}

/// Whether a body is a raw Meta payload (`object` / `entry`).
pub(crate) fn is_meta_shape(value: &Value) -> bool {
    value.get("entry").is_some() || value.get("object").is_some_and(Value::is_string)
}

/// Removes U+0000 from every string and key: PostgreSQL's `text` and `jsonb` refuse it, and it
/// carries nothing a person wrote. Done on the tree, before anything is read from it, so both
/// backends store the same text.
fn strip_nul(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('\0') => s.retain(|c| c != '\0'),
        Value::Array(items) => items.iter_mut().for_each(strip_nul),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let entries = std::mem::take(map);
                map.extend(entries.into_iter().map(|(k, v)| (k.replace('\0', ""), v)));
            }
            map.values_mut().for_each(strip_nul);
        }
        _ => {}
    }
}

fn batch_facts(event_header: Option<&str>, body: &Value) -> Result<DeliveryFacts, ParseError> {
    let batch: V2Batch = read(body);
    let shared_event = resolve_event(event_header, body);
    let mut phone_number_id = body
        .get("phone_number_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut items = Vec::with_capacity(batch.data.len());
    for element in &batch.data {
        let event = shared_event
            .clone()
            .or_else(|| resolve_event(None, element));
        let single: V2Event = read(element);
        phone_number_id = phone_number_id.or_else(|| v2_phone_number_id(&single));
        items.push(v2_fact(event, single)?);
    }
    Ok(DeliveryFacts {
        phone_number_id,
        items,
    })
}

/// `{ "event": "...", "data": { ...single event... } }`, as older docs and some senders wrap it.
fn wrapped_facts(event_header: Option<&str>, body: &Value) -> Result<DeliveryFacts, ParseError> {
    let inner = body.get("data").unwrap_or(&Value::Null);
    let event = resolve_event(event_header, body).or_else(|| resolve_event(None, inner));
    let single: V2Event = read(inner);
    let phone_number_id = v2_phone_number_id(&single).or_else(|| {
        body.get("phone_number_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    Ok(DeliveryFacts {
        phone_number_id,
        items: vec![v2_fact(event, single)?],
    })
}

fn v2_phone_number_id(event: &V2Event) -> Option<String> {
    event
        .phone_number_id
        .clone()
        .or_else(|| event.conversation.as_ref()?.phone_number_id.clone())
        .or_else(|| {
            let message: WaMessage = read(event.message.as_ref()?);
            message.kapso?.phone_number_id
        })
}

fn v2_fact(event: Option<String>, single: V2Event) -> Result<Fact, ParseError> {
    let message = single.message.as_ref().filter(|m| m.is_object());
    let typed: Option<WaMessage> = message.map(read);
    let event = match event {
        Some(event) => event,
        None => typed
            .as_ref()
            .and_then(infer_event)
            .ok_or(ParseError::MissingEvent)?
            .to_owned(),
    };
    let conversation = single.conversation.unwrap_or_default();
    let fact = match (event.as_str(), message, typed) {
        (MESSAGE_RECEIVED | MESSAGE_SENT, Some(raw), Some(typed)) => {
            v2_message(&event, raw, typed, &conversation)
        }
        (MESSAGE_DELIVERED | MESSAGE_READ | MESSAGE_FAILED, _, Some(typed)) => {
            v2_status(&event, typed, &conversation)
        }
        (name, _, _) if name.starts_with(CONVERSATION_PREFIX) => Some(Fact::Conversation(
            conversation_notice(&event, conversation),
        )),
        _ => None,
    };
    Ok(fact.unwrap_or(Fact::Unhandled { event }))
}

/// Names a message event from what the message says of itself, for bodies without a name.
fn infer_event(message: &WaMessage) -> Option<&'static str> {
    let kapso = message.kapso.as_ref()?;
    match kapso.status.as_deref() {
        Some("received") => Some(MESSAGE_RECEIVED),
        Some("sent" | "pending") => Some(MESSAGE_SENT),
        Some("delivered") => Some(MESSAGE_DELIVERED),
        Some("read") => Some(MESSAGE_READ),
        Some("failed") => Some(MESSAGE_FAILED),
        _ => match kapso.direction.as_deref() {
            Some("inbound") => Some(MESSAGE_RECEIVED),
            Some("outbound") => Some(MESSAGE_SENT),
            _ => None,
        },
    }
}

fn v2_message(
    event: &str,
    raw: &Value,
    message: WaMessage,
    conversation: &Conversation,
) -> Option<Fact> {
    let wamid = present(message.id.as_deref())?;
    let kapso = message.kapso.as_ref();
    let outbound =
        event == MESSAGE_SENT || kapso.and_then(|k| k.direction.as_deref()) == Some("outbound");
    let contact_name = conversation
        .kapso
        .as_ref()
        .and_then(|k| present(k.contact_name.as_deref()))
        .or_else(|| kapso.and_then(|k| present(k.contact_name.as_deref())));
    let kapso_phone = kapso.and_then(|k| k.phone_number.as_deref());
    let (direction, sender_type, status, customer) = if outbound {
        let recipient = kapso
            .into_iter()
            .flat_map(|k| &k.statuses)
            .find_map(|s| present(s.recipient_id.as_deref()));
        let recipient_bsuid = kapso
            .into_iter()
            .flat_map(|k| &k.statuses)
            .find_map(|s| present(s.recipient_user_id.as_deref()));
        let status = kapso
            .and_then(|k| k.status.as_deref())
            .and_then(|s| s.parse::<DeliveryStatus>().ok())
            .filter(|s| *s != DeliveryStatus::Received)
            .unwrap_or(DeliveryStatus::Sent);
        let customer = CustomerRef {
            phone: first_phone(&[
                message.to.as_deref(),
                conversation.phone_number.as_deref(),
                kapso_phone,
                recipient.as_deref(),
            ]),
            bsuid: present(conversation.business_scoped_user_id.as_deref())
                .or_else(|| present(message.to_user_id.as_deref()))
                .or(recipient_bsuid),
            profile_name: contact_name,
        };
        (Direction::Outbound, SenderType::External, status, customer)
    } else {
        let customer = CustomerRef {
            phone: first_phone(&[
                message.from.as_deref(),
                conversation.phone_number.as_deref(),
                kapso_phone,
            ]),
            bsuid: present(message.from_user_id.as_deref())
                .or_else(|| present(conversation.business_scoped_user_id.as_deref()))
                .or_else(|| message.from.as_deref().and_then(bsuid_shaped)),
            profile_name: contact_name,
        };
        (
            Direction::Inbound,
            SenderType::Contact,
            DeliveryStatus::Received,
            customer,
        )
    };
    let origin = Origin {
        wamid,
        direction,
        sender_type,
        status,
        customer,
        kapso_conversation_id: present(conversation.id.as_deref()),
    };
    Some(Fact::Message(incoming(origin, raw, &message)))
}

/// Who a message is from and to, as the envelope around it says.
struct Origin {
    wamid: String,
    direction: Direction,
    sender_type: SenderType,
    status: DeliveryStatus,
    customer: CustomerRef,
    kapso_conversation_id: Option<String>,
}

fn incoming(origin: Origin, raw: &Value, message: &WaMessage) -> IncomingMessage {
    let Origin {
        wamid,
        direction,
        sender_type,
        status,
        customer,
        kapso_conversation_id,
    } = origin;
    let kind = MessageKind::new(message.kind.as_deref().unwrap_or_default());
    let content = content::extract(kind.as_str(), message, raw);
    // Only what the business sent carries callback data: WhatsApp echoes it in the statuses of
    // the message, and Kapso lists those statuses with its outbound events.
    let callback_data = (direction == Direction::Outbound)
        .then(|| {
            message
                .kapso
                .iter()
                .flat_map(|k| &k.statuses)
                .find_map(|s| present(s.biz_opaque_callback_data.as_deref()))
                .or_else(|| {
                    raw.get("biz_opaque_callback_data")
                        .and_then(Value::as_str)
                        .and_then(|c| present(Some(c)))
                })
        })
        .flatten();
    let template = raw
        .get("template")
        .filter(|_| kind.as_str() == "template")
        .and_then(TemplateSignature::from_meta)
        .map(Box::new);
    IncomingMessage {
        wamid,
        direction,
        sender_type,
        customer,
        kind,
        text: content.text,
        media: content.media,
        reply_to_wamid: content.reply_to_wamid,
        sent_at: timestamp(message.timestamp.as_deref()),
        status,
        kapso_conversation_id,
        callback_data,
        template,
        raw: raw.clone(),
    }
}

fn v2_status(event: &str, message: WaMessage, conversation: &Conversation) -> Option<Fact> {
    let wamid = present(message.id.as_deref())?;
    let (status, name) = match event {
        MESSAGE_DELIVERED => (DeliveryStatus::Delivered, "delivered"),
        MESSAGE_READ => (DeliveryStatus::Read, "read"),
        _ => (DeliveryStatus::Failed, "failed"),
    };
    let history: &[MetaStatus] = message.kapso.as_ref().map_or(&[], |k| &k.statuses);
    // Kapso lists the whole history, oldest first: the latest entry of this status is the one
    // this event reports.
    let entry = history
        .iter()
        .rev()
        .find(|s| s.status.as_deref() == Some(name));
    let error = if status == DeliveryStatus::Failed {
        entry
            .and_then(|s| message_error(&s.errors))
            .or_else(|| message_error(&message.errors))
    } else {
        None
    };
    let recipient = entry
        .and_then(|s| present(s.recipient_id.as_deref()))
        .or_else(|| {
            history
                .iter()
                .find_map(|s| present(s.recipient_id.as_deref()))
        });
    let customer = CustomerRef {
        phone: first_phone(&[
            conversation.phone_number.as_deref(),
            recipient.as_deref(),
            message.to.as_deref(),
        ]),
        bsuid: present(conversation.business_scoped_user_id.as_deref())
            .or_else(|| entry.and_then(|s| present(s.recipient_user_id.as_deref()))),
        profile_name: conversation
            .kapso
            .as_ref()
            .and_then(|k| present(k.contact_name.as_deref())),
    };
    Some(Fact::Status(StatusUpdate {
        wamid,
        status,
        at: timestamp(
            entry
                .and_then(|s| s.timestamp.as_deref())
                .or(message.timestamp.as_deref()),
        ),
        error,
        customer,
        kapso_conversation_id: present(conversation.id.as_deref()),
        callback_data: history
            .iter()
            .find_map(|s| present(s.biz_opaque_callback_data.as_deref())),
    }))
}

fn conversation_notice(event: &str, conversation: Conversation) -> ConversationNotice {
    let at = [
        &conversation.updated_at,
        &conversation.last_active_at,
        &conversation.created_at,
    ]
    .into_iter()
    .find_map(|at| Timestamp::parse_rfc3339(at.as_deref()?.trim()).ok())
    .unwrap_or_else(Timestamp::now);
    ConversationNotice {
        event: event.to_owned(),
        customer: CustomerRef {
            phone: first_phone(&[conversation.phone_number.as_deref()]),
            bsuid: present(conversation.business_scoped_user_id.as_deref()),
            profile_name: conversation
                .kapso
                .as_ref()
                .and_then(|k| present(k.contact_name.as_deref())),
        },
        kapso_conversation_id: present(conversation.id.as_deref()),
        at,
    }
}

fn meta_facts(payload: MetaPayload) -> DeliveryFacts {
    let mut phone_number_id = None;
    let mut items = Vec::new();
    for change in payload.entry.iter().flat_map(|e| &e.changes) {
        let (number, facts) = meta_change_facts(change);
        phone_number_id = phone_number_id.or(number);
        items.extend(facts);
    }
    DeliveryFacts {
        phone_number_id,
        items,
    }
}

/// A verified raw Meta payload split by business number: one part per number its changes name,
/// in order of first appearance, each with the facts of its own changes in payload order.
pub(crate) fn meta_parts(mut value: Value) -> Vec<DeliveryFacts> {
    strip_nul(&mut value);
    let payload: MetaPayload = read(&value);
    let mut parts: Vec<DeliveryFacts> = Vec::new();
    for change in payload.entry.iter().flat_map(|e| &e.changes) {
        let (number, facts) = meta_change_facts(change);
        match parts.iter_mut().find(|p| p.phone_number_id == number) {
            Some(part) => part.items.extend(facts),
            None => parts.push(DeliveryFacts {
                phone_number_id: number,
                items: facts,
            }),
        }
    }
    parts
}

/// One change of a Meta payload: the business number it names and its facts.
fn meta_change_facts(change: &MetaChange) -> (Option<String>, Vec<Fact>) {
    let mut items = Vec::new();
    let field = change.field.as_deref().unwrap_or("unknown");
    let Some(value) = &change.value else {
        return (None, vec![meta_unhandled(field)]);
    };
    let phone_number_id = value
        .metadata
        .as_ref()
        .and_then(|m| present(m.phone_number_id.as_deref()));
    {
        let before = items.len();
        for raw in &value.messages {
            items.push(meta_message(raw, value, false).unwrap_or_else(|| meta_unhandled(field)));
        }
        for raw in &value.message_echoes {
            items.push(meta_message(raw, value, true).unwrap_or_else(|| meta_unhandled(field)));
        }
        for status in &value.statuses {
            items.push(meta_status(status).unwrap_or_else(|| {
                let name = status.status.as_deref().unwrap_or("unknown");
                Fact::Unhandled {
                    event: format!("meta.statuses.{name}"),
                }
            }));
        }
        if !value.errors.is_empty() {
            items.push(Fact::Unhandled {
                event: format!("meta.{field}.errors"),
            });
        }
        // A change that carried nothing we read (a template status, an account update, ...) is
        // still recorded.
        if items.len() == before {
            items.push(meta_unhandled(field));
        }
    }
    (phone_number_id, items)
}

fn meta_unhandled(field: &str) -> Fact {
    Fact::Unhandled {
        event: format!("meta.{field}"),
    }
}

fn meta_message(raw: &Value, value: &MetaValue, echo: bool) -> Option<Fact> {
    if !raw.is_object() {
        return None;
    }
    let message: WaMessage = read(raw);
    let wamid = present(message.id.as_deref())?;
    let fact = if echo {
        let customer = CustomerRef {
            phone: first_phone(&[message.to.as_deref()]),
            bsuid: present(message.to_user_id.as_deref()),
            profile_name: None,
        };
        let origin = Origin {
            wamid,
            direction: Direction::Outbound,
            sender_type: SenderType::External,
            status: DeliveryStatus::Sent,
            customer,
            kapso_conversation_id: None,
        };
        incoming(origin, raw, &message)
    } else {
        let contact = sender_contact(&message, &value.contacts);
        let customer = CustomerRef {
            phone: first_phone(&[
                message.from.as_deref(),
                contact.and_then(|c| c.wa_id.as_deref()),
            ]),
            bsuid: present(message.from_user_id.as_deref())
                .or_else(|| contact.and_then(|c| present(c.user_id.as_deref())))
                .or_else(|| message.from.as_deref().and_then(bsuid_shaped)),
            profile_name: contact
                .and_then(|c| c.profile.as_ref())
                .and_then(|p| present(p.name.as_deref())),
        };
        let origin = Origin {
            wamid,
            direction: Direction::Inbound,
            sender_type: SenderType::Contact,
            status: DeliveryStatus::Received,
            customer,
            kapso_conversation_id: None,
        };
        incoming(origin, raw, &message)
    };
    Some(Fact::Message(fact))
}

/// The `contacts[]` entry of a message's sender: matched by `wa_id` or user id, else the only
/// entry when there is just one (Meta may rewrite a `wa_id`, as for some Brazilian numbers).
fn sender_contact<'a>(message: &WaMessage, contacts: &'a [MetaContact]) -> Option<&'a MetaContact> {
    let matches = |contact: &&MetaContact| {
        let same_phone = message.from.is_some() && contact.wa_id == message.from;
        let same_user = message.from_user_id.is_some() && contact.user_id == message.from_user_id;
        same_phone || same_user
    };
    contacts.iter().find(matches).or(match contacts {
        [only] => Some(only),
        _ => None,
    })
}

fn meta_status(status: &MetaStatus) -> Option<Fact> {
    let wamid = present(status.id.as_deref())?;
    let delivery_status = match status.status.as_deref()?.trim() {
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        // A voice note was played: it was heard, so it was read.
        "read" | "played" => DeliveryStatus::Read,
        "failed" => DeliveryStatus::Failed,
        _ => return None,
    };
    Some(Fact::Status(StatusUpdate {
        wamid,
        status: delivery_status,
        at: timestamp(status.timestamp.as_deref()),
        error: message_error(&status.errors),
        customer: CustomerRef {
            phone: first_phone(&[status.recipient_id.as_deref()]),
            bsuid: present(status.recipient_user_id.as_deref()),
            profile_name: None,
        },
        kapso_conversation_id: None,
        callback_data: present(status.biz_opaque_callback_data.as_deref()),
    }))
}

fn message_error(errors: &[MetaError]) -> Option<MessageError> {
    let error = errors.first()?;
    Some(MessageError {
        code: present(error.code.as_deref()),
        title: present(error.title.as_deref()),
        message: present(error.message.as_deref()).or_else(|| {
            error
                .error_data
                .as_ref()
                .and_then(|d| present(d.details.as_deref()))
        }),
    })
}

/// The first of `candidates` that reads as a phone; anything else (a BSUID, a username, junk)
/// is skipped, never guessed at.
fn first_phone(candidates: &[Option<&str>]) -> Option<PhoneE164> {
    candidates.iter().flatten().find_map(|raw| wa_phone(raw))
}

/// A WhatsApp id (`wa_id`, `from`, `recipient_id`, `conversation.phone_number`) as a phone;
/// see `PhoneE164::from_wa_id` for why WhatsApp's ids are trusted over the phone metadata.
fn wa_phone(raw: &str) -> Option<PhoneE164> {
    PhoneE164::from_wa_id(raw).ok()
}

/// A business-scoped user id (`US.13491208655302741918`, `US.ENT.506847293015824`), for the
/// rare payload that puts one where a phone is expected.
fn bsuid_shaped(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let (country, rest) = raw.split_once('.')?;
    let shaped = country.len() == 2
        && country.bytes().all(|b| b.is_ascii_uppercase())
        && rest.bytes().last().is_some_and(|b| b.is_ascii_digit());
    shaped.then(|| raw.to_owned())
}

fn timestamp(raw: Option<&str>) -> Timestamp {
    raw.and_then(|s| s.trim().parse::<i64>().ok())
        .map_or_else(Timestamp::now, Timestamp::from_unix_seconds)
}

fn present(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Reads `value` as `T`, or `T::default()` when it is not an object of that shape. Every wire
/// type is lenient field by field, so this only defaults on a non-object.
fn read<T: DeserializeOwned + Default>(value: &Value) -> T {
    T::deserialize(value).unwrap_or_default()
}
