//! When a table's data last changed, as its store knows it: the time of a
//! Delta table's newest commit, or the newest modification time of a file
//! table's files. Database tables have no such time; their freshness is
//! measured with SQL (the max of a declared timestamp column) by the
//! planner, through the table as any query reads it.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::listing::ListingTable;
use futures::TryStreamExt;
use object_store::ObjectMeta;

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
        let newest = listed_files(listing, state)
            .await?
            .iter()
            .map(|meta| meta.last_modified)
            .max();
        return Ok(newest.map(|t| (t, ChangeSource::FileModified)));
    }
    Ok(None)
}

/// A mark of `table`'s contents as its store sees them now: a Delta table's
/// newest version, or each file's path, size and modification time for a
/// file table (listed as a scan of it would list them). Two equal marks
/// mean the table reads the same; `None` for a table whose store keeps no
/// such mark (a database table).
pub async fn change_stamp(
    table: &Arc<dyn TableProvider>,
    state: &dyn Session,
) -> Result<Option<u64>, ConnectorError> {
    let mut hasher = DefaultHasher::new();
    if let Some(delta) = table.downcast_ref::<LatestDeltaTable>() {
        ("delta", delta.latest_version().await?).hash(&mut hasher);
        return Ok(Some(hasher.finish()));
    }
    if let Some(listing) = table.downcast_ref::<ListingTable>() {
        let mut files: Vec<_> = listed_files(listing, state)
            .await?
            .into_iter()
            .map(|meta| (meta.location, meta.size, meta.last_modified, meta.e_tag))
            .collect();
        files.sort();
        ("files", files).hash(&mut hasher);
        return Ok(Some(hasher.finish()));
    }
    Ok(None)
}

/// Whether `table`'s store keeps a [`change_stamp`] of it.
pub fn has_change_stamp(table: &Arc<dyn TableProvider>) -> bool {
    table.downcast_ref::<LatestDeltaTable>().is_some()
        || table.downcast_ref::<ListingTable>().is_some()
}

/// The files a scan of `listing` reads.
pub(crate) async fn listed_files(
    listing: &ListingTable,
    state: &dyn Session,
) -> Result<Vec<ObjectMeta>, ConnectorError> {
    let mut all = Vec::new();
    for url in listing.table_paths() {
        let store = state
            .runtime_env()
            .object_store(url)
            .map_err(|e| ConnectorError::Storage(e.to_string()))?;
        let extension = listing.options().file_extension.as_str();
        let files: Vec<ObjectMeta> = url
            .list_all_files(state, store.as_ref(), extension)
            .await
            .map_err(|e| ConnectorError::Storage(e.to_string()))?
            .try_collect()
            .await
            .map_err(|e| ConnectorError::Storage(e.to_string()))?;
        all.extend(files);
    }
    Ok(all)
}
