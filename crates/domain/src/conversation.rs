//! Conversations: one per contact, the unit agents work.

use std::str::FromStr;

use crate::contact::{LeadStatus, Tag, Tags};
use crate::ids::{ContactId, ConversationId, UserId, WorkspaceId};
use crate::page::{Cursor, Limit};
use crate::phone::PhoneE164;
use crate::timestamp::Timestamp;
use crate::validation::ValidationError;

/// How long after the customer's last message free-form replies are allowed.
pub const REPLY_WINDOW_HOURS: i64 = 24;

/// Whether a conversation needs work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConversationStatus {
    /// Needs attention; inbound messages reopen.
    Open,
    /// Done for now.
    Closed,
}

impl ConversationStatus {
    /// The stored and wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

impl FromStr for ConversationStatus {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(Self::Open),
            "closed" => Ok(Self::Closed),
            _ => Err(ValidationError::new("status", "must be open or closed")),
        }
    }
}

/// The contact fields a conversation view carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactSummary {
    /// Id.
    pub id: ContactId,
    /// Name set by people.
    pub name: Option<String>,
    /// WhatsApp profile name.
    pub whatsapp_name: Option<String>,
    /// E.164 phone.
    pub phone: Option<PhoneE164>,
    /// Business-scoped user id.
    pub bsuid: Option<String>,
    /// Lead status.
    pub lead_status: LeadStatus,
    /// Lead score.
    pub lead_score: u8,
    /// Tags.
    pub tags: Tags,
    /// Assigned member.
    pub assigned_to: Option<UserId>,
}

impl ContactSummary {
    /// The display-name rule of [`crate::contact::display_name`].
    #[must_use]
    pub fn display_name(&self) -> String {
        crate::contact::display_name(
            self.name.as_deref(),
            self.whatsapp_name.as_deref(),
            self.phone.as_ref().map(PhoneE164::as_str),
            self.bsuid.as_deref(),
        )
    }
}

/// A stored conversation with its contact's summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversation {
    /// Id.
    pub id: ConversationId,
    /// Workspace.
    pub workspace_id: WorkspaceId,
    /// Open or closed.
    pub status: ConversationStatus,
    /// Handover flag: a human has the conversation and the bot stays silent.
    pub ai_paused: bool,
    /// Assigned member.
    pub assigned_to: Option<UserId>,
    /// Inbound messages since last marked read.
    pub unread_count: i64,
    /// WhatsApp time of the newest message.
    pub last_message_at: Option<Timestamp>,
    /// Preview of the newest message.
    pub last_message_preview: Option<String>,
    /// WhatsApp time of the newest inbound message.
    pub last_inbound_at: Option<Timestamp>,
    /// Kapso's latest conversation id for this contact.
    pub kapso_conversation_id: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// The contact.
    pub contact: ContactSummary,
}

impl Conversation {
    /// `last_inbound_at` + 24 h; `None` when nothing was ever received.
    #[must_use]
    pub fn reply_window_expires_at(&self) -> Option<Timestamp> {
        self.last_inbound_at
            .map(|at| at.plus_hours(REPLY_WINDOW_HOURS))
    }

    /// Whether a free-form message may be sent at `now`.
    #[must_use]
    pub fn reply_window_open(&self, now: Timestamp) -> bool {
        self.reply_window_expires_at().is_some_and(|end| now < end)
    }
}

/// Where a conversation list resumes: the `(sort_at, id)` of the last conversation returned.
pub type ConversationCursor = Cursor<ConversationId>;

/// The `assigned_to` filter of the lists: a conversation's (or, for contacts, a contact's) own
/// assignee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssigneeFilter {
    /// Assigned to the caller.
    Me,
    /// Assigned to nobody.
    Unassigned,
    /// Assigned to this user.
    User(UserId),
}

impl AssigneeFilter {
    /// The assignee this filter asks for, `None` meaning "nobody", resolved for `me`.
    #[must_use]
    pub const fn resolve(self, me: UserId) -> Option<UserId> {
        match self {
            Self::Me => Some(me),
            Self::Unassigned => None,
            Self::User(id) => Some(id),
        }
    }
}

impl FromStr for AssigneeFilter {
    type Err = ValidationError;

    /// `me`, `unassigned` or a user id.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "me" => Ok(Self::Me),
            "unassigned" => Ok(Self::Unassigned),
            other => other.parse().map(Self::User).map_err(|_| {
                ValidationError::new("assigned_to", "must be me, unassigned or a user id")
            }),
        }
    }
}

