//! What the pg_catalog tables that show the sources' keys share
//! (`pg_constraint`, and `pg_class`/`pg_index` with the keys' indexes):
//! the keys of the session's catalog the policy lets it see, the OIDs the
//! session's own pg_catalog hands out, rows built column by column, and the
//! built-in table's rows with the keyed ones after them.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{Field, SchemaRef};
use datafusion::catalog::{CatalogProviderList, SchemaProvider, Session, TableProvider};
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::physical_plan::ExecutionPlan;
use meshgate_connectors::KeyColumn;

use super::catalog_oids::CatalogOids;
use super::constraints::{visible_keys, KeySources};

/// Where a session's keys come from.
#[derive(Debug, Clone)]
pub(crate) struct KeyScope {
    /// The catalog pg_catalog describes.
    pub current: String,
    pub catalogs: Arc<dyn CatalogProviderList>,
    pub sources: KeySources,
    /// The session's pg_catalog without keyed rows, to resolve names.
    pub pg_catalog: Arc<dyn SchemaProvider>,
}

impl KeyScope {
    /// The keys of the current catalog the session sees, and the OIDs
    /// (with column numbers) to place them; `None` when there are none.
    pub(crate) async fn keys(
        &self,
        state: &dyn Session,
    ) -> Result<Option<(Vec<KeyColumn>, CatalogOids)>> {
        let keys: Vec<KeyColumn> = visible_keys(&self.catalogs, &self.sources, Some(&self.current))
            .await
            .into_iter()
            .map(|(_, key)| key)
            .collect();
        if keys.is_empty() {
            return Ok(None);
        }
        let oids = CatalogOids::read(self.pg_catalog.as_ref(), state, true).await?;
        Ok(Some((keys, oids)))
    }
}

/// One row per item of `rows` with `schema`'s columns, each value from
/// `value` (of the field's type).
pub(crate) fn rows_batch<R>(
    schema: SchemaRef,
    rows: &[R],
    value: impl Fn(&R, &Field) -> Result<ScalarValue>,
) -> Result<RecordBatch> {
    let arrays = schema
        .fields()
        .iter()
        .map(|field| {
            if rows.is_empty() {
                return Ok(datafusion::arrow::array::new_empty_array(field.data_type()));
            }
            let values = rows
                .iter()
                .map(|row| value(row, field))
                .collect::<Result<Vec<_>>>()?;
            ScalarValue::iter_to_array(values)
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(RecordBatch::try_new(schema, arrays)?)
}

/// The plan of `builtin`'s rows, each batch passed through `adjust` (to
/// `schema`), then `extra`, projected as asked.
pub(crate) async fn with_rows(
    builtin: &dyn TableProvider,
    state: &dyn Session,
    schema: SchemaRef,
    projection: Option<&Vec<usize>>,
    adjust: impl Fn(&RecordBatch) -> Result<RecordBatch>,
    extra: Option<RecordBatch>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let plan = builtin.scan(state, None, &[], None).await?;
    let batches = datafusion::physical_plan::collect(plan, state.task_ctx()).await?;
    let mut batches = batches.iter().map(adjust).collect::<Result<Vec<_>>>()?;
    batches.extend(extra);
    MemorySourceConfig::try_new_exec(&[batches], schema, projection.cloned())
        .map(|e| e as Arc<dyn ExecutionPlan>)
}
