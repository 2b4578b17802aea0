//! The HTTP routes, one module per resource. Each handler parses, calls one use case or port,
//! and renders.

pub mod handover;
pub mod me;
pub mod messages;
pub mod views;
