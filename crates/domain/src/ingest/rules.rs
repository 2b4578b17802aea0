//! The ingest rules as pure functions over the state a unit of work reads: what a new message,
//! a profile name or a Kapso conversation id does to a contact and a conversation.

use crate::contact::LeadStatus;
use crate::conversation::ConversationStatus;
use crate::ids::{ContactId, ConversationId, MessageId, UserId, WorkspaceId};
use crate::message::{
    DeliveryStatus, Direction, Media, MessageError, MessageKind, SenderType, preview,
};
use crate::timestamp::Timestamp;

/// The workspace a delivery routes to, with the setting ingest obeys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IngestWorkspace {
    /// Id.
    pub id: WorkspaceId,
    /// Whether unknown customers become contacts.
    pub auto_create_contacts: bool,
}

/// Where a delivery goes: its workspace and, when the port could find them in the same step,
/// the first customer's contact and conversation (the conversation locked until commit).
#[derive(Clone, Debug, PartialEq)]
pub struct IngestRoute {
    /// The workspace.
    pub workspace: IngestWorkspace,
    /// The customer asked about, when it is a contact with a conversation.
    pub customer: Option<(ContactState, ConversationState)>,
}

/// The contact fields ingest reads and writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactState {
    /// Id.
    pub id: ContactId,
    /// WhatsApp profile name.
    pub whatsapp_name: Option<String>,
    /// Last message either way (WhatsApp time).
    pub last_activity_at: Option<Timestamp>,
    /// Last outbound message (WhatsApp time).
    pub last_contact_at: Option<Timestamp>,
    /// Assigned member, mirrored on the conversation.
    pub assigned_to: Option<UserId>,
    /// Lead status, mirrored on the conversation.
    pub lead_status: LeadStatus,
    /// When a contact of this customer was last deleted, if ever: facts from before that are
    /// not applied.
    pub erased_at: Option<Timestamp>,
}

impl ContactState {
    /// Takes a WhatsApp profile name into `whatsapp_name` (never the person-set `name`).
    /// Returns whether it changed; an absent or blank name changes nothing.
    pub fn observe_profile_name(&mut self, profile_name: Option<&str>) -> bool {
        let Some(name) = clean_profile_name(profile_name) else {
            return false;
        };
        if self.whatsapp_name.as_deref() == Some(name) {
            return false;
        }
        self.whatsapp_name = Some(name.to_owned());
        true
    }

    /// Accounts for a newly stored message: `last_activity_at` both ways, `last_contact_at` for
    /// outbound, each the latest WhatsApp time seen. Returns whether anything changed.
    pub fn record_message(&mut self, direction: Direction, sent_at: Timestamp) -> bool {
        let mut changed = raise(&mut self.last_activity_at, sent_at);
        if direction == Direction::Outbound {
            changed |= raise(&mut self.last_contact_at, sent_at);
        }
        changed
    }
}

/// The conversation fields ingest reads and writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationState {
    /// Id.
    pub id: ConversationId,
    /// Workspace.
    pub workspace_id: WorkspaceId,
    /// The contact (one conversation per contact).
    pub contact_id: ContactId,
    /// Open or closed.
    pub status: ConversationStatus,
    /// Inbound messages since last marked read.
    pub unread_count: i64,
    /// WhatsApp time of the newest message.
    pub last_message_at: Option<Timestamp>,
    /// Preview of the newest message.
    pub last_message_preview: Option<String>,
    /// WhatsApp time of the newest inbound message.
    pub last_inbound_at: Option<Timestamp>,
    /// Seq of the newest stored message (0 when none).
    pub last_seq: i64,
    /// Kapso's latest conversation id.
    pub kapso_conversation_id: Option<String>,
    /// The contact's assignee, mirrored for list filters.
    pub contact_assigned_to: Option<UserId>,
    /// The contact's lead status, mirrored for list filters.
    pub lead_status: LeadStatus,
}

impl ConversationState {
    /// A fresh, open, empty conversation for a contact.
    #[must_use]
    pub fn new_for(workspace_id: WorkspaceId, contact: &ContactState) -> Self {
        Self {
            id: ConversationId::new(),
            workspace_id,
            contact_id: contact.id,
            status: ConversationStatus::Open,
            unread_count: 0,
            last_message_at: None,
            last_message_preview: None,
            last_inbound_at: None,
            last_seq: 0,
            kapso_conversation_id: None,
            contact_assigned_to: contact.assigned_to,
            lead_status: contact.lead_status,
        }
    }

    /// The seq the next stored message takes: seqs are 1, 2, 3, ... with no gaps, because only
    /// [`Self::record_message`] (called for messages actually inserted) advances it.
    #[must_use]
    pub const fn next_seq(&self) -> i64 {
        self.last_seq + 1
    }

