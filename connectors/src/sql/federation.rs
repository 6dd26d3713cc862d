//! How a SQL source's tables take part in federation.
//!
//! datafusion-federation finds the largest sub-plan whose tables all belong to
//! one compute context (same server, database and user) and hands it to that
//! source's provider, which unparses it to SQL in the source's dialect. Two
//! things are added here:
//!
//! - [`CatalogExecutor`] wraps the table-provider crate's executor so that
//!   every failure names the catalog it came from, and every statement sent
//!   is logged at debug level;
//! - [`PortableBoundary`] stops the sub-plan at the first node that uses a
//!   function the source may not have (DataFusion- or meshgate-specific UDFs,
//!   `TRY_CAST`, ...). The portable sub-trees below it are still federated;
//!   the rest runs in DataFusion. Without it a query such as
//!   `SELECT current_setting('x'), a FROM pg.public.t` would be sent whole and
//!   fail at the source.

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Statistics, TableReference};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, LogicalPlan, Projection};
use datafusion::optimizer::optimizer::Optimizer;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::sql::unparser::dialect::Dialect;
use datafusion_federation::sql::{
    AstAnalyzer, LogicalOptimizer, RemoteTable, RemoteTableRef, SQLExecutor, SQLFederationProvider,
    SQLTable, SQLTableSource,
};
use datafusion_federation::FederatedTableProviderAdaptor;
use futures::TryStreamExt;

use super::direct::DirectRunner;
use super::SourceTable;
use crate::ConnectorError;

/// Functions (by DataFusion name) that a source evaluates with the same meaning.
pub(crate) struct FunctionSet {
    scalar: HashSet<&'static str>,
    aggregate: HashSet<&'static str>,
    window: HashSet<&'static str>,
}

const COMMON_SCALAR: &[&str] = &[
    "abs",
    "ceil",
    "floor",
    "round",
    "sqrt",
    "power",
    "exp",
    "ln",
    "log10",
    "sign",
    "lower",
    "upper",
    "character_length",
    "char_length",
    "substr",
    "substring",
    "coalesce",
    "nullif",
    "trim",
    "btrim",
    "ltrim",
    "rtrim",
    "replace",
    "left",
    "right",
    "lpad",
    "rpad",
    "md5",
    "now",
    "current_date",
    "greatest",
    "least",
    "reverse",
    "repeat",
];
const COMMON_AGGREGATE: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "stddev",
    "stddev_pop",
    "var_samp",
    "var_pop",
];
const COMMON_WINDOW: &[&str] = &[
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
];

impl FunctionSet {
    fn new(scalar: &[&'static str], aggregate: &[&'static str]) -> Self {
        Self {
            scalar: COMMON_SCALAR.iter().chain(scalar).copied().collect(),
            aggregate: COMMON_AGGREGATE.iter().chain(aggregate).copied().collect(),
            window: COMMON_WINDOW.iter().copied().collect(),
        }
    }

    /// SQLite: only what its core library has under the same name (its
    /// math functions are a compile-time option, off in the bundled build).
    pub fn sqlite() -> Self {
        Self {
            scalar: [
                "abs", "round", "lower", "upper", "coalesce", "nullif", "trim", "ltrim", "rtrim",
                "replace", "substr",
            ]
            .into_iter()
            .collect(),
            aggregate: ["count", "sum", "avg", "min", "max"].into_iter().collect(),
            window: COMMON_WINDOW.iter().copied().collect(),
        }
    }

    pub fn postgres() -> Self {
        Self::new(
            &[
                "trunc",
                "length",
                "concat",
                "concat_ws",
                "date_trunc",
                "date_part",
                "strpos",
                "starts_with",
                "initcap",
                "split_part",
                "to_hex",
                "cot",
                "translate",
            ],
            &["bool_and", "bool_or", "string_agg", "array_agg"],
        )
    }

    pub fn mysql() -> Self {
        // MySQL's LENGTH counts bytes and CONCAT is NULL when any argument is:
        // both differ from DataFusion, so they stay out.
        Self::new(&[], &[])
    }

    fn allows(&self, expr: &Expr) -> bool {
        let mut ok = true;
        expr.apply(|e| {
            ok = match e {
                Expr::ScalarFunction(f) => self.scalar.contains(f.func.name()),
                Expr::AggregateFunction(f) => self.aggregate.contains(f.func.name()),
                Expr::WindowFunction(w) => {
                    let name = w.fun.name();
                    self.window.contains(name) || self.aggregate.contains(name)
                }
                Expr::ScalarSubquery(s) => self.allows_plan(&s.subquery),
                Expr::Exists(s) => self.allows_plan(&s.subquery.subquery),
                Expr::InSubquery(s) => self.allows_plan(&s.subquery.subquery),
                // A `$n` placeholder is portable: the planner binds the
                // value into the pushed plan before its SQL is written
                // (prepared statements keep their optimised plan).
                Expr::TryCast(_) | Expr::ScalarVariable(..) => false,
                _ => true,
            };
            Ok(if ok {
                TreeNodeRecursion::Continue
            } else {
                TreeNodeRecursion::Stop
            })
        })
        .expect("expression walk does not fail");
        ok
    }

