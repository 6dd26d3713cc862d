//! `connector = "sqlite"`: a SQLite database file as a catalog, read-only.
//!
//! The file is opened with SQLite's own read-only mode (`mode=ro`): meshgate
//! never writes to it, never converts its journal, and a mistyped path is an
//! error instead of a new empty database. Its tables and views appear in
//! schema `main`; single-source sub-plans are pushed down as SQLite SQL, as
//! for the other SQL sources. Column types come from the declared types
//! (SQLite's affinity rules: `INT…` is bigint, `REAL`/`FLOA…`/`DOUB…` double,
//! `BOOL…` boolean, `BLOB` bytea, anything else text), not from the first
//! row, so an empty table or a NULL in the first row still has its types.
//!
//! ```toml
//! [catalogs.inventory]
//! connector = "sqlite"
//! path = "data/inventory.db"        # relative to the config file
//! busy_timeout_secs = 5             # wait this long for a writer's lock
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{CatalogProvider, TableProvider};
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion_federation::sql::SQLExecutor;
use datafusion_table_providers::sql::db_connection_pool::{JoinPushDown, Mode};
use datafusion_table_providers::sqlite::pool::SqliteConnectionPool;
use datafusion_table_providers::sqlite::sql_table::SQLiteTable;
use datafusion_table_providers::sqlite::DynSqliteConnectionPool;
use serde::Deserialize;

use super::catalog_query::{query_batches, rows_of};
use super::federation::FunctionSet;
use super::keys::KeyColumn;
use super::options::{
    default_connect_timeout, default_metadata_ttl, default_true, NameFilter, SqlOptions,
};
use super::{SourceKind, SourcePool, SourceTable, SqlCatalog};
use crate::{parse_options, Connector, ConnectorContext, ConnectorError};

/// The one schema of a SQLite database, as SQLite names it.
const SCHEMA: &str = "main";

pub struct SqliteConnector;

/// `[catalogs.NAME]` options of a `sqlite` catalog.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqliteOptions {
    /// The database file, relative to the configuration file's directory.
    path: String,
    #[serde(default = "default_connect_timeout")]
    busy_timeout_secs: u64,
    #[serde(default = "default_metadata_ttl")]
    metadata_ttl_secs: u64,
    #[serde(default)]
    include_tables: Vec<String>,
    #[serde(default)]
    exclude_tables: Vec<String>,
    #[serde(default = "default_true")]
    pushdown: bool,
    #[allow(dead_code)]
    description: Option<String>,
}

impl SqliteOptions {
    /// The options every SQL catalog shares, for a file at `path`.
    fn sql_options(&self, path: String) -> SqlOptions {
        SqlOptions {
            connect_timeout_secs: self.busy_timeout_secs,
            metadata_ttl_secs: self.metadata_ttl_secs,
            include_schemas: vec![SCHEMA.into()],
            include_tables: self.include_tables.clone(),
            exclude_tables: self.exclude_tables.clone(),
            pushdown: self.pushdown,
            ..SqlOptions::named(path, SCHEMA.into())
        }
    }
}

#[async_trait]
impl Connector for SqliteConnector {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    /// A file path holds no secret.
    fn secret_keys(&self) -> &'static [&'static str] {
        &[]
    }

    fn validate(&self, options: &toml::Table) -> Result<(), ConnectorError> {
        let options = parse_options::<SqliteOptions>(options)?;
        if options.path.trim().is_empty() {
            return Err(ConnectorError::option("path", "must not be empty"));
        }
        if options.busy_timeout_secs == 0 {
            return Err(ConnectorError::option(
                "busy_timeout_secs",
                "must be at least 1",
            ));
        }
        options.sql_options(options.path.clone()).validate()
    }

    async fn build_catalog(
        &self,
        ctx: &ConnectorContext,
        name: &str,
        options: &toml::Table,
    ) -> Result<Arc<dyn CatalogProvider>, ConnectorError> {
        self.validate(options)?;
        let options = parse_options::<SqliteOptions>(options)?;
        let path = ctx.base_dir.join(&options.path);
        if !path.is_file() {
            return Err(ConnectorError::option(
                "path",
                format!("{} is not a readable SQLite file", path.display()),
            ));
        }
        let path = path.to_string_lossy().into_owned();
        Ok(SqlCatalog::open(name, Arc::new(Sqlite), options.sql_options(path)).await)
    }
}

struct Sqlite;

