//! Owners and privileges in `pg_class` and `pg_attribute`, as the policy
//! has them: every table and view the session lists is owned by the
//! session's user (its `pg_roles` row) and readable by them,
//! `relacl = {user=r/user}` (and each column's `attacl` the same), since the
//! session lists exactly the tables the policy lets it read, and only to
//! read them. pgJDBC's `getTablePrivileges` and `getColumnPrivileges`
//! join `relowner` to `pg_roles` and parse the ACLs; without one they
//! would report an owner's full privileges, which meshgate never grants.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::StringBuilder;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, ListBuilder, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::keyed_rows::with_rows;

/// Relation kinds that carry an owner and privileges here.
const OWNED: &[&str] = &["r", "p", "v", "m", "f"];

/// `pg_class` with `relowner` and `relacl` for the session's user, or
/// `pg_attribute` with `attacl`.
#[derive(Debug)]
pub(crate) struct WithOwner {
    inner: Arc<dyn TableProvider>,
    schema: SchemaRef,
    user: String,
    /// The user's `pg_roles.oid`; `None` for `pg_attribute`.
    owner: Option<i64>,
}

impl WithOwner {
    /// `pg_attribute` with every column readable by `user`.
    pub(crate) fn attributes(inner: Arc<dyn TableProvider>, user: &str) -> Self {
        // `attacl` is an array (`aclitem[]`), as psql's `\dp` reads it.
        let fields: Vec<Field> = inner
            .schema()
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "attacl" => Field::new("attacl", acl_type(), true),
                _ => f.as_ref().clone(),
            })
            .collect();
        Self {
            schema: Arc::new(Schema::new(fields)),
            inner,
            user: user.to_owned(),
            owner: None,
        }
    }

    pub(crate) fn new(inner: Arc<dyn TableProvider>, user: &str, owner: i64) -> Self {
        let mut fields: Vec<Field> = inner
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        if !fields.iter().any(|f| f.name() == "relacl") {
            fields.push(Field::new("relacl", acl_type(), true));
        }
        Self {
            schema: Arc::new(Schema::new(fields)),
            inner,
            user: user.to_owned(),
            owner: Some(owner),
        }
    }

    fn owned(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let owned: Vec<bool> = match batch.column_by_name("relkind") {
            _ if self.owner.is_none() => vec![true; batch.num_rows()],
            Some(kinds) => {
                let kinds = cast(kinds, &DataType::Utf8)?;
                let kinds = kinds.as_string::<i32>();
                (0..batch.num_rows())
                    .map(|i| kinds.is_valid(i) && OWNED.contains(&kinds.value(i)))
                    .collect()
            }
            None => vec![false; batch.num_rows()],
        };
        let acl = format!("{0}=r/{0}", acl_name(&self.user));
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for field in self.schema.fields() {
            let column: ArrayRef = match (field.name().as_str(), batch.column_by_name(field.name()))
            {
                ("relowner", Some(old)) if self.owner.is_some() => {
                    let owner = self.owner.unwrap_or_default();
                    let old = cast(old, &DataType::Int64)?;
                    let old = old.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                    let owners: Int64Array = (0..batch.num_rows())
                        .map(|i| Some(if owned[i] { owner } else { old.value(i) }))
                        .collect();
                    cast(&owners, field.data_type())?
                }
                ("attacl", Some(_)) | ("relacl", None) => {
                    let mut list = ListBuilder::new(StringBuilder::new());
                    for &row in &owned {
                        if row {
                            list.values().append_value(&acl);
                            list.append(true);
                        } else {
                            list.append(false);
                        }
                    }
                    cast(&list.finish(), field.data_type())?
                }
                (_, Some(column)) => column.clone(),
                (name, None) => {
                    return Err(datafusion::error::DataFusionError::Internal(format!(
                        "pg_class has no column {name}"
                    )))
                }
            };
            columns.push(column);
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// `aclitem[]` as meshgate types it: an array of text.
fn acl_type() -> DataType {
    DataType::new_list(DataType::Utf8, true)
}

/// A role name as an ACL item writes it (quoted when it holds more than
/// letters, digits and underscores).
fn acl_name(name: &str) -> String {
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

#[async_trait]
impl TableProvider for WithOwner {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
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
        let adjust = |batch: &RecordBatch| self.owned(batch);
        with_rows(
            self.inner.as_ref(),
            state,
            self.schema(),
            projection,
            adjust,
            None,
        )
        .await
    }
}
