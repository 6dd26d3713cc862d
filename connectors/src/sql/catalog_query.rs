//! Catalog queries on a source's own connection pool (its tables, keys,
//! comments, declared types), read back as rows of text.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::DataFusionError;
use datafusion_table_providers::sql::db_connection_pool::DbConnectionPool;
use futures::TryStreamExt;

/// Run one catalog query on a pooled connection, all rows as Arrow.
pub(crate) async fn query_batches<T: 'static, P: 'static>(
    pool: &(dyn DbConnectionPool<T, P> + Send + Sync),
    sql: &str,
) -> Result<Vec<RecordBatch>, DataFusionError> {
    let conn = pool.connect().await.map_err(DataFusionError::External)?;
    let conn = conn
        .as_async()
        .ok_or_else(|| DataFusionError::Internal("unexpected connection type".into()))?;
    conn.query_arrow(sql, &[], None)
        .await
        .map_err(DataFusionError::External)?
        .try_collect()
        .await
}

/// The first `N` columns of query results as text (`None`: NULL).
pub(crate) fn rows_of<const N: usize>(
    batches: &[RecordBatch],
) -> Result<Vec<[Option<String>; N]>, DataFusionError> {
    let mut out = Vec::new();
    for batch in batches {
        let columns = batch
            .columns()
            .iter()
            .map(|c| cast(c, &DataType::Utf8))
            .collect::<Result<Vec<_>, _>>()?;
        if columns.len() < N {
            return Err(DataFusionError::Internal(
                "catalog query returned too few columns".into(),
            ));
        }
        for row in 0..batch.num_rows() {
            out.push(std::array::from_fn(|i| {
                let column = columns[i].as_string::<i32>();
                (!column.is_null(row)).then(|| column.value(row).to_owned())
            }));
        }
    }
    Ok(out)
}
