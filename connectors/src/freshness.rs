//! When a table's data last changed, as its store knows it: the time of a
//! Delta table's newest commit, or the newest modification time of a file
//! table's files. Database tables have no such time; their freshness is
//! measured with SQL (the max of a declared timestamp column) by the
//! planner, through the table as any query reads it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::listing::ListingTable;
use futures::TryStreamExt;

use crate::delta::LatestDeltaTable;
use crate::ConnectorError;

/// How a last-modified time was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeSource {
    /// The newest commit of a Delta table.
    DeltaCommit,
    /// The newest modification time among a file table's files.
    FileModified,
}

impl ChangeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeltaCommit => "delta commit",
            Self::FileModified => "file modification time",
        }
    }
}

/// When `table`'s data last changed, if its store records it (`None` for
/// a table whose store does not, such as a database table).
pub async fn last_modified(
    table: &Arc<dyn TableProvider>,
    state: &dyn Session,
) -> Result<Option<(DateTime<Utc>, ChangeSource)>, ConnectorError> {
    if let Some(delta) = table.downcast_ref::<LatestDeltaTable>() {
        return delta
            .last_commit()
            .await
            .map(|t| Some((t, ChangeSource::DeltaCommit)));
    }
    if let Some(listing) = table.downcast_ref::<ListingTable>() {
        let mut newest: Option<DateTime<Utc>> = None;
        for url in listing.table_paths() {
            let store = state
                .runtime_env()
                .object_store(url)
                .map_err(|e| ConnectorError::Storage(e.to_string()))?;
            let extension = listing.options().file_extension.as_str();
            let files = url
                .list_all_files(state, store.as_ref(), extension)
                .await
                .map_err(|e| ConnectorError::Storage(e.to_string()))?;
            let latest = files
                .try_fold(None, |acc: Option<DateTime<Utc>>, meta| async move {
                    Ok(Some(
                        acc.map_or(meta.last_modified, |a| a.max(meta.last_modified)),
                    ))
                })
                .await
                .map_err(|e| ConnectorError::Storage(e.to_string()))?;
            newest = newest.max(latest);
        }
        return Ok(newest.map(|t| (t, ChangeSource::FileModified)));
    }
    Ok(None)
}
