//! The index behind each primary key a source declares, in `pg_class`
//! (relkind `i`) and `pg_index`, with `pg_get_indexdef`. JDBC's
//! `getPrimaryKeys` and `getImportedKeys`/`getExportedKeys` (pgJDBC), and
//! psql's `\d`, find keys through them, as PostgreSQL backs every primary
//! key with a unique index of the same name.
//!
//! The rows are computed when each table is read, from the keys of the
//! session's catalog that the policy lets it see (see [`super::pg_constraint`],
//! which points `conindid` at the same indexes): the indexes are numbered
//! in the order of their (schema, table, name), so every table of one
//! session hands out the same OIDs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use meshgate_connectors::KeyColumn;

use super::catalog_oids::CatalogOids;
use super::constraint_defs::{quote, ConstraintDefs};
use super::keyed_rows::{rows_batch, with_rows, KeyScope};

/// Where the OIDs of primary-key indexes start (above the constraints').
const FIRST_INDEX_OID: i64 = 1_100_000_000;

/// The unique index behind one primary key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KeyIndex {
    pub oid: i64,
    /// The key's own name (`customers_pkey`).
    pub name: String,
    pub namespace: i64,
    /// The table's OID.
    pub relid: i64,
    /// Its columns' `attnum`s, in key order.
    pub attnums: Vec<i32>,
    /// What `pg_get_indexdef` prints.
    pub definition: String,
    /// Its columns as `pg_get_indexdef(oid, n)` prints them (quoted where
    /// PostgreSQL would).
    pub columns: Vec<String>,
}

/// The indexes of the primary keys among `keys` whose table and columns
/// the session's catalog has.
pub(crate) fn primary_key_indexes(keys: &[KeyColumn], oids: &CatalogOids) -> Vec<KeyIndex> {
    let mut primary: BTreeMap<(&str, &str, &str), Vec<&KeyColumn>> = BTreeMap::new();
    for key in keys.iter().filter(|k| k.references.is_none()) {
        primary
            .entry((&key.schema, &key.table, &key.name))
            .or_default()
            .push(key);
    }
    let mut out = Vec::new();
    for ((schema, table, name), mut parts) in primary {
        parts.sort_by_key(|k| k.position);
        let (Some(namespace), Some(relid)) = (
            oids.namespaces.get(schema).copied(),
            oids.table(schema, table),
        ) else {
            continue;
        };
        let attnums: Option<Vec<i32>> = parts
            .iter()
            .map(|k| oids.column(relid, &k.column).map(|n| n as i32))
            .collect();
        let Some(attnums) = attnums else { continue };
        let columns: Vec<String> = parts.iter().map(|k| quote(&k.column)).collect();
        out.push(KeyIndex {
            oid: FIRST_INDEX_OID + out.len() as i64,
            name: name.to_owned(),
            namespace,
            relid,
            definition: format!(
                "CREATE UNIQUE INDEX {} ON {}.{} USING btree ({})",
                quote(name),
                quote(schema),
                quote(table),
                columns.join(", ")
            ),
            attnums,
            columns,
        });
    }
    out
}

/// Which catalog table the index rows go to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum IndexTable {
    PgClass,
    PgIndex,
}

/// A built-in `pg_class` or `pg_index` with a row per primary-key index.
#[derive(Debug)]
pub(crate) struct WithKeyIndexes {
    kind: IndexTable,
    builtin: Arc<dyn TableProvider>,
    scope: KeyScope,
    /// Where the indexes' definitions and columns go, for `pg_get_indexdef`.
    defs: ConstraintDefs,
    columns: ConstraintDefs,
}

impl WithKeyIndexes {
    pub(crate) fn new(
        kind: IndexTable,
        builtin: Arc<dyn TableProvider>,
        scope: KeyScope,
        (defs, columns): (ConstraintDefs, ConstraintDefs),
    ) -> Self {
        Self {
            kind,
            builtin,
            scope,
            defs,
            columns,
        }
    }

    /// The index rows, and the tables that have one.
    async fn index_rows(&self, state: &dyn Session) -> Result<Option<(RecordBatch, Keyed)>> {
        // Only what this scan shows is defined (a revoke takes them away).
        let indexes = match self.scope.keys(state).await? {
            Some((keys, oids)) => primary_key_indexes(&keys, &oids),
            None => Vec::new(),
        };
        let by_oid = |f: &dyn Fn(&KeyIndex) -> String| -> HashMap<i32, String> {
            indexes
                .iter()
                .filter_map(|index| Some((i32::try_from(index.oid).ok()?, f(index))))
                .collect()
        };
        *self.defs.write().expect("index definitions lock") = by_oid(&|i| i.definition.clone());
        *self.columns.write().expect("index columns lock") = by_oid(&|i| i.columns.join("\0"));
        if indexes.is_empty() {
            return Ok(None);
        }
        let keyed = Keyed {
            indexed: indexes.iter().map(|i| i.relid).collect(),
        };
        let rows = rows_batch(self.builtin.schema(), &indexes, |index, field| {
            self.value(index, field)
        })?;
        Ok(Some((rows, keyed)))
    }

