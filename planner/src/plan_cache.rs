//! Optimised plans of prepared statements, kept for their next execution.
//!
//! A prepared statement (pgwire Parse, Flight SQL CreatePreparedStatement)
//! is analysed and optimised once, with its `$n` placeholders in place;
//! each execution binds the parameter values into that optimised plan
//! (including the SQL a federated source is sent) and goes straight to
//! physical planning. Point lookups through drivers and pgbench spend most
//! of their time planning, so this is where repeated executions save.
//!
//! A plan is not kept when it could differ between executions: when it
//! calls a function that is not immutable (`now()`, `random()`,
//! `current_setting`), when a placeholder's type is unknown, or once the
//! session's time zone (which analysis reads) has changed.

use std::sync::{Arc, Mutex};

use datafusion::common::metadata::ScalarAndMetadata;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{ParamValues, Result, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::optimizer::{OptimizerContext, OptimizerRule};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use datafusion_federation::FederatedPlanNode;
use meshgate_connectors::DirectStatement;

use crate::like_escape::LikeEscapeRule;

#[derive(Debug, Clone, Default)]
pub struct PlanCache(Arc<Mutex<State>>);

#[derive(Debug, Default)]
enum State {
    #[default]
    Unknown,
    /// The statement's plan may differ between executions.
    Uncachable,
    Optimized(Box<Kept>),
}

#[derive(Debug)]
struct Kept {
    time_zone: Option<String>,
    plan: LogicalPlan,
    /// The plan as one statement of the source it all runs at.
    direct: Option<Arc<DirectStatement>>,
    /// The columns the direct statement reads (for its audit record), with
    /// the default catalog and schema they were resolved in.
    direct_columns: Option<(Scope, Vec<String>)>,
}

/// A default catalog and schema.
type Scope = (String, String);

/// How a kept plan runs.
pub(crate) enum CachedRun {
    /// DataFusion's physical plan, with the values bound.
    Physical(Arc<dyn ExecutionPlan>),
    /// Rows straight from the source's prepared statement
    /// ([`DirectStatement`]): no physical planning at all.
    Direct(SendableRecordBatchStream),
}

impl PlanCache {
    /// How `plan` runs with `params`, from the kept optimised plan, and the
    /// optimised plan that runs (for the audit's columns: with the values
    /// bound, or with placeholders for a direct statement); `None` when
    /// this statement's plan is not kept (the caller plans it in full).
    pub(crate) async fn run(
        &self,
        state: &SessionState,
        plan: &LogicalPlan,
        params: Option<&ParamValues>,
    ) -> Result<Option<(CachedRun, LogicalPlan)>> {
        let Some((optimized, direct)) = self.kept(state, plan) else {
            return Ok(None);
        };
        if let Some(direct) = direct {
            if let Some(values) = direct_values(params) {
                let stream = direct.execute(values)?;
                return Ok(Some((CachedRun::Direct(stream), optimized)));
            }
        }
        let (physical, bound) = physical(state, optimized, params).await?;
        Ok(Some((CachedRun::Physical(physical), bound)))
    }

    /// The rows of the kept direct statement with `params`, and the
    /// columns it reads: `read` of the kept optimised plan, worked out once
    /// per `scope` (default catalog and schema); `None` when there is no
    /// direct statement for `time_zone` (the caller goes through
    /// [`PlanCache::run`]).
    pub(crate) fn direct(
        &self,
        time_zone: &Option<String>,
        params: Option<&ParamValues>,
        scope: (&str, &str),
        read: impl FnOnce(&LogicalPlan) -> Vec<String>,
    ) -> Option<Result<(SendableRecordBatchStream, Vec<String>)>> {
        let values = direct_values(params)?;
        let (direct, columns) = match &mut *self.0.lock().expect("plan cache lock") {
            State::Optimized(kept) if kept.time_zone == *time_zone => {
                let direct = kept.direct.clone()?;
                let columns = match &kept.direct_columns {
                    Some(((catalog, schema), columns))
                        if (catalog.as_str(), schema.as_str()) == scope =>
                    {
                        columns.clone()
                    }
                    _ => {
                        let columns = read(&kept.plan);
                        let scope = (scope.0.to_owned(), scope.1.to_owned());
                        kept.direct_columns = Some((scope, columns.clone()));
                        columns
                    }
                };
                (direct, columns)
            }
            _ => return None,
        };
        Some(direct.execute(values).map(|stream| (stream, columns)))
    }

    /// The physical plan for `plan` with `params`, from the kept optimised
    /// plan, and that optimised plan with the values bound; `None` when this
    /// statement's plan is not kept (the caller plans it in full).
    pub(crate) async fn physical_plan(
        &self,
        state: &SessionState,
        plan: &LogicalPlan,
        params: Option<&ParamValues>,
    ) -> Result<Option<(Arc<dyn ExecutionPlan>, LogicalPlan)>> {
        match self.kept(state, plan) {
            Some((optimized, _)) => physical(state, optimized, params).await.map(Some),
            None => Ok(None),
        }
    }

    /// True when `plan` runs as one statement of its source (a kept direct
    /// statement), optimising and keeping it now if it may be kept.
    pub(crate) fn is_direct(&self, state: &SessionState, plan: &LogicalPlan) -> bool {
        matches!(self.kept(state, plan), Some((_, Some(_))))
    }

    /// The kept optimised plan (made and kept now if it may be) and its
    /// direct statement.
    fn kept(
        &self,
        state: &SessionState,
        plan: &LogicalPlan,
    ) -> Option<(LogicalPlan, Option<Arc<DirectStatement>>)> {
        let time_zone = state.config().options().execution.time_zone.clone();
        {
            let mut cached = self.0.lock().expect("plan cache lock");
            match &*cached {
                State::Uncachable => return None,
                State::Optimized(kept) if kept.time_zone == time_zone => {
                    return Some((kept.plan.clone(), kept.direct.clone()))
                }
                _ if !cachable(plan) => {
                    *cached = State::Uncachable;
                    return None;
                }
                _ => {}
            }
        }
        match state.optimize(plan) {
            Ok(optimized) => {
                let direct = direct_statement(state, &optimized).map(Arc::new);
                if let Some(direct) = &direct {
                    tracing::debug!(sql = direct.sql(), "statement runs directly at its source");
                }
                *self.0.lock().expect("plan cache lock") = State::Optimized(Box::new(Kept {
                    time_zone,
                    plan: optimized.clone(),
                    direct: direct.clone(),
                    direct_columns: None,
                }));
                Some((optimized, direct))
            }
            // Planned with its values bound instead (by the caller).
            Err(_) => {
                *self.0.lock().expect("plan cache lock") = State::Uncachable;
                None
            }
        }
    }
}

/// `optimized` as one statement of its source: the plan itself, or, for a
/// restricted user's scan of one policy view, the view's plan for that scan
/// (its row filters and masks written into the statement, as the view's
/// own scan would send them).
fn direct_statement(state: &SessionState, optimized: &LogicalPlan) -> Option<DirectStatement> {
    DirectStatement::of(optimized).or_else(|| {
        let view = crate::access::barrier::view_scan_plan(optimized)?;
        DirectStatement::of(&state.optimize(&view).ok()?)
    })
}

/// The values of `params` for a direct statement (which casts each to its
/// placeholder's type); `None` for named parameters (planned in full).
fn direct_values(params: Option<&ParamValues>) -> Option<Vec<ScalarValue>> {
    match params {
        None => Some(Vec::new()),
        Some(ParamValues::List(values)) => Some(values.iter().map(|v| v.value.clone()).collect()),
        Some(ParamValues::Map(_)) => None,
    }
}

/// The physical plan of a kept optimised plan with `params` bound, and
/// the bound plan.
async fn physical(
    state: &SessionState,
    optimized: LogicalPlan,
    params: Option<&ParamValues>,
) -> Result<(Arc<dyn ExecutionPlan>, LogicalPlan)> {
    let bound = match params {
        Some(params) => bind(optimized, params)?,
        None => optimized,
    };
    let physical = state
        .query_planner()
        .create_physical_plan(&bound, state)
        .await?;
    Ok((physical, bound))
}

/// A plan whose optimised form is the same for every execution.
fn cachable(plan: &LogicalPlan) -> bool {
    match plan.get_parameter_types() {
        Ok(types) if types.values().all(Option::is_some) => {}
        _ => return false,
    }
    crate::plan_shape::deterministic_query(plan)
}

/// Put the parameter values into an optimised plan: each value cast to its
/// placeholder's type (analysis has already coerced around it), in the
/// plan and in the plans federated sources are sent.
fn bind(plan: LogicalPlan, params: &ParamValues) -> Result<LogicalPlan> {
    let plan = plan
        .transform_up_with_subqueries(|node| match node {
            LogicalPlan::Extension(ext) => {
                match ext.node.as_any().downcast_ref::<FederatedPlanNode>() {
                    Some(federated) => {
                        let inner = bind(federated.plan().clone(), params)?;
                        Ok(Transformed::yes(LogicalPlan::Extension(Extension {
                            node: Arc::new(FederatedPlanNode::new(
                                inner,
                                federated.planner.clone(),
                            )),
                        })))
                    }
                    None => Ok(Transformed::no(LogicalPlan::Extension(ext))),
                }
            }
            other => Ok(Transformed::no(other)),
        })?
        .data;
    let params = typed_params(&plan, params)?;
    let plan = plan.replace_params_with_values(&params)?;
    // Rules that read literal values, now that the values are literals.
    let context = OptimizerContext::new();
    plan.transform_up_with_subqueries(|node| LikeEscapeRule.rewrite(node, &context))
        .map(|t| t.data)
}

/// `params`, each value cast to the type `plan` gives its placeholder where
/// that type is known (`$1` compared with an `int4` column takes an `int4`),
/// as PostgreSQL types a parameter once, when the statement is prepared.
pub(crate) fn typed_params(plan: &LogicalPlan, params: &ParamValues) -> Result<ParamValues> {
    let types = plan.get_parameter_types()?;
    Ok(match params {
        ParamValues::List(values) => ParamValues::List(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| match types.get(&format!("${}", i + 1)) {
                    Some(Some(ty)) if v.value.data_type() != *ty => Ok(ScalarAndMetadata::new(
                        v.value.cast_to(ty)?,
                        v.metadata.clone(),
                    )),
                    _ => Ok(v.clone()),
                })
                .collect::<Result<_>>()?,
        ),
        map => map.clone(),
    })
}
