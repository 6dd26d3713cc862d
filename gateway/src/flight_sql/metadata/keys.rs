//! The key listings (GetPrimaryKeys, GetExportedKeys, GetImportedKeys,
//! GetCrossReference), answered from the keys the sources declare
//! (PostgreSQL, MySQL) that the caller may see (see the planner's
//! `QuerySession::keys`). Each is recorded with the tables it names,
//! `denied` when the policy hides one of them.

use std::sync::Arc;

use arrow_flight::sql::{
    CommandGetCrossReference, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
};
use meshgate_connectors::KeyColumn;
use meshgate_planner::datafusion::arrow::array::{
    ArrayRef, Int32Array, RecordBatch, StringArray, UInt8Array,
};
use meshgate_planner::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use meshgate_planner::policy::TableName;
use meshgate_planner::{QueryError, QueryResult, QuerySession};

use super::{Call, MetadataCommand};

/// A key listing: which tables it concerns, resolved against the session's
/// defaults, and which of the visible keys it answers with.
trait KeyListing {
    fn tables(&self, session: &QuerySession) -> Vec<TableName>;

    /// Whether `key` (a column of a key of a table of `catalog`) is one
    /// the listing of `tables` answers with.
    fn wants(&self, tables: &[TableName], catalog: &str, key: &KeyColumn) -> bool;
}

/// The answer of a key listing naming `tables`, recorded.
async fn list_keys<L: KeyListing>(
    call: &mut Call<'_>,
    name: &str,
    listing: L,
    schema: SchemaRef,
) -> QueryResult<RecordBatch> {
    let session = call.session()?;
    let tables = listing.tables(&session);
    let names: Vec<String> = tables.iter().map(ToString::to_string).collect();
    call.record.sql = format!("Flight SQL {name} {}", names.join(", "));
    call.record.objects = names;
    let hidden: Vec<String> = tables
        .iter()
        .filter_map(|t| call.frontend().hidden_table(call.identity(), t))
        .collect();
    if !hidden.is_empty() {
        call.deny(hidden.join("; "));
        return Ok(RecordBatch::new_empty(schema));
    }
    let catalog = tables[0].catalog.clone();
    let keys: Vec<KeyColumn> = session
        .keys(&catalog)
        .await?
        .into_iter()
        .filter(|k| listing.wants(&tables, &catalog, k))
        .collect();
    key_batch(schema, &catalog, &keys)
        .map_err(|e| QueryError::Internal(format!("cannot build the key listing: {e}")))
}

/// One row per key column, in `schema` (the primary or foreign key shape).
fn key_batch(
    schema: SchemaRef,
    catalog: &str,
    keys: &[KeyColumn],
) -> Result<RecordBatch, meshgate_planner::datafusion::arrow::error::ArrowError> {
    let text = |f: &dyn Fn(&KeyColumn) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(keys.iter().map(f).collect::<Vec<_>>()))
    };
    let position: ArrayRef = Arc::new(Int32Array::from_iter_values(
        keys.iter().map(|k| k.position),
    ));
    let columns: Vec<ArrayRef> = if schema.fields().len() == 6 {
        vec![
            text(&|_| Some(catalog.to_owned())),
            text(&|k| Some(k.schema.clone())),
            text(&|k| Some(k.table.clone())),
            text(&|k| Some(k.column.clone())),
            text(&|k| Some(k.name.clone())),
            position,
        ]
    } else {
        let referenced = |f: &dyn Fn(&meshgate_connectors::Referenced) -> String| {
            text(&|k| k.references.as_ref().map(f))
        };
        let rule = |f: &dyn Fn(&meshgate_connectors::Referenced) -> u8| -> ArrayRef {
            Arc::new(UInt8Array::from_iter_values(
                keys.iter()
                    .map(|k| k.references.as_ref().map(f).unwrap_or(3)),
            ))
        };
        vec![
            text(&|_| Some(catalog.to_owned())),
            referenced(&|r| r.schema.clone()),
            referenced(&|r| r.table.clone()),
            referenced(&|r| r.column.clone()),
            text(&|_| Some(catalog.to_owned())),
            text(&|k| Some(k.schema.clone())),
            text(&|k| Some(k.table.clone())),
            text(&|k| Some(k.column.clone())),
            position,
            text(&|k| Some(k.name.clone())),
            text(&|_| None),
            rule(&|r| r.on_update),
            rule(&|r| r.on_delete),
        ]
    };
    RecordBatch::try_new(schema, columns)
}

/// Whether `key`'s own table is `table` (of `catalog`).
fn on(key: &KeyColumn, catalog: &str, table: &TableName) -> bool {
    table.catalog == catalog && key.schema == table.schema && key.table == table.table
}

