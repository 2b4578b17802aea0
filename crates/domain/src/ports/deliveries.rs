//! The delivery log port.

use async_trait::async_trait;

use super::StoreError;
use crate::delivery::{Delivery, DeliveryFilter, DeliveryOutcome, NewDelivery};
use crate::ids::{DeliveryId, WorkspaceId};
use crate::timestamp::Timestamp;

/// Stored webhook deliveries, outside any ingest transaction: the failure record, the admin
/// listing and the replay queue.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait DeliveryRepository: Send + Sync {
    /// Stores a delivery with its outcome (one attempt counted unless `outcome` is `Pending`).
    /// Returns `false`, and changes nothing, when a delivery with the same idempotency key is
    /// already stored in the same scope: keys are unique per workspace (the given one, else the
    /// one the delivery's phone_number_id routes to), and deliveries routed to no workspace
    /// share one global scope.
    ///
    /// # Errors
    /// `Duplicate("id")` for a reused id; otherwise only `Unavailable` or `Internal`.
    async fn record_delivery(
        &self,
        new: &NewDelivery,
        workspace_id: Option<WorkspaceId>,
        outcome: DeliveryOutcome,
        error: Option<String>,
    ) -> Result<bool, StoreError>;

    /// The earliest delivery stored under an idempotency key, in any scope. (A key longer than
    /// 256 bytes is stored, and returned, as `sha256-long:` and its hash.)
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn delivery_by_idempotency_key(&self, key: &str) -> Result<Option<Delivery>, StoreError>;

    /// A delivery by id.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError>;

    /// Deliveries, oldest first, at most `limit`.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn deliveries(
        &self,
        filter: DeliveryFilter,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Records the outcome of another processing attempt: sets outcome, error and
    /// `processed_at`, adds one to `attempts`.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    async fn mark_delivery(
        &self,
        id: DeliveryId,
        outcome: DeliveryOutcome,
        error: Option<String>,
    ) -> Result<(), StoreError>;

    /// Deletes at most `limit` deliveries past retention: processed and ignored ones received
    /// before `done_before`, failed ones received before `failed_before` (a failed delivery
    /// replayed successfully is processed). Pending ones are never deleted. Returns how many.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn prune_deliveries(
        &self,
        done_before: Timestamp,
        failed_before: Timestamp,
        limit: u32,
    ) -> Result<u64, StoreError>;

    /// Deletes at most `limit` of the statuses kept for wamids with no message yet that arrived
    /// before `before`. Returns how many.
    ///
    /// # Errors
    /// Only `Unavailable` or `Internal`.
    async fn prune_pending_statuses(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> Result<u64, StoreError>;
}
