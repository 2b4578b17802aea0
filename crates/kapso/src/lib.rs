//! Kapso adapter: webhook signatures, webhook payloads and their translation into the domain's
//! [`DeliveryFacts`](inbox_domain::ingest::DeliveryFacts).
//!
//! - [`signature`] checks `X-Webhook-Signature` (Kapso) and `X-Hub-Signature-256` (Meta) on the
//!   raw body bytes, before anything is parsed.
//! - [`webhook`] holds the lenient wire types of Kapso v2 events, v2 batches and raw Meta
//!   payloads.
//! - [`routing`] reads the business number of an unverified body without building a tree, and
//!   splits a verified one per number ([`parse_routed`]).
//! - [`parse_delivery`] reads a verified body into provider-neutral facts.
//! - [`client`] is the reqwest client for Kapso's API: sends, read receipts and the workflow
//!   calls of a handover, with failures classified as permanent, transient or window-closed.
//! - `fake` (feature `fake`) serves a scriptable local stand-in for Kapso's API, for tests, the
//!   demo and benchmarks.
//! - `samples` (feature `samples`) writes and reads the signed sample deliveries the repository
//!   carries in `crates/kapso/samples/`.

pub mod client;
mod content;
mod delivery;
#[cfg(feature = "fake")]
pub mod fake;
mod lenient;
pub mod routing;
#[cfg(feature = "samples")]
pub mod samples;
pub mod signature;
pub mod webhook;

pub use client::{
    KapsoClient, KapsoClientConfig, KapsoError, SentMessage, SoughtContent, SoughtSend,
    WorkflowUpdate,
};
pub use delivery::{ParseError, parse_delivery};
pub use routing::{RoutedDelivery, parse_routed, peek_phone_number_id};