    /// Whether every node and expression of `plan` can run at the source.
    fn allows_plan(&self, plan: &LogicalPlan) -> bool {
        let mut ok = true;
        plan.apply(|node| {
            ok = matches!(
                node,
                LogicalPlan::Projection(_)
                    | LogicalPlan::Filter(_)
                    | LogicalPlan::Aggregate(_)
                    | LogicalPlan::Sort(_)
                    | LogicalPlan::Limit(_)
                    | LogicalPlan::Join(_)
                    | LogicalPlan::SubqueryAlias(_)
                    | LogicalPlan::TableScan(_)
                    | LogicalPlan::Distinct(_)
                    | LogicalPlan::Union(_)
                    | LogicalPlan::Window(_)
            ) && node.expressions().iter().all(|e| self.allows(e));
            Ok(if ok {
                TreeNodeRecursion::Continue
            } else {
                TreeNodeRecursion::Stop
            })
        })
        .expect("plan walk does not fail");
        ok
    }
}

/// Federates only the sub-trees a source can evaluate; see the module docs.
struct PortableBoundary {
    functions: Arc<FunctionSet>,
    federate: Arc<Optimizer>,
}

impl std::fmt::Debug for PortableBoundary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PortableBoundary")
    }
}

impl PortableBoundary {
    fn split(&self, plan: LogicalPlan, config: &dyn OptimizerConfig) -> DfResult<LogicalPlan> {
        if self.functions.allows_plan(&plan) {
            return self.federate.optimize(plan, config, |_, _| {});
        }
        plan.map_children(|child| {
            let child = if matches!(child, LogicalPlan::Projection(_))
                || !self.functions.allows_plan(&child)
            {
                child
            } else {
                let columns = child
                    .schema()
                    .columns()
                    .into_iter()
                    .map(Expr::Column)
                    .collect();
                LogicalPlan::Projection(Projection::try_new(columns, Arc::new(child))?)
            };
            self.split(child, config).map(Transformed::yes)
        })
        .map(|t| t.data)
    }
}

impl OptimizerRule for PortableBoundary {
    fn name(&self) -> &str {
        "meshgate_portable_boundary"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        self.split(plan, config).map(Transformed::yes)
    }
}

