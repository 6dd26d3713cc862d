//! A SQL catalog's table sizes, as its source counts them.

use crate::{ConnectorError, TableSize};

use super::SqlCatalog;

impl SqlCatalog {
    /// The size of `schema.table` as the source reports it, within twice
    /// the connect timeout.
    pub(crate) async fn table_size(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Option<TableSize>, ConnectorError> {
        let inner = &self.inner;
        let pool = inner.pool().await?;
        let timeout = inner.options.connect_timeout() * 2;
        match tokio::time::timeout(timeout, pool.table_size(schema, table)).await {
            Ok(Ok(size)) => Ok(size),
            Ok(Err(err)) => Err(inner.unavailable(&err)),
            Err(_) => Err(ConnectorError::Source {
                catalog: inner.catalog.clone(),
                message: format!("no table size within {} s", timeout.as_secs()),
            }),
        }
    }
}