    /// `field` of `index`'s row; columns an index does not set read as
    /// PostgreSQL's defaults (NULL where the column allows it).
    fn value(&self, index: &KeyIndex, field: &Field) -> Result<ScalarValue> {
        let text = |s: &str| ScalarValue::Utf8(Some(s.to_owned()));
        let int = |n: i64| ScalarValue::Int64(Some(n));
        let yes = ScalarValue::Boolean(Some(true));
        let list = |values: Vec<i32>| {
            ScalarValue::List(ScalarValue::new_list_nullable(
                &values
                    .into_iter()
                    .map(|n| ScalarValue::Int32(Some(n)))
                    .collect::<Vec<_>>(),
                &DataType::Int32,
            ))
        };
        let keys = index.attnums.len() as i64;
        let value = match (self.kind, field.name().as_str()) {
            (IndexTable::PgClass, "oid") => int(index.oid),
            (IndexTable::PgClass, "relname") => text(&index.name),
            (IndexTable::PgClass, "relnamespace") => int(index.namespace),
            (IndexTable::PgClass, "relkind") => text("i"),
            (IndexTable::PgClass, "relam") => int(403),
            (IndexTable::PgClass, "relnatts") => int(keys),
            (IndexTable::PgClass, "relpersistence") => text("p"),
            (IndexTable::PgClass, "relispopulated") => yes,
            (IndexTable::PgIndex, "indexrelid") => int(index.oid),
            (IndexTable::PgIndex, "indrelid") => int(index.relid),
            (IndexTable::PgIndex, "indnatts" | "indnkeyatts") => int(keys),
            (
                IndexTable::PgIndex,
                "indisunique" | "indisprimary" | "indimmediate" | "indisvalid" | "indisready"
                | "indislive",
            ) => yes,
            (IndexTable::PgIndex, "indkey") => list(index.attnums.clone()),
            (IndexTable::PgIndex, "indcollation" | "indclass" | "indoption") => {
                list(vec![0; index.attnums.len()])
            }
            _ => return default_value(field),
        };
        match field.data_type() {
            DataType::List(_) => Ok(value),
            ty => value.cast_to(ty),
        }
    }
}

/// The tables that have a key index.
struct Keyed {
    indexed: HashSet<i64>,
}

impl Keyed {
    /// `batch` of pg_class with `relhasindex` set as PostgreSQL sets it for
    /// these tables (psql's `\d` lists a table's indexes only then).
    fn mark(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let Some(oids) = batch.column_by_name("oid") else {
            return Ok(batch.clone());
        };
        let oids = datafusion::arrow::compute::cast(oids, &DataType::Int64)?;
        let oids = oids.as_primitive::<Int64Type>();
        let schema = batch.schema();
        let columns = schema
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(field, column)| {
                // Not relhastriggers: psql would then ask for triggers
                // (pg_get_triggerdef, pg_partition_ancestors) it cannot get.
                let set = match field.name().as_str() {
                    "relhasindex" => &self.indexed,
                    _ => return Ok(column.clone()),
                };
                let old = column.as_boolean();
                let marked: BooleanArray = (0..batch.num_rows())
                    .map(|i| {
                        let keyed = oids.is_valid(i) && set.contains(&oids.value(i));
                        Some(keyed || (old.is_valid(i) && old.value(i)))
                    })
                    .collect();
                Ok(Arc::new(marked) as ArrayRef)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

/// NULL where `field` allows it, else its type's zero (`false`, `0`, `''`).
fn default_value(field: &Field) -> Result<ScalarValue> {
    if field.is_nullable() {
        return ScalarValue::try_from(field.data_type());
    }
    match field.data_type() {
        DataType::Utf8 => Ok(ScalarValue::Utf8(Some(String::new()))),
        DataType::Boolean => Ok(ScalarValue::Boolean(Some(false))),
        ty => ScalarValue::new_zero(ty).or_else(|_| ScalarValue::try_from(ty)),
    }
}

#[async_trait]
impl TableProvider for WithKeyIndexes {
    fn schema(&self) -> SchemaRef {
        self.builtin.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (rows, keyed) = self.index_rows(state).await?.unzip();
        let mark = |batch: &RecordBatch| match (&keyed, self.kind) {
            (Some(keyed), IndexTable::PgClass) => keyed.mark(batch),
            _ => Ok(batch.clone()),
        };
        with_rows(
            self.builtin.as_ref(),
            state,
            self.schema(),
            projection,
            mark,
            rows,
        )
        .await
    }
}
