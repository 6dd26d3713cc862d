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

use crate::access::{AccessGuard, GuardedSchema};

#[derive(Debug)]
pub(crate) struct SessionCatalog {
    name: String,
    shared: Arc<dyn CatalogProvider>,
    local: RwLock<HashMap<String, Arc<dyn SchemaProvider>>>,
    /// The access policy, when one is configured.
    guard: Option<Arc<AccessGuard>>,
}

impl SessionCatalog {
    pub(crate) fn new(
        name: impl Into<String>,
        shared: Arc<dyn CatalogProvider>,
        guard: Option<Arc<AccessGuard>>,
    ) -> Self {
        Self {
            name: name.into(),
            shared,
            local: RwLock::new(HashMap::new()),
            guard,
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
        let schema = self.shared.schema(name)?;
        Some(match &self.guard {
            Some(guard) => Arc::new(GuardedSchema {
                inner: schema,
                catalog: self.name.clone(),
                schema: name.to_owned(),
                guard: guard.clone(),
            }),
            None => schema,
        })
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
        let a = SessionCatalog::new("c", shared.clone(), None);
        let b = SessionCatalog::new("c", shared.clone(), None);
        a.register_schema("pg_catalog", Arc::new(MemorySchemaProvider::new()))
            .unwrap();
        assert!(a.schema("pg_catalog").is_some());
        assert!(a.schema("public").is_some());
        assert!(b.schema("pg_catalog").is_none());
        assert!(shared.schema("pg_catalog").is_none());
        assert_eq!(b.schema_names(), vec!["public".to_owned()]);
    }
}
