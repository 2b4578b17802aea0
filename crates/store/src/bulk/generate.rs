//! The generator behind bulk seeding: turns a [`BusyPlan`] into rows, chunk by chunk, so a
//! million messages never sit in memory at once.

use inbox_domain::message::{MessageKind, preview};
use inbox_domain::{ContactId, ConversationId, MessageId, UserId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use uuid::Uuid;

use super::{BusyPlan, Seeded, SeededConversation};

/// Tag keys and the share of contacts carrying each: a few common ones and some rare, so the
/// tag filter is measured both where it matches many rows and where it matches few.
pub const TAGS: [(&str, f64); 6] = [
    ("repeat", 0.22),
    ("wholesale", 0.08),
    ("vip", 0.06),
    ("complaint", 0.03),
    ("reseller", 0.015),
    ("influencer", 0.002),
];

/// The rarest tag of [`TAGS`]: about 0.2% of the contacts.
pub const RARE_TAG: &str = "influencer";

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const HOUR_MS: i64 = 60 * 60 * 1000;

/// Share of conversations with an inbound message in the last 24 hours.
const WINDOW_OPEN_SHARE: f64 = 0.10;
/// Share of conversations with unread inbound messages.
const UNREAD_SHARE: f64 = 0.25;
/// Share of contacts that never exchanged a message (created by hand or imported).
const NEVER_MESSAGED_SHARE: f64 = 0.01;
/// The busiest thread is capped here, as a real one would be archived or split long before.
const MAX_THREAD: u32 = 5_000;

const FIRST_NAMES: [&str; 16] = [
    "Budi", "Siti", "Agus", "Dewi", "Rina", "Andi", "Putri", "Joko", "Maria", "John", "Ana", "Wei",
    "Fatima", "Carlos", "Nur", "Lina",
];
const LAST_NAMES: [&str; 12] = [
    "Santoso",
    "Wijaya",
    "Pratama",
    "Hidayat",
    "Lestari",
    "Smith",
    "Garcia",
    "Tan",
    "Kurniawan",
    "Saputra",
    "Halim",
    "Nguyen",
];
const TEXTS: [&str; 16] = [
    "Halo, apakah produk ini masih tersedia?",
    "Berapa ongkos kirim ke Surabaya?",
    "Thanks, I'll check and get back to you",
    "Bisa minta katalog terbaru?",
    "Pesanan saya belum sampai, tolong dicek ya",
    "Ok noted",
    "Is there a discount for 10 pieces or more?",
    "Sudah transfer ya kak, mohon dikonfirmasi",
    "Ukuran L masih ada?",
    "Can you send the invoice to my email?",
    "Terima kasih banyak!",
    "Jam berapa toko buka besok?",
    "👍",
    "Mau tanya soal garansi",
    "Pembayaran bisa COD?",
    "Hi, I saw your ad on Instagram",
];

/// A `contacts` row.
pub(super) struct ContactRow {
    pub id: Uuid,
    pub phone: String,
    pub name: Option<String>,
    pub whatsapp_name: Option<String>,
    pub lead_status: &'static str,
    pub lead_score: i32,
    pub tags: String,
    pub assigned_to: Option<Uuid>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_activity_at: Option<i64>,
    pub last_contact_at: Option<i64>,
    pub activity_sort: i64,
}

/// A `conversations` row.
pub(super) struct ConversationRow {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub status: &'static str,
    pub ai_paused: bool,
    pub assigned_to: Option<Uuid>,
    pub contact_assigned_to: Option<Uuid>,
    pub lead_status: &'static str,
    pub unread_count: i32,
    pub last_message_at: Option<i64>,
    pub last_message_preview: Option<String>,
    pub last_inbound_at: Option<i64>,
    pub sort_at: i64,
    pub last_seq: i64,
    pub kapso_conversation_id: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A `conversation_tags` row.
pub(super) struct TagRow {
    pub conversation_id: Uuid,
    pub tag: &'static str,
    pub sort_at: i64,
}

/// A `messages` row.
pub(super) struct MessageRow {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub seq: i64,
    pub direction: &'static str,
    pub sender_type: &'static str,
    pub sender_user_id: Option<Uuid>,
    pub kind: &'static str,
    pub text: Option<String>,
    pub media: Option<String>,
    pub reply_to_wamid: Option<String>,
    pub wamid: String,
    pub status: &'static str,
    pub error: Option<String>,
    pub raw: Option<String>,
    pub sent_at: i64,
    pub created_at: i64,
}

/// The rows of a run of consecutive conversations.
#[derive(Default)]
pub(super) struct Chunk {
    pub contacts: Vec<ContactRow>,
    pub conversations: Vec<ConversationRow>,
    pub tags: Vec<TagRow>,
    pub messages: Vec<MessageRow>,
}

/// Walks a plan, producing chunks and recording what it produced.
pub(super) struct Generator<'p> {
    plan: &'p BusyPlan,
    rng: StdRng,
    /// Messages per conversation, summing to the plan's total.
    counts: Vec<u32>,
    next: u32,
    next_wamid: u64,
    pub seeded: Seeded,
}

impl<'p> Generator<'p> {
    pub(super) fn new(plan: &'p BusyPlan) -> Self {
        let mut rng = StdRng::seed_from_u64(plan.seed);
        let counts = thread_lengths(&mut rng, plan.conversations, plan.messages);
        Self {
            plan,
            rng,
            counts,
            next: 0,
            next_wamid: 0,
            seeded: Seeded::default(),
        }
    }

    /// The next conversations, up to about `messages` messages (at least one conversation);
    /// `None` when the plan is done.
    pub(super) fn next_chunk(&mut self, messages: usize) -> Option<Chunk> {
        if self.next >= self.plan.conversations {
            return None;
        }
        let mut chunk = Chunk::default();
        while self.next < self.plan.conversations && chunk.messages.len() < messages {
            let index = self.next;
            self.next += 1;
            self.conversation(index, &mut chunk);
        }
        self.seeded.contacts += chunk.contacts.len() as u64;
        self.seeded.messages += chunk.messages.len() as u64;
        self.seeded.tag_rows += chunk.tags.len() as u64;
        Some(chunk)
    }

    fn pick_assignee(&mut self) -> Option<UserId> {
        let agents = &self.plan.agents;
        let roll: f64 = self.rng.r#gen();
        if roll < 0.45 {
            None
        } else if roll < 0.55 || agents.others.is_empty() && roll < 0.75 {
            Some(agents.member)
        } else if roll < 0.65 || agents.others.is_empty() {
            Some(agents.owner)
        } else {
            let i = self.rng.gen_range(0..agents.others.len());
            Some(agents.others[i])
        }
    }

    fn conversation(&mut self, index: u32, chunk: &mut Chunk) {
        let now = self.plan.now.as_millis();
        let count = self.counts[index as usize];
        let contact_id = ContactId::new().as_uuid();
        let conversation_id = ConversationId::new().as_uuid();
        let assigned_to = self.pick_assignee();
        let window_open = count > 0 && self.rng.gen_bool(WINDOW_OPEN_SHARE);
        // Recent activity is denser than old: squaring a uniform draw skews toward now.
        let last_at = if window_open {
            now - self.rng.gen_range(60_000..23 * HOUR_MS)
        } else {
            let u: f64 = self.rng.r#gen();
            now - DAY_MS - (u * u * 364.0 * DAY_MS as f64) as i64
        };
        let unread = if count > 0 && self.rng.gen_bool(UNREAD_SHARE) {
            self.rng.gen_range(1..=count.min(4))
        } else {
            0
        };

        // Times run backwards from the newest message, with gaps of minutes to days.
        let mut times = vec![0_i64; count as usize];
        let mut t = last_at;
        for slot in times.iter_mut().rev() {
            *slot = t;
            let u: f64 = self.rng.gen_range(1e-6..1.0);
            t -= 1_000 + (-u.ln() * 3.0 * HOUR_MS as f64) as i64;
        }
        let created_at = match times.first() {
            Some(first) => first - 1_000,
            None => now - self.rng.gen_range(DAY_MS..200 * DAY_MS),
        };

        let mut last_inbound_at = None;
        let mut last_preview = None;
        let mut previous_wamid: Option<String> = None;
        for (i, &sent_at) in times.iter().enumerate() {
            let from_end = count as usize - i; // 1 for the newest message
            let inbound = if i == 0 || from_end <= unread as usize {
                true
            } else if from_end == unread as usize + 1 && unread > 0 {
                // Unread messages are the ones after the last reply.
                false
            } else if from_end == 1 && window_open {
                true
            } else {
                self.rng.gen_bool(0.55)
            };
            let message = self.message(
                conversation_id,
                i as i64 + 1,
                inbound,
                from_end,
                sent_at,
                assigned_to,
                previous_wamid.as_deref(),
            );
            if inbound {
                last_inbound_at = Some(sent_at);
            }
            if from_end == 1 {
                last_preview = Some(preview(
                    &MessageKind::new(message.kind),
                    message.text.as_deref(),
                ));
            }
            previous_wamid = Some(message.wamid.clone());
            chunk.messages.push(message);
        }

        let last_message_at = times.last().copied();
        let sort_at = last_message_at.unwrap_or(0);
        let lead_status = pick(
            &mut self.rng,
            &[("new", 45), ("cold", 25), ("hot", 18), ("client", 12)],
        );
        let mut tags = Vec::new();
        for (tag, share) in TAGS {
            if self.rng.gen_bool(share) {
                tags.push(tag);
                *self.seeded.tag_counts.entry(tag.to_owned()).or_default() += 1;
                chunk.tags.push(TagRow {
                    conversation_id,
                    tag,
                    sort_at,
                });
            }
        }
        // Stored tags keep the case a person typed; the tag rows hold the lower-case key.
        let shown: Vec<String> = tags
            .iter()
            .map(|t| {
                if *t == "vip" {
                    "VIP".to_owned()
                } else {
                    (*t).to_owned()
                }
            })
            .collect();
        let first = FIRST_NAMES[self.rng.gen_range(0..FIRST_NAMES.len())];
        let last = LAST_NAMES[self.rng.gen_range(0..LAST_NAMES.len())];
        let whatsapp_name = self.rng.gen_bool(0.9).then(|| format!("{first} {last}"));
        let name = self.rng.gen_bool(0.4).then(|| format!("{first} {last}"));
        let assignee = assigned_to.map(|id| id.as_uuid());

        chunk.contacts.push(ContactRow {
            id: contact_id,
            phone: format!("{}{index:07}", self.plan.phone_prefix),
            name,
            whatsapp_name,
            lead_status,
            lead_score: self.rng.gen_range(0..=100),
            tags: json!(shown).to_string(),
            assigned_to: assignee,
            created_at,
            updated_at: last_message_at.unwrap_or(created_at),
            last_activity_at: last_message_at,
            last_contact_at: last_inbound_at,
            activity_sort: sort_at,
        });
        chunk.conversations.push(ConversationRow {
            id: conversation_id,
            contact_id,
            status: if unread == 0 && self.rng.gen_bool(0.15) {
                "closed"
            } else {
                "open"
            },
            ai_paused: self.rng.gen_bool(0.2),
            assigned_to: assignee,
            contact_assigned_to: assignee,
            lead_status,
            unread_count: unread as i32,
            last_message_at,
            last_message_preview: last_preview,
            last_inbound_at,
            sort_at,
            last_seq: i64::from(count),
            kapso_conversation_id: format!("kconv-{}-{index}", self.plan.wamid_prefix),
            created_at,
            updated_at: last_message_at.unwrap_or(created_at),
        });
        self.seeded.conversations.push(SeededConversation {
            id: ConversationId::from_uuid(conversation_id),
            contact_id: ContactId::from_uuid(contact_id),
            index,
            messages: count,
            window_open: last_inbound_at.is_some_and(|t| t > now - DAY_MS),
            assigned_to,
            unread: unread > 0,
        });
    }

    #[allow(clippy::too_many_arguments)] // One message's coordinates; a struct would only rename them.
    fn message(
        &mut self,
        conversation_id: Uuid,
        seq: i64,
        inbound: bool,
        from_end: usize,
        sent_at: i64,
        assignee: Option<UserId>,
        previous_wamid: Option<&str>,
    ) -> MessageRow {
        self.next_wamid += 1;
        let wamid = format!("wamid.{}.{:09}", self.plan.wamid_prefix, self.next_wamid);
        let kind = if inbound {
            pick(
                &mut self.rng,
                &[
                    ("text", 66),
                    ("image", 11),
                    ("audio", 7),
                    ("document", 4),
                    ("video", 3),
                    ("sticker", 3),
                    ("location", 3),
                    ("reaction", 3),
                ],
            )
        } else {
            pick(
                &mut self.rng,
                &[
                    ("text", 78),
                    ("template", 10),
                    ("image", 7),
                    ("document", 5),
                ],
            )
        };
        let sentence = TEXTS[self.rng.gen_range(0..TEXTS.len())];
        let text = match kind {
            "text" => Some(sentence.to_owned()),
            "image" | "video" | "document" if self.rng.gen_bool(0.5) => Some(sentence.to_owned()),
            "template" => Some("Your order #1042 has been shipped".to_owned()),
            "reaction" => Some("❤️".to_owned()),
            _ => None,
        };
        let media = match kind {
            "image" | "audio" | "video" | "document" | "sticker" => {
                let (mime, ext) = match kind {
                    "image" => ("image/jpeg", "jpg"),
                    "audio" => ("audio/ogg", "ogg"),
                    "video" => ("video/mp4", "mp4"),
                    "sticker" => ("image/webp", "webp"),
                    _ => ("application/pdf", "pdf"),
                };
                Some(
                    json!({
                        "url": format!("https://api.kapso.ai/media/{wamid}.{ext}"),
                        "mime_type": mime,
                        "filename": format!("{kind}.{ext}"),
                        "size_bytes": self.rng.gen_range(2_000..5_000_000),
                        "provider_media_id": format!("media.{}", self.next_wamid),
                    })
                    .to_string(),
                )
            }
            _ => None,
        };
        let (direction, sender_type, sender_user_id, status, error) = if inbound {
            ("inbound", "contact", None, "received", None)
        } else {
            let by_agent = self.rng.gen_bool(0.65);
            // The newest outbound messages are less far along than old ones.
            let status = if from_end <= 2 {
                pick(
                    &mut self.rng,
                    &[("sent", 40), ("delivered", 40), ("read", 18), ("failed", 2)],
                )
            } else {
                pick(
                    &mut self.rng,
                    &[("read", 62), ("delivered", 25), ("sent", 8), ("failed", 5)],
                )
            };
            let error = (status == "failed").then(|| {
                json!({"code": "131026", "title": "Message undeliverable", "message": "Message undeliverable"})
                    .to_string()
            });
            (
                "outbound",
                if by_agent { "user" } else { "bot" },
                if by_agent {
                    Some(assignee.unwrap_or(self.plan.agents.owner).as_uuid())
                } else {
                    None
                },
                status,
                error,
            )
        };
        let raw = inbound.then(|| {
            json!({
                "id": wamid,
                "type": kind,
                "timestamp": (sent_at / 1000).to_string(),
                "kapso": {"direction": "inbound", "status": "received", "origin": "cloud_api"},
            })
            .to_string()
        });
        MessageRow {
            id: MessageId::new().as_uuid(),
            conversation_id,
            seq,
            direction,
            sender_type,
            sender_user_id,
            kind,
            text,
            media,
            reply_to_wamid: previous_wamid
                .filter(|_| self.rng.gen_bool(0.03))
                .map(str::to_owned),
            wamid,
            status,
            error,
            raw,
            sent_at,
            created_at: sent_at + self.rng.gen_range(5..400),
        }
    }
}

/// A weighted choice.
fn pick(rng: &mut StdRng, choices: &[(&'static str, u32)]) -> &'static str {
    let total: u32 = choices.iter().map(|(_, w)| w).sum();
    let mut roll = rng.gen_range(0..total);
    for (choice, weight) in choices {
        if roll < *weight {
            return choice;
        }
        roll -= weight;
    }
    choices[choices.len() - 1].0
}

/// Messages per conversation: a long tail (a Pareto-like draw, `u^-0.6`), about 1% of the
/// conversations empty, summing exactly to `total`.
fn thread_lengths(rng: &mut StdRng, conversations: u32, total: u64) -> Vec<u32> {
    let n = conversations as usize;
    if n == 0 {
        return Vec::new();
    }
    let weights: Vec<f64> = (0..n)
        .map(|_| {
            if rng.gen_bool(NEVER_MESSAGED_SHARE) {
                0.0
            } else {
                rng.gen_range(1e-6_f64..1.0).powf(-0.6)
            }
        })
        .collect();
    let sum: f64 = weights.iter().sum();
    let scale = if sum > 0.0 { total as f64 / sum } else { 0.0 };
    let mut counts: Vec<u32> = weights
        .iter()
        .map(|w| {
            if *w == 0.0 {
                0
            } else {
                ((w * scale) as u32).clamp(1, MAX_THREAD)
            }
        })
        .collect();
    let mut current: u64 = counts.iter().map(|c| u64::from(*c)).sum();
    // Rounding and the cap leave the sum a little off: walk random conversations one message
    // at a time until it is exact. The correction is small next to the total.
    let mut guard = 0_u64;
    while current != total && guard < 100 * total + 1_000 {
        guard += 1;
        let i = rng.gen_range(0..n);
        if current < total && counts[i] > 0 && counts[i] < MAX_THREAD {
            counts[i] += 1;
            current += 1;
        } else if current > total && counts[i] > 1 {
            counts[i] -= 1;
            current -= 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_lengths_sum_to_the_total_with_a_long_tail() {
        let mut rng = StdRng::seed_from_u64(7);
        let counts = thread_lengths(&mut rng, 10_000, 100_000);
        assert_eq!(counts.iter().map(|c| u64::from(*c)).sum::<u64>(), 100_000);
        let empty = counts.iter().filter(|c| **c == 0).count();
        assert!((20..300).contains(&empty), "{empty} empty conversations");
        let max = counts.iter().copied().max().unwrap_or_default();
        assert!(max > 100, "the busiest thread has only {max} messages");
    }
}
