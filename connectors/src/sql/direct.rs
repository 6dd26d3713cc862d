//! Statements that go whole to one SQL source, run without DataFusion.
//!
//! A point lookup through a driver (`SELECT … WHERE id = $1`, prepared
//! once, executed many times) is planned once by the planner, under the
//! policy, and federation sends all of it to the source. Running each
//! execution through DataFusion's physical planner, the federation's SQL
//! writer and a fresh remote statement costs far more than the lookup
//! itself. A [`DirectStatement`] is that plan written as the source's SQL
//! once, with its `$n` parameters left in place; each execution sends only
//! the parameter values to a statement the source has already prepared on
//! a pooled connection ([`DirectRunner`], e.g. `postgres_direct`), and the
//! rows come back as Arrow batches of the plan's schema.
//!
//! Only plans whose root is the federated node qualify (nothing is left
//! for DataFusion to do), and only when every table in it is served by the
//! same runner and every parameter has a type the runner can send.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatchOptions;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{ScalarValue, Statistics};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{EmptyRecordBatchStream, ExecutionPlan, SendableRecordBatchStream};
use datafusion::sql::unparser::dialect::Dialect;
use datafusion_federation::sql::{
    AstAnalyzer, LogicalOptimizer, SQLExecutor, SQLTableSource, VirtualExecutionPlan,
};
use datafusion_federation::{get_table_source, FederatedPlanNode};

/// Runs statements with parameters on a source, each prepared once per
/// pooled connection.
pub(crate) trait DirectRunner: Send + Sync {
    /// Whether a parameter of this type can be sent.
    fn supports(&self, ty: &DataType) -> bool;

    /// Run `sql` (parameters `$1..$n` of `types`) with `params`, its rows
    /// as batches of `schema`.
    fn run(
        &self,
        sql: Arc<str>,
        types: Arc<[DataType]>,
        params: Vec<ScalarValue>,
        schema: SchemaRef,
    ) -> DfResult<SendableRecordBatchStream>;
}

/// A whole plan as one statement of its source; see the module docs.
pub struct DirectStatement {
    sql: Arc<str>,
    types: Arc<[DataType]>,
    schema: SchemaRef,
    runner: Arc<dyn DirectRunner>,
}

impl std::fmt::Debug for DirectStatement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectStatement")
            .field("sql", &self.sql)
            .field("types", &self.types)
            .finish()
    }
}

impl DirectStatement {
    /// `plan` (optimised, its parameters not bound) as one statement, when
    /// all of it runs at one source that takes statements directly.
    pub fn of(plan: &LogicalPlan) -> Option<Self> {
        let LogicalPlan::Extension(ext) = plan else {
            return None;
        };
        let federated = ext.node.as_any().downcast_ref::<FederatedPlanNode>()?;
        let inner = federated.plan();
        let (runner, executor) = sole_runner(inner)?;
        let types = parameter_types(inner, runner.as_ref())?;
        let sql = match source_sql(inner, executor) {
            Ok(sql) => sql,
            Err(e) => {
                tracing::debug!(error = %e, "plan not written as one source statement");
                return None;
            }
        };
        Some(Self {
            sql: sql.into(),
            types: types.into(),
            schema: Arc::new(plan.schema().as_arrow().clone()),
            runner,
        })
    }

    /// The statement the source is sent.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Run it with `params`, the values of `$1..$n` (each cast to its
    /// placeholder's type, as PostgreSQL types a parameter once).
    pub fn execute(&self, params: Vec<ScalarValue>) -> DfResult<SendableRecordBatchStream> {
        if params.len() != self.types.len() {
            return Err(DataFusionError::Plan(format!(
                "expected {} parameters, got {}",
                self.types.len(),
                params.len()
            )));
        }
        let params = params
            .into_iter()
            .zip(self.types.iter())
            .map(|(value, ty)| {
                if value.data_type() == *ty {
                    Ok(value)
                } else {
                    value.cast_to(ty)
                }
            })
            .collect::<DfResult<Vec<_>>>()?;
        self.runner.run(
            self.sql.clone(),
            self.types.clone(),
            params,
            self.schema.clone(),
        )
    }
}

