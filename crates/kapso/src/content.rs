//! What a message says, for people: its text (body, caption or a readable description), its
//! attachment and the message it answers.

use inbox_domain::message::Media;
use serde_json::Value;

use crate::webhook::{KapsoExt, Location, MediaObject, SharedContact, WaMessage};

/// The human-facing parts of one message.
pub(crate) struct Content {
    pub(crate) text: Option<String>,
    pub(crate) media: Option<Media>,
    pub(crate) reply_to_wamid: Option<String>,
}

/// Reads the text, attachment and reply target of `message`, whose WhatsApp type is `kind` and
/// whose JSON as delivered is `raw`.
pub(crate) fn extract(kind: &str, message: &WaMessage, raw: &Value) -> Content {
    let kapso = message.kapso.as_ref();
    let media_object = media_object(kind, message);
    let text = match kind {
        "text" => message.text.as_ref().and_then(|t| t.body.clone()),
        "image" | "video" | "audio" | "document" | "sticker" => {
            media_text(kind, media_object, kapso)
        }
        "location" => message.location.as_ref().and_then(location_text),
        "contacts" => contacts_text(&message.contacts),
        "interactive" => interactive_text(message),
        "button" => message
            .button
            .as_ref()
            .and_then(|b| non_empty(&b.text).or_else(|| non_empty(&b.payload))),
        // An empty or absent emoji means the reaction was removed: no text, the kind says it.
        "reaction" => message.reaction.as_ref().and_then(|r| non_empty(&r.emoji)),
        "order" => message.order.as_ref().map(|order| {
            non_empty(&order.text).unwrap_or_else(|| match order.product_items.len() {
                1 => "Order: 1 item".to_owned(),
                n => format!("Order: {n} items"),
            })
        }),
        "system" => message.system.as_ref().and_then(|s| non_empty(&s.body)),
        "template" => kapso_text(kapso).or_else(|| {
            message
                .template
                .as_ref()
                .and_then(|t| non_empty(&t.name))
                .map(|name| format!("Template: {name}"))
        }),
        // WhatsApp's own "we could not show this" type: the raw JSON keeps its errors.
        "unsupported" | "unknown" => None,
        other => unknown_text(other, raw),
    }
    .or_else(|| match kind {
        "image" | "video" | "audio" | "document" | "sticker" | "reaction" | "unsupported" => None,
        _ => kapso_text(kapso),
    });
    Content {
        text: text.filter(|t| !t.trim().is_empty()),
        media: media(media_object, kapso),
        reply_to_wamid: reply_to(message),
    }
}

fn media_object<'a>(kind: &str, message: &'a WaMessage) -> Option<&'a MediaObject> {
    match kind {
        "image" => message.image.as_ref(),
        "video" => message.video.as_ref(),
        "audio" => message.audio.as_ref(),
        "document" => message.document.as_ref(),
        "sticker" => message.sticker.as_ref(),
        _ => None,
    }
}

/// Caption first; then Kapso's transcript of an audio or video; then a document's file name.
fn media_text(
    kind: &str,
    object: Option<&MediaObject>,
    kapso: Option<&KapsoExt>,
) -> Option<String> {
    object
        .and_then(|o| non_empty(&o.caption))
        .or_else(|| {
            kapso
                .and_then(|k| k.message_type_data.as_ref())
                .and_then(|d| non_empty(&d.caption))
        })
        .or_else(|| match kind {
            "audio" | "video" => kapso
                .and_then(|k| k.transcript.as_ref())
                .and_then(|t| non_empty(&t.text)),
            "document" => object.and_then(|o| non_empty(&o.filename)).or_else(|| {
                kapso
                    .and_then(|k| k.media_data.as_ref())
                    .and_then(|d| non_empty(&d.filename))
            }),
            _ => None,
        })
}

