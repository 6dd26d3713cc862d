//! Running statements: the [`QueryRegistry`] shared by every session (a
//! query id per statement, its state, rows and bytes, a bounded history of
//! finished ones, the pgwire backends), the result-stream wrapper that keeps
//! an entry current and stops a killed statement ([`tracked`]), and the
//! tables that show them (`system.runtime.queries`, the `system` catalog).
//!
//! Killing a statement (`CALL system.kill_query`, `pg_cancel_backend`,
//! `pg_terminate_backend`) fires the cancellation token of its registry
//! entry; the statement's client gets SQLSTATE 57014 (57P01 when its
//! connection is terminated). Permission — own statements, or an admin —
//! is checked by the registry from what the caller's session says.

mod backends;
pub(crate) mod catalog;
mod registry;
pub(crate) mod sql_text;
pub(crate) mod table;
pub(crate) mod tracked;

pub use backends::{BackendHandle, BackendInfo};
pub use registry::{QueryHandle, QueryInfo, QueryRegistry, QueryStart, QueryState};
