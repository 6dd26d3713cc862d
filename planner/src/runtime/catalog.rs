//! The `system` catalog of a session: `system.runtime.queries` for every
//! session, `system.audit.queries` for admins when an audit file is kept.
//!
//! [`WithSystemCatalog`] puts it in front of the session's catalog list,
//! and serves the data product discovery tables as the `system` schema of
//! the session's default catalog, so `system.data_products` reads as
//! PostgreSQL's two-part names do. That schema is not listed, and it
//! shadows a source schema named `system` in the default catalog (still
//! reachable from any other session database).
//! It is listed (`pg_database`, Flight SQL GetCatalogs) only when it holds
//! the audit schema, as before the runtime schema existed, so listings show
//! a restricted user nothing new; every session reads
//! `system.runtime.queries` by name.

use std::sync::Arc;

use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemorySchemaProvider, SchemaProvider,
};
use datafusion::common::Result;

use super::table::{queries_table, AdminCheck};
use super::QueryRegistry;

/// The catalog's name.
pub const SYSTEM: &str = "system";

/// The `system` catalog of a session for `user`: `base` (the audit
/// catalog, for admins) or an empty catalog, plus the `runtime` schema.
pub fn system_catalog(
    base: Option<Arc<dyn CatalogProvider>>,
    registry: QueryRegistry,
    user: String,
    admin: AdminCheck,
) -> Result<Arc<dyn CatalogProvider>> {
    let catalog =
        base.unwrap_or_else(|| Arc::new(datafusion::catalog::MemoryCatalogProvider::new()));
    let runtime = MemorySchemaProvider::new();
    datafusion::catalog::SchemaProvider::register_table(
        &runtime,
        "queries".into(),
        Arc::new(queries_table(registry, user, admin)),
    )?;
    catalog.register_schema("runtime", Arc::new(runtime))?;
    Ok(catalog)
}

/// A session's catalog list with the `system` catalog in front.
#[derive(Debug)]
pub struct WithSystemCatalog {
    inner: Arc<dyn CatalogProviderList>,
    system: Arc<dyn CatalogProvider>,
    listed: bool,
    /// The default catalog's name, and the schema it serves as `system`.
    discovery: (String, Arc<dyn SchemaProvider>),
}

impl WithSystemCatalog {
    pub fn new(
        inner: Arc<dyn CatalogProviderList>,
        system: Arc<dyn CatalogProvider>,
        listed: bool,
        discovery: (String, Arc<dyn SchemaProvider>),
    ) -> Self {
        Self {
            inner,
            system,
            listed,
            discovery,
        }
    }
}

impl CatalogProviderList for WithSystemCatalog {
    fn register_catalog(
        &self,
        name: String,
        catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        self.inner.register_catalog(name, catalog)
    }

    fn catalog_names(&self) -> Vec<String> {
        let mut names = self.inner.catalog_names();
        if self.listed && !names.iter().any(|n| n == SYSTEM) {
            names.push(SYSTEM.to_owned());
        }
        names
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        if name == SYSTEM {
            Some(self.system.clone())
        } else if name == self.discovery.0 {
            Some(Arc::new(WithSystemSchema {
                inner: self.inner.catalog(name),
                system: self.discovery.1.clone(),
            }))
        } else {
            self.inner.catalog(name)
        }
    }
}

/// The session's default catalog with the discovery schema as `system`.
#[derive(Debug)]
struct WithSystemSchema {
    /// `None` when the session sees nothing of the catalog.
    inner: Option<Arc<dyn CatalogProvider>>,
    system: Arc<dyn SchemaProvider>,
}

impl CatalogProvider for WithSystemSchema {
    fn schema_names(&self) -> Vec<String> {
        self.inner
            .as_ref()
            .map(|c| c.schema_names())
            .unwrap_or_default()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == SYSTEM {
            return Some(self.system.clone());
        }
        self.inner.as_ref()?.schema(name)
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        match &self.inner {
            Some(inner) => inner.register_schema(name, schema),
            None => datafusion::common::not_impl_err!("catalog has no schemas to register into"),
        }
    }
}
