//! The ingest port: a unit of work in which one delivery's facts are applied atomically.
//!
//! The rules (which contact, which seq, what unread becomes, which events) live in the domain
//! use case [`crate::ingest::ingest`]; the unit only offers the reads and writes it needs, all
//! inside one database transaction that [`IngestUnit::commit`] makes durable. Dropping a unit
//! without committing rolls everything back.

use async_trait::async_trait;

use super::StoreError;
use crate::delivery::{DeliveryOutcome, NewDelivery};
use crate::event::NewEvent;
use crate::ids::{ContactId, ConversationId, DeliveryId, MessageId, WorkspaceId};
use crate::ingest::{
    ContactState, ConversationState, CustomerRef, IngestRoute, MessageStatusState,
    NewIngestedMessage, PendingStatus,
};
use crate::message::{DeliveryStatus, MessageError};
use crate::phone::PhoneE164;
use crate::sending::OwnSendMatch;
use crate::timestamp::Timestamp;

/// Starts ingest units.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait IngestRepository: Send + Sync {
    /// Begins a unit of work (a write transaction).
    ///
    /// # Errors
    /// `Unavailable` when no connection can be had.
    async fn begin_ingest(&self) -> Result<Box<dyn IngestUnit>, StoreError>;

    /// Waits a short, random while before a unit that failed with `Retryable` is run again
    /// (`attempt` is the number of the attempt about to start, from 2), so that the
    /// transactions that collided do not collide again in step.
    async fn pause_before_retry(&self, attempt: u32);
}

/// The reads and writes of one ingest transaction. Every method runs inside it; nothing is
/// visible to others before [`IngestUnit::commit`]. An implementation may hold back writes that
/// return nothing and send them with the next statement that must run (at the latest with the
/// commit), so that a delivery costs few round trips; their errors then surface there.
///
/// Concurrency contract, which the use case's guarantees rest on: [`Self::lock_conversation`]
/// holds the conversation until commit (so seq allocation is serial per conversation), and
/// [`Self::take_pending_statuses`] and [`Self::lock_message`] serialise with each other per
/// (workspace, wamid) until commit (so a status and its message never miss each other).
#[async_trait]
pub trait IngestUnit: Send {
    /// The workspace a business phone number routes to (`None` when none does) and, when
    /// `customer` is given, its contact and that contact's conversation, locked until commit as
    /// by [`Self::lock_conversation`], if both exist. The contact is looked up by phone when the
    /// customer has one, else by bsuid; when this finds no contact, [`Self::find_contact`] still
    /// may (a contact known only by its bsuid).
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn route(
        &mut self,
        phone_number_id: &str,
        customer: Option<&CustomerRef>,
    ) -> Result<Option<IngestRoute>, StoreError>;

    /// Stores a new delivery with the given outcome and one attempt. Returns `false`, writing
    /// nothing, when its idempotency key is already stored (waiting for a concurrent unit that
    /// stored it to finish first); the caller then drops the unit, rolling back everything it
    /// did.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn insert_delivery(
        &mut self,
        new: &NewDelivery,
        workspace_id: Option<WorkspaceId>,
        outcome: DeliveryOutcome,
        error: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Sets a stored delivery's outcome, error, workspace and `processed_at = now`, adding one
    /// to `attempts` when `new_attempt` (a replay; the first attempt was counted at insert).
    ///
    /// # Errors
    /// `NotFound` for an unknown delivery.
    async fn finish_delivery(
        &mut self,
        id: DeliveryId,
        workspace_id: Option<WorkspaceId>,
        outcome: DeliveryOutcome,
        error: Option<&str>,
        new_attempt: bool,
    ) -> Result<(), StoreError>;

