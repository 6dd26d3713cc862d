//! Results in parts: a query whose output comes as several independent
//! streams, so that a client may fetch them at once (Flight SQL: one
//! endpoint per part, which ADBC and pyarrow fetch concurrently).
//!
//! A result is split only when its physical plan's output partitions do not
//! depend on each other: every operator between the root and the scans maps
//! partition `i` of its input to partition `i` of its output (scans,
//! filters, projections, unions, batch coalescing). A plan with a
//! repartition, a merge, an aggregate or a join is not split: its output
//! partitions share buffers, and a client reading one part after the other
//! would make the server hold the unread parts in memory.
//!
//! The plan made when the parts are counted ([`QuerySession::result_parts`])
//! is kept in [`ResultParts`] and run by each part's execution
//! ([`QuerySession::execute_part`]), as long as the policy it was made
//! under is still in force. A result that comes whole keeps its plan too,
//! for one run only: an operator may hold state from its first run (a
//! repartition's channels), so a second run of the result plans again. Where it is not at hand (another replica, an
//! expired ticket, a policy reload) the statement is planned again, and the
//! part runs only if the new plan has the same fingerprint: the same
//! operators over the same files, split the same way (DataFusion orders a
//! scan's files by path). Otherwise the part fails with SQLSTATE 40001 and
//! the client asks again; a part never returns rows of another split.
//! Each part's scans read only their own files: DataFusion's work stealing
//! between sibling partitions is off when a part runs.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNode;
use datafusion::common::ParamValues;
use datafusion::execution::{SessionState, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{
    displayable, ExecutionPlan, ExecutionPlanProperties, StatisticsArgs, StatisticsContext,
};
use meshgate_policy::Policy;

use super::prepared::{returns_rows, Prepared};
use super::QuerySession;
use crate::{QueryError, QueryResult};

/// Operators whose output partition `i` reads only partition `i` of their
/// inputs (a union's partitions are its inputs' partitions in turn).
const PARTITION_PRESERVING: &[&str] = &[
    "DataSourceExec",
    "ProjectionExec",
    "FilterExec",
    "CoalesceBatchesExec",
    "CooperativeExec",
    "UnionExec",
    "DeltaScan",
    "PolicyBarrierExec",
];

/// How a statement's result comes: in `count` independent parts (1 when it
/// is not split), and how many rows and bytes it holds where the plan
/// knows exactly (Parquet footers of unfiltered scans).
#[derive(Debug, Clone)]
pub struct ResultParts {
    pub count: usize,
    /// Identifies the split (see the module documentation).
    pub fingerprint: u64,
    pub rows: Option<u64>,
    /// The result's size in memory as Arrow, where exactly known.
    pub bytes: Option<u64>,
    /// The plan the parts run, while it can be reused.
    plan: Option<KeptPlan>,
    /// Set when a whole result's plan has run (it runs once).
    ran: Arc<AtomicBool>,
}

#[derive(Debug, Clone)]
struct KeptPlan {
    physical: Arc<dyn ExecutionPlan>,
    optimized: LogicalPlan,
    policy: Option<Arc<Policy>>,
}

/// Part `index` of a result split in `count` parts with `fingerprint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultPart {
    pub index: usize,
    pub count: usize,
    pub fingerprint: u64,
}

impl ResultParts {
    /// A result that comes whole, in one stream.
    fn whole() -> Self {
        Self {
            count: 1,
            fingerprint: 0,
            rows: None,
            bytes: None,
            plan: None,
            ran: Arc::default(),
        }
    }

    /// A whole result whose plan was made when it was counted.
    fn whole_planned(plan: KeptPlan) -> Self {
        Self {
            plan: Some(plan),
            ..Self::whole()
        }
    }

    /// This result comes whole and its plan is kept for its run.
    pub fn whole_with_plan(&self) -> bool {
        self.count == 1 && self.plan.is_some() && !self.ran.load(Ordering::Relaxed)
    }

    /// Part `index` of this result.
    pub fn part(&self, index: usize) -> ResultPart {
        ResultPart {
            index,
            count: self.count,
            fingerprint: self.fingerprint,
        }
    }

    /// The kept plan, if it was made under `policy` (the one in force).
    pub(super) fn plan_under(
        &self,
        policy: Option<&Arc<Policy>>,
    ) -> Option<(Arc<dyn ExecutionPlan>, LogicalPlan)> {
        let kept = self.plan.as_ref()?;
        let same = match (&kept.policy, policy) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        same.then(|| (kept.physical.clone(), kept.optimized.clone()))
    }

