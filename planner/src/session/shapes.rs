//! Planning a statement by its shape: a query whose text differs from one
//! planned before in this session only in the literals its `WHERE`
//! compares columns with takes that plan, with its literals as the
//! parameter values (see [`super::literals`] for which literals and when a
//! value binds). The simple query protocol plans every statement this way,
//! and so do a Flight SQL statement ([`QuerySession::prepare_adhoc`]), a
//! pgwire Parse and a Flight SQL CreatePreparedStatement
//! ([`QuerySession::prepare_for_by_shape`]):
//! dashboards and lookups that send their values in the SQL text then run
//! as a prepared statement would (kept plan, direct statement at the
//! source) instead of being analysed, optimised and planned anew.
//!
//! A text whose shape does not plan, or whose literals do not fit the
//! types its plan gives them, is planned from its own text. The statement
//! keeps the text the client sent: the audit records it, and a plan made
//! under an older policy or catalog set is made again from it (with its
//! values in it, so its bound values are then dropped).

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::sql::parser::Statement as DfStatement;

use super::literals::{self, Shape};
use super::plan::multiple_commands;
use super::prepared::Prepared;
use super::QuerySession;
use crate::QueryResult;

/// A statement planned for a client's request to prepare it
/// ([`QuerySession::prepare_for_by_shape`]).
pub struct ClientStatement {
    pub prepared: Prepared,
    /// The parameters its client sees: none when it took the plan of its
    /// shape, whose placeholders its own literals fill.
    pub param_types: Vec<Option<DataType>>,
    /// The values of its literals, bound at every execution without
    /// values of the client's own, when it took the plan of its shape.
    pub literals: Option<Vec<ScalarValue>>,
}

impl QuerySession {
    /// Plan SQL that must hold at most one statement (a Flight SQL
    /// statement) by its shape: the plan, and the values of its literals
    /// when it is the plan of the shape. Empty text yields
    /// [`Prepared::Empty`].
    pub async fn prepare_adhoc(
        &mut self,
        sql: &str,
    ) -> QueryResult<(Prepared, Option<ParamValues>)> {
        let mut statements = self.parse(sql)?;
        match statements.len() {
            0 => Ok((Prepared::Empty, None)),
            1 => self.prepare_simple(statements.remove(0)).await,
            n => Err(multiple_commands(n)),
        }
    }

    /// Plan the one statement a client asked to prepare (a pgwire Parse, a
    /// Flight SQL CreatePreparedStatement) by its shape. Unlike
    /// [`Self::prepare`], the request is audited whether it succeeds or
    /// not, as `{request}: {sql}`, with the tables it names and the
    /// policy's decision on each. The values of its literals come back when
    /// it took the plan of its shape; its client then sees a statement
    /// without parameters.
    pub async fn prepare_for_by_shape(
        &mut self,
        request: &str,
        sql: &str,
    ) -> QueryResult<ClientStatement> {
        let started = Instant::now();
        let result = async {
            let mut statements = self.parse(sql)?;
            let (prepared, literals) = match statements.len() {
                0 => (Prepared::Empty, None),
                1 => {
                    let statement = statements.remove(0);
                    match self.plan_by_shape(&statement).await {
                        Some((prepared, values)) => (prepared, Some(values)),
                        None => (self.plan_statement(statement).await?, None),
                    }
                }
                n => return Err(multiple_commands(n)),
            };
            let param_types = match literals {
                Some(_) => Vec::new(),
                None => prepared.parameter_types()?,
            };
            Ok(ClientStatement {
                prepared,
                param_types,
                literals,
            })
        }
        .await;
        self.audit_prepare(request, sql, started, result.as_ref().map(|s| &s.prepared));
        result
    }

    /// Plan one statement of a simple-protocol text: from the plan of its
    /// shape with its literals bound where that plan holds them, else from
    /// its own text.
    pub(super) async fn prepare_simple(
        &mut self,
        statement: DfStatement,
    ) -> QueryResult<(Prepared, Option<ParamValues>)> {
        match self.plan_by_shape(&statement).await {
            Some((prepared, values)) => Ok((prepared, Some(ParamValues::from(values)))),
            None => Ok((self.prepare_statement(statement).await?, None)),
        }
    }

    /// The plan of `statement`'s shape (planned now if this session has not
    /// planned it yet) with the statement's text, and its literals as
    /// values; `None` when it has no such literals, its shape does not
    /// plan, or a value does not fit its placeholder's type.
    async fn plan_by_shape(
        &mut self,
        statement: &DfStatement,
    ) -> Option<(Prepared, Vec<ScalarValue>)> {
        let shape = literals::parameterise(statement)?;
        let key = {
            let state = self.ctx.state_ref();
            let state = state.read();
            let options = &state.config().options().catalog;
            (
                shape.shape.clone(),
                options.default_catalog.clone(),
                options.default_schema.clone(),
            )
        };
        // The kept plan of this shape, planned again (and kept anew) when
        // the policy or the catalogs changed since.
        let prepared = match self.literal_plans.get(&key) {
            Some(Shape::Unusable) => return None,
            Some(Shape::Planned(kept)) => match self.replan_if_stale(&kept).await {
                Ok(None) => kept,
                Ok(Some(fresh)) => self.keep_shape(key, fresh),
                Err(_) => return None,
            },
            None => match self.plan_statement(shape.statement.clone()).await {
                Ok(prepared) => self.keep_shape(key, prepared),
                Err(_) => {
                    self.literal_plans.insert(key, Shape::Unusable);
                    return None;
                }
            },
        };
        let Prepared::Query { plan, .. } = prepared.as_ref() else {
            return None;
        };
        let values = shape.bind(plan)?;
        Some((prepared.with_sql(statement.to_string()), values))
    }

    /// Keep `prepared` as the plan of a shape (a statement that is not a
    /// query has none: such texts are planned as they are).
    fn keep_shape(&mut self, key: literals::ShapeKey, prepared: Prepared) -> Arc<Prepared> {
        let prepared = Arc::new(prepared);
        let shape = match prepared.as_ref() {
            Prepared::Query { .. } => Shape::Planned(prepared.clone()),
            _ => Shape::Unusable,
        };
        self.literal_plans.insert(key, shape);
        prepared
    }
}
