//! Contacts: the customers who write to a workspace.

use std::fmt;
use std::str::FromStr;

use crate::conversation::{AssigneeFilter, LeadStatusFilter, SearchText, TagFilter};
use crate::ids::{ContactId, ConversationId, UserId, WorkspaceId};
use crate::message::Message;
use crate::page::{Cursor, Limit};
use crate::phone::PhoneE164;
use crate::timestamp::Timestamp;
use crate::validation::ValidationError;

/// Where a lead stands. A fixed set for now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum LeadStatus {
    /// Not qualified yet.
    #[default]
    New,
    /// Not interested for now.
    Cold,
    /// Likely to buy.
    Hot,
    /// Bought.
    Client,
}

impl LeadStatus {
    /// Every status, in display order.
    pub const ALL: [Self; 4] = [Self::New, Self::Cold, Self::Hot, Self::Client];

    /// The stored and wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Cold => "cold",
            Self::Hot => "hot",
            Self::Client => "client",
        }
    }
}

impl fmt::Display for LeadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LeadStatus {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| ValidationError::new("lead_status", "must be new, cold, hot or client"))
    }
}

/// A lead score, 0..=100.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct LeadScore(u8);

impl LeadScore {
    /// Validates a score.
    ///
    /// # Errors
    /// When the score is outside 0..=100.
    pub fn new(score: i64) -> Result<Self, ValidationError> {
        u8::try_from(score)
            .ok()
            .filter(|s| *s <= 100)
            .map(Self)
            .ok_or_else(|| ValidationError::new("lead_score", "must be an integer from 0 to 100"))
    }

    /// The score.
    #[must_use]
    pub const fn value(self) -> u8 {
        self.0
    }
}

/// A tag: 1..=32 characters, compared case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tag(String);

impl Tag {
    /// Validates a tag; surrounding whitespace is trimmed.
    ///
    /// # Errors
    /// When the trimmed tag is empty or longer than 32 characters.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let tag = raw.trim();
        let n = tag.chars().count();
        if (1..=32).contains(&n) {
            Ok(Self(tag.to_owned()))
        } else {
            Err(ValidationError::new(
                "tags",
                "each tag must be 1 to 32 characters",
            ))
        }
    }

    /// The tag as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key tags are compared and indexed by.
    #[must_use]
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A contact's tags: unique case-insensitively, in the order first given, at most 50.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Tags(Vec<Tag>);

impl Tags {
    /// Most tags a contact may carry.
    pub const MAX: usize = 50;

    /// Validates a list of tags, dropping case-insensitive repeats.
    ///
    /// # Errors
    /// When more than [`Tags::MAX`] are sent (counted before any is read, repeats included, so
    /// the work is bounded by the cap), or a tag is invalid.
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, ValidationError> {
        if raw.len() > Self::MAX {
            return Err(ValidationError::new(
                "tags",
                format!("at most {} tags", Self::MAX),
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(raw.len());
        let mut tags: Vec<Tag> = Vec::with_capacity(raw.len());
        for (i, item) in raw.iter().enumerate() {
            let tag = Tag::parse(item.as_ref())
                .map_err(|e| ValidationError::new(format!("tags[{i}]"), e.message))?;
            if seen.insert(tag.key()) {
                tags.push(tag);
            }
        }
        Ok(Self(tags))
    }

    /// The tags.
    #[must_use]
    pub fn as_slice(&self) -> &[Tag] {
        &self.0
    }

    /// The lower-cased keys, for indexing.
    #[must_use]
    pub fn keys(&self) -> Vec<String> {
        self.0.iter().map(Tag::key).collect()
    }
}

/// How a contact came to exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContactSource {
    /// Created by the webhook when they first wrote.
    Whatsapp,
    /// Created by a person in the inbox.
    Manual,
    /// Imported in bulk.
    Import,
    /// Created through the API by a bot or integration.
    Api,
}

impl ContactSource {
    /// The stored and wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Whatsapp => "whatsapp",
            Self::Manual => "manual",
            Self::Import => "import",
            Self::Api => "api",
        }
    }
}

