//! The statement pipeline every front end drives. A front end hands over a
//! planned statement ([`QuerySession::prepare`]) with its parameter values
//! and the client's [`TransactionState`], and gets back one
//! [`StatementResult`]: the output (an Arrow record-batch stream with its
//! schema, or a command tag), the notices to show, and the new transaction
//! state. The simple query protocol's loop over the statements of one text
//! is [`Script`], driven by [`QuerySession::next_statement`].
//!
//! Every execution is audited here, once, from the tables the plan already
//! carries: a row stream is recorded when it ends (rows, duration).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DfStatement;
use tracing::Instrument;

use datafusion::execution::{SessionState, TaskContext};

use super::columns_read::columns_read;
use super::deadline::Deadline;
use super::parts::{self, ResultPart, ResultParts};
use super::prepared::{returns_rows, Prepared, QueryOutput, TxEffect};
use super::result_reuse::Reuse;
use super::running::tracked;
use super::sql_prepared::PreparedChange;
use super::transaction::{Notice, TransactionState};
use super::QuerySession;
use crate::admission::{Admitted, AdmittedStream};
use crate::audit::Audited;
use crate::plan_cache::CachedRun;
use crate::runtime::tracked::run_until_stopped;
use crate::{QueryError, QueryResult};

/// What running one statement produced.
pub struct StatementResult {
    pub output: QueryOutput,
    /// Warnings for the client (e.g. `COMMIT` outside a transaction).
    pub notices: Vec<Notice>,
    /// The client's transaction state after the statement.
    pub transaction: TransactionState,
}

/// One part of a result to run (the whole when `None`), and the plan its
/// parts were counted from if kept.
#[derive(Clone, Copy)]
struct Counted<'a> {
    part: Option<ResultPart>,
    kept: Option<&'a ResultParts>,
}

/// The statements of one SQL text, run one after another: each is planned
/// only after the previous one has run (and its rows have been read), as in
/// PostgreSQL's simple query protocol.
pub struct Script {
    statements: VecDeque<DfStatement>,
}

impl Script {
    /// No statement is left to run.
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }
}

impl QuerySession {
    /// Split SQL text into a [`Script`] of statements.
    pub fn script(&self, sql: &str) -> QueryResult<Script> {
        Ok(Script {
            statements: self.parse(sql)?.into(),
        })
    }

    /// Plan and run the next statement of `script`; `None` when none is
    /// left. The caller reads a statement's rows before asking for the next.
    pub async fn next_statement(
        &mut self,
        script: &mut Script,
        transaction: TransactionState,
    ) -> Option<QueryResult<(Prepared, StatementResult)>> {
        let statement = script.statements.pop_front()?;
        let result = async {
            let (prepared, params) = self.prepare_simple(statement).await?;
            let result = self
                .execute_statement(&prepared, params, transaction)
                .await?;
            Ok((prepared, result))
        }
        .await;
        Some(result)
    }

    /// Plan and run SQL text holding any number of statements outside any
    /// transaction block, stopping at the first error. The outputs' rows are
    /// not read here: for callers that read each before the next matters,
    /// drive a [`Script`] instead.
    pub async fn run(&mut self, sql: &str) -> QueryResult<Vec<QueryOutput>> {
        let mut script = self.script(sql)?;
        let mut transaction = TransactionState::Idle;
        let mut outputs = Vec::new();
        while let Some(next) = self.next_statement(&mut script, transaction).await {
            let (_, result) = next?;
            transaction = result.transaction;
            outputs.push(result.output);
        }
        Ok(outputs)
    }

    /// Run a prepared statement with `$n` parameter values outside any
    /// transaction block (Flight SQL, the CLI).
    pub async fn execute(
        &mut self,
        prepared: &Prepared,
        params: Option<ParamValues>,
    ) -> QueryResult<QueryOutput> {
        self.execute_statement(prepared, params, TransactionState::Idle)
            .await
            .map(|result| result.output)
    }

    /// Run one part of a query's result (see [`super::parts`]), or the
    /// whole result when `part` is `None`, with `$n` parameter values
    /// outside any transaction block, with the plan `kept` when its parts
    /// were counted from `params` and it is at hand.
    pub async fn execute_part(
        &mut self,
        prepared: &Prepared,
        params: Option<ParamValues>,
        part: Option<ResultPart>,
        kept: Option<&ResultParts>,
    ) -> QueryResult<QueryOutput> {
        let counted = Counted { part, kept };
        self.run_statement(prepared, params, TransactionState::Idle, Some(counted))
            .await
            .map(|result| result.output)
    }

