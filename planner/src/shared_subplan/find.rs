//! Finding the sub-plans a query computes more than once.
//!
//! DataFusion inlines a common table expression (or a view) at each place
//! it is named, so `WITH r AS (SELECT k, sum(v) …) SELECT … FROM r WHERE
//! x = (SELECT max(x) FROM r)` reads and aggregates the same rows twice.
//! After optimisation both copies are equal plans (a table scan compares by
//! its `catalog.schema.table` name, projection and filters), so equal
//! sub-plans are found by plain equality and each occurrence is wrapped in
//! a [`SharedSubplan`] node with one id; the physical planner turns them
//! into `SharedSubplanExec`s that compute the sub-plan once.
//!
//! Only aggregates are shared: their results are usually small (they are
//! kept in memory while the query reads them) and they are where repeated
//! work costs most. A sub-plan is not shared when it calls a volatile
//! function (`random()` must stay two draws), refers to an outer query, or
//! sits in a recursive query (whose recursive part runs again and again).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::DFSchemaRef;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, UserDefinedLogicalNodeCore};

/// One occurrence of a sub-plan computed once for all occurrences with the
/// same `id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub(crate) struct SharedSubplan {
    pub(crate) id: usize,
    pub(crate) input: LogicalPlan,
}

impl UserDefinedLogicalNodeCore for SharedSubplan {
    fn name(&self) -> &str {
        "SharedSubplan"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SharedSubplan: id={}", self.id)
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let [input] = <[_; 1]>::try_from(inputs).map_err(|_| {
            datafusion::error::DataFusionError::Internal("SharedSubplan takes one input".into())
        })?;
        Ok(Self { id: self.id, input })
    }
}

/// Ids are unique in the process, so plans made inside a plan (a policy
/// barrier's own scan) never mix their shared sub-plans with the outer one's.
static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

