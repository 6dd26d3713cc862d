//! Writing Delta Lake tables from record batches (a new table, or one more commit).
//!
//! Connectors only read; this is the one write, for laying down example
//! data (`meshgate demo`, tests and benchmarks build on it). It lives here
//! because this crate already links deltalake, so nothing above it needs
//! the Delta writer of its own. (The demo mesh every end-to-end test serves
//! is written with it.)

use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use deltalake::DeltaTableBuilder;

use crate::ConnectorError;

/// Create a Delta table in the local directory `dir` (made if missing) from
/// `batches`, partitioned by `partition_columns`. Errors name the directory.
pub async fn create_delta_table(
    dir: &Path,
    batches: Vec<RecordBatch>,
    partition_columns: &[&str],
) -> Result<(), ConnectorError> {
    let table = dir.display().to_string();
    let fail = |e: &dyn std::fmt::Display| ConnectorError::table(&table, e);
    std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    let absolute = dir.canonicalize().map_err(|e| fail(&e))?;
    let url = url::Url::from_directory_path(&absolute)
        .map_err(|()| fail(&"not an absolute local path"))?;
    // A new, unloaded table: the write creates it (no log to read yet).
    DeltaTableBuilder::from_url(url)
        .map_err(|e| fail(&e))?
        .build()
        .map_err(|e| fail(&e))?
        .write(batches)
        .with_partition_columns(partition_columns.iter().copied())
        .await
        .map_err(|e| fail(&e))?;
    Ok(())
}

/// Append `batches` to the Delta table in the local directory `dir` as one
/// new commit. Errors name the directory.
pub async fn append_delta_table(
    dir: &Path,
    batches: Vec<RecordBatch>,
) -> Result<(), ConnectorError> {
    let table = dir.display().to_string();
    let fail = |e: &dyn std::fmt::Display| ConnectorError::table(&table, e);
    let absolute = dir.canonicalize().map_err(|e| fail(&e))?;
    let url = url::Url::from_directory_path(&absolute)
        .map_err(|()| fail(&"not an absolute local path"))?;
    DeltaTableBuilder::from_url(url)
        .map_err(|e| fail(&e))?
        .load()
        .await
        .map_err(|e| fail(&e))?
        .write(batches)
        .await
        .map_err(|e| fail(&e))?;
    Ok(())
}
