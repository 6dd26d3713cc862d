//! The one query path of meshgate.
//!
//! Every front end (pgwire, Flight SQL) authenticates a user, asks the
//! [`QueryService`] for a [`QuerySession`] bound to that [`Identity`], and
//! drives the statement pipeline: [`QuerySession::prepare`] plans a
//! statement once, [`QuerySession::execute_statement`] runs it and returns
//! a [`StatementResult`] (an Arrow record-batch stream or a command tag,
//! notices, the new [`TransactionState`]); the front end only encodes the
//! result into its wire format.
//!
//! Two decisions a newcomer must know:
//! - A session owns its own DataFusion context (default catalog/schema,
//!   settings) but shares the catalogs and the runtime (memory pool, object
//!   stores) with every other session. Front ends never see the context.
//! - meshgate is a read-only gateway: DDL, DML and DataFusion's own `SET
//!   datafusion.*` statements are refused; PostgreSQL session statements
//!   (`SET search_path`, `SHOW`, `BEGIN`, ...) are handled here so every
//!   protocol gets the same answers.
//!
//! Rooms, from the bottom up (a module imports only from those listed
//! before it): `error`, `limits`, `query_memory` (the per-query memory
//! cap), `admission` (how many queries run at once), `read_only`,
//! `identity`, `audit`, `like_escape`, `probe_filter`, `plan_cache`,
//! `runtime` (running statements, their ids and kill); `products` (data
//! product descriptors, their tags and the discovery tables); `catalogs`
//! (the registry of source catalogs); `access` (policy enforcement, each session's policy-filtered
//! view of the catalogs, EXPLAIN redaction, policy administration);
//! `distributed` (queries over files sent to a Ballista cluster);
//! `execution_options` (the `[execution]` settings every session runs with);
//! `result_cache` (results kept per query and effective policy);
//! `postgres` (everything that makes DataFusion look like PostgreSQL,
//! installed only into pgwire sessions); `session` (one client's session and
//! the statement pipeline); `service` (the [`QueryService`] that opens
//! sessions).

mod access;
mod admission;
mod audit;
mod audit_store;
mod catalogs;
mod distributed;
mod error;
mod execution_options;
mod identity;
mod like_escape;
mod limits;
mod plan_cache;
mod plan_shape;
mod postgres;
mod probe_filter;
mod products;
mod query_memory;
mod read_only;
mod result_cache;
mod runtime;
mod service;
mod session;
mod shared_subplan;

pub use access::admin::PolicyAdmin;
pub use access::policy_store::{PolicyFile, PolicyStore};
pub use access::product_admin::ProductAdmin;
pub use admission::{Admission, AdmissionLimits, Admitted, ConcurrencyLimit};
pub use audit::{audit_text, AuditLog, AuditObserver, AuditRecord};
pub use audit_store::AuditStore;
pub use catalogs::{
    sql_type, CatalogChanges, CatalogRegistry, CatalogSpec, ProductCheck, RegistryError,
};
pub use distributed::{BallistaExec, BallistaOptions, MeshgatePhysicalCodec};
pub use error::{QueryError, QueryResult};
pub use execution_options::ExecutionOptions;
pub use identity::Identity;
pub use limits::{parse_bytes, parse_duration, RuntimeLimits};
pub use plan_cache::PlanCache;
pub use postgres::column_origins::ColumnOrigin;
pub use products::descriptor::{ColumnContract, Owner, ProductTable, QualityRule, Slo};
pub use products::freshness::Measurement;
pub use products::live::{DescriptorSource, LiveProducts};
pub use products::{
    DataProducts, DescriptorFile, Problem, Product, ProductDescriptor, ProductStatus,
    ProductsError, VisibleProduct,
};
pub use result_cache::{ResultCache, ResultCacheSettings, ResultCacheStats};
pub use runtime::{QueryInfo, QueryRegistry, QueryState};
pub use service::{QueryService, SessionOptions};
pub use session::settings::{SessionSettings, SERVER_VERSION};
pub use session::{
    ClientStatement, CopyFormat, CopyOptions, Notice, Prepared, QueryOutput, QuerySession,
    ResultPart, ResultParts, Script, SessionCommand, StatementResult, TableInfo, TransactionState,
};

/// Re-exported so front ends name Arrow and DataFusion types through one path.
pub use datafusion;
pub use meshgate_policy as policy;
