//! The primary and foreign keys a session may see: those the sources
//! declare (see the connectors' `catalog_keys`) on tables the policy lets
//! the session read; a foreign key also needs the table it references to
//! be readable, so a key never names a table the session cannot see.

use meshgate_connectors::KeyColumn;
use meshgate_policy::TableName;

use super::QuerySession;
use crate::{QueryError, QueryResult};

impl QuerySession {
    /// The keys of `catalog`'s tables this session may see, one row per
    /// key column (empty for sources that declare none).
    pub async fn keys(&self, catalog: &str) -> QueryResult<Vec<KeyColumn>> {
        if !self.catalog_names().iter().any(|c| c == catalog) {
            return Ok(Vec::new());
        }
        let Some(source) = self.registry.catalogs().get(catalog).cloned() else {
            return Ok(Vec::new());
        };
        let keys = meshgate_connectors::catalog_keys(&source)
            .await
            .map_err(|e| QueryError::Source(e.to_string()))?;
        if let Some(guard) = &self.guard {
            guard.begin_statement();
        }
        let readable = |schema: &str, table: &str| {
            self.guard
                .as_ref()
                .is_none_or(|g| g.access(&TableName::new(catalog, schema, table)).allowed)
        };
        Ok(keys
            .iter()
            .filter(|k| {
                readable(&k.schema, &k.table)
                    && k.references
                        .as_ref()
                        .is_none_or(|r| readable(&r.schema, &r.table))
            })
            .cloned()
            .collect())
    }
}
