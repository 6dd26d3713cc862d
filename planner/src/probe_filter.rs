//! Rows a join cannot match are dropped where its large side is read.
//!
//! When a hash join has built its small side, DataFusion hands the keys it
//! holds (`DynamicFilter [ k >= lo AND k <= hi AND hash_lookup ]`, or an
//! `IN` list) to the Parquet scan on the other side. With
//! `execution.parquet.pushdown_filters` off (its default, and meshgate's:
//! evaluating every static filter while decoding costs more than it saves
//! on most queries) the scan uses that filter only to skip row groups and
//! pages by their min/max statistics. Keys spread over the whole file skip
//! nothing, so every row reaches the join, and every operator between the
//! scan and the join (an aggregate grouped by the key, another join) works
//! on rows the join will throw away.
//!
//! [`FilterProbeRows`], a physical rule run after DataFusion's own, puts a
//! `FilterExec` with just those run-time filters directly above each such
//! scan. The filter is the same shared expression the scan prunes with, so
//! it is exactly as correct: a row it drops fails a condition the scan is
//! already allowed to apply to whole row groups. Until the join has built,
//! the filter is `true` and lets everything through.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::{FileSource, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result as DfResult;
use datafusion::physical_expr::expressions::DynamicFilterPhysicalExpr;
use datafusion::physical_expr::utils::{conjunction_opt, reassign_expr_columns, split_conjunction};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::ExecutionPlan;

/// Filters the rows of every Parquet scan that holds a run-time (dynamic)
/// filter by it, when the scan itself only prunes with it.
#[derive(Debug, Default)]
pub(crate) struct FilterProbeRows;

impl PhysicalOptimizerRule for FilterProbeRows {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if config.execution.parquet.pushdown_filters {
            // The scan already evaluates every filter it holds row by row.
            return Ok(plan);
        }
        plan.transform_up(|node| {
            let Some(predicate) = run_time_filter(node.as_ref()) else {
                return Ok(Transformed::no(node));
            };
            let filter = FilterExec::try_new(predicate, node)?;
            Ok(Transformed::yes(Arc::new(filter) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "filter_probe_rows"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The conjunction of the dynamic filters in a Parquet scan's predicate
/// that does not decode rows by it, written over the scan's output
/// columns; `None` when it has none. A filter on a column the scan does
/// not output (one it computes from others) is left to the scan.
fn run_time_filter(node: &dyn ExecutionPlan) -> Option<Arc<dyn PhysicalExpr>> {
    let scan = node.downcast_ref::<DataSourceExec>()?;
    let (_, parquet) = scan.downcast_to_file_source::<ParquetSource>()?;
    if parquet.table_parquet_options().global.pushdown_filters {
        return None;
    }
    let predicate = parquet.filter()?;
    let schema = node.schema();
    let dynamic = split_conjunction(&predicate)
        .into_iter()
        .filter(|conjunct| is_dynamic(conjunct))
        .filter_map(|conjunct| reassign_expr_columns(Arc::clone(conjunct), &schema).ok())
        .collect::<Vec<_>>();
    conjunction_opt(dynamic)
}

/// Whether a condition is (or holds) a filter filled in at run time.
fn is_dynamic(expr: &Arc<dyn PhysicalExpr>) -> bool {
    let mut found = false;
    let _ = expr.apply(|e| {
        found = e.downcast_ref::<DynamicFilterPhysicalExpr>().is_some();
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}
