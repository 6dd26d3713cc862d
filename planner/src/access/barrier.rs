//! The barrier between a table's raw rows and a restricted user's query.
//!
//! A table with row filters or masks is served to the user as a
//! [`PolicyTable`]: `Projection(masks) ← Filter(row filters) ← raw scan`,
//! planned on its own and wrapped in a [`PolicyBarrierExec`]. The user's
//! query only ever sees the barrier's output, so none of its expressions is
//! evaluated on a row the policy hides: a predicate that can fail (a cast,
//! a division, a function) cannot raise an error that prints a hidden value,
//! because the optimiser cannot merge it with the row filter or push it
//! below the barrier.
//!
//! Only *leakproof* predicates cross the barrier — comparisons of columns
//! with constants, `IN` lists, `LIKE`, `IS NULL`, casts that cannot fail —
//! the same rule PostgreSQL applies to security-barrier views. They cannot
//! fail whatever the row, so evaluating them early reveals nothing, and it
//! keeps point lookups and range scans pushed into Parquet and into the SQL
//! a database source receives (where they are applied to the masked
//! values). Everything else runs above the barrier, in meshgate.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema};
use datafusion::datasource::{source_as_provider, TableType};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::expr::{InList, Like};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    Between, BinaryExpr, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, Operator,
    TableProviderFilterPushDown,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

/// A table as a restricted user sees it (see the module docs).
#[derive(Debug)]
pub(crate) struct PolicyTable {
    /// `catalog.schema.table`, for plans and errors.
    name: String,
    table_type: TableType,
    /// `Filter(row filters) ← TableScan(raw)`.
    filtered: LogicalPlan,
    /// Each column the user sees, by name, and what it reads: the raw
    /// column, its mask, or NULL where the column is not granted.
    columns: HashMap<String, Expr>,
    schema: SchemaRef,
}

impl PolicyTable {
    /// `columns` in the table's order, each with the expression that
    /// computes it over `filtered`.
    pub(crate) fn try_new(
        name: String,
        table_type: TableType,
        filtered: LogicalPlan,
        columns: Vec<(String, Expr)>,
    ) -> Result<Self> {
        let view = LogicalPlanBuilder::from(filtered.clone())
            .project(columns.iter().map(|(name, e)| e.clone().alias(name)))?
            .build()?;
        let schema = Arc::new(view.schema().as_arrow().clone());
        Ok(Self {
            name,
            table_type,
            filtered,
            columns: columns.into_iter().collect(),
            schema,
        })
    }

    /// `Filter(row filters) ← TableScan(raw)`: what the view reads.
    pub(crate) fn filtered(&self) -> &LogicalPlan {
        &self.filtered
    }

    /// What the view shows, as text: its row filters and the expression
    /// each column reads (with the identity's values already put in). Two
    /// views with the same fingerprint over the same table show the same
    /// rows.
    pub(crate) fn fingerprint(&self) -> String {
        let mut columns: Vec<_> = self.columns.iter().collect();
        columns.sort_by(|a, b| a.0.cmp(b.0));
        let columns: Vec<String> = columns
            .into_iter()
            .map(|(name, expr)| format!("{name}={expr}"))
            .collect();
        format!(
            "{} [{}] {}",
            self.name,
            columns.join(", "),
            self.filtered.display_indent_schema()
        )
    }

    /// The view's schema with columns known by their bare names.
    fn df_schema(&self) -> Result<DFSchema> {
        DFSchema::try_from(self.schema.as_ref().clone())
    }

    /// A user predicate over the view as a predicate over `filtered`: each
    /// column replaced by what it reads (so a predicate on a masked column
    /// compares the masked value).
    fn over_filtered(&self, filter: Expr) -> Result<Expr> {
        filter
            .transform(|e| {
                Ok(match e {
                    Expr::Column(c) => match self.columns.get(&c.name) {
                        Some(expr) => Transformed::yes(expr.clone()),
                        None => Transformed::no(Expr::Column(c)),
                    },
                    other => Transformed::no(other),
                })
            })
            .map(|t| t.data)
    }
}