/// Whether `key` references `table`.
fn referencing(key: &KeyColumn, catalog: &str, table: &TableName) -> bool {
    key.references.as_ref().is_some_and(|r| {
        table.catalog == catalog && r.schema == table.schema && r.table == table.table
    })
}

macro_rules! key_command {
    ($command:ty, $name:literal, $schema:expr) => {
        impl MetadataCommand for $command {
            const NAME: &'static str = $name;

            fn schema(&self) -> SchemaRef {
                $schema
            }

            async fn list(self, call: &mut Call<'_>) -> QueryResult<RecordBatch> {
                let schema = self.schema();
                list_keys(call, Self::NAME, self, schema).await
            }
        }
    };
}

key_command!(
    CommandGetPrimaryKeys,
    "GetPrimaryKeys",
    primary_keys_schema()
);
key_command!(
    CommandGetExportedKeys,
    "GetExportedKeys",
    foreign_keys_schema()
);
key_command!(
    CommandGetImportedKeys,
    "GetImportedKeys",
    foreign_keys_schema()
);
key_command!(
    CommandGetCrossReference,
    "GetCrossReference",
    foreign_keys_schema()
);

impl KeyListing for CommandGetPrimaryKeys {
    fn tables(&self, session: &QuerySession) -> Vec<TableName> {
        vec![key_table(
            session,
            &self.catalog,
            &self.db_schema,
            &self.table,
        )]
    }

    fn wants(&self, tables: &[TableName], catalog: &str, key: &KeyColumn) -> bool {
        key.references.is_none() && on(key, catalog, &tables[0])
    }
}

impl KeyListing for CommandGetExportedKeys {
    fn tables(&self, session: &QuerySession) -> Vec<TableName> {
        vec![key_table(
            session,
            &self.catalog,
            &self.db_schema,
            &self.table,
        )]
    }

    /// The foreign keys that reference the table.
    fn wants(&self, tables: &[TableName], catalog: &str, key: &KeyColumn) -> bool {
        referencing(key, catalog, &tables[0])
    }
}

impl KeyListing for CommandGetImportedKeys {
    fn tables(&self, session: &QuerySession) -> Vec<TableName> {
        vec![key_table(
            session,
            &self.catalog,
            &self.db_schema,
            &self.table,
        )]
    }

    /// The table's own foreign keys.
    fn wants(&self, tables: &[TableName], catalog: &str, key: &KeyColumn) -> bool {
        key.references.is_some() && on(key, catalog, &tables[0])
    }
}

impl KeyListing for CommandGetCrossReference {
    fn tables(&self, session: &QuerySession) -> Vec<TableName> {
        let pk = key_table(
            session,
            &self.pk_catalog,
            &self.pk_db_schema,
            &self.pk_table,
        );
        let fk = key_table(
            session,
            &self.fk_catalog,
            &self.fk_db_schema,
            &self.fk_table,
        );
        vec![pk, fk]
    }

    /// The foreign keys of the fk table that reference the pk table.
    fn wants(&self, tables: &[TableName], catalog: &str, key: &KeyColumn) -> bool {
        on(key, catalog, &tables[1]) && referencing(key, catalog, &tables[0])
    }
}

/// The table a key listing names, resolved against the session's defaults.
fn key_table(
    session: &QuerySession,
    catalog: &Option<String>,
    schema: &Option<String>,
    table: &str,
) -> TableName {
    let pick = |given: &Option<String>, default: String| {
        given.clone().filter(|c| !c.is_empty()).unwrap_or(default)
    };
    TableName::new(
        pick(catalog, session.current_catalog().to_owned()),
        pick(schema, session.current_schema()),
        table,
    )
}

/// CommandGetPrimaryKeys result schema (Flight SQL spec).
fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

/// CommandGetExportedKeys / ImportedKeys / CrossReference result schema.
fn foreign_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pk_catalog_name", DataType::Utf8, true),
        Field::new("pk_db_schema_name", DataType::Utf8, true),
        Field::new("pk_table_name", DataType::Utf8, false),
        Field::new("pk_column_name", DataType::Utf8, false),
        Field::new("fk_catalog_name", DataType::Utf8, true),
        Field::new("fk_db_schema_name", DataType::Utf8, true),
        Field::new("fk_table_name", DataType::Utf8, false),
        Field::new("fk_column_name", DataType::Utf8, false),
        Field::new("key_sequence", DataType::Int32, false),
        Field::new("fk_key_name", DataType::Utf8, true),
        Field::new("pk_key_name", DataType::Utf8, true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
}
