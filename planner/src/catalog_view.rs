//! Per-session views of the shared catalogs.
//!
//! Catalogs are built once and shared by every session, but a session may
//! add schemas of its own (pgwire sessions get a `pg_catalog` computed from
//! what *they* can see). A [`SessionCatalog`] wraps a shared catalog and
//! keeps such additions private to its session, so nothing one session
//! registers is ever visible to another.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::error::Result;

#[derive(Debug)]
pub(crate) struct SessionCatalog {
    shared: Arc<dyn CatalogProvider>,
    local: RwLock<HashMap<String, Arc<dyn SchemaProvider>>>,
}

impl SessionCatalog {
    pub(crate) fn new(shared: Arc<dyn CatalogProvider>) -> Self {
        Self {
            shared,
            local: RwLock::new(HashMap::new()),
        }
    }
}

impl CatalogProvider for SessionCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.shared.schema_names();
        for name in self.local.read().expect("schema lock").keys() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if let Some(schema) = self.local.read().expect("schema lock").get(name) {
            return Some(schema.clone());
        }
        self.shared.schema(name)
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        Ok(self
            .local
            .write()
            .expect("schema lock")
            .insert(name.to_owned(), schema))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::catalog::{MemoryCatalogProvider, MemorySchemaProvider};

    #[test]
    fn registrations_stay_in_the_session() {
        let shared: Arc<dyn CatalogProvider> = Arc::new(MemoryCatalogProvider::new());
        shared
            .register_schema("public", Arc::new(MemorySchemaProvider::new()))
            .unwrap();
        let a = SessionCatalog::new(shared.clone());
        let b = SessionCatalog::new(shared.clone());
        a.register_schema("pg_catalog", Arc::new(MemorySchemaProvider::new()))
            .unwrap();
        assert!(a.schema("pg_catalog").is_some());
        assert!(a.schema("public").is_some());
        assert!(b.schema("pg_catalog").is_none());
        assert!(shared.schema("pg_catalog").is_none());
        assert_eq!(b.schema_names(), vec!["public".to_owned()]);
    }
}