    /// The list order key: `last_message_at`, or 0 when never messaged.
    #[must_use]
    pub fn sort_at(&self) -> i64 {
        self.last_message_at.map_or(0, Timestamp::as_millis)
    }

    /// Accounts for a newly stored message with seq [`Self::next_seq`]. Inbound messages add one
    /// to unread, reopen the conversation and raise `last_inbound_at`; outbound ones never touch
    /// unread. `last_message_*` follow the newest message by WhatsApp time (on a tie, the later
    /// arrival), so a late delivery of an old message does not replace the preview.
    pub fn record_message(
        &mut self,
        direction: Direction,
        sent_at: Timestamp,
        kind: &MessageKind,
        text: Option<&str>,
    ) {
        self.last_seq += 1;
        if direction == Direction::Inbound {
            self.unread_count += 1;
            self.status = ConversationStatus::Open;
            raise(&mut self.last_inbound_at, sent_at);
        }
        if self.last_message_at.is_none_or(|at| sent_at >= at) {
            self.last_message_at = Some(sent_at);
            self.last_message_preview = Some(preview(kind, text));
        }
    }

    /// Keeps Kapso's latest conversation id. Returns whether it changed.
    pub fn observe_kapso_conversation_id(&mut self, id: Option<&str>) -> bool {
        match id.filter(|id| !id.is_empty()) {
            Some(id) if self.kapso_conversation_id.as_deref() != Some(id) => {
                self.kapso_conversation_id = Some(id.to_owned());
                true
            }
            _ => false,
        }
    }
}

/// A status that arrived before its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingStatus {
    /// The message's wamid.
    pub wamid: String,
    /// The status.
    pub status: DeliveryStatus,
    /// When WhatsApp recorded it.
    pub at: Timestamp,
    /// Why it failed, for `failed`.
    pub error: Option<MessageError>,
}

/// What a status update needs of a stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageStatusState {
    /// Id.
    pub id: MessageId,
    /// Its conversation, for the event.
    pub conversation_id: ConversationId,
    /// The conversation's contact, for the event.
    pub contact_id: ContactId,
    /// Current status.
    pub status: DeliveryStatus,
}

/// The status a message ends in after `updates` (any order), with the error to store when it
/// ends `failed`; `None` when nothing moves it.
#[must_use]
pub fn fold_statuses<'a>(
    current: DeliveryStatus,
    updates: impl IntoIterator<Item = (DeliveryStatus, Option<&'a MessageError>)>,
) -> Option<(DeliveryStatus, Option<&'a MessageError>)> {
    let mut end: Option<(DeliveryStatus, Option<&MessageError>)> = None;
    for (update, error) in updates {
        let now = end.map_or(current, |(s, _)| s);
        if let Some(next) = now.advance(update) {
            let error = if next == DeliveryStatus::Failed {
                error
            } else {
                None
            };
            end = Some((next, error));
        }
    }
    end
}

/// A message row to insert.
#[derive(Clone, Debug, PartialEq)]
pub struct NewIngestedMessage {
    /// Id.
    pub id: MessageId,
    /// Workspace.
    pub workspace_id: WorkspaceId,
    /// Conversation.
    pub conversation_id: ConversationId,
    /// Position in the thread.
    pub seq: i64,
    /// Direction.
    pub direction: Direction,
    /// Author kind.
    pub sender_type: SenderType,
    /// WhatsApp type.
    pub kind: MessageKind,
    /// Body, caption or description.
    pub text: Option<String>,
    /// Attachment.
    pub media: Option<Media>,
    /// Quoted wamid.
    pub reply_to_wamid: Option<String>,
    /// WhatsApp id.
    pub wamid: String,
    /// Status (after any statuses that arrived first).
    pub status: DeliveryStatus,
    /// Failure details, when `failed`.
    pub error: Option<MessageError>,
    /// The message object as delivered.
    pub raw: serde_json::Value,
    /// WhatsApp timestamp.
    pub sent_at: Timestamp,
    /// When we stored it.
    pub created_at: Timestamp,
}

/// How far ahead of its arrival a WhatsApp timestamp may be believed (clock skew).
pub const MAX_FUTURE_SKEW_MILLIS: i64 = 5 * 60 * 1000;

/// 2009-01-01T00:00:00Z: no WhatsApp message is older.
pub const EARLIEST_MILLIS: i64 = 1_230_768_000_000;

