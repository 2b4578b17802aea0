//! The delivery log port: stored webhook deliveries, their outcomes and the replay queue.

use async_trait::async_trait;
use inbox_domain::delivery::{Delivery, DeliveryFilter, DeliveryOutcome, NewDelivery};
use inbox_domain::ports::{DeliveryRepository, StoreError};
use inbox_domain::{DeliveryId, Timestamp, WorkspaceId};
use sqlx::{Postgres, Sqlite};
use uuid::Uuid;

use crate::Store;
use crate::error::from_sqlx;
use crate::rows::corrupt;

/// Stores a delivery unless its idempotency key is taken in its scope; shared with the ingest
/// unit. Binds: id, key (as [`stored_key`] makes it), event, workspace, phone_number_id,
/// headers, body, received_at, outcome, error, processed_at, attempts, [`GLOBAL_SCOPE`].
///
/// The scope is the workspace the delivery is stored for, else the one its phone_number_id
/// routes to (a failure record does not know its workspace), else the global one: one tenant's
/// key never shadows another tenant's delivery.
pub(crate) const INSERT_DELIVERY: &str = "INSERT INTO webhook_deliveries (id, idempotency_key, \
       event, workspace_id, phone_number_id, headers, body, received_at, outcome, error, \
       processed_at, attempts, idempotency_scope) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
       COALESCE($4, (SELECT w.id FROM workspaces w WHERE w.kapso_phone_number_id = $5), $13)) \
     ON CONFLICT (idempotency_scope, idempotency_key) DO NOTHING";

/// The idempotency scope of deliveries routed to no workspace.
pub(crate) const GLOBAL_SCOPE: Uuid = Uuid::nil();

/// The longest idempotency key stored as it is; a longer one is stored as its SHA-256, so that
/// no key, whatever a sender puts in it, exceeds what an index entry may hold.
const MAX_STORED_KEY: usize = 256;

/// An idempotency key as stored and looked up.
pub(crate) fn stored_key(key: Option<&str>) -> Option<String> {
    key.map(|key| {
        if key.len() <= MAX_STORED_KEY {
            key.to_owned()
        } else {
            use sha2::Digest;
            format!(
                "sha256-long:{}",
                hex::encode(sha2::Sha256::digest(key.as_bytes()))
            )
        }
    })
}

/// `processed_at` for a delivery stored with `outcome`: now, unless it is still pending.
pub(crate) fn processed_at(outcome: DeliveryOutcome) -> Option<i64> {
    (outcome != DeliveryOutcome::Pending).then(|| Timestamp::now().as_millis())
}

const DELIVERY_COLUMNS: &str = "id, idempotency_key, event, workspace_id, phone_number_id, \
    headers, body, received_at, outcome, error, processed_at, attempts";

/// `webhook_deliveries` as stored.
#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: Uuid,
    idempotency_key: Option<String>,
    event: Option<String>,
    workspace_id: Option<Uuid>,
    phone_number_id: Option<String>,
    headers: String,
    body: Vec<u8>,
    received_at: i64,
    outcome: String,
    error: Option<String>,
    processed_at: Option<i64>,
    attempts: i32,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;

    fn try_from(row: DeliveryRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: DeliveryId::from_uuid(row.id),
            idempotency_key: row.idempotency_key,
            event: row.event,
            workspace_id: row.workspace_id.map(WorkspaceId::from_uuid),
            phone_number_id: row.phone_number_id,
            headers: serde_json::from_str(&row.headers)
                .map_err(|e| corrupt("delivery headers", e))?,
            body: row.body,
            received_at: Timestamp::from_millis(row.received_at),
            outcome: row
                .outcome
                .parse()
                .map_err(|e: String| corrupt("delivery outcome", e))?,
            error: row.error,
            processed_at: row.processed_at.map(Timestamp::from_millis),
            attempts: i64::from(row.attempts),
        })
    }
}

