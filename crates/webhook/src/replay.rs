//! Replaying stored deliveries (`inbox-api admin deliveries replay`): parse the stored raw body
//! again and apply it. Safe to repeat: wamids are stored once per workspace and statuses only
//! move forward, so a replay never duplicates or regresses anything.

use inbox_domain::DeliveryId;
use inbox_domain::delivery::{DeliveryFilter, DeliveryOutcome};
use inbox_domain::ingest::{IngestOutcome, replay};
use inbox_domain::ports::{Repository, StoreError};
use inbox_kapso::parse_routed;

/// Most failed deliveries one `replay_failed` call takes on.
pub const REPLAY_BATCH: u32 = 10_000;

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No delivery has that id.
    #[error("no stored delivery has id {0}")]
    NotFound(DeliveryId),
    /// The database refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Replays one stored delivery, whatever its outcome, and returns the new outcome.
///
/// # Errors
/// [`ReplayError::NotFound`] for an unknown id; [`ReplayError::Store`] when the database fails.
pub async fn replay_delivery(
    repo: &dyn Repository,
    id: DeliveryId,
) -> Result<IngestOutcome, ReplayError> {
    let delivery = repo.delivery(id).await?.ok_or(ReplayError::NotFound(id))?;
    let event = delivery
        .headers
        .get("x-webhook-event")
        .and_then(serde_json::Value::as_str);
    match parse_routed(event, &delivery.body) {
        Ok(mut routed) => {
            // A raw Meta delivery naming several numbers was stored once per number: replay
            // this record's part only. Anything else is one part, for the number it was
            // verified for.
            let number = delivery.phone_number_id.clone();
            let facts = match routed
                .parts
                .iter()
                .position(|p| p.phone_number_id == number)
            {
                Some(i) if routed.parts.len() > 1 => routed.parts.swap_remove(i),
                _ => routed.into_single(number),
            };
            Ok(replay(repo, &delivery, &facts).await?)
        }
        Err(e) => {
            let error = e.to_string();
            repo.mark_delivery(id, DeliveryOutcome::Failed, Some(error.clone()))
                .await?;
            Ok(IngestOutcome::Failed(error))
        }
    }
}

/// Replays every failed delivery once, oldest first (at most [`REPLAY_BATCH`]), and returns
/// each one's new outcome. Deliveries that fail again stay failed; they are not retried here.
///
/// # Errors
/// When the database fails; deliveries replayed before that keep their new outcome.
pub async fn replay_failed(
    repo: &dyn Repository,
) -> Result<Vec<(DeliveryId, IngestOutcome)>, ReplayError> {
    let failed = repo
        .deliveries(DeliveryFilter::Failed, REPLAY_BATCH)
        .await?;
    let mut outcomes = Vec::with_capacity(failed.len());
    for delivery in failed {
        outcomes.push((delivery.id, replay_delivery(repo, delivery.id).await?));
    }
    Ok(outcomes)
}
