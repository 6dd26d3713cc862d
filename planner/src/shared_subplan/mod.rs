//! Sub-plans a query repeats are computed once (a common table expression
//! or a view named twice, as in TPC-H q15).
//!
//! The session's query planner ([`SharingQueryPlanner`]) finds equal
//! aggregate sub-plans in the optimised plan (`find.rs`), plans each
//! occurrence as a `SharedSubplanExec` with one shared state per sub-plan
//! (`exec.rs`), and otherwise plans as federation does (a sub-plan that
//! one SQL source answers becomes its query). EXPLAIN shows
//! `SharedSubplanExec: id=N` at each place that reads sub-plan N.

mod exec;
mod find;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::error::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use exec::{Shared, SharedSubplanExec};
use find::SharedSubplan;

/// The session's query planner: federation's, plus shared sub-plans.
#[derive(Debug, Default)]
pub(crate) struct SharingQueryPlanner;

#[async_trait]
impl QueryPlanner for SharingQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let shared = find::share_repeated(logical_plan)?;
        let plan = shared.as_ref().unwrap_or(logical_plan);
        // One `SharedPlanner` per plan: readers of one id meet only within
        // the plan being made.
        let planner = DefaultPhysicalPlanner::with_extension_planners(vec![
            Arc::new(datafusion_federation::FederatedPlanner::new()),
            Arc::new(SharedPlanner::default()),
        ]);
        planner.create_physical_plan(plan, session_state).await
    }
}

/// Plans [`SharedSubplan`] nodes, giving every node of one id one state.
#[derive(Default)]
struct SharedPlanner {
    shared: Mutex<HashMap<usize, Arc<Shared>>>,
}

#[async_trait]
impl ExtensionPlanner for SharedPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<SharedSubplan>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return Err(datafusion::error::DataFusionError::Internal(
                "SharedSubplan takes one input".into(),
            ));
        };
        let shared = self
            .shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(node.id)
            .or_default()
            .clone();
        shared.add_reader();
        Ok(Some(Arc::new(SharedSubplanExec::new(
            node.id,
            input.clone(),
            shared,
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn a_cte_named_twice_is_planned_once() {
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_query_planner(Arc::new(SharingQueryPlanner))
            .build();
        let ctx = SessionContext::new_with_state(state);
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 1, 2, 3])),
                Arc::new(Int64Array::from(vec![5, 6, 20, 4])),
            ],
        )
        .unwrap();
        let table = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let sql = "WITH r AS (SELECT k, sum(v) AS s FROM t GROUP BY k) \
                   SELECT k, s FROM r WHERE s = (SELECT max(s) FROM r)";
        let explain = ctx
            .sql(&format!("EXPLAIN {sql}"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&explain)
            .unwrap()
            .to_string();
        assert_eq!(text.matches("SharedSubplanExec").count(), 2, "{text}");
        let rows = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&rows)
            .unwrap()
            .to_string();
        assert!(text.contains("| 2 | 20 |"), "{text}");
        assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    }
}
