//! The `system` catalog of a session: `system.runtime.queries` for every
//! session, `system.audit.queries` for admins when an audit file is kept.
//!
//! [`WithSystemCatalog`] puts it in front of the session's catalog list.
//! It is listed (`pg_database`, Flight SQL GetCatalogs) only when it holds
//! the audit schema, as before the runtime schema existed, so listings show
//! a restricted user nothing new; every session reads
//! `system.runtime.queries` by name.

use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, CatalogProviderList, MemorySchemaProvider};
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
}

impl WithSystemCatalog {
    pub fn new(
        inner: Arc<dyn CatalogProviderList>,
        system: Arc<dyn CatalogProvider>,
        listed: bool,
    ) -> Self {
        Self {
            inner,
            system,
            listed,
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
        } else {
            self.inner.catalog(name)
        }
    }
}
