//! Per-session views of the shared catalogs.
//!
//! Catalogs are built once and shared by every session, but a session may
//! add schemas of its own (pgwire sessions get a `pg_catalog` computed from
//! what *they* can see). A [`SessionCatalog`] wraps a shared catalog and
//! keeps such additions private to its session, so nothing one session
//! registers is ever visible to another.
//!
//! Listings follow the policy the way tables do (as Trino's
//! `filterSchemas`/`filterCatalogs`): a schema in which the user may see no
//! table is absent — from `information_schema.schemata`, `pg_namespace`,
//! Flight SQL's GetDbSchemas and from name resolution alike — and a catalog
//! with no such schema is absent from the [`SessionCatalogList`]
//! (`pg_database`, GetCatalogs). Policy admins, and every user when no
//! policy is configured, see all of them. Schemas a session adds itself
//! (`pg_catalog`, `information_schema`) are always there.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider};
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

impl SessionCatalog {
    /// Whether the user sees everything (no policy, or a policy admin).
    fn unrestricted(&self) -> bool {
        self.guard.as_ref().is_none_or(|guard| guard.is_admin())
    }

    /// The shared schema `name` as this session may see it: behind the
    /// policy, and `None` when the user may see none of its tables.
    fn shared_schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let schema = self.shared.schema(name)?;
        let Some(guard) = &self.guard else {
            return Some(schema);
        };
        let guarded: Arc<dyn SchemaProvider> = Arc::new(GuardedSchema {
            inner: schema,
            catalog: self.name.clone(),
            schema: name.to_owned(),
            guard: guard.clone(),
        });
        if !guard.is_admin() && guarded.table_names().is_empty() {
            return None;
        }
        Some(guarded)
    }

    /// Whether the user may see anything in this catalog.
    pub(crate) fn visible(&self) -> bool {
        self.unrestricted()
            || self
                .shared
                .schema_names()
                .iter()
                .any(|name| self.shared_schema(name).is_some())
    }
}

impl CatalogProvider for SessionCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .shared
            .schema_names()
            .into_iter()
            .filter(|name| self.unrestricted() || self.shared_schema(name).is_some())
            .collect();
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
        self.shared_schema(name)
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

/// The catalogs as one session sees them (see the module docs).
///
/// A catalog the user may see nothing in is neither listed nor resolved,
/// except the session's own (the connection's database), which must
/// resolve for `pg_catalog` and `current_database()`: its schemas are
/// still filtered. Catalogs the session registers itself (`system` for
/// admins) are always there.
#[derive(Debug)]
pub(crate) struct SessionCatalogList {
    shared: BTreeMap<String, Arc<SessionCatalog>>,
    current: String,
    local: RwLock<BTreeMap<String, Arc<dyn CatalogProvider>>>,
}

impl SessionCatalogList {
    pub(crate) fn new(
        shared: impl IntoIterator<Item = Arc<SessionCatalog>>,
        current: impl Into<String>,
    ) -> Self {
        Self {
            shared: shared.into_iter().map(|c| (c.name.clone(), c)).collect(),
            current: current.into(),
            local: RwLock::new(BTreeMap::new()),
        }
    }
}

impl CatalogProviderList for SessionCatalogList {
    fn register_catalog(
        &self,
        name: String,
        catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        self.local
            .write()
            .expect("catalog lock")
            .insert(name, catalog)
    }

    fn catalog_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .shared
            .iter()
            .filter(|(_, catalog)| catalog.visible())
            .map(|(name, _)| name.clone())
            .collect();
        for name in self.local.read().expect("catalog lock").keys() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        if let Some(catalog) = self.local.read().expect("catalog lock").get(name) {
            return Some(catalog.clone());
        }
        let catalog = self.shared.get(name)?;
        (name == self.current || catalog.visible()).then(|| catalog.clone() as _)
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

    /// Catalogs `c` (schemas `a` with `t1`, `b` with `t2`) and `d` (schema
    /// `x` with `t3`), seen by `user` under a policy that grants `c.a.t1`.
    fn session_list(user: &str) -> SessionCatalogList {
        use datafusion::arrow::datatypes::Schema;
        use datafusion::datasource::empty::EmptyTable;
        let catalog = |schemas: &[(&str, &str)]| {
            let catalog = Arc::new(MemoryCatalogProvider::new());
            for (schema, table) in schemas {
                let provider = Arc::new(MemorySchemaProvider::new());
                provider
                    .register_table(
                        table.to_string(),
                        Arc::new(EmptyTable::new(Arc::new(Schema::empty()))),
                    )
                    .unwrap();
                catalog.register_schema(schema, provider).unwrap();
            }
            catalog as Arc<dyn CatalogProvider>
        };
        let policy = meshgate_policy::Policy::from_toml(
            "version = 1\nadmins = [\"user:boss\"]\n[[grants]]\neffect = \"allow\"\n\
             principals = [\"user:u\"]\ntables = [\"c.a.t1\"]\n",
        )
        .unwrap();
        let guard = Arc::new(AccessGuard::new(
            Default::default(),
            Arc::new(policy),
            &crate::Identity::new(user),
            Arc::new(datafusion::execution::SessionStateBuilder::new().build()),
            Default::default(),
        ));
        let c = SessionCatalog::new(
            "c",
            catalog(&[("a", "t1"), ("b", "t2")]),
            Some(guard.clone()),
        );
        let d = SessionCatalog::new("d", catalog(&[("x", "t3")]), Some(guard));
        SessionCatalogList::new([Arc::new(c), Arc::new(d)], "d")
    }

    #[test]
    fn schemas_and_catalogs_without_a_visible_table_are_absent() {
        let list = session_list("u");
        assert_eq!(list.catalog_names(), vec!["c".to_owned()]);
        let c = list.catalog("c").unwrap();
        assert_eq!(c.schema_names(), vec!["a".to_owned()]);
        assert!(c.schema("b").is_none());
        // The session's own catalog resolves, showing nothing.
        let d = list.catalog("d").unwrap();
        assert!(d.schema_names().is_empty());
        assert!(d.schema("x").is_none());

        let nobody = session_list("nobody");
        assert!(nobody.catalog_names().is_empty());
        assert!(nobody.catalog("c").is_none());

        let admin = session_list("boss");
        assert_eq!(admin.catalog_names(), vec!["c".to_owned(), "d".to_owned()]);
        let mut schemas = admin.catalog("c").unwrap().schema_names();
        schemas.sort();
        assert_eq!(schemas, vec!["a".to_owned(), "b".to_owned()]);
    }
}
