//! PostgreSQL system columns on pg_catalog tables.
//!
//! Every PostgreSQL table has hidden columns such as `xmin` (the creating
//! transaction). Introspecting tools read them from the catalog: DataGrip
//! keeps `N.xmin AS state_number` per object to detect changes. meshgate's
//! catalog has no transactions, so `xmin` is a constant; it is appended as
//! the last column of each pg_catalog table.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::ExecutionPlan;

/// The value every catalog row reports as `xmin`: the frozen transaction
/// id, as for rows present since the database was created.
const FROZEN_XID: i64 = 2;

/// Wraps pg_catalog so each table also has an `xmin` column.
#[derive(Debug)]
pub(crate) struct WithSystemColumns {
    inner: Arc<dyn SchemaProvider>,
    /// Tables meshgate computes itself instead of the inner provider.
    replaced: HashMap<String, Arc<dyn TableProvider>>,
}

impl WithSystemColumns {
    pub(crate) fn new(inner: Arc<dyn SchemaProvider>) -> Self {
        Self {
            inner,
            replaced: HashMap::new(),
        }
    }

    /// Serve `name` from `table` instead of the inner provider.
    pub(crate) fn replace(mut self, name: &str, table: Arc<dyn TableProvider>) -> Self {
        self.replaced.insert(name.to_owned(), table);
        self
    }
}

#[async_trait]
impl SchemaProvider for WithSystemColumns {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let table = match self.replaced.get(name) {
            Some(table) => Some(table.clone()),
            None => self.inner.table(name).await?,
        };
        Ok(table.map(|table| {
            let mut fields: Vec<Arc<Field>> = table.schema().fields().iter().cloned().collect();
            if fields.iter().any(|f| f.name() == "xmin") {
                return table;
            }
            fields.push(Arc::new(Field::new("xmin", DataType::Int64, false)));
            let schema = Arc::new(Schema::new_with_metadata(
                fields,
                table.schema().metadata().clone(),
            ));
            Arc::new(SystemColumnTable {
                inner: table,
                schema,
            }) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

#[derive(Debug)]
struct SystemColumnTable {
    inner: Arc<dyn TableProvider>,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for SystemColumnTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let xmin = self.schema.fields().len() - 1;
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let inner_projection: Vec<usize> = wanted.iter().copied().filter(|&i| i != xmin).collect();
        let input = self
            .inner
            .scan(state, Some(&inner_projection), &[], limit)
            .await?;
        let mut position = 0;
        let exprs = wanted
            .iter()
            .map(|&i| {
                let field = self.schema.field(i);
                let expr: Arc<dyn PhysicalExpr> = if i == xmin {
                    Arc::new(Literal::new(ScalarValue::Int64(Some(FROZEN_XID))))
                } else {
                    position += 1;
                    Arc::new(Column::new(field.name(), position - 1))
                };
                (expr, field.name().clone())
            })
            .collect::<Vec<_>>();
        ProjectionExec::try_new(exprs, input)
            .map(|p| Arc::new(p) as Arc<dyn ExecutionPlan>)
            .map_err(|e| DataFusionError::Internal(format!("pg_catalog system columns: {e}")))
    }
}
