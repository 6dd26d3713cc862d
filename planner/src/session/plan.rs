//! Planning: a statement is parsed, recognised as a session command or
//! planned by DataFusion under the policy in force, checked read-only, and
//! kept as a [`Prepared`] that carries its plan, the tables it names and
//! the policy it was planned under, so executions (and their audit
//! records) never parse it again. A plan made under an older policy is
//! made again before it runs.

use std::sync::Arc;
use std::time::Instant;

use datafusion::logical_expr::{LogicalPlan, Statement as PlanStatement};
use datafusion::sql::parser::Statement as DfStatement;
use meshgate_policy::Policy;

use super::prepared::Prepared;
use super::run_memo::RunMemo;
use super::statements::session_command;
use super::QuerySession;
use crate::plan_cache::PlanCache;
use crate::{QueryError, QueryResult};

impl QuerySession {
    /// Parse and plan SQL that must hold at most one statement (extended query,
    /// Flight SQL); empty text yields [`Prepared::Empty`].
    pub async fn prepare(&self, sql: &str) -> QueryResult<Prepared> {
        let mut statements = self.parse(sql)?;
        match statements.len() {
            0 => Ok(Prepared::Empty),
            1 => self.prepare_statement(statements.remove(0)).await,
            n => Err(multiple_commands(n)),
        }
    }

    /// Audit a request to prepare `sql` as `{request}: {sql}`, with the
    /// tables it names and the policy's decision on each.
    pub(super) fn audit_prepare(
        &self,
        request: &str,
        sql: &str,
        started: Instant,
        result: Result<&Prepared, &QueryError>,
    ) {
        let tables = match result {
            Ok(prepared) => prepared.tables().to_vec(),
            Err(_) => self.tables_named(sql),
        };
        let text = format!("{request}: {}", crate::audit::audit_text(sql));
        self.audit_now(&text, tables, 0, started, result.err());
    }

    /// Plan one parsed statement. A statement refused here (denied, bad
    /// SQL) is audited here; others when they have run.
    pub(super) async fn prepare_statement(&self, statement: DfStatement) -> QueryResult<Prepared> {
        let started = Instant::now();
        let sql = statement.to_string();
        let objects = self.objects(&statement);
        let result = self.plan_statement(statement).await;
        if let Err(e) = &result {
            self.audit_now(&sql, objects, 0, started, Some(e));
        }
        result
    }

    pub(super) async fn plan_statement(&self, statement: DfStatement) -> QueryResult<Prepared> {
        if let Some(guard) = &self.guard {
            guard.begin_statement();
        }
        let policy = self.guard.as_ref().map(|g| g.policy());
        let sql = statement.to_string();
        let tables = self.objects(&statement);
        if let Some(command) = session_command(&statement)? {
            return Ok(Prepared::Command {
                sql,
                command,
                tables,
            });
        }
        // An `EXECUTE` is planned as the query it names (see `sql_prepared`).
        let (plan, tables) = match self.read_only_plan(statement).await? {
            LogicalPlan::Statement(PlanStatement::Execute(execute)) => {
                self.plan_execute(&execute).await?
            }
            plan => (plan, tables),
        };
        Ok(Prepared::Query {
            sql,
            plan,
            cache: PlanCache::default(),
            memo: RunMemo::default(),
            policy,
            tables,
            catalogs: self.catalog_generation,
        })
    }

    /// DataFusion's plan of `statement` under the policy in force, refused
    /// unless it only reads (see [`crate::read_only`]).
    pub(super) async fn read_only_plan(&self, statement: DfStatement) -> QueryResult<LogicalPlan> {
        let plan = self.ctx.state().statement_to_plan(statement).await?;
        crate::read_only::check_plan(&plan)?;
        Ok(plan)
    }

    /// `prepared` planned again when the policy or the catalogs changed
    /// since it was planned; `None` when its plan still holds.
    pub(super) async fn replan_if_stale(
        &self,
        prepared: &Prepared,
    ) -> QueryResult<Option<Prepared>> {
        let Prepared::Query {
            sql,
            policy,
            catalogs,
            ..
        } = prepared
        else {
            return Ok(None);
        };
        let policy_holds = match &self.guard {
            Some(guard) => {
                guard.begin_statement();
                same_policy(policy.as_ref(), Some(&guard.policy()))
            }
            None => true,
        };
        if policy_holds && *catalogs == self.catalog_generation {
            return Ok(None);
        }
        let mut statements = self.parse(sql)?;
        if statements.len() != 1 {
            return Err(QueryError::Internal(format!(
                "cannot plan `{sql}` again under the new policy or catalogs"
            )));
        }
        self.plan_statement(statements.remove(0)).await.map(Some)
    }
}

pub(super) fn multiple_commands(n: usize) -> QueryError {
    QueryError::Syntax(format!(
        "cannot insert multiple commands into a prepared statement (got {n})"
    ))
}

/// True when two plans' policies are the same version in force.
fn same_policy(a: Option<&Arc<Policy>>, b: Option<&Arc<Policy>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}
