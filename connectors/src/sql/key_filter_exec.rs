//! EXPLAIN shows the join keys a SQL source is sent (see `key_filter`).
//!
//! The federated scan (`VirtualExecutionPlan`) takes a join's dynamic
//! filter and writes its value into the remote SQL when the scan starts,
//! but its own line in a plan names only the base query. The rule
//! [`ShowSourceKeys`], run after DataFusion's filter pushdown, puts a
//! [`SourceKeyFilterExec`] above each federated scan that holds such a
//! filter. It changes nothing in how rows flow; its line says what the
//! source is (or was) asked to narrow by:
//! - in EXPLAIN, before the join has built, `keys=pending` with the filter
//!   (`DynamicFilter [ empty ]`);
//! - in EXPLAIN ANALYZE, the conditions as written into the SQL, e.g.
//!   `keys="account_id" >= 7 AND "account_id" <= 7 AND "account_id" IN (7)`.

use std::fmt;
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result as DfResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::{
    ChildStats, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, Statistics,
    StatisticsArgs,
};
use datafusion::sql::unparser::dialect::DefaultDialect;
use datafusion_federation::sql::VirtualExecutionPlan;

/// Puts a [`SourceKeyFilterExec`] above every federated scan that holds a
/// dynamic filter (register it last, after filter pushdown).
#[derive(Debug, Default)]
pub struct ShowSourceKeys;

impl PhysicalOptimizerRule for ShowSourceKeys {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if !node.is::<VirtualExecutionPlan>() {
                return Ok(Transformed::no(node));
            }
            let filters = expressions(node.as_ref())?;
            if filters.is_empty() {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(Arc::new(SourceKeyFilterExec {
                input: node,
                filters,
            })))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "show_source_keys"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The dynamic filters a federated scan was handed.
fn expressions(plan: &dyn ExecutionPlan) -> DfResult<Vec<Arc<dyn PhysicalExpr>>> {
    let mut out = Vec::new();
    plan.apply_expressions(&mut |e| {
        out.push(e.clone());
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(out)
}

/// A federated scan's line in a plan, with the join keys it is sent.
#[derive(Debug)]
pub struct SourceKeyFilterExec {
    input: Arc<dyn ExecutionPlan>,
    filters: Vec<Arc<dyn PhysicalExpr>>,
}

impl DisplayAs for SourceKeyFilterExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let conditions = super::key_filter::key_conditions(
            &self.input.schema(),
            &self.filters,
            &DefaultDialect {},
        );
        if conditions.is_empty() {
            let filters: Vec<String> = self.filters.iter().map(|e| e.to_string()).collect();
            write!(
                f,
                "SourceKeyFilterExec: keys=pending ({})",
                filters.join(", ")
            )
        } else {
            write!(f, "SourceKeyFilterExec: keys={}", conditions.join(" AND "))
        }
    }
}

impl ExecutionPlan for SourceKeyFilterExec {
    fn name(&self) -> &str {
        "SourceKeyFilterExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        // The filters belong to the scan below, which reports them.
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let [input] = <[_; 1]>::try_from(children).map_err(|_| {
            datafusion::error::DataFusionError::Internal(
                "SourceKeyFilterExec takes one input".into(),
            )
        })?;
        // A new scan (e.g. one reset for another run) holds its own filters.
        let filters = expressions(input.as_ref())?;
        Ok(Arc::new(Self { input, filters }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> DfResult<Arc<Statistics>> {
        Ok(input_stats[0].clone())
    }
}