/// The `status` filter: `open`, `closed` or `all` (no filter).
///
/// # Errors
/// When `s` is none of those.
pub fn parse_status_filter(s: &str) -> Result<Option<ConversationStatus>, ValidationError> {
    match s {
        "all" => Ok(None),
        other => other
            .parse()
            .map(Some)
            .map_err(|_| ValidationError::new("status", "must be open, closed or all")),
    }
}

/// The `window` filter: whether the 24-hour reply window is open at the caller's `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyWindow {
    /// `now < last_inbound_at + 24 h`.
    Open,
    /// Nothing ever received, or the window has passed.
    Closed,
}

impl FromStr for ReplyWindow {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(Self::Open),
            "closed" => Ok(Self::Closed),
            _ => Err(ValidationError::new("window", "must be open or closed")),
        }
    }
}

/// A set of lead statuses to match any of (`lead_status=hot,cold`), never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeadStatusFilter(Vec<LeadStatus>);

impl LeadStatusFilter {
    /// Parses a comma-separated list, dropping repeats.
    ///
    /// # Errors
    /// When an item is not a lead status or the list is empty.
    pub fn parse(list: &str) -> Result<Self, ValidationError> {
        let mut statuses = Vec::new();
        for item in list.split(',').map(str::trim) {
            let status: LeadStatus = item.parse()?;
            if !statuses.contains(&status) {
                statuses.push(status);
            }
        }
        Ok(Self(statuses))
    }

    /// A filter for exactly these statuses.
    ///
    /// # Errors
    /// When `statuses` is empty.
    pub fn of(statuses: &[LeadStatus]) -> Result<Self, ValidationError> {
        let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        Self::parse(&names.join(","))
    }

    /// The statuses, without repeats.
    #[must_use]
    pub fn as_slice(&self) -> &[LeadStatus] {
        &self.0
    }
}

/// Tags to match any of, case-insensitively (`tags=vip,repeat`): 1..=10 keys, lower-cased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagFilter(Vec<String>);

impl TagFilter {
    /// Most tags one filter may name: each is one index walk.
    pub const MAX: usize = 10;

    /// Parses a comma-separated list, dropping case-insensitive repeats.
    ///
    /// # Errors
    /// When a tag is invalid (empty, over 32 characters) or there are more than 10.
    pub fn parse(list: &str) -> Result<Self, ValidationError> {
        // Counted before any item is read: the work a filter costs is bounded by the cap, not
        // by what the client sent.
        if list.split(',').nth(Self::MAX).is_some() {
            return Err(ValidationError::new(
                "tags",
                format!("at most {} tags per filter", Self::MAX),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        let mut keys: Vec<String> = Vec::new();
        for item in list.split(',') {
            let key = Tag::parse(item)?.key();
            if seen.insert(key.clone()) {
                keys.push(key);
            }
        }
        Ok(Self(keys))
    }

    /// The lower-cased tag keys, as `conversation_tags` stores them.
    #[must_use]
    pub fn keys(&self) -> &[String] {
        &self.0
    }
}

/// Text to find, case-insensitively, inside a contact's display name or phone: 3..=100
/// characters after trimming, kept lower-cased. Until search has an index, a substring this
/// short would match most of a tenant's contacts and make every page a scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchText(String);

impl SearchText {
    /// Fewest characters a search may have.
    pub const MIN: usize = 3;

    /// Validates search text.
    ///
    /// # Errors
    /// When the trimmed text is shorter than 3 or longer than 100 characters.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let text = raw.trim();
        if !(Self::MIN..=100).contains(&text.chars().count()) {
            return Err(ValidationError::new("q", "must be 3 to 100 characters"));
        }
        Ok(Self(text.to_lowercase()))
    }

    /// The lower-cased text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The conversation list's filters, combined with AND (and with the caller's visibility).
/// `None` (or an absent list) means "no filter".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConversationFilter {
    /// `status`; `None` is `all`.
    pub status: Option<ConversationStatus>,
    /// The conversation's assignee.
    pub assigned_to: Option<AssigneeFilter>,
    /// The contact's lead status, any of.
    pub lead_status: Option<LeadStatusFilter>,
    /// The contact's tags, any of.
    pub tags: Option<TagFilter>,
    /// `true`: unread_count > 0; `false`: unread_count = 0.
    pub unread: Option<bool>,
    /// The 24-hour reply window at the query's `now`.
    pub window: Option<ReplyWindow>,
    /// The handover flag.
    pub ai_paused: Option<bool>,
    /// Substring of the contact's display name or phone.
    pub q: Option<SearchText>,
}

/// One request for a page of conversations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationQuery {
    /// What to match.
    pub filter: ConversationFilter,
    /// The instant the `window` filter is judged at (the caller's clock, so tests can pin it).
    pub now: Timestamp,
    /// Page size.
    pub limit: Limit,
    /// Resume after this conversation; `None` for the first page.
    pub after: Option<ConversationCursor>,
}

/// Conversations by lead status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeadStatusCounts {
    /// `new`.
    pub new: i64,
    /// `cold`.
    pub cold: i64,
    /// `hot`.
    pub hot: i64,
    /// `client`.
    pub client: i64,
}

