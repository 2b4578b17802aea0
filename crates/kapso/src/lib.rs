//! Kapso adapter: webhook signatures, webhook payloads and their translation into the domain's
//! [`DeliveryFacts`](inbox_domain::ingest::DeliveryFacts).
//!
//! - [`signature`] checks `X-Webhook-Signature` (Kapso) and `X-Hub-Signature-256` (Meta) on the
//!   raw body bytes, before anything is parsed.
//! - [`webhook`] holds the lenient wire types of Kapso v2 events, v2 batches and raw Meta
//!   payloads.
//! - [`parse_delivery`] reads a verified body into provider-neutral facts.

mod content;
mod delivery;
mod lenient;
pub mod signature;
pub mod webhook;

pub use delivery::{ParseError, parse_delivery};
