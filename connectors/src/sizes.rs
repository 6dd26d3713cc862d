//! How many bytes a table takes in its store, for `pg_table_size` and
//! `pg_total_relation_size`: a file table's files as a scan lists them, a
//! Delta table's active files in its newest version, a database table as
//! its server counts it (PostgreSQL's relation sizes, MySQL's data and
//! index lengths). `None` where the store keeps no such figure (a SQLite
//! file's tables, a remote Flight SQL server's).

use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, Session};
use datafusion::datasource::listing::ListingTable;

use crate::delta::LatestDeltaTable;
use crate::freshness::listed_files;
use crate::sql::SqlCatalog;
use crate::ConnectorError;

/// A table's size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSize {
    /// The table's data (`pg_table_size`).
    pub table: u64,
    /// With its indexes (`pg_total_relation_size`).
    pub total: u64,
}

impl TableSize {
    /// A table without indexes: the data is the whole.
    pub(crate) fn data(bytes: u64) -> Self {
        Self {
            table: bytes,
            total: bytes,
        }
    }
}

/// The size of `schema.table` in `catalog` (a catalog as its connector
/// built it); `Ok(None)` for an unknown table or a store without sizes.
pub async fn table_size(
    catalog: &Arc<dyn CatalogProvider>,
    schema: &str,
    table: &str,
    state: &dyn Session,
) -> Result<Option<TableSize>, ConnectorError> {
    if let Some(sql) = catalog.as_ref().downcast_ref::<SqlCatalog>() {
        return sql.table_size(schema, table).await;
    }
    let Some(provider) = catalog.schema(schema) else {
        return Ok(None);
    };
    let Some(provider) = provider
        .table(table)
        .await
        .map_err(|e| ConnectorError::table(table, e))?
    else {
        return Ok(None);
    };
    if let Some(delta) = provider.downcast_ref::<LatestDeltaTable>() {
        return delta.active_bytes().await.map(|b| Some(TableSize::data(b)));
    }
    if let Some(listing) = provider.downcast_ref::<ListingTable>() {
        let bytes = listed_files(listing, state)
            .await?
            .iter()
            .map(|meta| meta.size)
            .sum();
        return Ok(Some(TableSize::data(bytes)));
    }
    Ok(None)
}