    /// The contact with this phone, else the one with this bsuid.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn find_contact(
        &mut self,
        workspace_id: WorkspaceId,
        phone: Option<&PhoneE164>,
        bsuid: Option<&str>,
    ) -> Result<Option<ContactState>, StoreError>;

    /// When a contact with this phone, or else this bsuid, was last deleted in the workspace;
    /// `None` when never.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn erased_at(
        &mut self,
        workspace_id: WorkspaceId,
        phone: Option<&PhoneE164>,
        bsuid: Option<&str>,
    ) -> Result<Option<Timestamp>, StoreError>;

    /// Creates a WhatsApp contact (`source = whatsapp`, the profile name as `whatsapp_name`).
    /// Returns `None`, writing nothing, when a concurrent writer created a contact with the same
    /// phone or bsuid first; the caller finds that one instead.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn insert_contact(
        &mut self,
        workspace_id: WorkspaceId,
        id: ContactId,
        customer: &CustomerRef,
        now: Timestamp,
    ) -> Result<Option<ContactState>, StoreError>;

    /// Writes a contact's WhatsApp-owned fields: `whatsapp_name`, `last_activity_at` (and its
    /// sort copy), `last_contact_at`, `updated_at = now`.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn update_contact(
        &mut self,
        workspace_id: WorkspaceId,
        contact: &ContactState,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// The contact's conversation, locked until commit.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn lock_conversation(
        &mut self,
        workspace_id: WorkspaceId,
        contact_id: ContactId,
    ) -> Result<Option<ConversationState>, StoreError>;

    /// Creates a conversation. Returns `false`, writing nothing, when the contact already has
    /// one (a concurrent writer won); the caller locks that one instead.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn insert_conversation(
        &mut self,
        conversation: &ConversationState,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Writes a conversation's state, keeping `sort_at = COALESCE(last_message_at, 0)` and its
    /// tag rows' copy of it in step.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn update_conversation(
        &mut self,
        conversation: &ConversationState,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Inserts a message unless its wamid is already stored in the workspace; `true` when
    /// inserted.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn insert_message(&mut self, message: &NewIngestedMessage) -> Result<bool, StoreError>;

    /// Removes and returns the statuses kept for a wamid that had no message yet.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn take_pending_statuses(
        &mut self,
        workspace_id: WorkspaceId,
        wamid: &str,
    ) -> Result<Vec<PendingStatus>, StoreError>;

    /// The message with this wamid, locked until commit.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn lock_message(
        &mut self,
        workspace_id: WorkspaceId,
        wamid: &str,
    ) -> Result<Option<MessageStatusState>, StoreError>;

    /// Gives `wamid` to the message this API is still sending in the conversation (outbound,
    /// `pending`, no wamid yet) that `sought` names; `None` when there is none, or when a
    /// message already has this wamid.
    ///
    /// With callback data, only the message whose id it is can match. Without, only sends made
    /// before callback data was introduced can, by content ([`OwnSendMatch::same_content`]):
    /// the oldest such one.
    ///
    /// Kapso's `whatsapp.message.sent` echo of our own send can arrive before Kapso's answer to
    /// the send tells us the wamid; this is how the echo finds our message instead of becoming
    /// a second one. The caller holds the conversation's lock (as the sender does when it
    /// records the wamid), so the two cannot interleave.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn claim_unsent_outbound(
        &mut self,
        workspace_id: WorkspaceId,
        conversation_id: ConversationId,
        sought: &OwnSendMatch,
        wamid: &str,
    ) -> Result<Option<MessageStatusState>, StoreError>;

    /// Gives `wamid` to the message `id` when this API is still sending it (outbound,
    /// `pending`, no wamid yet) and no message has this wamid yet; `None` otherwise.
    ///
    /// A status that carries our message id as callback data finds its message this way
    /// before Kapso's answer or echo told us the wamid. The caller holds the wamid's lock
    /// ([`Self::lock_message`] took it), as the sender does before it locks the message.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn claim_own_send(
        &mut self,
        workspace_id: WorkspaceId,
        id: MessageId,
        wamid: &str,
    ) -> Result<Option<MessageStatusState>, StoreError>;

    /// Sets a message's status, and its error when one is given.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn update_message_status(
        &mut self,
        workspace_id: WorkspaceId,
        id: MessageId,
        status: DeliveryStatus,
        error: Option<&MessageError>,
    ) -> Result<(), StoreError>;

    /// Keeps a status for a wamid we have no message for yet (once per status).
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn add_pending_status(
        &mut self,
        workspace_id: WorkspaceId,
        status: &PendingStatus,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Appends events to the log, in order.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn append_events(&mut self, events: &[NewEvent]) -> Result<(), StoreError>;

    /// Makes everything durable.
    ///
    /// # Errors
    /// `Unavailable` or `Internal`; nothing was written then.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}
