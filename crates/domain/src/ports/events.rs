//! The event-log port: what the live stream reads.

use async_trait::async_trait;

use super::StoreError;
use crate::event::{ChangeToken, LogPosition, LoggedEvent};
use crate::ids::{EventId, WorkspaceId};
use crate::timestamp::Timestamp;

/// Reading and pruning the event log. Writes happen inside the transactions of the changes they
/// record, through the other ports.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Up to `limit` events after `after`, in log order, of one workspace or of all. Only events
    /// whose position can no longer be overtaken by a later commit are returned, so a reader
    /// that continues from the last position it got never misses one.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn events_after(
        &self,
        after: LogPosition,
        workspace_id: Option<WorkspaceId>,
        limit: u32,
    ) -> Result<Vec<LoggedEvent>, StoreError>;

    /// The position of event `id` of a workspace, `None` when there is no such event (never
    /// written, written for another workspace, or pruned).
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn position_of(
        &self,
        workspace_id: WorkspaceId,
        id: EventId,
    ) -> Result<Option<LogPosition>, StoreError>;

    /// The position of the newest event `events_after` would return, or `START` for an empty log.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn log_head(&self) -> Result<LogPosition, StoreError>;

    /// Resolves once the log may have grown since `seen` was returned: a commit in this process,
    /// a notification from another process, or (where the backend cannot notify) a poll tick.
    /// Returns the token to pass next time. Pass `ChangeToken::default()` the first time. A
    /// caller that reads the log after each return, and passes the returned token back, misses
    /// no change.
    async fn wait_for_change(&self, seen: ChangeToken) -> ChangeToken;

    /// Deletes events written before `before`; returns how many.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn prune_events(&self, before: Timestamp) -> Result<u64, StoreError>;
}