fn location_text(location: &Location) -> Option<String> {
    let place: Vec<&str> = [&location.name, &location.address]
        .into_iter()
        .filter_map(|part| part.as_deref().map(str::trim).filter(|p| !p.is_empty()))
        .collect();
    let coordinates = match (location.latitude, location.longitude) {
        (Some(lat), Some(lon)) => Some(format!("({lat}, {lon})")),
        _ => None,
    };
    let description = match (place.is_empty(), coordinates) {
        (true, None) => return None,
        (true, Some(c)) => c,
        (false, None) => place.join(", "),
        (false, Some(c)) => format!("{} {c}", place.join(", ")),
    };
    Some(format!("Location: {description}"))
}

fn contacts_text(contacts: &[SharedContact]) -> Option<String> {
    let cards: Vec<String> = contacts.iter().filter_map(contact_card).collect();
    match cards.len() {
        0 => None,
        1 => Some(format!("Contact: {}", cards.join(""))),
        _ => Some(format!("Contacts: {}", cards.join("; "))),
    }
}

fn contact_card(contact: &SharedContact) -> Option<String> {
    let name = contact.name.as_ref().and_then(|n| {
        non_empty(&n.formatted_name).or_else(|| {
            let parts: Vec<&str> = [&n.first_name, &n.last_name]
                .into_iter()
                .filter_map(|p| p.as_deref().map(str::trim).filter(|p| !p.is_empty()))
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
    });
    let phone = contact
        .phones
        .iter()
        .find_map(|p| non_empty(&p.phone).or_else(|| non_empty(&p.wa_id)));
    match (name, phone) {
        (Some(name), Some(phone)) => Some(format!("{name} ({phone})")),
        (Some(one), None) | (None, Some(one)) => Some(one),
        (None, None) => None,
    }
}

fn interactive_text(message: &WaMessage) -> Option<String> {
    let interactive = message.interactive.as_ref()?;
    let choice = interactive
        .button_reply
        .as_ref()
        .or(interactive.list_reply.as_ref());
    if let Some(choice) = choice {
        return non_empty(&choice.title).or_else(|| non_empty(&choice.id));
    }
    if let Some(flow) = &interactive.nfm_reply {
        return non_empty(&flow.body)
            .or_else(|| non_empty(&flow.name).map(|name| format!("Form submitted: {name}")))
            .or_else(|| Some("Form submitted".to_owned()));
    }
    interactive.body.as_ref().and_then(|b| non_empty(&b.text))
}

/// For a type we do not know: the usual places WhatsApp puts words.
fn unknown_text(kind: &str, raw: &Value) -> Option<String> {
    let content = raw.get(kind)?;
    if let Some(s) = content.as_str() {
        return Some(s.to_owned());
    }
    ["body", "text", "caption"]
        .into_iter()
        .find_map(|key| content.get(key).and_then(Value::as_str))
        .map(str::to_owned)
}

/// Kapso's own rendering, when it is a plain string. An object is kept in the raw JSON only.
fn kapso_text(kapso: Option<&KapsoExt>) -> Option<String> {
    match kapso?.content.as_ref()? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn media(object: Option<&MediaObject>, kapso: Option<&KapsoExt>) -> Option<Media> {
    let data = kapso.and_then(|k| k.media_data.as_ref());
    let media = Media {
        url: kapso
            .and_then(|k| non_empty(&k.media_url))
            .or_else(|| data.and_then(|d| non_empty(&d.url)))
            .or_else(|| object.and_then(|o| non_empty(&o.url).or_else(|| non_empty(&o.link)))),
        mime_type: object
            .and_then(|o| non_empty(&o.mime_type))
            .or_else(|| data.and_then(|d| non_empty(&d.content_type))),
        filename: object
            .and_then(|o| non_empty(&o.filename))
            .or_else(|| data.and_then(|d| non_empty(&d.filename))),
        size_bytes: data
            .and_then(|d| d.byte_size)
            .or_else(|| object.and_then(|o| o.file_size)),
        provider_media_id: object.and_then(|o| non_empty(&o.id)),
    };
    (media != Media::default()).then_some(media)
}

fn reply_to(message: &WaMessage) -> Option<String> {
    if let Some(reaction) = &message.reaction {
        if let Some(target) = non_empty(&reaction.message_id) {
            return Some(target);
        }
    }
    message
        .context
        .as_ref()
        .and_then(|c| non_empty(&c.id).or_else(|| non_empty(&c.message_id)))
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}
