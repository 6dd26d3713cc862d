//! GetCatalogs, GetDbSchemas and GetTables: the catalogs, schemas and
//! tables the policy lets the caller's session see. A listing scoped to a
//! catalog the policy hides entirely is recorded `denied`.

use arrow_flight::sql::{CommandGetCatalogs, CommandGetDbSchemas, CommandGetTables};
use meshgate_planner::datafusion::arrow::array::RecordBatch;
use meshgate_planner::datafusion::arrow::datatypes::SchemaRef;
use meshgate_planner::{QueryError, QueryResult};

use super::{built, Call, MetadataCommand};

impl MetadataCommand for CommandGetCatalogs {
    const NAME: &'static str = "GetCatalogs";

    fn schema(&self) -> SchemaRef {
        (*self).into_builder().schema()
    }

    async fn list(self, call: &mut Call<'_>) -> QueryResult<RecordBatch> {
        let session = call.session()?;
        let catalogs = session.catalog_names();
        let mut builder = self.into_builder();
        for catalog in &catalogs {
            builder.append(catalog);
        }
        call.record.objects = catalogs;
        built(builder.build())
    }
}

impl MetadataCommand for CommandGetDbSchemas {
    const NAME: &'static str = "GetDbSchemas";

    fn schema(&self) -> SchemaRef {
        self.clone().into_builder().schema()
    }

    async fn list(self, call: &mut Call<'_>) -> QueryResult<RecordBatch> {
        let session = call.session()?;
        call.record.sql = format!(
            "Flight SQL GetDbSchemas{}{}",
            filter("catalog", &self.catalog),
            filter("db_schema_filter_pattern", &self.db_schema_filter_pattern)
        );
        let scope = self.catalog.clone().filter(|c| !c.is_empty());
        let mut builder = self.into_builder();
        for catalog in session.catalog_names() {
            for schema in session.schema_names(&catalog) {
                builder.append(&catalog, schema);
            }
        }
        let batch = built(builder.build());
        if let Some(rule) = call
            .frontend()
            .hidden_catalog(&session, scope.as_deref())
            .await
        {
            call.deny(rule);
        }
        call.record.objects = scope.into_iter().collect();
        batch
    }
}

impl MetadataCommand for CommandGetTables {
    const NAME: &'static str = "GetTables";

    fn schema(&self) -> SchemaRef {
        self.clone().into_builder().schema()
    }

    async fn list(self, call: &mut Call<'_>) -> QueryResult<RecordBatch> {
        let session = call.session()?;
        call.record.sql = format!(
            "Flight SQL GetTables{}{}{}{}",
            filter("catalog", &self.catalog),
            filter("db_schema_filter_pattern", &self.db_schema_filter_pattern),
            filter("table_name_filter_pattern", &self.table_name_filter_pattern),
            if self.include_schema {
                " include_schema"
            } else {
                ""
            }
        );
        let catalog = self.catalog.clone().filter(|c| !c.is_empty());
        call.record.objects = catalog.clone().into_iter().collect();
        let tables = session.tables(catalog.as_deref()).await?;
        let mut builder = self.into_builder();
        for t in tables {
            // Each table's columns as a DoGet of it sends them.
            let columns = crate::flight_sql::as_sent(&t.columns);
            builder
                .append(&t.catalog, &t.schema, &t.table, t.table_type, &columns)
                .map_err(|e| QueryError::Internal(format!("cannot list table {}: {e}", t.table)))?;
        }
        let batch = built(builder.build());
        if let Some(rule) = call
            .frontend()
            .hidden_catalog(&session, catalog.as_deref())
            .await
        {
            call.deny(rule);
        }
        batch
    }
}

/// A filter of a listing command, for the record.
fn filter(name: &str, value: &Option<String>) -> String {
    match value {
        Some(v) => format!(" {name}={v:?}"),
        None => String::new(),
    }
}