#[async_trait]
impl SourceKind for Sqlite {
    async fn connect(
        &self,
        _catalog: &str,
        o: &SqlOptions,
    ) -> Result<Arc<dyn SourcePool>, DataFusionError> {
        // A URI so that SQLite opens the file read-only and never creates it.
        let escaped = o
            .host
            .replace('%', "%25")
            .replace('?', "%3f")
            .replace('#', "%23");
        let pool = SqliteConnectionPool::new(
            &format!("file:{escaped}?mode=ro"),
            Mode::File,
            JoinPushDown::AllowedFor(format!("sqlite:{}", o.host)),
            Vec::new(),
            o.connect_timeout(),
        )
        .await
        .map_err(DataFusionError::External)?;
        let pool = LitePool {
            pool: Arc::new(pool),
        };
        pool.query(&format!(
            "PRAGMA busy_timeout = {}",
            o.connect_timeout().as_millis()
        ))
        .await?;
        Ok(Arc::new(pool))
    }

    fn functions(&self) -> FunctionSet {
        FunctionSet::sqlite()
    }
}

struct LitePool {
    pool: Arc<DynSqliteConnectionPool>,
}

impl LitePool {
    /// Run one catalog query, all rows as Arrow.
    async fn query(
        &self,
        sql: &str,
    ) -> Result<Vec<datafusion::arrow::array::RecordBatch>, DataFusionError> {
        query_batches(self.pool.as_ref(), sql).await
    }

    /// The table's columns with the types they were declared with.
    async fn declared_schema(&self, table: &str) -> DfResult<Schema> {
        let batches = self
            .query(&format!(
                "SELECT name, type FROM pragma_table_info('{}')",
                table.replace('\'', "''")
            ))
            .await?;
        let fields: Vec<Field> = rows_of::<2>(&batches)?
            .into_iter()
            .filter_map(|[name, declared]| {
                Some(Field::new(
                    name?,
                    affinity(declared.as_deref().unwrap_or("")),
                    true,
                ))
            })
            .collect();
        if fields.is_empty() {
            return Err(DataFusionError::Plan(format!(
                "table {table} has no columns"
            )));
        }
        Ok(Schema::new(fields))
    }
}

/// The Arrow type of a declared SQLite column type, by SQLite's affinity
/// rules (<https://sqlite.org/datatype3.html>, 3.1), with booleans apart.
fn affinity(declared: &str) -> DataType {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        DataType::Int64
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        DataType::Utf8
    } else if t.contains("BLOB") {
        DataType::Binary
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        DataType::Float64
    } else if t.starts_with("BOOL") {
        DataType::Boolean
    } else if t.starts_with("NUMERIC") || t.starts_with("DECIMAL") {
        DataType::Float64
    } else {
        // No type, dates and anything else: SQLite keeps what it was given;
        // text shows every value as written.
        DataType::Utf8
    }
}

#[async_trait]
impl SourcePool for LitePool {
    async fn list(&self, _filter: &NameFilter) -> Result<Vec<(String, String)>, DataFusionError> {
        let batches = self
            .query(
                "SELECT 'main', name FROM sqlite_master \
                 WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                 ORDER BY name",
            )
            .await?;
        Ok(rows_of::<2>(&batches)?
            .into_iter()
            .filter_map(|[schema, table]| Some((schema?, table?)))
            .collect())
    }

    async fn ping(&self) -> Result<(), DataFusionError> {
        self.query("SELECT 1").await.map(drop)
    }

    async fn keys(&self) -> Result<Vec<KeyColumn>, DataFusionError> {
        Ok(Vec::new())
    }

    /// SQLite keeps no comments.
    async fn comments(&self) -> Result<Vec<crate::Description>, DataFusionError> {
        Ok(Vec::new())
    }

    async fn table(&self, schema: &str, table: &str) -> DfResult<SourceTable> {
        let declared = self.declared_schema(table).await?;
        let table = Arc::new(SQLiteTable::new_with_schema(
            &self.pool,
            Arc::new(declared),
            TableReference::partial(schema, table),
        ));
        Ok(SourceTable {
            provider: table.clone() as Arc<dyn TableProvider>,
            executor: table as Arc<dyn SQLExecutor>,
            reference: None,
            direct: None,
            rows: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_follow_sqlite_affinity() {
        for (declared, expected) in [
            ("INTEGER", DataType::Int64),
            ("bigint", DataType::Int64),
            ("VARCHAR(20)", DataType::Utf8),
            ("TEXT", DataType::Utf8),
            ("REAL", DataType::Float64),
            ("DOUBLE PRECISION", DataType::Float64),
            ("BLOB", DataType::Binary),
            ("BOOLEAN", DataType::Boolean),
            ("DATE", DataType::Utf8),
            ("", DataType::Utf8),
        ] {
            assert_eq!(affinity(declared), expected, "{declared}");
        }
    }
}
