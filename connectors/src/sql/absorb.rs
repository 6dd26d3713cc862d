//! Filters and column lists that land on a federated sub-plan go into it.
//!
//! Federation runs early in the optimizer (right after subquery
//! decorrelation), before DataFusion pushes filters down and prunes columns.
//! A `WHERE` on one side of a cross-source join, or the columns the join
//! needs, therefore end up *above* the source's `Federated` node, and the
//! source would be asked for every row and every column of its table. This
//! rule, run after DataFusion's own rules, moves such a filter or column
//! list into the federated sub-plan, so the SQL the source receives carries
//! the `WHERE` and names only the columns used.
//!
//! A node is moved only when the result is one the source evaluates with the
//! same meaning: the combined plan is handed back to the source's own
//! federation optimizer (which applies the source's function list, see
//! `federation::PortableBoundary`) and kept only if it comes back federated
//! whole. A filter is taken condition by condition (`a AND b`): the ones
//! the source takes go in, the others stay above. Subqueries, volatile
//! expressions and sub-plans that group, sort, limit or combine rows (where
//! a `WHERE` above would not mean a `WHERE` inside) are left where they are,
//! and so are sub-plans that compute columns (a policy mask): a condition on
//! a computed column would need rewriting through it.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::DFSchemaRef;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{Expr, Extension, Filter, LogicalPlan, Projection};
use datafusion::optimizer::optimizer::Optimizer;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion_federation::{get_table_source, FederatedPlanNode};

/// See the module docs.
#[derive(Debug, Default)]
pub struct AbsorbIntoFederated;

impl OptimizerRule for AbsorbIntoFederated {
    fn name(&self) -> &str {
        "meshgate_absorb_into_federated"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        plan.transform_up(|node| absorb(node, config))
    }
}

/// `node` with itself (or, for a filter, the conditions of it the source
/// takes) moved into the federated node below it.
fn absorb(node: LogicalPlan, config: &dyn OptimizerConfig) -> DfResult<Transformed<LogicalPlan>> {
    let moved = match &node {
        LogicalPlan::Filter(filter) => absorb_filter(filter, config)?,
        LogicalPlan::Projection(list) if list.expr.iter().all(plain_column) => {
            match source_of(&list.input)? {
                Some((inner, optimizer)) => {
                    let candidate = with_columns(&list.expr, &list.schema, inner)?;
                    refederate(candidate, &optimizer, config, node.schema())?
                }
                None => None,
            }
        }
        _ => None,
    };
    Ok(match moved {
        Some(plan) => Transformed::yes(plan),
        None => Transformed::no(node),
    })
}

/// The filter's conditions the source takes, inside its federated node;
/// the others above it. `None` when the source takes none.
fn absorb_filter(filter: &Filter, config: &dyn OptimizerConfig) -> DfResult<Option<LogicalPlan>> {
    let Some((mut inner, optimizer)) = source_of(&filter.input)? else {
        return Ok(None);
    };
    let mut current = None;
    let mut kept = Vec::new();
    for condition in split_conjunction_owned(filter.predicate.clone()) {
        if !portable_expr(&condition) {
            kept.push(condition);
            continue;
        }
        let candidate = with_filter(condition.clone(), inner.clone())?;
        match refederate(candidate, &optimizer, config, filter.input.schema())? {
            Some(plan) => {
                inner = federated(&plan).expect("refederated").plan().clone();
                current = Some(plan);
            }
            None => kept.push(condition),
        }
    }
    let Some(current) = current else {
        return Ok(None);
    };
    Ok(Some(match conjunction(kept) {
        Some(rest) => LogicalPlan::Filter(Filter::try_new(rest, Arc::new(current))?),
        None => current,
    }))
}

/// The sub-plan of the federated node `plan` and its source's federation
/// optimizer, when `plan` is a federated node a filter or column list can
/// go into.
fn source_of(plan: &LogicalPlan) -> DfResult<Option<(LogicalPlan, Arc<Optimizer>)>> {
    let Some(fed) = federated(plan) else {
        return Ok(None);
    };
    let inner = fed.plan();
    if !row_preserving(inner) {
        return Ok(None);
    }
    Ok(source_optimizer(inner)?.map(|optimizer| (inner.clone(), optimizer)))
}

/// `candidate` federated again by its source, if the source takes it whole
/// (with the output `schema` the plan above reads).
fn refederate(
    candidate: LogicalPlan,
    optimizer: &Optimizer,
    config: &dyn OptimizerConfig,
    schema: &DFSchemaRef,
) -> DfResult<Option<LogicalPlan>> {
    let plan = optimizer.optimize(candidate, config, |_, _| {})?;
    Ok((federated(&plan).is_some() && plan.schema() == schema).then_some(plan))
}