/// The time a message counts at for ordering conversations and contacts and for the 24-hour
/// reply window: its WhatsApp timestamp, which the sender controls, clamped to
/// `[2009-01-01, received_at + MAX_FUTURE_SKEW_MILLIS]`. A timestamp far in the future would
/// otherwise pin the conversation to the top of the list and keep its reply window open; one
/// before WhatsApp existed (or negative) is taken as 2009. A merely old one is kept: it can do
/// neither, and a late delivery must not overtake newer messages. The message row keeps the
/// raw value.
#[must_use]
pub fn effective_sent_at(sent_at: Timestamp, received_at: Timestamp) -> Timestamp {
    let latest = received_at
        .as_millis()
        .saturating_add(MAX_FUTURE_SKEW_MILLIS)
        .max(EARLIEST_MILLIS);
    Timestamp::from_millis(sent_at.as_millis().clamp(EARLIEST_MILLIS, latest))
}

/// A profile name worth storing: trimmed, `None` when absent or blank.
#[must_use]
pub fn clean_profile_name(name: Option<&str>) -> Option<&str> {
    name.map(str::trim).filter(|n| !n.is_empty())
}

/// Raises an optional instant to `at` if that is later. Returns whether it changed.
fn raise(slot: &mut Option<Timestamp>, at: Timestamp) -> bool {
    if slot.is_some_and(|current| current >= at) {
        return false;
    }
    *slot = Some(at);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact() -> ContactState {
        ContactState {
            id: ContactId::new(),
            whatsapp_name: None,
            last_activity_at: None,
            last_contact_at: None,
            assigned_to: None,
            lead_status: LeadStatus::Hot,
            erased_at: None,
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(s)
    }

    #[test]
    fn sender_timestamps_are_clamped_around_arrival() {
        let received = Timestamp::from_millis(1_795_600_800_000);
        let ms = |m: i64| Timestamp::from_millis(m);
        let r = received.as_millis();
        // Believable, however old: as given.
        for at in [
            r,
            r - 1,
            r + MAX_FUTURE_SKEW_MILLIS,
            r - 3_600_000,
            r - 400 * 86_400_000,
            EARLIEST_MILLIS,
        ] {
            assert_eq!(effective_sent_at(ms(at), received), ms(at));
        }
        // Too far ahead: at most five minutes ahead.
        for at in [r + MAX_FUTURE_SKEW_MILLIS + 1, r + 86_400_000, i64::MAX] {
            assert_eq!(
                effective_sent_at(ms(at), received),
                ms(r + MAX_FUTURE_SKEW_MILLIS)
            );
        }
        // Before WhatsApp, zero or negative: 2009.
        for at in [EARLIEST_MILLIS - 1, 0, -1, i64::MIN] {
            assert_eq!(effective_sent_at(ms(at), received), ms(EARLIEST_MILLIS));
        }
        // A broken arrival clock still yields a time within the bounds.
        assert_eq!(effective_sent_at(ms(r), ms(0)), ms(EARLIEST_MILLIS));
        assert_eq!(effective_sent_at(ms(-5), ms(i64::MIN)), ms(EARLIEST_MILLIS));
    }

    #[test]
    fn a_future_timestamp_neither_pins_the_conversation_nor_holds_its_window_open() {
        let received = at(1_795_600_800);
        let mut conversation = ConversationState::new_for(WorkspaceId::new(), &contact());
        let future = at(1_795_600_800 + 10 * 365 * 86_400);
        conversation.record_message(
            Direction::Inbound,
            effective_sent_at(future, received),
            &MessageKind::text(),
            Some("from the future"),
        );
        let bound = Timestamp::from_millis(received.as_millis() + MAX_FUTURE_SKEW_MILLIS);
        assert_eq!(conversation.last_message_at, Some(bound));
        assert_eq!(conversation.last_inbound_at, Some(bound));
        // A later honest message still becomes the newest.
        let later = at(1_795_600_800 + 3_600);
        conversation.record_message(
            Direction::Inbound,
            effective_sent_at(later, later),
            &MessageKind::text(),
            Some("now"),
        );
        assert_eq!(conversation.last_message_at, Some(later));
        assert_eq!(conversation.last_message_preview.as_deref(), Some("now"));
    }

    #[test]
    fn profile_names_fill_whatsapp_name_only_when_they_change() {
        let mut c = contact();
        assert!(!c.observe_profile_name(None));
        assert!(!c.observe_profile_name(Some("  ")));
        assert!(c.observe_profile_name(Some("Budi")));
        assert!(!c.observe_profile_name(Some("Budi")));
        assert!(c.observe_profile_name(Some("Budi S")));
        assert_eq!(c.whatsapp_name.as_deref(), Some("Budi S"));
    }

    #[test]
    fn contact_activity_is_the_latest_either_way_and_contact_the_latest_outbound() {
        let mut c = contact();
        assert!(c.record_message(Direction::Inbound, at(10)));
        assert_eq!(c.last_activity_at, Some(at(10)));
        assert_eq!(c.last_contact_at, None);
        assert!(
            !c.record_message(Direction::Inbound, at(5)),
            "older changes nothing"
        );
        assert!(c.record_message(Direction::Outbound, at(8)));
        assert_eq!(c.last_activity_at, Some(at(10)));
        assert_eq!(c.last_contact_at, Some(at(8)));
    }

    #[test]
    fn new_conversations_mirror_the_contact_and_start_empty() {
        let c = contact();
        let conv = ConversationState::new_for(WorkspaceId::new(), &c);
        assert_eq!(conv.lead_status, LeadStatus::Hot);
        assert_eq!(conv.contact_id, c.id);
        assert_eq!(conv.next_seq(), 1);
        assert_eq!(conv.sort_at(), 0);
        assert_eq!(conv.status, ConversationStatus::Open);
    }

    #[test]
    fn inbound_counts_unread_reopens_and_raises_last_inbound() {
        let mut conv = ConversationState::new_for(WorkspaceId::new(), &contact());
        conv.status = ConversationStatus::Closed;
        conv.record_message(Direction::Inbound, at(10), &MessageKind::text(), Some("hi"));
        assert_eq!(conv.unread_count, 1);
        assert_eq!(conv.status, ConversationStatus::Open);
        assert_eq!(conv.last_inbound_at, Some(at(10)));
        assert_eq!(conv.last_seq, 1);
        conv.record_message(Direction::Inbound, at(5), &MessageKind::text(), Some("old"));
        assert_eq!(conv.unread_count, 2);
        assert_eq!(conv.last_inbound_at, Some(at(10)), "max, not last");
        assert_eq!(conv.last_seq, 2);
    }

    #[test]
    fn outbound_never_touches_unread_or_status() {
        let mut conv = ConversationState::new_for(WorkspaceId::new(), &contact());
        conv.status = ConversationStatus::Closed;
        conv.record_message(
            Direction::Outbound,
            at(10),
            &MessageKind::text(),
            Some("yo"),
        );
        assert_eq!(conv.unread_count, 0);
        assert_eq!(conv.status, ConversationStatus::Closed);
        assert_eq!(conv.last_inbound_at, None);
        assert_eq!(conv.last_message_preview.as_deref(), Some("yo"));
        assert_eq!(conv.sort_at(), at(10).as_millis());
    }

    #[test]
    fn last_message_follows_whatsapp_time_not_arrival() {
        let mut conv = ConversationState::new_for(WorkspaceId::new(), &contact());
        conv.record_message(
            Direction::Inbound,
            at(20),
            &MessageKind::text(),
            Some("new"),
        );
        conv.record_message(
            Direction::Inbound,
            at(10),
            &MessageKind::text(),
            Some("old"),
        );
        assert_eq!(conv.last_message_at, Some(at(20)));
        assert_eq!(conv.last_message_preview.as_deref(), Some("new"));
        conv.record_message(Direction::Inbound, at(20), &MessageKind::new("image"), None);
        assert_eq!(
            conv.last_message_preview.as_deref(),
            Some("[Image]"),
            "a tie goes to the later arrival"
        );
    }

    #[test]
    fn kapso_conversation_id_is_kept_current() {
        let mut conv = ConversationState::new_for(WorkspaceId::new(), &contact());
        assert!(!conv.observe_kapso_conversation_id(None));
        assert!(!conv.observe_kapso_conversation_id(Some("")));
        assert!(conv.observe_kapso_conversation_id(Some("c1")));
        assert!(!conv.observe_kapso_conversation_id(Some("c1")));
        assert!(conv.observe_kapso_conversation_id(Some("c2")));
        assert_eq!(conv.kapso_conversation_id.as_deref(), Some("c2"));
    }

    #[test]
    fn statuses_fold_monotonically_and_failed_keeps_its_error() {
        use DeliveryStatus::*;
        let err = MessageError {
            code: Some("131047".into()),
            title: Some("Re-engagement message".into()),
            message: None,
        };
        assert_eq!(
            fold_statuses(Sent, [(Delivered, None)]),
            Some((Delivered, None))
        );
        assert_eq!(fold_statuses(Read, [(Delivered, None)]), None);
        assert_eq!(
            fold_statuses(Sent, [(Read, None), (Delivered, None)]),
            Some((Read, None))
        );
        assert_eq!(
            fold_statuses(Sent, [(Failed, Some(&err)), (Read, None)]),
            Some((Failed, Some(&err)))
        );
        assert_eq!(fold_statuses(Received, [(Read, None)]), None);
        assert_eq!(fold_statuses(Sent, []), None);
    }
}