impl FromStr for ContactSource {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "whatsapp" => Ok(Self::Whatsapp),
            "manual" => Ok(Self::Manual),
            "import" => Ok(Self::Import),
            "api" => Ok(Self::Api),
            _ => Err(ValidationError::new(
                "source",
                "must be whatsapp, manual, import or api",
            )),
        }
    }
}

/// A contact's metadata: a JSON object of at most 16 KiB.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Metadata(serde_json::Map<String, serde_json::Value>);

impl Metadata {
    /// Largest serialised size.
    pub const MAX_BYTES: usize = 16 * 1024;

    /// Validates metadata.
    ///
    /// # Errors
    /// When it is not an object or serialises to more than 16 KiB.
    pub fn parse(value: serde_json::Value) -> Result<Self, ValidationError> {
        let serde_json::Value::Object(map) = value else {
            return Err(ValidationError::new("metadata", "must be a JSON object"));
        };
        let size = serde_json::to_vec(&map).map_or(usize::MAX, |v| v.len());
        if size > Self::MAX_BYTES {
            return Err(ValidationError::new("metadata", "must be at most 16 KiB"));
        }
        Ok(Self(map))
    }

    /// The object.
    #[must_use]
    pub fn as_map(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.0
    }
}

/// A stored contact.
#[derive(Clone, Debug, PartialEq)]
pub struct Contact {
    /// Id.
    pub id: ContactId,
    /// Workspace.
    pub workspace_id: WorkspaceId,
    /// E.164 phone; unique per workspace.
    pub phone: Option<PhoneE164>,
    /// WhatsApp business-scoped user id; unique per workspace.
    pub bsuid: Option<String>,
    /// Name set by people; the webhook never overwrites it.
    pub name: Option<String>,
    /// WhatsApp profile name, kept current by the webhook.
    pub whatsapp_name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Lead status.
    pub lead_status: LeadStatus,
    /// Lead score.
    pub lead_score: LeadScore,
    /// Tags.
    pub tags: Tags,
    /// Assigned member.
    pub assigned_to: Option<UserId>,
    /// Origin.
    pub source: ContactSource,
    /// Free-form metadata.
    pub metadata: Metadata,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Last message either way.
    pub last_activity_at: Option<Timestamp>,
    /// Last outbound message.
    pub last_contact_at: Option<Timestamp>,
}

impl Contact {
    /// `name`, else `whatsapp_name`, else `phone`, else `bsuid`.
    #[must_use]
    pub fn display_name(&self) -> String {
        display_name(
            self.name.as_deref(),
            self.whatsapp_name.as_deref(),
            self.phone.as_ref().map(PhoneE164::as_str),
            self.bsuid.as_deref(),
        )
    }
}

/// The display-name rule, shared by every place that shows a contact.
#[must_use]
pub fn display_name(
    name: Option<&str>,
    whatsapp_name: Option<&str>,
    phone: Option<&str>,
    bsuid: Option<&str>,
) -> String {
    [name, whatsapp_name, phone, bsuid]
        .into_iter()
        .flatten()
        .find(|s| !s.is_empty())
        .unwrap_or_default()
        .to_owned()
}

/// What creating a contact needs.
#[derive(Clone, Debug, Default)]
pub struct NewContact {
    /// E.164 phone.
    pub phone: Option<PhoneE164>,
    /// WhatsApp business-scoped user id.
    pub bsuid: Option<String>,
    /// Name set by a person.
    pub name: Option<String>,
    /// WhatsApp profile name.
    pub whatsapp_name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Lead status.
    pub lead_status: LeadStatus,
    /// Lead score.
    pub lead_score: LeadScore,
    /// Tags.
    pub tags: Tags,
    /// Assigned member.
    pub assigned_to: Option<UserId>,
    /// Origin.
    pub source: Option<ContactSource>,
    /// Metadata.
    pub metadata: Metadata,
}

/// A change to a contact; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct ContactPatch {
    /// Name.
    pub name: Option<Option<String>>,
    /// Email.
    pub email: Option<Option<String>>,
    /// Tags (replaces the set).
    pub tags: Option<Tags>,
    /// Lead status.
    pub lead_status: Option<LeadStatus>,
    /// Lead score.
    pub lead_score: Option<LeadScore>,
    /// Assignee.
    pub assigned_to: Option<Option<UserId>>,
    /// Metadata (replaces the object).
    pub metadata: Option<Metadata>,
}

