//! The built-in pg_catalog tables (pg_type, pg_proc, ...) shipped with
//! `datafusion-pg-catalog`.

use std::sync::Arc;

use datafusion_pg_catalog::pg_catalog::PgCatalogStaticTables;

/// The built-in pg_catalog tables (pg_type, pg_proc, ...), decoded once per
/// process and shared by every session.
pub(crate) fn static_tables() -> Result<Arc<PgCatalogStaticTables>, String> {
    static TABLES: std::sync::OnceLock<Result<Arc<PgCatalogStaticTables>, String>> =
        std::sync::OnceLock::new();
    TABLES
        .get_or_init(|| {
            PgCatalogStaticTables::try_new()
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
}
