//! Stored webhook deliveries: every verified request is kept, with its raw body, so that a
//! delivery that could not be processed is never lost and can be replayed.

use std::fmt;
use std::str::FromStr;

use crate::ids::{DeliveryId, WorkspaceId};
use crate::timestamp::Timestamp;

/// What became of a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryOutcome {
    /// Stored, not processed yet.
    Pending,
    /// Every fact was applied.
    Processed,
    /// Deliberately not (fully) applied: unknown business number, unknown customer with contact
    /// auto-creation off, an event we do not handle. The reason is recorded; replayable.
    Ignored,
    /// Applying it failed; the error is recorded; replayable.
    Failed,
}

impl DeliveryOutcome {
    /// The stored and wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processed => "processed",
            Self::Ignored => "ignored",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for DeliveryOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryOutcome {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "processed" => Ok(Self::Processed),
            "ignored" => Ok(Self::Ignored),
            "failed" => Ok(Self::Failed),
            other => Err(format!("`{other}` is not a delivery outcome")),
        }
    }
}

/// A verified delivery about to be stored.
#[derive(Clone, Debug, PartialEq)]
pub struct NewDelivery {
    /// Id.
    pub id: DeliveryId,
    /// The provider's dedupe key (`X-Idempotency-Key`, or a hash of the body when absent);
    /// unique: a second delivery with the same key has no effect.
    pub idempotency_key: Option<String>,
    /// Event name (`whatsapp.message.received`, ...), when known.
    pub event: Option<String>,
    /// The business number the payload names.
    pub phone_number_id: Option<String>,
    /// The request headers that matter (never the signature), as a JSON object.
    pub headers: serde_json::Value,
    /// The raw body, byte for byte as signed.
    pub body: Vec<u8>,
    /// When it arrived.
    pub received_at: Timestamp,
}

/// A stored delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// Id.
    pub id: DeliveryId,
    /// The provider's dedupe key.
    pub idempotency_key: Option<String>,
    /// Event name.
    pub event: Option<String>,
    /// The workspace it was routed to, once known.
    pub workspace_id: Option<WorkspaceId>,
    /// The business number the payload names.
    pub phone_number_id: Option<String>,
    /// Headers that matter, as a JSON object.
    pub headers: serde_json::Value,
    /// The raw body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub received_at: Timestamp,
    /// What became of it.
    pub outcome: DeliveryOutcome,
    /// Why it was ignored or failed.
    pub error: Option<String>,
    /// When it was last processed.
    pub processed_at: Option<Timestamp>,
    /// How many times processing was attempted.
    pub attempts: i64,
}

/// Which deliveries to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeliveryFilter {
    /// Every delivery.
    #[default]
    All,
    /// Only failed ones (the replay queue).
    Failed,
    /// Failed ones with fewer than this many attempts, the longest untried first: what the
    /// background replayer looks at (exhausted ones stay failed, listed by `Failed`).
    Retryable {
        /// Attempts after which a delivery is left to a person.
        max_attempts: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_names_round_trip() {
        for o in [
            DeliveryOutcome::Pending,
            DeliveryOutcome::Processed,
            DeliveryOutcome::Ignored,
            DeliveryOutcome::Failed,
        ] {
            assert_eq!(o.as_str().parse::<DeliveryOutcome>(), Ok(o));
        }
        assert!("done".parse::<DeliveryOutcome>().is_err());
    }
}
