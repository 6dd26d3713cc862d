//! `connector = "mysql"`: a MySQL or MariaDB server as a catalog.
//!
//! MySQL has no schemas inside a database: its databases play that part. The
//! catalog's schemas are the server's databases the user can read, by
//! default only the configured `database` (widen with `include_schemas`).
//!
//! ```toml
//! [catalogs.shop]
//! connector = "mysql"
//! host = "mariadb.internal"
//! port = 3306                       # default 3306
//! user = "meshgate_reader"
//! password = "${SHOP_MYSQL_PASSWORD}"
//! database = "shop"
//! sslmode = "prefer"                # disable | prefer | require
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, TableProvider};
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion_federation::sql::SQLExecutor;
use datafusion_table_providers::mysql::pool::MySQLConnectionPool;
use datafusion_table_providers::mysql::sql_table::MySQLTable;
use datafusion_table_providers::sql::db_connection_pool::dbconnection::{get_schemas, get_tables};
use datafusion_table_providers::sql::db_connection_pool::DbConnectionPool;
use secrecy::SecretString;

use super::catalog_query::{query_batches, rows_of};
use super::comments::{descriptions, MYSQL_COMMENTS_SQL};
use super::federation::FunctionSet;
use super::keys::{key_columns, KeyColumn, MYSQL_KEYS_SQL};
use super::options::{NameFilter, SqlOptions};
use super::{SourceKind, SourcePool, SourceTable, SqlCatalog, SQL_SECRET_KEYS};
use crate::{parse_options, Connector, ConnectorContext, ConnectorError};

pub struct MySqlConnector;

#[async_trait]
impl Connector for MySqlConnector {
    fn kind(&self) -> &'static str {
        "mysql"
    }

    fn secret_keys(&self) -> &'static [&'static str] {
        SQL_SECRET_KEYS
    }

    fn validate(&self, options: &toml::Table) -> Result<(), ConnectorError> {
        let options = parse_options::<SqlOptions>(options)?;
        options.validate()?;
        if options.sslmode.starts_with("verify") {
            return Err(ConnectorError::option(
                "sslmode",
                "MySQL sources take disable, prefer or require (require verifies against sslrootcert when given)",
            ));
        }
        Ok(())
    }

    async fn build_catalog(
        &self,
        ctx: &ConnectorContext,
        name: &str,
        options: &toml::Table,
    ) -> Result<Arc<dyn CatalogProvider>, ConnectorError> {
        self.validate(options)?;
        let mut options = parse_options::<SqlOptions>(options)?;
        if options.include_schemas.is_empty() {
            options.include_schemas = vec![glob::Pattern::escape(&options.database)];
        }
        if let Some(cert) = &options.sslrootcert {
            options.sslrootcert = Some(ctx.base_dir.join(cert).to_string_lossy().into_owned());
        }
        Ok(SqlCatalog::open(name, Arc::new(MySql), options).await)
    }
}

struct MySql;

#[async_trait]
impl SourceKind for MySql {
    async fn connect(
        &self,
        _catalog: &str,
        o: &SqlOptions,
    ) -> Result<Arc<dyn SourcePool>, DataFusionError> {
        let mut params: HashMap<String, SecretString> = HashMap::new();
        let mut put = |k: &str, v: String| {
            params.insert(k.to_owned(), SecretString::from(v));
        };
        put("host", o.host.clone());
        put("tcp_port", o.port.unwrap_or(3306).to_string());
        put("user", o.user.clone());
        put("db", o.database.clone());
        put("pool_max", o.pool_size.to_string());
        let sslmode = match o.sslmode.as_str() {
            "disable" => "disabled",
            "prefer" => "preferred",
            _ => "required",
        };
        put("sslmode", sslmode.into());
        if let Some(password) = &o.password {
            put("pass", password.expose().to_owned());
        }
        if let Some(cert) = &o.sslrootcert {
            put("sslrootcert", cert.clone());
        }
        let pool = MySQLConnectionPool::new(params)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Arc::new(MyPool {
            pool: Arc::new(pool),
        }))
    }

    fn functions(&self) -> FunctionSet {
        FunctionSet::mysql()
    }
}

struct MyPool {
    pool: Arc<MySQLConnectionPool>,
}

/// `s` as a MySQL string literal.
fn string_literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

impl MyPool {
    /// The server's estimate of a table's rows (`TABLE_ROWS`; exact for
    /// MyISAM, sampled for InnoDB, unknown for views).
    async fn row_estimate(&self, schema: &str, table: &str) -> Option<usize> {
        let sql = format!(
            "SELECT CAST(TABLE_ROWS AS CHAR) FROM information_schema.TABLES \
              WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
            string_literal(schema),
            string_literal(table)
        );
        let batches = query_batches(self.pool.as_ref(), &sql).await.ok()?;
        let rows = rows_of::<1>(&batches).ok()?;
        rows.first()?[0].as_deref()?.parse().ok()
    }
}

#[async_trait]
impl SourcePool for MyPool {
    async fn list(&self, filter: &NameFilter) -> Result<Vec<(String, String)>, DataFusionError> {
        let schemas = get_schemas(
            self.pool
                .connect()
                .await
                .map_err(DataFusionError::External)?,
        )
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let mut out = Vec::new();
        for schema in schemas.into_iter().filter(|s| filter.schema(s)) {
            let conn = self
                .pool
                .connect()
                .await
                .map_err(DataFusionError::External)?;
            for table in get_tables(conn, &schema)
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?
            {
                out.push((schema.clone(), table));
            }
        }
        Ok(out)
    }

    async fn table_size(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Option<crate::TableSize>, DataFusionError> {
        let sql = format!(
            "SELECT CAST(DATA_LENGTH AS CHAR), CAST(DATA_LENGTH + INDEX_LENGTH AS CHAR) \
               FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
            string_literal(schema),
            string_literal(table)
        );
        let batches = query_batches(self.pool.as_ref(), &sql).await?;
        let rows = rows_of::<2>(&batches)?;
        Ok(rows.first().map(|row| {
            let bytes = |i: usize| row[i].as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
            crate::TableSize {
                table: bytes(0),
                total: bytes(1),
            }
        }))
    }

    async fn comments(&self) -> Result<Vec<crate::Description>, DataFusionError> {
        let batches = query_batches(self.pool.as_ref(), MYSQL_COMMENTS_SQL).await?;
        Ok(descriptions(rows_of(&batches)?))
    }

    async fn keys(&self) -> Result<Vec<KeyColumn>, DataFusionError> {
        let batches = query_batches(self.pool.as_ref(), MYSQL_KEYS_SQL).await?;
        Ok(key_columns(rows_of(&batches)?))
    }

    /// `SHOW DATABASES` on a pooled connection: the one statement the
    /// table-provider crate runs on a connection it hands out.
    async fn ping(&self) -> Result<(), DataFusionError> {
        let conn = self
            .pool
            .connect()
            .await
            .map_err(DataFusionError::External)?;
        get_schemas(conn)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(())
    }

    async fn table(&self, schema: &str, table: &str) -> DfResult<SourceTable> {
        let rows = self.row_estimate(schema, table).await;
        let table = MySQLTable::new(&self.pool, TableReference::partial(schema, table))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let table = Arc::new(table);
        Ok(SourceTable {
            provider: table.clone() as Arc<dyn TableProvider>,
            executor: table as Arc<dyn SQLExecutor>,
            reference: None,
            direct: None,
            rows,
        })
    }
}
