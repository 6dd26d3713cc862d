//! `pg_constraint` with the primary and foreign keys the sources declare,
//! beside the built-in catalog's own rows, so BI tools and drivers that
//! read keys from pg_catalog (DBeaver, Metabase, pgJDBC's
//! `getImportedKeys`, psql's `\d`) suggest the joins the domain teams
//! declared.
//!
//! The rows are computed when the table is read: each key of the session's
//! catalog (the one pg_catalog describes) is matched to the OIDs the
//! session's `pg_class`, `pg_namespace` and `pg_attribute` hand out. A key
//! whose table the policy hides, or a foreign key whose referenced table it
//! hides, is not shown, exactly as in information_schema.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use meshgate_connectors::KeyColumn;

use super::constraint_defs::{definition, ConstraintDefs};
use super::key_indexes::primary_key_indexes;
use super::keyed_rows::{rows_batch, with_rows, KeyScope};

/// Where the OIDs of source keys start: far above the built-in catalog's
/// and the OIDs the session hands out to tables (from 16384 up).
const FIRST_KEY_OID: i32 = 1_000_000_000;

#[derive(Debug)]
pub(crate) struct ConstraintTable {
    /// The built-in rows, with key lists as integer lists.
    builtin: Arc<dyn TableProvider>,
    scope: KeyScope,
    /// Where the keys' definitions go, for `pg_get_constraintdef`.
    defs: ConstraintDefs,
}

impl ConstraintTable {
    pub(crate) fn new(
        builtin: Arc<dyn TableProvider>,
        scope: KeyScope,
        defs: ConstraintDefs,
    ) -> Self {
        Self {
            builtin,
            scope,
            defs,
        }
    }

    /// One row per declared key of the current catalog the session sees.
    async fn key_rows(&self, state: &dyn Session) -> Result<Option<RecordBatch>> {
        // Only what this scan shows is defined (a revoke takes them away).
        self.defs
            .write()
            .expect("constraint definitions lock")
            .clear();
        let Some((keys, oids)) = self.scope.keys(state).await? else {
            return Ok(None);
        };
        // The unique index behind each primary key, by table.
        let indexes: HashMap<i64, i64> = primary_key_indexes(&keys, &oids)
            .into_iter()
            .map(|index| (index.relid, index.oid))
            .collect();
        // A constraint's columns, in key order (the keys come sorted).
        let mut constraints: BTreeMap<(String, String, String), Vec<&KeyColumn>> = BTreeMap::new();
        for key in &keys {
            constraints
                .entry((key.schema.clone(), key.table.clone(), key.name.clone()))
                .or_default()
                .push(key);
        }
        let mut rows = Vec::new();
        let mut next_oid = FIRST_KEY_OID;
        for ((schema_name, table, name), mut parts) in constraints {
            parts.sort_by_key(|k| k.position);
            let (Some(namespace), Some(relid)) = (
                oids.namespaces.get(&schema_name).copied(),
                oids.table(&schema_name, &table),
            ) else {
                continue;
            };
            let conkey: Option<Vec<i32>> = parts
                .iter()
                .map(|k| oids.column(relid, &k.column).map(|n| n as i32))
                .collect();
            let Some(conkey) = conkey else { continue };
            let foreign = parts[0].references.as_ref();
            let (confrelid, confkey) = match foreign {
                None => (0, None),
                Some(r) => {
                    let Some(frelid) = oids.table(&r.schema, &r.table) else {
                        continue;
                    };
                    let confkey: Option<Vec<i32>> = parts
                        .iter()
                        .map(|k| {
                            let r = k.references.as_ref()?;
                            oids.column(frelid, &r.column).map(|n| n as i32)
                        })
                        .collect();
                    let Some(confkey) = confkey else { continue };
                    (frelid, Some(confkey))
                }
            };
            let oid = next_oid;
            next_oid += 1;
            self.defs
                .write()
                .expect("constraint definitions lock")
                .insert(oid, definition(&parts));
            // A primary key's own index; a foreign key's, the referenced key's.
            let index_of = if foreign.is_some() { confrelid } else { relid };
            rows.push(Row {
                oid,
                name,
                namespace,
                conindid: indexes.get(&index_of).copied().unwrap_or(0),
                foreign: foreign.map(|r| (rule(r.on_update), rule(r.on_delete))),
                relid,
                confrelid,
                conkey,
                confkey,
            });
        }
        rows_batch(self.builtin.schema(), &rows, Row::value).map(Some)
    }
}

