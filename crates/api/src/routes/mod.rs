//! The HTTP routes, one module per resource. Each handler parses, calls one use case or port,
//! and renders.

pub mod contacts;
pub mod conversations;
pub mod external;
pub mod me;
pub mod messages;
pub mod paging;
pub mod views;
pub mod workspaces;
