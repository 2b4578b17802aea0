//! The Kapso webhook receiver: an axum router that `inbox-webhook` serves on its own and
//! `inbox-api` merges into its listener, plus the process set-up both binaries share.
//!
//! - [`receiver`]: `POST`/`GET /api/webhook/kapso` ([`router`], [`WebhookState`],
//!   [`WebhookSettings`]).
//! - [`replay`]: re-applying stored deliveries by id, or every failed one.
//! - [`replayer`]: the background task that retries failed deliveries with backoff.
//! - [`server`]: the HTTP server both binaries run, with transport limits.
//! - [`retention`]: pruning deliveries and parked statuses past retention, in the background.

pub mod health;
pub mod process;
pub mod receiver;
pub mod replay;
pub mod replayer;
pub mod retention;
pub mod server;

pub use receiver::{WebhookSettings, WebhookState, router};
pub use replay::{ReplayError, replay_delivery, replay_failed};
