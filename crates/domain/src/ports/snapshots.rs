//! The snapshots port: the current state of many conversations or contacts in one read, for the
//! live stream, which renders a whole page of the event log at once.

use async_trait::async_trait;

use super::StoreError;
use crate::contact::Contact;
use crate::conversation::Conversation;
use crate::ids::{ContactId, ConversationId};

/// Batch reads by id across workspaces, ignoring visibility. Only the live stream's renderer
/// uses them: it renders each event once, with an owner's view, matches each row's workspace
/// against its event's, and leaves visibility to each stream. One query per page of events, not
/// one per subject, keeps the renderer ahead of bursts.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SnapshotRepository: Send + Sync {
    /// The conversations (with their contact's summary) among `ids` that exist, in any order, in
    /// one query. Each carries its workspace; the caller matches it against the event's.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn conversations_by_id(
        &self,
        ids: &[ConversationId],
    ) -> Result<Vec<Conversation>, StoreError>;

    /// The contacts among `ids` that exist (deleted ones are left out), in any order, in one
    /// query. Each carries its workspace; the caller matches it against the event's.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn contacts_by_id(&self, ids: &[ContactId]) -> Result<Vec<Contact>, StoreError>;
}