/// Where a contact list resumes: the `(activity_sort, id)` of the last contact returned, where
/// `activity_sort` is `last_activity_at` in Unix milliseconds, 0 for never.
pub type ContactCursor = Cursor<ContactId>;

/// The contact list's filters, combined with AND (and with the caller's visibility).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactFilter {
    /// Substring of the display name or phone.
    pub q: Option<SearchText>,
    /// Lead status, any of.
    pub lead_status: Option<LeadStatusFilter>,
    /// Tags, any of, case-insensitively.
    pub tags: Option<TagFilter>,
    /// The contact's assignee.
    pub assigned_to: Option<AssigneeFilter>,
}

/// One request for a page of contacts, newest activity first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactQuery {
    /// What to match.
    pub filter: ContactFilter,
    /// Page size.
    pub limit: Limit,
    /// Resume after this contact; `None` for the first page.
    pub after: Option<ContactCursor>,
}

/// What a bot learns about a phone number: the contact, its conversation and recent messages.
#[derive(Clone, Debug, PartialEq)]
pub struct ContactLookup {
    /// The contact.
    pub contact: Contact,
    /// Its conversation, if it has one.
    pub conversation_id: Option<ConversationId>,
    /// The WhatsApp time of the newest message either way, else `last_activity_at`.
    pub last_interaction: Option<Timestamp>,
    /// The 10 newest messages, newest first.
    pub recent_messages: Vec<Message>,
}

/// How many messages [`ContactLookup::recent_messages`] holds at most.
pub const LOOKUP_RECENT_MESSAGES: usize = 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_dedupe_case_insensitively_and_keep_first_spelling() {
        let tags = Tags::parse(&["VIP", "vip", " repeat "]).expect("valid");
        let names: Vec<_> = tags.as_slice().iter().map(Tag::as_str).collect();
        assert_eq!(names, ["VIP", "repeat"]);
        assert_eq!(tags.keys(), ["vip", "repeat"]);
    }

    #[test]
    fn too_many_tags_are_refused_before_any_tag_is_read() {
        // Every element is invalid: reading any of them would answer `tags[0]`.
        let bomb = vec![String::new(); 60_000];
        let err = Tags::parse(&bomb).expect_err("too many");
        assert_eq!(err.field, "tags");
        let many = vec!["same"; Tags::MAX + 1];
        assert_eq!(
            Tags::parse(&many).expect_err("counted as sent").field,
            "tags"
        );
        let fifty: Vec<String> = (0..Tags::MAX).map(|i| format!("t{i}")).collect();
        assert_eq!(
            Tags::parse(&fifty).expect("at the cap").as_slice().len(),
            50
        );
    }

    #[test]
    fn bad_tags_name_their_position() {
        let err = Tags::parse(&["ok", ""]).expect_err("empty tag");
        assert_eq!(err.field, "tags[1]");
        assert!(Tags::parse(&["x".repeat(33)]).is_err());
    }

    #[test]
    fn scores_and_statuses() {
        assert!(LeadScore::new(0).is_ok());
        assert!(LeadScore::new(100).is_ok());
        assert!(LeadScore::new(101).is_err());
        assert!(LeadScore::new(-1).is_err());
        assert_eq!("hot".parse::<LeadStatus>(), Ok(LeadStatus::Hot));
        assert!("warm".parse::<LeadStatus>().is_err());
    }

    #[test]
    fn metadata_is_a_small_object() {
        assert!(Metadata::parse(serde_json::json!({"a": 1})).is_ok());
        assert!(Metadata::parse(serde_json::json!([1])).is_err());
        let big = "x".repeat(17 * 1024);
        assert!(Metadata::parse(serde_json::json!({ "a": big })).is_err());
    }

    #[test]
    fn display_name_falls_back_in_order() {
        assert_eq!(
            display_name(Some("Budi"), Some("B"), Some("+62"), None),
            "Budi"
        );
        assert_eq!(display_name(None, Some("B"), Some("+62"), None), "B");
        assert_eq!(display_name(None, None, Some("+62"), Some("u")), "+62");
        assert_eq!(display_name(None, None, None, Some("u")), "u");
    }
}
