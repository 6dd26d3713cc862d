//! PostgreSQL compatibility for sessions opened by the pgwire front end.
//!
//! psql, drivers and BI tools probe the server through `pg_catalog`,
//! `information_schema` and functions such as `version()`, `format_type` or
//! `pg_table_is_visible`. Those come from `datafusion-pg-catalog`, installed
//! into the session itself: `pg_class` and friends are computed from the
//! session's own catalog list, so they show exactly what the session can see.
//! Its SQL parser also rewrites PostgreSQL-only syntax (`'t'::regclass`,
//! `OPERATOR(pg_catalog.~)`, bare `current_user`) into what DataFusion plans.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, MemoryCatalogProvider};
use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use datafusion_pg_catalog::pg_catalog::context::{PgCatalogContextProvider, Role};
use datafusion_pg_catalog::pg_catalog::{PgCatalogSchemaProvider, PgCatalogStaticTables};

use crate::settings::SERVER_VERSION;
use crate::{QueryError, QueryResult};

/// The users meshgate knows, shown as login roles in `pg_roles`/`pg_user`.
#[derive(Debug, Clone, Default)]
pub(crate) struct RoleDirectory {
    pub(crate) roles: Arc<Vec<String>>,
}

#[async_trait]
impl PgCatalogContextProvider for RoleDirectory {
    async fn roles(&self) -> Vec<String> {
        self.roles.as_ref().clone()
    }

    async fn role(&self, name: &str) -> Option<Role> {
        self.roles.iter().any(|r| r == name).then(|| Role {
            name: name.to_owned(),
            is_superuser: false,
            can_login: true,
            can_create_db: false,
            can_create_role: false,
            can_create_user: false,
            can_replication: false,
            grants: vec![],
            inherited_roles: vec![],
        })
    }
}

/// The string `version()` returns; clients (SQLAlchemy) parse "PostgreSQL X.Y".
pub(crate) fn version_string() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (meshgate {}) on {}-linux, compiled by rustc",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

fn constant_udf(name: &str, value: String) -> datafusion::logical_expr::ScalarUDF {
    create_udf(
        name,
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                value.clone(),
            ))))
        }),
    )
}

/// Install pg_catalog and the PostgreSQL functions into `ctx`.
///
/// Like PostgreSQL, `pg_catalog` describes the connection's database (here:
/// catalog) only; other catalogs stay reachable by three-part names.
pub(crate) fn install(
    ctx: &SessionContext,
    catalog: &str,
    user: &str,
    roles: RoleDirectory,
) -> QueryResult<()> {
    let internal =
        |e: &dyn std::fmt::Display| QueryError::Internal(format!("cannot set up pg_catalog: {e}"));
    datafusion_pg_catalog::setup_pg_catalog(ctx, catalog, roles.clone())
        .map_err(|e| internal(&e))?;
    let current = ctx
        .catalog(catalog)
        .ok_or_else(|| internal(&format!("catalog {catalog} is missing")))?;
    let scoped = DatabaseScope {
        current: catalog.to_owned(),
        current_catalog: current.clone(),
        all: ctx.catalog_names(),
    };
    let static_tables = PgCatalogStaticTables::try_new().map_err(|e| internal(&e))?;
    let provider = PgCatalogSchemaProvider::try_new(
        Arc::new(scoped) as Arc<dyn CatalogProviderList>,
        Arc::new(static_tables),
        roles,
    )
    .map_err(|e| internal(&e))?;
    current
        .register_schema("pg_catalog", Arc::new(provider))
        .map_err(|e| internal(&e))?;
    // The session's real user, not a fixed name.
    ctx.register_udf(constant_udf("session_user", user.to_owned()));
    ctx.register_udf(constant_udf("version", version_string()));
    Ok(())
}

/// What `pg_catalog` sees: every catalog as a database (for `pg_database`,
/// psql's `\l`), but the schemas and tables of the current one only.
#[derive(Debug)]
struct DatabaseScope {
    current: String,
    current_catalog: Arc<dyn CatalogProvider>,
    all: Vec<String>,
}

impl CatalogProviderList for DatabaseScope {
    fn register_catalog(
        &self,
        _name: String,
        _catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        self.all.clone()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        if name == self.current {
            Some(self.current_catalog.clone())
        } else if self.all.iter().any(|n| n == name) {
            Some(Arc::new(MemoryCatalogProvider::new()))
        } else {
            None
        }
    }
}
