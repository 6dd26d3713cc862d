//! Catalogs without a restart: [`CatalogRegistry::reload`] puts a new list
//! of catalogs in force. The new list is checked and every added or changed
//! catalog built before anything changes; if any of that fails, the reload
//! is refused and the catalogs in force keep serving. Unchanged catalogs
//! keep their providers (pools, caches). Sessions take the new set at
//! their next statement (see `QueryService::refresh_session`).

use std::collections::BTreeMap;
use std::sync::Arc;

use meshgate_connectors::ConnectorRegistry;

use super::{
    build_catalog, connector_context, descriptor_files, products_of, CatalogRegistry, CatalogSet,
    CatalogSpec, RegistryError,
};

/// What a reload changed, by catalog name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    /// The catalog set in force after the reload.
    pub generation: u64,
}

impl CatalogChanges {
    /// Whether the reload changed any catalog.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl std::fmt::Display for CatalogChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return write!(f, "no catalog changed");
        }
        let mut parts = Vec::new();
        for (what, names) in [
            ("added", &self.added),
            ("removed", &self.removed),
            ("changed", &self.changed),
        ] {
            if !names.is_empty() {
                parts.push(format!("{what}: {}", names.join(", ")));
            }
        }
        write!(f, "{}", parts.join("; "))
    }
}

/// Whether `a` and `b` build the same catalog (products aside, which a
/// reload replaces whole anyway).
fn same_source(a: &CatalogSpec, b: &CatalogSpec) -> bool {
    a.connector == b.connector && a.options == b.options && a.description == b.description
}

impl CatalogRegistry {
    /// Put the catalogs of `specs` in force: added and changed ones are
    /// built first, then the whole set (with its data products) replaces
    /// the one in force. Nothing changes if a spec is invalid or a catalog
    /// cannot be built.
    pub async fn reload(
        &self,
        specs: &[CatalogSpec],
        connectors: &ConnectorRegistry,
    ) -> Result<CatalogChanges, RegistryError> {
        let _one_at_a_time = self.reloading.lock().await;
        Self::validate(specs, connectors)?;
        let products = products_of(specs)?;
        let current = self.set();
        let ctx = connector_context(&self.runtime, &self.base_dir);
        let mut changes = CatalogChanges::default();
        let mut catalogs = BTreeMap::new();
        for spec in specs {
            let old = current.specs.get(&spec.name);
            let catalog = match old {
                Some(old) if same_source(old, spec) => current.catalogs[&spec.name].clone(),
                _ => build_catalog(spec, connectors, &ctx).await?,
            };
            match old {
                None => changes.added.push(spec.name.clone()),
                Some(old) if !same_source(old, spec) => changes.changed.push(spec.name.clone()),
                Some(_) => {}
            }
            catalogs.insert(spec.name.clone(), catalog);
        }
        changes.removed = current
            .specs
            .keys()
            .filter(|name| !catalogs.contains_key(*name))
            .cloned()
            .collect();
        let products_changed = current
            .specs
            .values()
            .map(|s| (&s.name, &s.products, &s.products_file))
            .ne(specs
                .iter()
                .map(|s| (&s.name, &s.products, &s.products_file)));
        if changes.is_empty() && !products_changed {
            changes.generation = current.generation;
            return Ok(changes);
        }
        self.products.replace_all(products, descriptor_files(specs));
        let catalogs = Arc::new(catalogs);
        self.freshness.set_catalogs(catalogs.clone());
        let generation = current.generation + 1;
        let set = CatalogSet::new(generation, specs, catalogs, connectors, &self.products);
        *self.set.write().expect("catalog set lock") = Arc::new(set);
        {
            let mut comments = self.source_comments.write().expect("comments lock");
            for name in changes.removed.iter().chain(&changes.changed) {
                comments.remove(name);
            }
        }
        for name in changes.added.iter().chain(&changes.changed) {
            if let Some(source) = self.catalogs().get(name).cloned() {
                let (store, name) = (self.source_comments.clone(), name.clone());
                tokio::spawn(async move { super::load_comments(&store, &name, &source).await });
            }
        }
        changes.generation = generation;
        tracing::info!(generation, %changes, "catalogs reloaded");
        Ok(changes)
    }
}