/// `plan` with every repeated sub-plan wrapped in [`SharedSubplan`] nodes,
/// or `None` when nothing repeats.
pub(crate) fn share_repeated(plan: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    let mut counts: HashMap<LogicalPlan, usize> = HashMap::new();
    let mut recursive = false;
    plan.apply_with_subqueries(|node| {
        if matches!(node, LogicalPlan::RecursiveQuery(_)) {
            recursive = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        if matches!(node, LogicalPlan::Aggregate(_)) {
            *counts.entry(node.clone()).or_default() += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if recursive {
        return Ok(None);
    }
    let mut repeated: HashSet<LogicalPlan> = counts
        .into_iter()
        .filter(|(node, count)| *count > 1 && shareable(node))
        .map(|(node, _)| node)
        .collect();
    // An occurrence inside a shared sub-plan is not reached (the outer one
    // is computed once), so a plan repeated only there is not shared: drop
    // those until every shared plan is reached at least twice.
    loop {
        if repeated.is_empty() {
            return Ok(None);
        }
        let reached = reached_counts(plan, &repeated)?;
        let before = repeated.len();
        repeated.retain(|node| reached.get(node).copied().unwrap_or(0) > 1);
        if repeated.len() == before {
            break;
        }
    }
    let mut ids: HashMap<LogicalPlan, usize> = HashMap::new();
    let shared = plan.clone().transform_down_with_subqueries(|node| {
        if !repeated.contains(&node) {
            return Ok(Transformed::no(node));
        }
        let id = *ids
            .entry(node.clone())
            .or_insert_with(|| NEXT_ID.fetch_add(1, Ordering::Relaxed));
        let wrapped = LogicalPlan::Extension(Extension {
            node: std::sync::Arc::new(SharedSubplan { id, input: node }),
        });
        Ok(Transformed::new(wrapped, true, TreeNodeRecursion::Jump))
    })?;
    Ok(Some(shared.data))
}

/// How often each plan of `repeated` is reached walking down from the
/// root without entering a plan of `repeated`.
fn reached_counts(
    plan: &LogicalPlan,
    repeated: &HashSet<LogicalPlan>,
) -> Result<HashMap<LogicalPlan, usize>> {
    let mut reached: HashMap<LogicalPlan, usize> = HashMap::new();
    plan.apply_with_subqueries(|node| {
        if repeated.contains(node) {
            *reached.entry(node.clone()).or_default() += 1;
            return Ok(TreeNodeRecursion::Jump);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(reached)
}

/// Whether computing `plan` once gives what computing it at each place
/// would: no volatile function, no outer reference, and nothing but
/// DataFusion's own nodes and federated source queries (whose equality is
/// that of the plan they send).
fn shareable(plan: &LogicalPlan) -> bool {
    let mut ok = true;
    let _ = plan.apply_with_subqueries(|node| {
        let foreign_node = match node {
            LogicalPlan::Extension(ext) => ext.node.name() != "Federated",
            LogicalPlan::RecursiveQuery(_) => true,
            _ => false,
        };
        let unsafe_expr = node
            .expressions()
            .iter()
            .any(|e| e.is_volatile() || e.contains_outer());
        if foreign_node || unsafe_expr {
            ok = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::functions_aggregate::expr_fn::{max, sum};
    use datafusion::logical_expr::{col, lit, logical_plan::table_scan, LogicalPlanBuilder};

    fn revenue() -> LogicalPlan {
        revenue_of("c.s.t")
    }

    /// `SELECT k, sum(v) AS total FROM table WHERE v > 1 GROUP BY k`.
    fn revenue_of(table: &str) -> LogicalPlan {
        let schema = Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
        ]);
        table_scan(Some(table), &schema, None)
            .unwrap()
            .filter(col("v").gt(lit(1)))
            .unwrap()
            .aggregate(vec![col("k")], vec![sum(col("v")).alias("total")])
            .unwrap()
            .build()
            .unwrap()
    }

    fn count_shared(plan: &LogicalPlan) -> HashMap<usize, usize> {
        let mut ids = HashMap::new();
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::Extension(ext) = node {
                if let Some(s) = ext.node.as_any().downcast_ref::<SharedSubplan>() {
                    *ids.entry(s.id).or_default() += 1;
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .unwrap();
        ids
    }

    /// `r JOIN (SELECT max(total) FROM r)`, as a decorrelated q15.
    fn twice(left: LogicalPlan, right: LogicalPlan) -> LogicalPlan {
        let top = LogicalPlanBuilder::from(right)
            .aggregate(Vec::<Expr>::new(), vec![max(col("total")).alias("m")])
            .unwrap()
            .build()
            .unwrap();
        LogicalPlanBuilder::from(left)
            .alias("r")
            .unwrap()
            .cross_join(
                LogicalPlanBuilder::from(top)
                    .alias("x")
                    .unwrap()
                    .build()
                    .unwrap(),
            )
            .unwrap()
            .build()
            .unwrap()
    }

    #[test]
    fn an_aggregate_used_twice_is_shared_once() {
        let plan = twice(revenue(), revenue());
        let shared = share_repeated(&plan).unwrap().expect("shared");
        let ids = count_shared(&shared);
        assert_eq!(ids.len(), 1, "{shared}");
        assert_eq!(ids.values().next(), Some(&2), "{shared}");
    }

    #[test]
    fn different_aggregates_are_not_shared() {
        let other = LogicalPlanBuilder::from(revenue())
            .filter(col("total").gt(lit(5)))
            .unwrap()
            .build()
            .unwrap();
        let different = revenue_of("c.s.other");
        let plan = twice(other, different);
        assert!(share_repeated(&plan).unwrap().is_none());
    }

    #[test]
    fn a_volatile_aggregate_is_not_shared() {
        let volatile = || {
            let schema = Schema::new(vec![Field::new("k", DataType::Int64, false)]);
            table_scan(Some("c.s.t"), &schema, None)
                .unwrap()
                .aggregate(
                    vec![col("k")],
                    vec![sum(datafusion::functions::expr_fn::random()).alias("total")],
                )
                .unwrap()
                .build()
                .unwrap()
        };
        let plan = twice(volatile(), volatile());
        assert!(share_repeated(&plan).unwrap().is_none());
    }
}
