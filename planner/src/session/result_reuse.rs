//! A statement's result from the result cache, or its run kept there (see
//! `crate::result_cache`).

use std::time::Instant;

use datafusion::catalog::Session;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::SendableRecordBatchStream;

use super::run_memo::RunMemo;
use super::QuerySession;
use crate::result_cache::{Filling, ProbeContext};
use crate::QueryResult;

/// What the result cache does for one run.
pub(super) enum Reuse {
    /// The kept rows (or, for EXPLAIN ANALYZE, the line saying so) and
    /// the columns the query read.
    Hit(SendableRecordBatchStream, Vec<String>),
    /// Run the query and keep its result.
    Fill(Filling),
    /// Run it as usual.
    None,
}

impl QuerySession {
    /// What the result cache does for `plan` with `params` (`memo`: what
    /// an earlier run of the statement learnt, so it is not looked up again).
    pub(super) async fn reuse(
        &self,
        plan: &LogicalPlan,
        params: Option<&ParamValues>,
        memo: &RunMemo,
    ) -> QueryResult<Reuse> {
        if !self.result_cache.enabled() {
            return Ok(Reuse::None);
        }
        let started = Instant::now();
        // EXPLAIN ANALYZE shows what a run would do: serve the kept rows.
        let (query, analyze) = match plan {
            LogicalPlan::Analyze(analyze) if !analyze.verbose => (analyze.input.as_ref(), true),
            other => (other, false),
        };
        let (default_catalog, default_schema, time_zone) = {
            let state = self.ctx.state_ref();
            let state = state.read();
            let options = state.config().options();
            (
                options.catalog.default_catalog.clone(),
                options.catalog.default_schema.clone(),
                options.execution.time_zone.clone(),
            )
        };
        if memo.never_kept(&default_catalog) {
            return Ok(Reuse::None);
        }
        let Some(sources) = self.result_cache.candidate(query, &default_catalog) else {
            memo.set_never_kept(&default_catalog);
            return Ok(Reuse::None);
        };
        let forwards = sources
            .catalogs()
            .iter()
            .any(|c| self.registry.forwards_identity(c));
        let context = ProbeContext {
            default_catalog: &default_catalog,
            default_schema: &default_schema,
            time_zone: time_zone.as_deref(),
            end_user: forwards.then(|| format!("{:?}", self.identity.end_user())),
        };
        // Files are listed through the session (its listing cache).
        let state = sources.lists_files().then(|| self.ctx.state());
        let session = state.as_ref().map(|s| s as &dyn Session);
        let probe = self
            .result_cache
            .probe(sources, query, params, &context, session)
            .await;
        let Some(probe) = probe else {
            return Ok(Reuse::None);
        };
        let policy = self.guard.as_ref().map(|g| g.policy());
        match self.result_cache.get(&probe, &policy) {
            Some(entry) if analyze => {
                let stream =
                    entry.explain_analyze(plan.schema().inner().clone(), started.elapsed())?;
                Ok(Reuse::Hit(stream, entry.columns().to_vec()))
            }
            Some(entry) => Ok(Reuse::Hit(entry.stream()?, entry.columns().to_vec())),
            None if analyze => Ok(Reuse::None),
            None => Ok(Reuse::Fill(Filling::new(
                self.result_cache.clone(),
                probe,
                policy,
            ))),
        }
    }
}