/// The inbox counters, all within the caller's visibility.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConversationCounts {
    /// Every visible conversation.
    pub all: i64,
    /// Open ones.
    pub open: i64,
    /// With unread messages.
    pub unread: i64,
    /// Assigned to nobody.
    pub unassigned: i64,
    /// Assigned to the caller.
    pub mine: i64,
    /// Whose reply window is open at the given `now`.
    pub window_open: i64,
    /// By the contact's lead status.
    pub by_lead_status: LeadStatusCounts,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_filter_is_counted_before_any_tag_is_read() {
        // Every item is empty (invalid): reading any of them would complain about it.
        let bomb = ",".repeat(100_000);
        let err = TagFilter::parse(&bomb).expect_err("too many");
        assert_eq!(err.field, "tags");
        assert!(err.message.contains("at most 10"), "{}", err.message);
        let keys = TagFilter::parse("VIP,vip,new").expect("valid");
        assert_eq!(keys.keys(), ["vip", "new"]);
    }

    #[test]
    fn assignee_filters() {
        let me = UserId::new();
        let other = UserId::new();
        assert_eq!("me".parse::<AssigneeFilter>(), Ok(AssigneeFilter::Me));
        assert_eq!(
            "unassigned".parse::<AssigneeFilter>(),
            Ok(AssigneeFilter::Unassigned)
        );
        assert_eq!(
            other.to_string().parse::<AssigneeFilter>(),
            Ok(AssigneeFilter::User(other))
        );
        assert!("someone".parse::<AssigneeFilter>().is_err());
        assert_eq!(AssigneeFilter::Me.resolve(me), Some(me));
        assert_eq!(AssigneeFilter::Unassigned.resolve(me), None);
    }

    #[test]
    fn status_and_window_filters() {
        assert_eq!(parse_status_filter("all"), Ok(None));
        assert_eq!(
            parse_status_filter("closed"),
            Ok(Some(ConversationStatus::Closed))
        );
        assert!(parse_status_filter("pending").is_err());
        assert_eq!("open".parse::<ReplyWindow>(), Ok(ReplyWindow::Open));
        assert!("ajar".parse::<ReplyWindow>().is_err());
    }

    #[test]
    fn lead_status_lists_dedupe_and_refuse_unknowns() {
        let f = LeadStatusFilter::parse("hot, cold,hot").expect("valid");
        assert_eq!(f.as_slice(), [LeadStatus::Hot, LeadStatus::Cold]);
        assert!(LeadStatusFilter::parse("").is_err());
        assert!(LeadStatusFilter::parse("hot,warm").is_err());
        assert!(LeadStatusFilter::of(&[]).is_err());
    }

    #[test]
    fn tag_filters_are_lower_cased_deduped_and_bounded() {
        let f = TagFilter::parse("VIP,vip, Repeat").expect("valid");
        assert_eq!(f.keys(), ["vip", "repeat"]);
        assert!(TagFilter::parse("a,,b").is_err());
        let eleven: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
        assert!(TagFilter::parse(&eleven.join(",")).is_err());
    }

    #[test]
    fn search_text_is_trimmed_and_lower_cased() {
        assert_eq!(
            SearchText::parse("  BuDi ").map(|q| q.as_str().to_owned()),
            Ok("budi".to_owned())
        );
        assert!(SearchText::parse("   ").is_err());
        assert!(
            SearchText::parse(" ab ").is_err(),
            "too short to bound the scan"
        );
        assert!(SearchText::parse("abc").is_ok());
        assert!(SearchText::parse(&"x".repeat(101)).is_err());
    }
}
