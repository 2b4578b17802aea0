//! Tables of the API's behaviour, written once and run two ways: every row in process against
//! `inbox_api::router` on both databases (the `inproc` suite: no process, no socket, so the
//! whole matrix is cheap), and a sample of each route family through the built `inbox-api`
//! (the `blackbox` suite), so the assembled binary stays covered.

pub mod bad_input;
pub mod permissions;

/// How much of a table to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// Every row and every check after the rows.
    Full,
    /// One row per route family (workspaces, conversations, contacts, events).
    Sample,
}