    /// Run a prepared statement with `$n` parameter values in a client's
    /// `transaction` state. On error the client's new state is
    /// `transaction.failed()`.
    pub async fn execute_statement(
        &mut self,
        prepared: &Prepared,
        params: Option<ParamValues>,
        transaction: TransactionState,
    ) -> QueryResult<StatementResult> {
        self.run_statement(prepared, params, transaction, None)
            .await
    }

    async fn run_statement(
        &mut self,
        prepared: &Prepared,
        params: Option<ParamValues>,
        transaction: TransactionState,
        counted: Option<Counted<'_>>,
    ) -> QueryResult<StatementResult> {
        let started = Instant::now();
        // Registered before it runs: its query id names it in the logs, the
        // audit record, `system.runtime.queries` and to its client.
        let query = self.track(prepared);
        let query_id = query.as_ref().map(|q| q.id().to_owned());
        let span = tracing::info_span!(
            "statement",
            query_id = query_id.as_deref().unwrap_or(""),
            user = %self.identity.user,
            protocol = %self.protocol,
        );
        let result = match self
            .check_terminated()
            .and_then(|()| transaction.admit(prepared))
        {
            Ok(()) => {
                let run = self.execute_inner(prepared, params, counted);
                match &query {
                    Some(query) => run_until_stopped(query, run).instrument(span).await,
                    None => run.instrument(span).await,
                }
            }
            Err(e) => Err(e),
        };
        let result = tracked(query, result);
        let (output, effect) = self.audited(prepared, result, started, query_id)?;
        let (after, notice) = transaction.after(effect);
        let mut notices: Vec<Notice> = notice.into_iter().collect();
        notices.extend(self.freshness_notices(prepared).await);
        self.last_notices.clone_from(&notices);
        let output = match output {
            // COMMIT of a failed block rolls back, and says so.
            QueryOutput::Command { .. }
                if effect == TxEffect::End && transaction == TransactionState::Failed =>
            {
                QueryOutput::Command {
                    tag: "ROLLBACK".into(),
                }
            }
            other => other,
        };
        Ok(StatementResult {
            output,
            notices,
            transaction: after,
        })
    }