    /// A whole result's kept plan, if it was made under `policy` and has
    /// not run yet; it is then marked as run.
    pub(super) fn take_whole(
        &self,
        policy: Option<&Arc<Policy>>,
    ) -> Option<(Arc<dyn ExecutionPlan>, LogicalPlan)> {
        if self.count != 1 {
            return None;
        }
        let plan = self.plan_under(policy)?;
        (!self.ran.swap(true, Ordering::AcqRel)).then_some(plan)
    }
}

impl QuerySession {
    /// How the result of `prepared` run with `params` comes: in how many
    /// independent parts, with the plan they run (its values bound).
    /// Statements other than queries, queries whose plan cannot be split,
    /// and queries that run as one statement at their source come whole.
    pub async fn result_parts(
        &mut self,
        prepared: &Prepared,
        params: Option<&ParamValues>,
    ) -> QueryResult<ResultParts> {
        let Prepared::Query {
            plan,
            cache,
            policy,
            ..
        } = prepared
        else {
            return Ok(ResultParts::whole());
        };
        if !splittable_statement(plan) {
            return Ok(ResultParts::whole());
        }
        // A direct statement is one stream: no physical plan to make.
        let direct = {
            let state = self.ctx.state_ref();
            let state = state.read();
            cache.is_direct(&state, plan)
        };
        if direct {
            return Ok(ResultParts::whole());
        }
        let state = self.ctx.state();
        let (physical, optimized) = physical_plan(&state, plan, cache, params).await?;
        let split = split(&physical);
        let kept = KeptPlan {
            physical,
            optimized,
            policy: policy.clone(),
        };
        let Some((count, fingerprint)) = split else {
            return Ok(ResultParts::whole_planned(kept));
        };
        let (rows, bytes) = exact_size(kept.physical.as_ref())?;
        Ok(ResultParts {
            count,
            fingerprint,
            rows,
            bytes,
            plan: Some(kept),
            ran: Arc::default(),
        })
    }
}

/// The rows and bytes of the whole output of `plan`, where exactly known.
fn exact_size(plan: &dyn ExecutionPlan) -> QueryResult<(Option<u64>, Option<u64>)> {
    let stats = StatisticsContext::new().compute(plan, &StatisticsArgs::new())?;
    let exact = |p: &Precision<usize>| match p {
        Precision::Exact(n) => Some(*n as u64),
        _ => None,
    };
    Ok((exact(&stats.num_rows), exact(&stats.total_byte_size)))
}

/// Queries only: commands, EXPLAIN and DDL come whole, and so does a
/// query whose plan holds an operator that merges partitions (checked here
/// on the logical plan, so that such queries are not planned physically
/// twice, here and at their execution).
fn splittable_statement(plan: &LogicalPlan) -> bool {
    let merges = plan
        .exists(|node| {
            Ok(matches!(
                node,
                LogicalPlan::Aggregate(_)
                    | LogicalPlan::Sort(_)
                    | LogicalPlan::Join(_)
                    | LogicalPlan::Limit(_)
                    | LogicalPlan::Window(_)
                    | LogicalPlan::Distinct(_)
                    | LogicalPlan::RecursiveQuery(_)
            ))
        })
        .unwrap_or(true);
    returns_rows(plan)
        && !merges
        && !matches!(
            plan,
            LogicalPlan::Statement(_)
                | LogicalPlan::Dml(_)
                | LogicalPlan::Ddl(_)
                | LogicalPlan::Copy(_)
                | LogicalPlan::Explain(_)
                | LogicalPlan::Analyze(_)
                | LogicalPlan::DescribeTable(_)
        )
}

/// The optimised and physical plans of `plan` with `params` bound (from
/// the statement's kept optimised plan when there is one).
pub(super) async fn physical_plan(
    state: &SessionState,
    plan: &LogicalPlan,
    cache: &crate::PlanCache,
    params: Option<&ParamValues>,
) -> QueryResult<(Arc<dyn ExecutionPlan>, LogicalPlan)> {
    if let Some(kept) = cache.physical_plan(state, plan, params).await? {
        return Ok(kept);
    }
    let bound = match params {
        Some(params) => plan.clone().with_param_values(params.clone())?,
        None => plan.clone(),
    };
    let optimized = state.optimize(&bound)?;
    let physical = state
        .query_planner()
        .create_physical_plan(&optimized, state)
        .await?;
    Ok((physical, optimized))
}

