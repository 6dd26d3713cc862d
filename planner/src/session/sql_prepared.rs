//! SQL `PREPARE name AS …`, `EXECUTE name(…)` and `DEALLOCATE name`.
//!
//! DataFusion keeps a `PREPARE`d statement as its optimised plan and binds
//! `EXECUTE`'s values into it. Optimisation has already handed the parts
//! that run at a SQL source to federation, as extension nodes that binding
//! does not enter, so a `$1` there would reach the database unbound.
//! meshgate therefore keeps each statement's text (after DataFusion has
//! accepted the `PREPARE`) and plans every `EXECUTE` as the query it names,
//! with the values in place of the parameters before optimisation: the
//! values become part of the SQL a source receives, the query is planned
//! under the policy in force, and its columns are known when a client
//! describes the `EXECUTE` (pgwire extended protocol).

use std::sync::Arc;

use datafusion::common::metadata::ScalarAndMetadata;
use datafusion::common::ParamValues;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Execute, Expr, LogicalPlan, Statement as PlanStatement};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;

use super::QuerySession;
use crate::plan_cache::typed_params;
use crate::{QueryError, QueryResult};

impl QuerySession {
    /// The plan of `EXECUTE name(values)`: the prepared query, planned now,
    /// with the values bound; and the tables it names (for the audit).
    pub(super) async fn plan_execute(
        &self,
        execute: &Execute,
    ) -> QueryResult<(LogicalPlan, Vec<String>)> {
        let text = self
            .sql_prepared
            .lock()
            .expect("prepared lock")
            .get(&execute.name)
            .cloned()
            .ok_or_else(|| {
                QueryError::from(datafusion::error::DataFusionError::Execution(format!(
                    "Prepared statement '{}' does not exist",
                    execute.name
                )))
            })?;
        let mut statements = self.parse(&text)?;
        let (Some(statement), true) = (statements.pop(), statements.is_empty()) else {
            return Err(QueryError::Internal(format!(
                "prepared statement `{text}` is not one statement"
            )));
        };
        let tables = self.objects(&statement);
        let LogicalPlan::Statement(PlanStatement::Prepare(prepare)) =
            self.read_only_plan(statement).await?
        else {
            return Err(QueryError::Internal(format!(
                "`{text}` does not plan as a PREPARE"
            )));
        };
        let input = Arc::unwrap_or_clone(prepare.input);
        let values = self.parameter_values(&execute.parameters, &input)?;
        let values = if prepare.fields.is_empty() {
            typed_params(&input, &values)?
        } else {
            // `PREPARE name(int, text)`: the declared types.
            let ParamValues::List(list) = values else {
                unreachable!("EXECUTE passes values by position")
            };
            if list.len() != prepare.fields.len() {
                return Err(QueryError::from(
                    datafusion::error::DataFusionError::Execution(format!(
                        "Prepared statement '{}' expects {} parameters, but {} provided",
                        execute.name,
                        prepare.fields.len(),
                        list.len()
                    )),
                ));
            }
            ParamValues::List(
                list.into_iter()
                    .zip(&prepare.fields)
                    .map(|(v, field)| v.cast_storage_to(field.data_type()))
                    .collect::<datafusion::error::Result<_>>()?,
            )
        };
        let plan = input.replace_params_with_values(&values)?;
        crate::read_only::check_plan(&plan)?;
        Ok((plan, tables))
    }

    /// `EXECUTE`'s argument expressions as values (constants only, as in
    /// PostgreSQL: `EXECUTE q(1 + 1)` passes 2).
    fn parameter_values(
        &self,
        parameters: &[Expr],
        input: &LogicalPlan,
    ) -> QueryResult<ParamValues> {
        let state = self.ctx.state();
        let context = SimplifyContext::builder()
            .with_schema(Arc::clone(input.schema()))
            .with_config_options(Arc::clone(state.config_options()))
            .with_query_execution_start_time(state.execution_props().query_execution_start_time)
            .build();
        let simplifier = ExprSimplifier::new(context);
        let values = parameters
            .iter()
            .map(|e| match simplifier.simplify(e.clone())? {
                Expr::Literal(value, metadata) => Ok(ScalarAndMetadata::new(value, metadata)),
                other => Err(QueryError::FeatureNotSupported(format!(
                    "EXECUTE parameter `{other}` is not a constant"
                ))),
            })
            .collect::<QueryResult<Vec<_>>>()?;
        Ok(ParamValues::List(values))
    }

    /// After DataFusion ran a `PREPARE` (given its text) or a `DEALLOCATE`:
    /// the same change to the statements this session keeps.
    pub(super) fn sql_prepared_ran(&self, change: PreparedChange, sql: &str) {
        let mut prepared = self.sql_prepared.lock().expect("prepared lock");
        match change {
            PreparedChange::Prepare(name) => {
                prepared.insert(name, sql.to_owned());
            }
            PreparedChange::Deallocate(name) => {
                prepared.remove(&name);
            }
        }
    }
}

/// What running a plan changes in the session's prepared statements.
pub(super) enum PreparedChange {
    Prepare(String),
    Deallocate(String),
}

impl PreparedChange {
    pub(super) fn of(plan: &LogicalPlan) -> Option<Self> {
        match plan {
            LogicalPlan::Statement(PlanStatement::Prepare(p)) => {
                Some(Self::Prepare(p.name.clone()))
            }
            LogicalPlan::Statement(PlanStatement::Deallocate(d)) => {
                Some(Self::Deallocate(d.name.clone()))
            }
            _ => None,
        }
    }
}
