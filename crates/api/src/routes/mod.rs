//! The HTTP routes, one module per resource. Each handler parses, calls one use case or port,
//! and renders.

pub mod me;
pub mod views;