/// What one key constraint's row says.
struct Row {
    oid: i32,
    name: String,
    namespace: i64,
    /// The index behind the key (see `key_indexes`); 0 when none.
    conindid: i64,
    /// A foreign key's update and delete actions.
    foreign: Option<(&'static str, &'static str)>,
    relid: i64,
    confrelid: i64,
    conkey: Vec<i32>,
    confkey: Option<Vec<i32>>,
}

impl Row {
    /// The value of `field`, of the field's type; NULL for columns keys do
    /// not use (`conbin`, operator lists).
    fn value(&self, field: &Field) -> Result<ScalarValue> {
        let text = |s: &str| ScalarValue::Utf8(Some(s.to_owned()));
        let int = |n: i64| ScalarValue::Int64(Some(n));
        let value = match field.name().as_str() {
            "oid" => int(self.oid.into()),
            "conname" => text(&self.name),
            "connamespace" => int(self.namespace),
            "contype" => text(if self.foreign.is_some() { "f" } else { "p" }),
            "condeferrable" | "condeferred" => ScalarValue::Boolean(Some(false)),
            "convalidated" | "conislocal" | "connoinherit" | "conenforced" => {
                ScalarValue::Boolean(Some(true))
            }
            "conrelid" => int(self.relid),
            "conindid" => int(self.conindid),
            "contypid" | "conparentid" | "coninhcount" => int(0),
            "confrelid" => int(self.confrelid),
            "confupdtype" => text(self.foreign.map_or(" ", |f| f.0)),
            "confdeltype" => text(self.foreign.map_or(" ", |f| f.1)),
            "confmatchtype" => text(if self.foreign.is_some() { "s" } else { " " }),
            "conkey" => list(Some(&self.conkey)),
            "confkey" => list(self.confkey.as_deref()),
            _ => return ScalarValue::try_from(field.data_type()),
        };
        match field.data_type() {
            DataType::List(_) => Ok(value),
            ty => value.cast_to(ty),
        }
    }
}

fn list(values: Option<&[i32]>) -> ScalarValue {
    match values {
        Some(v) => ScalarValue::List(ScalarValue::new_list_nullable(
            &v.iter()
                .map(|n| ScalarValue::Int32(Some(*n)))
                .collect::<Vec<_>>(),
            &DataType::Int32,
        )),
        None => ScalarValue::try_from(&DataType::new_list(DataType::Int32, true))
            .unwrap_or(ScalarValue::Null),
    }
}

/// A JDBC rule code as pg_constraint's action letter.
fn rule(code: u8) -> &'static str {
    match code {
        0 => "c",
        1 => "r",
        2 => "n",
        4 => "d",
        _ => "a",
    }
}

#[async_trait]
impl TableProvider for ConstraintTable {
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
        let keys = self.key_rows(state).await?;
        with_rows(
            self.builtin.as_ref(),
            state,
            self.schema(),
            projection,
            |b| Ok(b.clone()),
            keys,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lists_are_integer_lists_and_actions_letters() {
        let row = Row {
            oid: FIRST_KEY_OID,
            name: "orders_customer_fk".into(),
            namespace: 2200,
            conindid: 0,
            foreign: Some((rule(3), rule(0))),
            relid: 16390,
            confrelid: 16385,
            conkey: vec![2, 3],
            confkey: Some(vec![1, 2]),
        };
        let list_field = Field::new("conkey", DataType::new_list(DataType::Int32, true), true);
        let conkey = row.value(&list_field).unwrap();
        assert_eq!(
            conkey.to_string(),
            "[2, 3]",
            "conkey lists the key's columns in order"
        );
        let del = row
            .value(&Field::new("confdeltype", DataType::Utf8, true))
            .unwrap();
        assert_eq!(del, ScalarValue::Utf8(Some("c".into())));
        let oid = row
            .value(&Field::new("conrelid", DataType::Int32, true))
            .unwrap();
        assert_eq!(oid, ScalarValue::Int32(Some(16390)));
    }
}
