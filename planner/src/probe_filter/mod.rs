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
//! `FilterExec` with those run-time filters above each such scan. The
//! filter is the same shared expression the scan prunes with, so it is
//! exactly as correct: a row it drops fails a condition the scan is
//! already allowed to apply to whole row groups. Until the join has built,
//! the filter is `true` and lets everything through.
//!
//! Evaluating a key filter costs about what the join's own probe costs
//! (TPC-H SF1, 6M `lineitem` rows: 100–300 ms), so it is only added where
//! it saves more than that:
//! - a filter whose producer (the join or top-k sort that fills it) reads
//!   the scan's rows directly, through nothing but repartitioning,
//!   projections and other filters, is not added on its own: the producer
//!   drops the same rows itself. Added with others, it goes first, so
//!   that they are evaluated only on the rows it keeps;
//! - the filter goes above a static `FilterExec` sitting on the scan (a
//!   `WHERE` on the table), so it is evaluated on the rows that pass it.
//!
//! Whether a filter drops enough rows to pay for itself is only known as
//! it runs: one that keeps nearly every row costs as much as it saves
//! elsewhere (TPC-H q09: +0.9 s on 6M rows). Each added filter is an
//! [`AdaptiveFilter`], which stops evaluating itself while it keeps most
//! of the rows it sees, or, at a scan read directly by one of its joins,
//! while the other joins' keys keep most of the rows that join keeps.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::{FileSource, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result as DfResult;
use datafusion::physical_expr::expressions::DynamicFilterPhysicalExpr;
use datafusion::physical_expr::utils::{conjunction_opt, reassign_expr_columns, split_conjunction};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{replace_children_if_necessary, ExecutionPlan};

mod adaptive;

use adaptive::AdaptiveFilter;

