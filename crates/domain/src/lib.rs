//! The Inbox domain: entities, validated value types, state machines, the storage ports and the
//! use cases over them.
//!
//! Nothing here does IO. Adapters (`inbox-store`, `inbox-kapso`) implement the ports in
//! [`ports`]; binaries wire them together.

pub mod contact;
pub mod conversation;
pub mod delivery;
pub mod event;
pub mod handover;
pub mod ids;
pub mod ingest;
pub mod message;
pub mod page;
pub mod phone;
pub mod ports;
pub mod sending;
pub mod timestamp;
pub mod token;
pub mod user;
pub mod validation;
pub mod workspace;

pub use ids::{
    ContactId, ConversationId, DeliveryId, EventId, MessageId, TokenId, UserId, WorkspaceId,
};
pub use timestamp::Timestamp;
pub use validation::ValidationError;