#[async_trait]
impl TableProvider for PolicyTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        self.table_type
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        let schema = self.df_schema()?;
        filters
            .iter()
            .map(|filter| {
                let filter = unqualified((*filter).clone())?;
                Ok(if leakproof(&filter, &schema) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                })
            })
            .collect()
    }

    /// `Projection ← Filter(leakproof user filters) ← Filter(row filters) ←
    /// TableScan`, a shape every source's SQL writer handles as one SELECT.
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self.view_plan(projection, filters, limit)?;
        let input = state.create_physical_plan(&plan).await?;
        Ok(Arc::new(PolicyBarrierExec::new(input, self.name.clone())))
    }
}

/// The plan a restricted user's query runs when it is nothing but a scan of
/// one policy view (a point lookup, a filtered read): the view's own plan
/// for that scan, as [`PolicyTable`]'s scan plans it, which a SQL source
/// can run whole as one statement. `None` for any other plan.
pub(crate) fn view_scan_plan(plan: &LogicalPlan) -> Option<LogicalPlan> {
    let LogicalPlan::TableScan(scan) = plan else {
        return None;
    };
    let provider = source_as_provider(&scan.source).ok()?;
    let view = (provider.as_ref() as &dyn std::any::Any).downcast_ref::<PolicyTable>()?;
    view.view_plan(scan.projection.as_ref(), &scan.filters, scan.fetch)
        .ok()
}

impl PolicyTable {
    /// `Projection ← Filter(leakproof user filters) ← Filter(row filters) ←
    /// TableScan` for a scan of the view.
    fn view_plan(
        &self,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<LogicalPlan> {
        let mut plan = LogicalPlanBuilder::from(self.filtered.clone());
        let filters = filters
            .iter()
            .map(|f| self.over_filtered(unqualified(f.clone())?))
            .collect::<Result<Vec<_>>>()?;
        if let Some(filter) = conjunction(filters) {
            plan = plan.filter(filter)?;
        }
        let all: Vec<usize>;
        let indices = match projection {
            Some(indices) => indices,
            None => {
                all = (0..self.schema.fields().len()).collect();
                &all
            }
        };
        plan = plan.project(indices.iter().map(|&i| {
            let name = self.schema.field(i).name();
            self.columns[name].clone().alias(name)
        }))?;
        if let Some(limit) = limit {
            plan = plan.limit(0, Some(limit))?;
        }
        plan.build()
    }
}

/// `expr` with every column named by its bare name, as the view knows it.
fn unqualified(expr: Expr) -> Result<Expr> {
    expr.transform(|e| {
        Ok(match e {
            Expr::Column(c) if c.relation.is_some() => {
                Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))
            }
            other => Transformed::no(other),
        })
    })
    .map(|t| t.data)
}

/// True when evaluating `expr` cannot fail, whatever the row: then it may
/// be evaluated before the row filter without revealing anything.
pub(crate) fn leakproof(expr: &Expr, schema: &DFSchema) -> bool {
    let all = |exprs: &[&Expr]| exprs.iter().all(|e| leakproof(e, schema));
    match expr {
        Expr::Column(_) | Expr::Literal(..) | Expr::Placeholder(_) => true,
        Expr::Alias(alias) => leakproof(&alias.expr, schema),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            matches!(
                op,
                Operator::Eq
                    | Operator::NotEq
                    | Operator::Lt
                    | Operator::LtEq
                    | Operator::Gt
                    | Operator::GtEq
                    | Operator::IsDistinctFrom
                    | Operator::IsNotDistinctFrom
                    | Operator::And
                    | Operator::Or
            ) && all(&[left, right])
        }
        Expr::Not(e)
        | Expr::IsNull(e)
        | Expr::IsNotNull(e)
        | Expr::IsTrue(e)
        | Expr::IsFalse(e)
        | Expr::IsUnknown(e)
        | Expr::IsNotTrue(e)
        | Expr::IsNotFalse(e)
        | Expr::IsNotUnknown(e) => leakproof(e, schema),
        Expr::Between(Between {
            expr, low, high, ..
        }) => all(&[expr, low, high]),
        Expr::InList(InList { expr, list, .. }) => {
            leakproof(expr, schema) && list.iter().all(|e| leakproof(e, schema))
        }
        Expr::Like(Like { expr, pattern, .. }) | Expr::SimilarTo(Like { expr, pattern, .. }) => {
            matches!(pattern.as_ref(), Expr::Literal(..)) && leakproof(expr, schema)
        }
        Expr::TryCast(cast) => leakproof(&cast.expr, schema),
        Expr::Cast(cast) => {
            leakproof(&cast.expr, schema)
                && cast
                    .expr
                    .get_type(schema)
                    .is_ok_and(|from| cast_cannot_fail(&from, cast.field.data_type()))
        }
        _ => false,
    }
}