    /// A warning for each data product `prepared` reads past its freshness
    /// SLO (measured at most [`Freshness::TTL`] ago): the query runs, and
    /// its client is told.
    ///
    /// [`Freshness::TTL`]: crate::products::freshness::Freshness::TTL
    /// Each product read is also counted in the read lineage.
    async fn freshness_notices(&self, prepared: &Prepared) -> Vec<Notice> {
        let freshness = self.registry.freshness();
        let products = self.registry.products();
        let lineage = self.registry.lineage();
        let mut notices = Vec::new();
        for table in prepared.tables() {
            let mut parts = table.splitn(3, '.');
            let (Some(c), Some(s), Some(t)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let name = meshgate_policy::TableName::new(c, s, t);
            if let Some(product) = products.product_of(&name) {
                lineage.record(product.name(), &self.identity.user, &self.protocol);
            }
            if let Some(warning) = freshness.cached(&name).await.and_then(|m| m.warning()) {
                notices.push(Notice {
                    sqlstate: "01000",
                    message: warning,
                });
            }
        }
        notices
    }

    /// The notices of the statement run last (freshness warnings, ...), for
    /// front ends that send them apart from the result (Flight SQL headers).
    pub fn last_notices(&self) -> &[Notice] {
        &self.last_notices
    }

    /// Write the statement's audit record: now for errors and results
    /// without rows, when the stream ends for rows.
    fn audited(
        &self,
        prepared: &Prepared,
        result: QueryResult<(QueryOutput, TxEffect)>,
        started: Instant,
        query_id: Option<String>,
    ) -> QueryResult<(QueryOutput, TxEffect)> {
        let Some(log) = self.audit.clone() else {
            return result;
        };
        if matches!(prepared, Prepared::Empty) {
            return result;
        }
        let tables = prepared.tables().to_vec();
        match result {
            Err(e) => {
                self.audit_statement(prepared.sql(), tables, started, Some(&e), query_id);
                Err(e)
            }
            Ok((QueryOutput::Rows(stream), effect)) => {
                let mut record = self.audit_record(prepared.sql(), tables, None);
                record.query_id = query_id;
                record.columns = self.columns_read.clone();
                Ok((
                    QueryOutput::Rows(Box::pin(Audited::new(stream, log, record, started))),
                    effect,
                ))
            }
            Ok((QueryOutput::CopyOut { stream, options }, effect)) => {
                let mut record = self.audit_record(prepared.sql(), tables, None);
                record.query_id = query_id;
                Ok((
                    QueryOutput::CopyOut {
                        stream: Box::pin(Audited::new(stream, log, record, started)),
                        options,
                    },
                    effect,
                ))
            }
            Ok(other) => {
                self.audit_statement(prepared.sql(), tables, started, None, query_id);
                Ok(other)
            }
        }
    }

    async fn execute_inner(
        &mut self,
        prepared: &Prepared,
        params: Option<ParamValues>,
        counted: Option<Counted<'_>>,
    ) -> QueryResult<(QueryOutput, TxEffect)> {
        self.columns_read.clear();
        let part = counted.and_then(|c| c.part);
        let kept = counted.and_then(|c| c.kept);
        // A plan made under an older policy never runs: plan it again.
        let replanned = self.replan_if_stale(prepared).await?;
        // A whole result's kept plan runs only with the plan it was made from.
        let kept_whole = kept.filter(|_| replanned.is_none() && part.is_none());
        let prepared = replanned.as_ref().unwrap_or(prepared);
        // A plan without placeholders takes no values: a text bound to the
        // plan of its shape and planned again from the text itself has its
        // values in it (see `shapes`).
        let params = params.filter(|_| prepared.has_parameters());
        match prepared {
            Prepared::Empty => Ok((QueryOutput::Empty, TxEffect::None)),
            Prepared::Command { command, .. } => self.run_command(command, prepared).await,
            Prepared::Query {
                plan, cache, memo, ..
            } => {
                let returns_rows = returns_rows(plan);
                let session_timeout = self
                    .settings
                    .read()
                    .expect("settings lock")
                    .statement_timeout();
                let timeout = match (session_timeout, self.max_statement_time) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                // A slot in every concurrency limit the user is under, held
                // until the rows are read; waiting is not statement time.
                let admitted = self.admit().await?;
                // The query's own memory pool (its peak; `[limits]
                // query_memory`) inside the shared budget.
                let (runtime, peak) = self.registry.query_runtime()?;
                if let Some(id) = &self.query_id {
                    self.runtime.watch_memory(id, peak);
                }
                let started = tokio::time::Instant::now();
                // The kept result of this query under this effective
                // policy, or this run kept for the next.
                let reuse = if returns_rows && part.is_none() {
                    self.reuse(plan, params.as_ref(), memo).await?
                } else {
                    Reuse::None
                };
                let (hit, filling) = match reuse {
                    Reuse::Hit(stream, columns) => (Some((stream, columns)), None),
                    Reuse::Fill(filling) => (None, Some(filling)),
                    Reuse::None => (None, None),
                };
                let run = async {
                    // A kept direct statement needs no copy of the session's
                    // state, only two of its settings.
                    if returns_rows && part.is_none() {
                        let (time_zone, schema) = {
                            let state = self.ctx.state_ref();
                            let state = state.read();
                            let options = state.config().options();
                            (
                                options.execution.time_zone.clone(),
                                options.catalog.default_schema.clone(),
                            )
                        };
                        let read = |optimized: &LogicalPlan| {
                            columns_read(optimized, prepared.tables(), &self.catalog, &schema)
                        };
                        let scope = (self.catalog.as_str(), schema.as_str());
                        if let Some(direct) = cache.direct(&time_zone, params.as_ref(), scope, read)
                        {
                            return Ok::<_, QueryError>(Some(direct?));
                        }
                    }
                    let state = self.ctx.state();
                    let schema = state.config().options().catalog.default_schema.clone();
                    let task = |state: &SessionState| {
                        Arc::new(TaskContext::from(state).with_runtime(runtime.clone()))
                    };
                    let read = |optimized: &LogicalPlan| {
                        columns_read(optimized, prepared.tables(), &self.catalog, &schema)
                    };
                    // The plan the parts were counted from, while the
                    // policy it was made under is in force.
                    let policy = self.guard.as_ref().map(|g| g.policy());
                    if let Some(part) = &part {
                        let (physical, optimized) = match kept
                            .and_then(|k| k.plan_under(policy.as_ref()))
                        {
                            Some(kept) => kept,
                            None => {
                                parts::physical_plan(&state, plan, cache, params.as_ref()).await?
                            }
                        };
                        parts::check_split(&physical, part)?;
                        let task = parts::part_task(
                            TaskContext::from(&state).with_runtime(runtime.clone()),
                        );
                        let stream = physical.execute(part.index, task)?;
                        return Ok::<_, QueryError>(Some((stream, read(&optimized))));
                    }
                    if let Some((physical, optimized)) =
                        kept_whole.and_then(|k| k.take_whole(policy.as_ref()))
                    {
                        let stream =
                            datafusion::physical_plan::execute_stream(physical, task(&state))?;
                        return Ok::<_, QueryError>(Some((stream, read(&optimized))));
                    }
                    if returns_rows {
                        if let Some((run, optimized)) =
                            cache.run(&state, plan, params.as_ref()).await?
                        {
                            let stream = match run {
                                CachedRun::Physical(physical) => {
                                    datafusion::physical_plan::execute_stream(
                                        physical,
                                        task(&state),
                                    )?
                                }
                                CachedRun::Direct(stream) => stream,
                            };
                            return Ok::<_, QueryError>(Some((stream, read(&optimized))));
                        }
                    }
                    let plan = match params {
                        Some(params) => plan.clone().with_param_values(params)?,
                        None => plan.clone(),
                    };
                    let change = PreparedChange::of(&plan);
                    let df = self.ctx.execute_logical_plan(plan).await?;
                    if let Some(change) = change {
                        self.sql_prepared_ran(change, prepared.sql());
                    }
                    if returns_rows {
                        let (state, plan) = df.into_parts();
                        let optimized = state.optimize(&plan)?;
                        let physical = state
                            .query_planner()
                            .create_physical_plan(&optimized, &state)
                            .await?;
                        let stream =
                            datafusion::physical_plan::execute_stream(physical, task(&state))?;
                        Ok::<_, QueryError>(Some((stream, read(&optimized))))
                    } else {
                        Ok(None)
                    }
                };
                let stream = match (hit, timeout) {
                    (Some(hit), _) => {
                        drop(run);
                        Some(hit)
                    }
                    (None, Some(limit)) => tokio::time::timeout(limit, run)
                        .await
                        .map_err(|_| QueryError::Timeout)??,
                    (None, None) => run.await?,
                };
                if let Some((stream, columns)) = stream {
                    let stream = match filling {
                        Some(filling) => filling.wrap(stream, columns.clone()),
                        None => stream,
                    };
                    self.columns_read = columns;
                    // EXPLAIN output as this user may read it (see `explain`).
                    let stream = if crate::access::explain::is_explain_output(&stream.schema()) {
                        crate::access::explain::redact_stream(stream, self.is_policy_admin())
                    } else {
                        stream
                    };
                    let stream = match timeout {
                        Some(limit) => Box::pin(Deadline::new(stream, started + limit)),
                        None => stream,
                    };
                    let stream = Box::pin(AdmittedStream::new(stream, admitted));
                    Ok((QueryOutput::Rows(stream), TxEffect::None))
                } else {
                    let tag = prepared.command_tag();
                    Ok((QueryOutput::Command { tag }, TxEffect::None))
                }
            }
        }
    }

    /// Wait for a slot in the user's and each of their groups' concurrency
    /// limits (the policy's groups for this identity).
    pub(super) async fn admit(&self) -> QueryResult<Admitted> {
        let groups = match &self.guard {
            Some(guard) => self.identity.principal(&guard.policy()).groups,
            None => self.identity.groups.clone(),
        };
        // `system.runtime.queries` shows the statement queued while it waits.
        let (runtime, id) = (self.runtime.clone(), self.query_id.clone());
        let admitted = self
            .admission
            .admit(&self.identity.user, &groups, || {
                if let Some(id) = &id {
                    runtime.set_state(id, crate::runtime::QueryState::Queued);
                }
            })
            .await;
        if let Some(id) = &self.query_id {
            self.runtime
                .set_state(id, crate::runtime::QueryState::Running);
        }
        admitted
    }
}
