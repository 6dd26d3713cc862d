//! The one query path of meshgate.
//!
//! Every front end (pgwire, Flight SQL, HTTP) authenticates a user, asks the
//! [`QueryService`] for a [`QuerySession`] bound to that [`Identity`], and hands
//! it SQL. The session parses, plans and executes with DataFusion over the
//! catalogs in the [`CatalogRegistry`], and returns Arrow record batches as a
//! stream; the front end only encodes them into its wire format.
//!
//! Two decisions a newcomer must know:
//! - A session owns its own DataFusion context (default catalog/schema,
//!   settings) but shares the catalogs and the runtime (memory pool, object
//!   stores) with every other session. Front ends never see the context.
//! - meshgate is a read-only gateway: DDL, DML and DataFusion's own `SET
//!   datafusion.*` statements are refused; PostgreSQL session statements
//!   (`SET search_path`, `SHOW`, `BEGIN`, ...) are handled here so every
//!   protocol gets the same answers.

mod access;
mod audit;
mod catalog_view;
mod error;
mod explain;
mod limits;
mod pg_analyzer;
mod pg_arrays;
mod pg_compat;
mod pg_descriptions;
mod pg_information_schema;
mod pg_role_registers;
mod pg_roles;
mod pg_system_columns;
mod pg_type_info;
mod plan_cache;
mod policy_admin;
mod policy_barrier;
mod read_only;
mod registry;
mod service;
mod settings;

pub use audit::{AuditLog, AuditRecord};
pub use error::{QueryError, QueryResult};
pub use limits::{parse_bytes, RuntimeLimits};
pub use plan_cache::PlanCache;
pub use policy_admin::PolicyAdmin;
pub use registry::{CatalogRegistry, CatalogSpec, RegistryError};
pub use service::{
    CopyFormat, CopyOptions, Identity, Prepared, QueryOutput, QueryService, QuerySession,
    SessionOptions, TableInfo, TxEffect,
};
pub use settings::{parse_duration, SessionSettings, SERVER_VERSION};

/// Re-exported so front ends name Arrow and DataFusion types through one path.
pub use datafusion;
pub use meshgate_policy as policy;
