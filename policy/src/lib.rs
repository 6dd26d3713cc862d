//! meshgate's access policy: the pure model and its evaluation.
//!
//! A policy names principals (users, with attributes and groups), matches
//! tables by `catalog.schema.table` glob patterns or by tags, and says what
//! each principal may read:
//! - `[[grants]]` allow or deny `select` on tables (optionally only some
//!   columns; the others read as NULL); deny by default, deny beats allow.
//!   A grant with `privilege = "impersonate"` instead says whom a principal
//!   may act as; one with `privilege = "edit_product"` whose data product
//!   descriptors a principal may edit;
//! - `[[row_filters]]` are SQL boolean expressions; several that apply to one
//!   user and table combine with AND;
//! - `[[masks]]` are SQL expressions that replace a column's value.
//!
//! Evaluation is per (principal, table) and returns a [`TableAccess`] with an
//! explanation of every rule that decided it. The planner turns that into a
//! plan. This crate does no I/O: it takes the document as text or as a
//! [`PolicyDocument`], and the caller stores it.
//!
//! The modules, in the order a policy passes through them:
//! - `document`: the TOML document's types;
//! - `load`: parsing and validation into a [`Policy`] ([`PolicyError`]);
//! - `index`: which rules can concern a principal and a table;
//! - `evaluate`: [`Policy::evaluate`] and [`TableAccess`];
//! - `impersonation`: [`Policy::may_impersonate`];
//! - `product_editing`: [`Policy::may_edit_product`];
//! - `model`: principals, table names and how rules match them;
//! - `edit`: changes admins make with SQL (`CREATE ROLE`, `GRANT`, ...);
//! - `summary`: one line per rule, for listings.
//!
//! ```toml
//! [groups]
//! adjusters = ["alice"]
//! [users.alice.attributes]
//! region = "CA"
//!
//! [[grants]]
//! effect = "allow"
//! principals = ["group:adjusters"]
//! tables = ["claims.public.*", "members.public.members"]
//!
//! [[row_filters]]
//! principals = ["group:adjusters"]
//! tables = ["members.public.members"]
//! filter = "state = current_user_attribute('region')"
//!
//! [[masks]]
//! principals = ["*"]
//! except = ["user:auditor"]
//! tables = ["members.public.members"]
//! column = "last_name"
//! mask = "'***'"
//! ```

mod document;
mod edit;
mod evaluate;
mod impersonation;
mod index;
mod load;
mod model;
#[cfg(test)]
mod parser_props;
mod product_editing;
mod summary;

pub use document::{Effect, Grant, MaskRule, PolicyDocument, RowFilterRule, UserEntry};
pub use edit::EditError;
pub use evaluate::TableAccess;
pub use impersonation::ImpersonationDecision;
pub use load::{Policy, PolicyError};
pub use model::{glob_match, Principal, ResourceTags, TableName};
pub use product_editing::EditDecision;
pub use summary::RuleSummary;
