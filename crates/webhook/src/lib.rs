//! The Kapso webhook receiver: an axum router that `inbox-webhook` serves on its own and
//! `inbox-api` merges into its listener, plus the process set-up both binaries share.

pub mod health;
pub mod process;
