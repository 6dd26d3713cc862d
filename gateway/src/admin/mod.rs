//! The policy admin gRPC API (`proto/meshgate/admin/v1`): reading, diffing
//! and replacing the access policy of a running gateway.
//!
//! - [`PolicyAdminService`] serves it on the Flight SQL listener, signed in
//!   with the same credentials as Flight SQL (`crate::auth::authenticate`).
//!   Who may call it is the planner's one rule (`PolicyAdmin::is_admin`:
//!   the policy's `admins`); nothing here decides it again. Every call by a
//!   signed-in user — allowed, refused or failed — is audited like any other
//!   access, through the planner's `AuditRecord::access`.
//! - [`ProductAdminService`] serves the product admin API beside it: data
//!   product owners read and replace their descriptors, as the planner's
//!   `ProductAdmin` allows.
//! - [`CatalogAdminService`] reloads the served catalogs from the
//!   configuration file, for policy admins (as SIGHUP does).
//! - [`AdminClient`] is its client, behind `meshgate policy get|list|diff|apply`.

mod catalogs;
mod client;
mod products;
mod service;

pub use catalogs::CatalogAdminService;
pub use client::{AdminClient, AdminClientError, AdminTarget};
pub use products::ProductAdminService;
pub(crate) use service::policy_diff;
pub use service::PolicyAdminService;