macro_rules! impl_deliveries {
    ($db:ty) => {
        #[async_trait]
        impl DeliveryRepository for Store<$db> {
            async fn prune_deliveries(
                &self,
                done_before: Timestamp,
                failed_before: Timestamp,
                limit: u32,
            ) -> Result<u64, StoreError> {
                // Each part walks (outcome, received_at); one small batch per call.
                let done = sqlx::query(
                    "DELETE FROM webhook_deliveries WHERE id IN ( \
                       SELECT id FROM webhook_deliveries \
                         WHERE outcome IN ('processed', 'ignored') AND received_at < $1 \
                       UNION ALL \
                       SELECT id FROM webhook_deliveries \
                         WHERE outcome = 'failed' AND received_at < $2 \
                       LIMIT $3)",
                )
                .bind(done_before.as_millis())
                .bind(failed_before.as_millis())
                .bind(i64::from(limit))
                .execute(&self.write)
                .await
                .map_err(from_sqlx)?;
                Ok(done.rows_affected())
            }

            async fn prune_pending_statuses(
                &self,
                before: Timestamp,
                limit: u32,
            ) -> Result<u64, StoreError> {
                let done = sqlx::query(
                    "DELETE FROM pending_statuses WHERE (workspace_id, wamid, status) IN ( \
                       SELECT workspace_id, wamid, status FROM pending_statuses \
                       WHERE received_at < $1 LIMIT $2)",
                )
                .bind(before.as_millis())
                .bind(i64::from(limit))
                .execute(&self.write)
                .await
                .map_err(from_sqlx)?;
                Ok(done.rows_affected())
            }

            async fn record_delivery(
                &self,
                new: &NewDelivery,
                workspace_id: Option<WorkspaceId>,
                outcome: DeliveryOutcome,
                error: Option<String>,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(INSERT_DELIVERY)
                    .bind(new.id.as_uuid())
                    .bind(stored_key(new.idempotency_key.as_deref()))
                    .bind(new.event.as_deref())
                    .bind(workspace_id.map(|id| id.as_uuid()))
                    .bind(new.phone_number_id.as_deref())
                    .bind(new.headers.to_string())
                    .bind(new.body.as_slice())
                    .bind(new.received_at.as_millis())
                    .bind(outcome.as_str())
                    .bind(error)
                    .bind(processed_at(outcome))
                    .bind(i32::from(outcome != DeliveryOutcome::Pending))
                    .bind(GLOBAL_SCOPE)
                    .execute(&self.write)
                    .await
                    .map_err(|e| match from_sqlx(e) {
                        StoreError::Duplicate(_) => StoreError::Duplicate("id".into()),
                        // One statement, not a unit anyone re-runs: as transient as the rest.
                        StoreError::Retryable(reason) => StoreError::Unavailable(reason),
                        other => other,
                    })?;
                Ok(done.rows_affected() == 1)
            }

            async fn delivery_by_idempotency_key(
                &self,
                key: &str,
            ) -> Result<Option<Delivery>, StoreError> {
                let row: Option<DeliveryRow> = sqlx::query_as(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE idempotency_key = $1 \
                     ORDER BY received_at, id LIMIT 1"
                ))
                .bind(stored_key(Some(key)))
                .fetch_optional(&self.read)
                .await
                .map_err(from_sqlx)?;
                row.map(Delivery::try_from).transpose()
            }

            async fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
                let row: Option<DeliveryRow> = sqlx::query_as(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1"
                ))
                .bind(id.as_uuid())
                .fetch_optional(&self.read)
                .await
                .map_err(from_sqlx)?;
                row.map(Delivery::try_from).transpose()
            }

            async fn deliveries(
                &self,
                filter: DeliveryFilter,
                limit: u32,
            ) -> Result<Vec<Delivery>, StoreError> {
                // Failed ones walk the (outcome, received_at) index; ids are time-ordered
                // UUIDv7, so they break ties in arrival order.
                let sql = match filter {
                    DeliveryFilter::All => format!(
                        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
                         ORDER BY received_at, id LIMIT $1"
                    ),
                    DeliveryFilter::Failed => format!(
                        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
                         WHERE outcome = 'failed' ORDER BY received_at, id LIMIT $1"
                    ),
                    DeliveryFilter::Retryable { .. } => format!(
                        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
                         WHERE outcome = 'failed' AND attempts < $2 \
                         ORDER BY COALESCE(processed_at, received_at), id LIMIT $1"
                    ),
                };
                let mut query = sqlx::query_as::<_, DeliveryRow>(&sql).bind(i64::from(limit));
                if let DeliveryFilter::Retryable { max_attempts } = filter {
                    query = query.bind(i64::from(max_attempts));
                }
                let rows: Vec<DeliveryRow> =
                    query.fetch_all(&self.read).await.map_err(from_sqlx)?;
                rows.into_iter().map(Delivery::try_from).collect()
            }

            async fn mark_delivery(
                &self,
                id: DeliveryId,
                outcome: DeliveryOutcome,
                error: Option<String>,
            ) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "UPDATE webhook_deliveries SET outcome = $2, error = $3, processed_at = $4, \
                       attempts = attempts + 1 \
                     WHERE id = $1",
                )
                .bind(id.as_uuid())
                .bind(outcome.as_str())
                .bind(error)
                .bind(Timestamp::now().as_millis())
                .execute(&self.write)
                .await
                .map_err(from_sqlx)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }
        }
    };
}

impl_deliveries!(Sqlite);
impl_deliveries!(Postgres);