/// `plan` filtered by `predicate`, the filter placed below `plan`'s own
/// column lists (as a `WHERE` is written under its `SELECT` list; a filter
/// on top of a column list would be unparsed as a derived table whose
/// qualifiers the outer query could not name).
fn with_filter(predicate: Expr, plan: LogicalPlan) -> DfResult<LogicalPlan> {
    match plan {
        LogicalPlan::Projection(list) if list.expr.iter().all(plain_column) => {
            let predicate = through(predicate, &list)?;
            let input = with_filter(predicate, Arc::unwrap_or_clone(list.input))?;
            Ok(LogicalPlan::Projection(Projection::try_new_with_schema(
                list.expr,
                Arc::new(input),
                list.schema,
            )?))
        }
        plan => Ok(LogicalPlan::Filter(Filter::try_new(
            predicate,
            Arc::new(plan),
        )?)),
    }
}

/// The column list `exprs` (with output `schema`) over `plan`, merged with
/// `plan`'s own column list if it has one, for the same reason.
fn with_columns(exprs: &[Expr], schema: &DFSchemaRef, plan: LogicalPlan) -> DfResult<LogicalPlan> {
    let (exprs, input) = match plan {
        LogicalPlan::Projection(list) if list.expr.iter().all(plain_column) => {
            let exprs = exprs
                .iter()
                .map(|e| through(e.clone(), &list))
                .collect::<DfResult<Vec<_>>>()?;
            (exprs, list.input)
        }
        plan => (exprs.to_vec(), Arc::new(plan)),
    };
    // Each entry keeps the name the plan above reads it by.
    let exprs = exprs
        .into_iter()
        .zip(schema.iter())
        .map(|(expr, (qualifier, field))| {
            let expr = expr.unalias();
            match &expr {
                Expr::Column(c) if c.relation.as_ref() == qualifier && c.name == *field.name() => {
                    expr
                }
                _ => expr.alias_qualified(qualifier.cloned(), field.name()),
            }
        })
        .collect();
    Ok(LogicalPlan::Projection(Projection::try_new_with_schema(
        exprs,
        input,
        schema.clone(),
    )?))
}

/// `expr`, written over `list`'s output, rewritten over its input.
fn through(expr: Expr, list: &Projection) -> DfResult<Expr> {
    expr.transform(|e| match e {
        Expr::Column(c) => {
            let i = list.schema.index_of_column(&c)?;
            Ok(Transformed::yes(list.expr[i].clone().unalias()))
        }
        e => Ok(Transformed::no(e)),
    })
    .map(|t| t.data)
}

/// The federated node `plan` is, if it is one.
fn federated(plan: &LogicalPlan) -> Option<&FederatedPlanNode> {
    match plan {
        LogicalPlan::Extension(Extension { node }) => {
            node.as_any().downcast_ref::<FederatedPlanNode>()
        }
        _ => None,
    }
}

/// An expression that means the same below as above: no subquery, nothing
/// volatile (a `random()` filter must not be evaluated twice or elsewhere).
fn portable_expr(expr: &Expr) -> bool {
    !expr.is_volatile()
        && !expr
            .exists(|e| {
                Ok(matches!(
                    e,
                    Expr::ScalarSubquery(_)
                        | Expr::Exists(_)
                        | Expr::InSubquery(_)
                        | Expr::OuterReferenceColumn(..)
                ))
            })
            .unwrap_or(true)
}

/// A column list entry: a column, possibly renamed.
fn plain_column(expr: &Expr) -> bool {
    match expr {
        Expr::Column(_) => true,
        Expr::Alias(alias) => matches!(alias.expr.as_ref(), Expr::Column(_)),
        _ => false,
    }
}

/// Whether each output row of `plan` is one row of its tables (scans,
/// filters, column lists, renames, inner joins): a filter or column list on
/// top of it then means the same as inside it.
fn row_preserving(plan: &LogicalPlan) -> bool {
    let mut ok = true;
    plan.apply(|node| {
        ok = match node {
            LogicalPlan::TableScan(scan) => scan.fetch.is_none(),
            LogicalPlan::Filter(_) | LogicalPlan::SubqueryAlias(_) => true,
            LogicalPlan::Projection(p) => p.expr.iter().all(plain_column),
            LogicalPlan::Join(join) => join.join_type == datafusion::common::JoinType::Inner,
            _ => false,
        };
        Ok(if ok {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    })
    .expect("plan walk does not fail");
    ok
}

/// The federation optimizer of the source `plan` reads from.
fn source_optimizer(plan: &LogicalPlan) -> DfResult<Option<Arc<Optimizer>>> {
    let mut found = None;
    plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            found = get_table_source(&scan.source)?
                .and_then(|source| source.federation_provider().optimizer());
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(found)
}