/// The number of independent output partitions of `plan` and its
/// fingerprint; `None` when it has one partition or its partitions depend
/// on each other.
pub(super) fn split(plan: &Arc<dyn ExecutionPlan>) -> Option<(usize, u64)> {
    let count = plan.output_partitioning().partition_count();
    if count < 2 || !partition_preserving(plan.as_ref()) {
        return None;
    }
    // The verbose display names every operator, expression and file range.
    let text = displayable(plan.as_ref()).indent(true).to_string();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    Some((count, hasher.finish()))
}

fn partition_preserving(plan: &dyn ExecutionPlan) -> bool {
    PARTITION_PRESERVING.contains(&plan.name())
        && plan
            .children()
            .iter()
            .all(|child| partition_preserving(child.as_ref()))
}

/// The task context a part runs in: `task`'s, with the scans reading only
/// their own files (DataFusion otherwise lets a partition take files from
/// its siblings, which other parts would then miss).
pub(super) fn part_task(task: TaskContext) -> Arc<TaskContext> {
    let mut config = task.session_config().clone();
    config
        .options_mut()
        .execution
        .enable_file_stream_work_stealing = false;
    Arc::new(task.with_session_config(config))
}

/// Refuses to run `part` on `physical` unless that plan splits exactly as
/// the one the part was counted from.
pub(super) fn check_split(physical: &Arc<dyn ExecutionPlan>, part: &ResultPart) -> QueryResult<()> {
    match split(physical) {
        Some((count, fingerprint))
            if count == part.count && fingerprint == part.fingerprint && part.index < count =>
        {
            Ok(())
        }
        _ => Err(QueryError::Conflict(
            "the data behind this result changed since its parts were planned \
             (files added or removed, or another plan): ask for the result again"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_partition_preserving_plans_split() {
        use datafusion::datasource::memory::MemorySourceConfig;
        use datafusion::physical_plan::projection::ProjectionExec;
        use datafusion::physical_plan::repartition::RepartitionExec;
        use datafusion::physical_plan::Partitioning;
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::empty());
        let scan: Arc<dyn ExecutionPlan> =
            MemorySourceConfig::try_new_exec(&[vec![], vec![], vec![]], schema.clone(), None)
                .unwrap();
        let (count, fingerprint) = split(&scan).expect("a scan splits");
        assert_eq!(count, 3);
        let projected: Arc<dyn ExecutionPlan> =
            Arc::new(ProjectionExec::try_new(Vec::<(_, String)>::new(), scan.clone()).unwrap());
        let (count, other) = split(&projected).expect("a projection of a scan splits");
        assert_eq!(count, 3);
        assert_ne!(fingerprint, other, "another plan, another fingerprint");
        let part = ResultPart {
            index: 2,
            count: 3,
            fingerprint,
        };
        assert!(check_split(&scan, &part).is_ok());
        assert!(check_split(&projected, &part).is_err());
        let beyond = ResultPart { index: 3, ..part };
        assert!(check_split(&scan, &beyond).is_err());
        // Partitions behind a repartition share its buffers: not split.
        let repartitioned: Arc<dyn ExecutionPlan> =
            Arc::new(RepartitionExec::try_new(scan, Partitioning::RoundRobinBatch(4)).unwrap());
        assert!(split(&repartitioned).is_none());
    }

    #[test]
    fn a_whole_results_plan_runs_once_under_its_policy() {
        use datafusion::logical_expr::LogicalPlanBuilder;
        use datafusion::physical_plan::empty::EmptyExec;
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::empty());
        let policy = Arc::new(Policy::default());
        let kept = ResultParts::whole_planned(KeptPlan {
            physical: Arc::new(EmptyExec::new(schema)),
            optimized: LogicalPlanBuilder::empty(false).build().unwrap(),
            policy: Some(policy.clone()),
        });
        assert!(kept.whole_with_plan());
        let other = Arc::new(Policy::default());
        assert!(kept.take_whole(Some(&other)).is_none(), "another policy");
        assert!(kept.take_whole(None).is_none(), "no policy");
        let shared = kept.clone();
        assert!(kept.take_whole(Some(&policy)).is_some());
        assert!(!shared.whole_with_plan(), "clones share the run");
        assert!(shared.take_whole(Some(&policy)).is_none(), "runs once");
        assert!(!ResultParts::whole().whole_with_plan());
    }
}