/// The runner every table of `plan` is served by (one and the same), and
/// the SQL executor that writes its statements.
fn sole_runner(plan: &LogicalPlan) -> Option<(Arc<dyn DirectRunner>, Arc<dyn SQLExecutor>)> {
    let mut found: Option<(Arc<dyn DirectRunner>, Arc<dyn SQLExecutor>)> = None;
    let mut ok = true;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let runner = get_table_source(&scan.source).ok().flatten().and_then(|s| {
                let source = (s.as_ref() as &dyn std::any::Any).downcast_ref::<SQLTableSource>()?;
                let table = source
                    .table
                    .as_any()
                    .downcast_ref::<super::federation::SourceTableRef>()?;
                Some((table.direct.clone()?, source.provider.executor.clone()))
            });
            ok = match (&found, runner) {
                (_, None) => false,
                (None, Some(r)) => {
                    found = Some(r);
                    true
                }
                (Some((a, _)), Some((b, _))) => Arc::ptr_eq(a, &b),
            };
        }
        Ok(if ok {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    })
    .ok()?;
    if ok {
        found
    } else {
        None
    }
}

/// The types of `$1..$n`, when every one is known and sendable and none
/// is skipped.
fn parameter_types(plan: &LogicalPlan, runner: &dyn DirectRunner) -> Option<Vec<DataType>> {
    let types = plan.get_parameter_types().ok()?;
    let mut ordered = Vec::with_capacity(types.len());
    for i in 1..=types.len() {
        let ty = types.get(&format!("${i}"))?.clone()?;
        if !runner.supports(&ty) {
            return None;
        }
        ordered.push(ty);
    }
    Some(ordered)
}

/// `plan` in the source's SQL, exactly as federation writes it when it
/// runs (table names as the source knows them, its dialect and AST
/// rewrites): a federation node over `plan` is asked to run, and its
/// statement is kept instead of sent.
fn source_sql(plan: &LogicalPlan, executor: Arc<dyn SQLExecutor>) -> DfResult<String> {
    let capture = Arc::new(Capture {
        inner: executor,
        sql: Mutex::new(None),
    });
    let node = VirtualExecutionPlan::new(
        plan.clone(),
        capture.clone(),
        Statistics::new_unknown(plan.schema().as_arrow()),
    );
    drop(node.execute(0, Arc::new(TaskContext::default()))?);
    let sql = capture.sql.lock().expect("capture lock").take();
    sql.ok_or_else(|| DataFusionError::Internal("federation wrote no statement".into()))
}

/// A SQL executor that keeps the statement it is asked to run.
struct Capture {
    inner: Arc<dyn SQLExecutor>,
    sql: Mutex<Option<String>>,
}

#[async_trait]
impl SQLExecutor for Capture {
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
        _filters: &[Arc<dyn PhysicalExpr>],
    ) -> DfResult<SendableRecordBatchStream> {
        *self.sql.lock().expect("capture lock") = Some(query.to_owned());
        Ok(Box::pin(EmptyRecordBatchStream::new(schema)))
    }

    async fn table_names(&self) -> DfResult<Vec<String>> {
        self.inner.table_names().await
    }

    async fn get_table_schema(&self, table_name: &str) -> DfResult<SchemaRef> {
        self.inner.get_table_schema(table_name).await
    }
}

/// `batch` with `schema`'s names and types (a source may send a string as
/// a view or a dictionary, or name a column differently); `source` names
/// the sender in the error.
pub(crate) fn conform(batch: RecordBatch, schema: &Schema, source: &str) -> DfResult<RecordBatch> {
    if batch.num_columns() != schema.fields().len() {
        return Err(DataFusionError::External(
            format!(
                "{source} sent {} columns, {} expected",
                batch.num_columns(),
                schema.fields().len()
            )
            .into(),
        ));
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| cast(c, f.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new_with_options(
        Arc::new(schema.clone()),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}