/// Casts that succeed for every value of `from`.
fn cast_cannot_fail(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let string = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    if from == to || string(to) && (string(from) || from.is_numeric() || from.is_temporal()) {
        return true;
    }
    match (from, to) {
        (Dictionary(_, value), to) => cast_cannot_fail(value, to),
        (Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32, Int64 | Float64) => true,
        (Int8 | Int16 | UInt8, Int32 | Int16) => true,
        (Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64, Float32) => true,
        (Float16 | Float32, Float64) => true,
        (Date32, Date64 | Timestamp(_, _)) => true,
        _ => false,
    }
}

/// Passes its input through unchanged; no filter, projection, limit or
/// sort is pushed through it (the defaults of [`ExecutionPlan`], which this
/// node relies on and must not override).
#[derive(Debug)]
pub(crate) struct PolicyBarrierExec {
    input: Arc<dyn ExecutionPlan>,
    table: String,
    properties: Arc<PlanProperties>,
}

impl PolicyBarrierExec {
    pub(crate) fn new(input: Arc<dyn ExecutionPlan>, table: String) -> Self {
        let properties = input.properties().clone();
        Self {
            input,
            table,
            properties,
        }
    }

    /// `catalog.schema.table` of the table it guards.
    pub(crate) fn table(&self) -> &str {
        &self.table
    }
}

impl DisplayAs for PolicyBarrierExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PolicyBarrierExec: table={}", self.table)
    }
}

impl ExecutionPlan for PolicyBarrierExec {
    fn name(&self) -> &str {
        "PolicyBarrierExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [input] = <[_; 1]>::try_from(children).map_err(|_| {
            datafusion::error::DataFusionError::Internal("PolicyBarrierExec takes one input".into())
        })?;
        Ok(Arc::new(Self::new(input, self.table.clone())))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::logical_expr::{cast, col, lit};

    fn schema() -> DFSchema {
        DFSchema::try_from(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("name", DataType::Utf8, true),
        ]))
        .unwrap()
    }

    #[test]
    fn comparisons_with_constants_cross_the_barrier() {
        let s = schema();
        for expr in [
            col("id").eq(lit(5)),
            col("id").gt(lit(1)).and(col("name").is_null()),
            col("name").like(lit("A%")),
            col("id").in_list(vec![lit(1), lit(2)], false),
            cast(col("id"), DataType::Int64).lt(lit(10i64)),
        ] {
            assert!(leakproof(&expr, &s), "{expr}");
        }
    }

    #[test]
    fn expressions_that_can_fail_stay_above_it() {
        let s = schema();
        for expr in [
            cast(col("name"), DataType::Int32).eq(lit(1)),
            (col("id") / lit(0)).eq(lit(1)),
            (col("id") + lit(1)).eq(lit(2)),
            col("name").like(col("name")),
        ] {
            assert!(!leakproof(&expr, &s), "{expr}");
        }
    }
}
