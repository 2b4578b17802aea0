//! The contacts port.

use async_trait::async_trait;

use super::{ActionError, StoreError};
use crate::contact::{Contact, ContactLookup, ContactPatch, ContactQuery, NewContact};
use crate::ids::{ContactId, WorkspaceId};
use crate::page::Page;
use crate::phone::PhoneE164;
use crate::user::Actor;

/// Contacts as agents and bots manage them. Every method but
/// [`ContactRepository::contact_id_by_phone`] is scoped to the actor's workspace and visibility:
/// members see only contacts assigned to them.
///
/// Every write keeps the conversation's copies of the contact (`contact_assigned_to`,
/// `lead_status`, the tag index) in step in the same transaction, and appends `contact.updated`
/// (plus `conversation.*` when the conversation's view changed).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ContactRepository: Send + Sync {
    /// A page of the contacts the actor sees that match every filter, newest activity first
    /// (never-active last), ties by id descending.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn contacts(
        &self,
        actor: Actor,
        query: ContactQuery,
    ) -> Result<Page<Contact, ContactId>, StoreError>;

    /// One contact; `None` when it does not exist, belongs to another workspace, or is not
    /// visible to the actor.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn contact(&self, actor: Actor, id: ContactId) -> Result<Option<Contact>, StoreError>;

    /// Creates a contact in the actor's workspace together with its conversation (closed and
    /// never messaged, so it waits at the end of the list without swelling the open queue), and
    /// appends `contact.updated` and `conversation.created`. `source` defaults to `api`.
    ///
    /// # Errors
    /// `Store(Duplicate("phone"))` (or `"bsuid"`) when the workspace has a contact with it: find
    /// its id with [`ContactRepository::contact_id_by_phone`]; `Forbidden` when a member assigns
    /// someone else; `AssigneeNotMember`; `Store(Internal)` when neither phone nor bsuid is
    /// given.
    async fn create_contact(&self, actor: Actor, new: NewContact) -> Result<Contact, ActionError>;

    /// The id of the workspace's contact with this phone, whoever it is assigned to: for naming
    /// the existing contact in a conflict.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn contact_id_by_phone(
        &self,
        workspace_id: WorkspaceId,
        phone: &PhoneE164,
    ) -> Result<Option<ContactId>, StoreError>;

    /// Applies a patch (the phone is not editable).
    ///
    /// # Errors
    /// `Store(NotFound)` when the contact is not there for the actor; `Forbidden` when a member
    /// assigns someone else; `AssigneeNotMember`.
    async fn update_contact(
        &self,
        actor: Actor,
        id: ContactId,
        patch: ContactPatch,
    ) -> Result<Contact, ActionError>;

    /// Deletes a contact with its conversation and messages, and appends `contact.updated` and
    /// `conversation.updated` naming them, so live clients drop them (the ids no longer
    /// resolve).
    ///
    /// # Errors
    /// `Store(NotFound)` when the contact is not there for the actor; `Forbidden` unless the
    /// actor may delete contacts ([`Actor::may_delete_contacts`]).
    async fn delete_contact(&self, actor: Actor, id: ContactId) -> Result<(), ActionError>;

    /// What a bot needs about a phone number: the contact, its conversation id, the last
    /// interaction and the 10 newest messages, newest first; `None` when no contact the actor
    /// sees has that phone.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn contact_by_phone(
        &self,
        actor: Actor,
        phone: &PhoneE164,
    ) -> Result<Option<ContactLookup>, StoreError>;
}
