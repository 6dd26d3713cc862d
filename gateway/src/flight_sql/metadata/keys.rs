//! The key listings (GetPrimaryKeys, GetExportedKeys, GetImportedKeys,
//! GetCrossReference). They are always empty: federated sources expose no
//! enforced keys. Each is recorded with the tables it names, `denied` when
//! the policy hides one of them.

use std::sync::Arc;

use arrow_flight::sql::{
    CommandGetCrossReference, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
};
use meshgate_planner::datafusion::arrow::array::RecordBatch;
use meshgate_planner::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use meshgate_planner::policy::TableName;
use meshgate_planner::{QueryResult, QuerySession};

use super::{Call, MetadataCommand};

/// A key listing: which tables it concerns, resolved against the session's
/// defaults.
trait KeyListing {
    fn tables(&self, session: &QuerySession) -> Vec<TableName>;
}

/// The empty answer of a key listing naming `tables`, recorded.
async fn list_keys(
    call: &mut Call<'_>,
    name: &str,
    tables: impl KeyListing,
    schema: SchemaRef,
) -> QueryResult<RecordBatch> {
    let session = call.session()?;
    let tables = tables.tables(&session);
    let names: Vec<String> = tables.iter().map(ToString::to_string).collect();
    call.record.sql = format!("Flight SQL {name} {}", names.join(", "));
    call.record.objects = names;
    let hidden: Vec<String> = tables
        .iter()
        .filter_map(|t| call.frontend().hidden_table(call.identity(), t))
        .collect();
    if !hidden.is_empty() {
        call.deny(hidden.join("; "));
    }
    Ok(RecordBatch::new_empty(schema))
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
