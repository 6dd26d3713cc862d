//! The OIDs the session's own pg_catalog hands out to schemas, tables and
//! columns, so the tables meshgate fills itself (`pg_description`,
//! `pg_constraint`) point at exactly the rows `pg_class`, `pg_namespace`
//! and `pg_attribute` show. A table the access policy hides has no OID, so
//! nothing about it is shown either.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::catalog::{SchemaProvider, Session};
use datafusion::common::{DataFusionError, Result};

/// Names to OIDs, as the session's pg_catalog has them at one read.
#[derive(Debug, Default)]
pub(crate) struct CatalogOids {
    /// Schema name to `pg_namespace.oid`.
    pub(crate) namespaces: HashMap<String, i64>,
    /// (schema, table) to `pg_class.oid`.
    pub(crate) tables: HashMap<(String, String), i64>,
    /// (table OID, column name) to `pg_attribute.attnum`; read only when asked.
    pub(crate) columns: HashMap<(i64, String), i64>,
}

impl CatalogOids {
    /// Read the OIDs from `pg_catalog` (the session's), with column numbers
    /// when `with_columns`.
    pub(crate) async fn read(
        pg_catalog: &dyn SchemaProvider,
        state: &dyn Session,
        with_columns: bool,
    ) -> Result<Self> {
        let namespaces: HashMap<i64, String> =
            read_rows(pg_catalog, state, "pg_namespace", &["oid", "nspname"])
                .await?
                .into_iter()
                .filter_map(|r| Some((r[0].int()?, r[1].text()?.to_owned())))
                .collect();
        let tables = read_rows(
            pg_catalog,
            state,
            "pg_class",
            &["oid", "relname", "relnamespace"],
        )
        .await?
        .into_iter()
        .filter_map(|r| {
            let schema = namespaces.get(&r[2].int()?)?.clone();
            Some(((schema, r[1].text()?.to_owned()), r[0].int()?))
        })
        .collect();
        let columns = if with_columns {
            read_rows(
                pg_catalog,
                state,
                "pg_attribute",
                &["attrelid", "attname", "attnum"],
            )
            .await?
            .into_iter()
            .filter_map(|r| Some(((r[0].int()?, r[1].text()?.to_owned()), r[2].int()?)))
            .collect()
        } else {
            HashMap::new()
        };
        Ok(Self {
            namespaces: namespaces.into_iter().map(|(oid, n)| (n, oid)).collect(),
            tables,
            columns,
        })
    }

    /// The OID of `schema.table`, if the session sees it.
    pub(crate) fn table(&self, schema: &str, table: &str) -> Option<i64> {
        self.tables
            .get(&(schema.to_owned(), table.to_owned()))
            .copied()
    }

    /// The number of `column` in the table `table_oid`.
    pub(crate) fn column(&self, table_oid: i64, column: &str) -> Option<i64> {
        self.columns.get(&(table_oid, column.to_owned())).copied()
    }
}

/// `columns` of a pg_catalog table, integers as i64 and the rest as text.
async fn read_rows(
    pg_catalog: &dyn SchemaProvider,
    state: &dyn Session,
    table: &str,
    columns: &[&str],
) -> Result<Vec<Vec<Value>>> {
    let provider = pg_catalog
        .table(table)
        .await?
        .ok_or_else(|| DataFusionError::Internal(format!("pg_catalog.{table} is missing")))?;
    let schema = provider.schema();
    let projection = columns
        .iter()
        .map(|c| schema.index_of(c))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let plan = provider.scan(state, Some(&projection), &[], None).await?;
    let batches = datafusion::physical_plan::collect(plan, state.task_ctx()).await?;
    let mut rows = Vec::new();
    for batch in batches {
        let mut cols = Vec::new();
        for array in batch.columns() {
            cols.push(if array.data_type().is_integer() {
                (true, cast(array, &DataType::Int64)?)
            } else {
                (false, cast(array, &DataType::Utf8)?)
            });
        }
        for row in 0..batch.num_rows() {
            rows.push(cols.iter().map(|(int, a)| value(*int, a, row)).collect());
        }
    }
    Ok(rows)
}

enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

fn value(int: bool, array: &Arc<dyn Array>, row: usize) -> Value {
    if int {
        let a = array.as_primitive::<Int64Type>();
        Value::Int(a.is_valid(row).then(|| a.value(row)))
    } else {
        let a = array.as_string::<i32>();
        Value::Text(a.is_valid(row).then(|| a.value(row).to_owned()))
    }
}

impl Value {
    fn int(&self) -> Option<i64> {
        match self {
            Value::Int(v) => *v,
            Value::Text(_) => None,
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            Value::Text(v) => v.as_deref(),
            Value::Int(_) => None,
        }
    }
}