/// Filters the rows of every Parquet scan that holds a run-time (dynamic)
/// filter by it, when the scan itself only prunes with it and something
/// other than the filter's producer would read the rows it drops.
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
        rewrite(plan, &Context::default())
    }

    fn name(&self) -> &str {
        "filter_probe_rows"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// What is known, below a node, of the run-time filters on its rows.
#[derive(Clone, Default)]
struct Context {
    /// Filters whose producer (the nearest operator above that does
    /// per-row work) reads these rows with nothing in between that does
    /// per-row work worth saving: it drops the rows they fail itself.
    direct: HashSet<u64>,
    /// Filters a `FilterExec` above already applies (one added by an
    /// earlier pass: EXPLAIN ANALYZE optimizes the plan it runs twice).
    applied: HashSet<u64>,
}

/// `node` with the filters added below it.
fn rewrite(node: Arc<dyn ExecutionPlan>, cx: &Context) -> DfResult<Arc<dyn ExecutionPlan>> {
    if node.children().is_empty() {
        return Ok(match run_time_filter(node.as_ref(), cx) {
            Some(filter) => Arc::new(FilterExec::try_new(filter.into_expr(), node)?),
            None => node,
        });
    }
    let filter = node.downcast_ref::<FilterExec>();
    let below = if let Some(filter) = filter {
        let mut below = cx.clone();
        below.applied.extend(dynamic_filter_ids(filter.predicate()));
        below
    } else if passes_rows_through(node.as_ref()) {
        cx.clone()
    } else {
        Context {
            direct: node
                .dynamic_expressions_produced()
                .iter()
                .filter_map(|e| e.expression_id())
                .collect(),
            applied: HashSet::new(),
        }
    };
    if let Some(filter) = filter {
        if let Some(run_time) = run_time_filter(filter.input().as_ref(), &below) {
            // Above the table's own filter when its output keeps the key
            // columns; below it otherwise.
            return Ok(match run_time.over(&node.schema()) {
                Some(above) => Arc::new(FilterExec::try_new(above.into_expr(), node)?),
                None => {
                    let below =
                        FilterExec::try_new(run_time.into_expr(), Arc::clone(filter.input()))?;
                    replace_children_if_necessary(node, vec![Arc::new(below)])?
                }
            });
        }
    }
    let children = node
        .children()
        .into_iter()
        .map(|child| rewrite(Arc::clone(child), &below))
        .collect::<DfResult<Vec<_>>>()?;
    // Unchanged children leave the node as it is.
    replace_children_if_necessary(node, children)
}

/// The run-time filters to apply to a scan's rows.
struct RunTimeFilter {
    /// Those of the join reading the scan directly, if any.
    direct: Option<Arc<dyn PhysicalExpr>>,
    /// Those of producers further up.
    rest: Arc<dyn PhysicalExpr>,
}

impl RunTimeFilter {
    /// The same filter over the columns of `schema`, if it has them.
    fn over(&self, schema: &SchemaRef) -> Option<Self> {
        let over = |e: &Arc<dyn PhysicalExpr>| reassign_expr_columns(Arc::clone(e), schema).ok();
        Some(Self {
            direct: match &self.direct {
                Some(direct) => Some(over(direct)?),
                None => None,
            },
            rest: over(&self.rest)?,
        })
    }

    fn into_expr(self) -> Arc<dyn PhysicalExpr> {
        Arc::new(match self.direct {
            Some(direct) => AdaptiveFilter::split(direct, self.rest),
            None => AdaptiveFilter::new(self.rest),
        })
    }
}

/// Operators that hand their input's rows on without per-row work a
/// filter below them would save.
fn passes_rows_through(node: &dyn ExecutionPlan) -> bool {
    node.is::<RepartitionExec>()
        || node.is::<CoalescePartitionsExec>()
        || node.is::<ProjectionExec>()
        || node.is::<FilterExec>()
}

/// The dynamic filters in a Parquet scan's predicate that does not decode
/// rows by it, written over the scan's output columns and leaving out
/// those a filter above applies; `None` when only filters whose producer
/// reads the scan directly are left (it drops those rows itself, for what
/// evaluating them here would cost). When others are left, the direct
/// producer's filters are kept apart: they drop most rows where such a
/// join is selective (TPC-H q08: 99 % of `lineitem`), and the filter
/// judges the others by what they add to them. A filter on a column the
/// scan does not output (one it computes from others) is left to the scan.
fn run_time_filter(node: &dyn ExecutionPlan, cx: &Context) -> Option<RunTimeFilter> {
    let scan = node.downcast_ref::<DataSourceExec>()?;
    let (_, parquet) = scan.downcast_to_file_source::<ParquetSource>()?;
    if parquet.table_parquet_options().global.pushdown_filters {
        return None;
    }
    let predicate = parquet.filter()?;
    let schema = node.schema();
    let (mut direct, mut others) = (Vec::new(), Vec::new());
    for conjunct in split_conjunction(&predicate) {
        let ids = dynamic_filter_ids(conjunct);
        if ids.is_empty() || ids.iter().any(|id| cx.applied.contains(id)) {
            continue;
        }
        let Ok(expr) = reassign_expr_columns(Arc::clone(conjunct), &schema) else {
            continue;
        };
        if ids.iter().all(|id| cx.direct.contains(id)) {
            direct.push(expr);
        } else {
            others.push(expr);
        }
    }
    Some(RunTimeFilter {
        rest: conjunction_opt(others)?,
        direct: conjunction_opt(direct),
    })
}

/// The ids of the filters filled in at run time that a condition is or
/// holds. A filter without an id cannot be matched to its producer or to
/// a filter applying it: it gets one no producer has.
fn dynamic_filter_ids(expr: &Arc<dyn PhysicalExpr>) -> Vec<u64> {
    let mut ids = Vec::new();
    let _ = expr.apply(|e| {
        if e.downcast_ref::<DynamicFilterPhysicalExpr>().is_some() {
            ids.push(e.expression_id().unwrap_or(u64::MAX));
            return Ok(TreeNodeRecursion::Jump);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    ids
}

#[cfg(test)]
mod tests;