/// How many rows `plan` returns from a table of `table_rows` rows, when it
/// reads only that table and neither groups, joins nor combines rows: a
/// filter keeps a fifth (DataFusion's default selectivity), a limit caps.
/// This is what lets DataFusion build a join's hash table from the small
/// side and pass its keys to the large one.
fn estimate_rows(plan: &LogicalPlan, table_rows: usize) -> Option<usize> {
    let mut scans = 0;
    let mut filtered = false;
    let mut limit: Option<usize> = None;
    let mut simple = true;
    plan.apply(|node| {
        match node {
            LogicalPlan::TableScan(scan) => {
                scans += 1;
                filtered |= !scan.filters.is_empty();
                if let Some(fetch) = scan.fetch {
                    limit = Some(limit.map_or(fetch, |l| l.min(fetch)));
                }
            }
            LogicalPlan::Filter(_) => filtered = true,
            LogicalPlan::Limit(l) => {
                if let Ok(datafusion::logical_expr::FetchType::Literal(Some(fetch))) =
                    l.get_fetch_type()
                {
                    limit = Some(limit.map_or(fetch, |l| l.min(fetch)));
                }
            }
            LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) | LogicalPlan::Sort(_) => {}
            _ => simple = false,
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .ok()?;
    if !simple || scans != 1 {
        return None;
    }
    let rows = if filtered { table_rows / 5 } else { table_rows };
    Some(limit.map_or(rows, |l| l.min(rows)))
}

/// The executor a catalog's tables federate through.
pub(crate) struct CatalogExecutor {
    catalog: String,
    inner: Arc<dyn SQLExecutor>,
    /// The source's estimate of the table's rows, for join planning.
    rows: Option<usize>,
}

impl CatalogExecutor {
    fn source_error(&self, err: DataFusionError) -> DataFusionError {
        // Errors that are already classified (cancellation, resources) pass through.
        if matches!(err, DataFusionError::ResourcesExhausted(_)) {
            return err;
        }
        DataFusionError::External(Box::new(ConnectorError::source(&self.catalog, &err)))
    }
}

#[async_trait]
impl SQLExecutor for CatalogExecutor {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn compute_context(&self) -> Option<String> {
        self.inner.compute_context()
    }

    fn dialect(&self) -> Arc<dyn Dialect> {
        self.inner.dialect()
    }

    fn logical_optimizer(&self) -> Option<LogicalOptimizer> {
        self.inner.logical_optimizer()
    }

    fn ast_analyzer(&self) -> Option<AstAnalyzer> {
        self.inner.ast_analyzer()
    }

    fn execute(
        &self,
        query: &str,
        schema: SchemaRef,
        filters: &[Arc<dyn PhysicalExpr>],
    ) -> DfResult<SendableRecordBatchStream> {
        tracing::debug!(catalog = %self.catalog, sql = %query, "remote query");
        let stream: SendableRecordBatchStream = if filters.is_empty() {
            self.inner
                .execute(query, schema.clone(), filters)
                .map_err(|e| self.source_error(e))?
        } else {
            // Sent at the first poll, with the join keys known by then
            // (see `key_filter`).
            let (inner, query, filters) = (self.inner.clone(), query.to_owned(), filters.to_vec());
            let (out_schema, catalog) = (schema.clone(), self.catalog.clone());
            let stream = futures::stream::once(async move {
                let sql = super::key_filter::narrowed_sql(
                    &query,
                    &out_schema,
                    &filters,
                    inner.dialect().as_ref(),
                );
                if let Some(sql) = &sql {
                    tracing::debug!(catalog = %catalog, sql = %sql, "remote query with join keys");
                }
                inner.execute(sql.as_deref().unwrap_or(&query), out_schema, &[])
            })
            .try_flatten();
            Box::pin(RecordBatchStreamAdapter::new(schema.clone(), stream))
        };
        let catalog = self.catalog.clone();
        let stream = stream.map_err(move |e| {
            DataFusionError::External(Box::new(ConnectorError::source(&catalog, &e)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    async fn statistics(&self, plan: &LogicalPlan) -> DfResult<Statistics> {
        let mut statistics = self.inner.statistics(plan).await?;
        if statistics.num_rows.get_value().is_none() {
            if let Some(rows) = self.rows.and_then(|rows| estimate_rows(plan, rows)) {
                statistics.num_rows = Precision::Inexact(rows);
            }
        }
        Ok(statistics)
    }

    async fn table_names(&self) -> DfResult<Vec<String>> {
        self.inner.table_names().await
    }

    async fn get_table_schema(&self, table_name: &str) -> DfResult<SchemaRef> {
        self.inner
            .get_table_schema(table_name)
            .await
            .map_err(|e| self.source_error(e))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        self.inner.metrics()
    }
}

/// A source table as federation sees it: its name at the source and its
/// schema, and the runner of direct statements when its source has one.
#[derive(Debug)]
pub(crate) struct SourceTableRef {
    remote: RemoteTable,
    pub(crate) direct: Option<Arc<dyn DirectRunner>>,
}

impl std::fmt::Debug for dyn DirectRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirectRunner")
    }
}

impl SQLTable for SourceTableRef {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_reference(&self) -> TableReference {
        self.remote.table_reference().clone()
    }

    fn schema(&self) -> SchemaRef {
        self.remote.schema().clone()
    }
}

/// Wrap a source table (a provider that is also its own SQL executor) so that
/// federation can push whole sub-plans to it.
pub(crate) fn federated_table(
    catalog: &str,
    table: TableReference,
    source: SourceTable,
    functions: Arc<FunctionSet>,
) -> Arc<dyn TableProvider> {
    let SourceTable {
        provider,
        executor,
        direct,
        rows,
        ..
    } = source;
    let schema = provider.schema();
    let executor: Arc<dyn SQLExecutor> = Arc::new(CatalogExecutor {
        catalog: catalog.to_owned(),
        inner: executor,
        rows,
    });
    let sql = SQLFederationProvider::new(executor.clone());
    let boundary = PortableBoundary {
        functions,
        federate: sql.optimizer,
    };
    let federation = Arc::new(SQLFederationProvider {
        optimizer: Arc::new(Optimizer::with_rules(vec![Arc::new(boundary)])),
        executor,
    });
    let table = SourceTableRef {
        remote: RemoteTable::new(RemoteTableRef::from(table), schema),
        direct,
    };
    let source = Arc::new(SQLTableSource::new_with_table(federation, Arc::new(table)));
    Arc::new(FederatedTableProviderAdaptor::new_with_provider(
        source, provider,
    ))
}
