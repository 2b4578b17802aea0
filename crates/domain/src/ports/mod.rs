//! Storage ports: what the use cases need from a database, implemented by `inbox-store`.
//!
//! Every method is scoped: anything that reads or changes tenant data takes the workspace it
//! belongs to, so an adapter cannot forget the tenant filter.

mod contacts;
mod conversations;
mod deliveries;
mod events;
mod identity;
mod ingest;
mod kapso;
mod sending;
mod snapshots;
mod workspaces;

pub use contacts::ContactRepository;
#[cfg(any(test, feature = "mocks"))]
pub use contacts::MockContactRepository;
#[cfg(any(test, feature = "mocks"))]
pub use conversations::MockConversationRepository;
pub use conversations::{ActionError, ConversationRepository};
pub use deliveries::DeliveryRepository;
#[cfg(any(test, feature = "mocks"))]
pub use deliveries::MockDeliveryRepository;
pub use events::EventLog;
#[cfg(any(test, feature = "mocks"))]
pub use events::MockEventLog;
pub use identity::IdentityRepository;
#[cfg(any(test, feature = "mocks"))]
pub use identity::MockIdentityRepository;
#[cfg(any(test, feature = "mocks"))]
pub use ingest::MockIngestRepository;
pub use ingest::{IngestRepository, IngestUnit};
#[cfg(any(test, feature = "mocks"))]
pub use kapso::MockKapsoGateway;
pub use kapso::{
    KapsoAccount, KapsoError, KapsoGateway, SentMessage, SoughtContent, SoughtSend,
    WINDOW_CLOSED_CODE, WorkflowUpdate,
};
#[cfg(any(test, feature = "mocks"))]
pub use sending::MockSendRepository;
pub use sending::SendRepository;
#[cfg(any(test, feature = "mocks"))]
pub use snapshots::MockSnapshotRepository;
pub use snapshots::SnapshotRepository;
#[cfg(any(test, feature = "mocks"))]
pub use workspaces::MockWorkspaceRepository;
pub use workspaces::WorkspaceRepository;

use async_trait::async_trait;

/// Why a storage call failed. Adapters translate driver errors into these; no driver text or SQL
/// reaches callers except inside `Internal`, which is logged and never shown to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The row to change does not exist (in that workspace).
    #[error("not found")]
    NotFound,
    /// A uniqueness rule refused the write; names the rule's field, e.g. `slug` or `phone`.
    #[error("{0} is already taken")]
    Duplicate(String),
    /// A reference points nowhere (a user id that is not a user, say); names the field.
    #[error("{0} does not exist")]
    MissingReference(String),
    /// The database cannot be reached or is shutting down; the caller may retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The transaction lost a conflict with a concurrent one (a deadlock, a serialization
    /// failure) and was rolled back: nothing of it was stored, and running the same unit of work
    /// again is expected to succeed. Use cases that own a unit of work re-run it a bounded number
    /// of times and then report `Unavailable`; to anyone else it means what `Unavailable` means.
    #[error("transaction conflict: {0}")]
    Retryable(String),
    /// Anything else: a bug or corrupt data.
    #[error("storage failure: {0}")]
    Internal(String),
}

/// Whether the database answers.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Health: Send + Sync {
    /// Round-trips a trivial query.
    ///
    /// # Errors
    /// `Unavailable` when the database does not answer.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Every port, for binaries that hold one `Arc<dyn Repository>`.
pub trait Repository:
    WorkspaceRepository
    + IdentityRepository
    + IngestRepository
    + DeliveryRepository
    + EventLog
    + ConversationRepository
    + ContactRepository
    + SendRepository
    + SnapshotRepository
    + Health
{
}

impl<T> Repository for T where
    T: WorkspaceRepository
        + IdentityRepository
        + IngestRepository
        + DeliveryRepository
        + EventLog
        + ConversationRepository
        + ContactRepository
        + SendRepository
        + SnapshotRepository
        + Health
{
}
