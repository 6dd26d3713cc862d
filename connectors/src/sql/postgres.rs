//! `connector = "postgres"`: one PostgreSQL database as a catalog.
//!
//! ```toml
//! [catalogs.sales]
//! connector = "postgres"
//! host = "db.internal"
//! port = 5432                       # default 5432
//! user = "meshgate_reader"
//! password = "${SALES_PG_PASSWORD}" # never printed
//! database = "sales"
//! sslmode = "prefer"                # disable | prefer | require | verify-ca | verify-full
//! # sslrootcert = "ca.pem"
//! pool_size = 10
//! connect_timeout_secs = 5
//! metadata_ttl_secs = 60
//! include_schemas = ["public", "sales_*"]
//! exclude_tables = ["*_staging"]
//! ```
//!
//! Types: int2/4/8, float4/8, numeric(p,s) (precision kept), text/varchar/
//! char, bool, date, time, timestamp, timestamptz (UTC), interval, uuid,
//! json/jsonb (text), bytea, arrays (lists), enums (text). A column whose type
//! has no mapping is left out of the table with a warning in the log; the
//! table and the catalog stay usable.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, TableProvider};
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::sql::unparser::dialect::PostgreSqlDialect;
use datafusion_federation::sql::SQLExecutor;
use datafusion_table_providers::postgres::conn::PostgresConnection;
use datafusion_table_providers::postgres::conn::PostgresPooledConnection;
use datafusion_table_providers::postgres::pool::PostgresConnectionPool;
use datafusion_table_providers::sql::db_connection_pool::dbconnection::{
    AsyncDbConnection, DbConnection, TableSchemas,
};
use datafusion_table_providers::sql::db_connection_pool::{DbConnectionPool, JoinPushDown};
use datafusion_table_providers::sql::sql_provider_datafusion::SqlTable;
use datafusion_table_providers::UnsupportedTypeAction;
use secrecy::SecretString;
use tokio_postgres::types::ToSql;

use super::comments::{descriptions, POSTGRES_COMMENTS_SQL};
use super::federation::FunctionSet;
use super::keys::{key_columns, KeyColumn, POSTGRES_KEYS_SQL};
use super::options::{NameFilter, SqlOptions};
use super::postgres_direct::PgDirect;
use super::{SourceKind, SourcePool, SourceTable, SqlCatalog, SQL_SECRET_KEYS};
use crate::{parse_options, Connector, ConnectorContext, ConnectorError};

type Param = &'static (dyn ToSql + Sync);
type DynPool = dyn DbConnectionPool<PostgresPooledConnection, Param> + Send + Sync;

pub struct PostgresConnector;

#[async_trait]
impl Connector for PostgresConnector {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn secret_keys(&self) -> &'static [&'static str] {
        SQL_SECRET_KEYS
    }

    fn validate(&self, options: &toml::Table) -> Result<(), ConnectorError> {
        parse_options::<SqlOptions>(options)?.validate()
    }

    async fn build_catalog(
        &self,
        ctx: &ConnectorContext,
        name: &str,
        options: &toml::Table,
    ) -> Result<Arc<dyn CatalogProvider>, ConnectorError> {
        let mut options = parse_options::<SqlOptions>(options)?;
        options.validate()?;
        if let Some(cert) = &options.sslrootcert {
            options.sslrootcert = Some(ctx.base_dir.join(cert).to_string_lossy().into_owned());
        }
        Ok(SqlCatalog::open(name, Arc::new(Postgres), options).await)
    }
}

struct Postgres;

#[async_trait]
impl SourceKind for Postgres {
    async fn connect(
        &self,
        catalog: &str,
        o: &SqlOptions,
    ) -> Result<Arc<dyn SourcePool>, DataFusionError> {
        let mut params: HashMap<String, SecretString> = HashMap::new();
        let mut put = |k: &str, v: String| {
            params.insert(k.to_owned(), SecretString::from(v));
        };
        put("host", o.host.clone());
        put("port", o.port.unwrap_or(5432).to_string());
        put("user", o.user.clone());
        put("db", o.database.clone());
        put("sslmode", o.sslmode.clone());
        put("connection_pool_size", o.pool_size.to_string());
        put("application_name", "meshgate".into());
        if let Some(password) = &o.password {
            put("pass", password.expose().to_owned());
        }
        if let Some(cert) = &o.sslrootcert {
            put("sslrootcert", cert.clone());
        }
        let pool = PostgresConnectionPool::new(params)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let pool = Arc::new(pool);
        let timeout = o.connect_timeout();
        Ok(Arc::new(PgPool {
            strict: Arc::new(TimedPool {
                inner: pool.clone(),
                timeout,
                action: UnsupportedTypeAction::String,
                schemas: None,
            }),
            lenient: Arc::new(TimedPool {
                inner: pool.clone(),
                timeout,
                action: UnsupportedTypeAction::Warn,
                schemas: None,
            }),
            pool,
            timeout,
            direct: Arc::new(
                PgDirect::new(catalog, o).map_err(|e| DataFusionError::External(Box::new(e)))?,
            ),
        }))
    }

    fn functions(&self) -> FunctionSet {
        FunctionSet::postgres()
    }
}

/// The table-provider crate's pool, with a bound on how long a query waits
/// for a connection (its own pool waits 30 s) and a chosen way of treating
/// column types it cannot map.
struct TimedPool {
    inner: Arc<PostgresConnectionPool>,
    timeout: Duration,
    action: UnsupportedTypeAction,
    /// Schemas to use instead of asking the source (see `PgPool::table`).
    schemas: Option<Arc<TableSchemas>>,
}

#[async_trait]
impl DbConnectionPool<PostgresPooledConnection, Param> for TimedPool {
    async fn connect(
        &self,
    ) -> Result<
        Box<dyn DbConnection<PostgresPooledConnection, Param>>,
        Box<dyn std::error::Error + Send + Sync>,
    > {
        match tokio::time::timeout(self.timeout, self.inner.connect_direct()).await {
            Ok(Ok(conn)) => match &self.schemas {
                Some(schemas) => Ok(Box::new(PostgresConnection::new_with_schemas(
                    conn.conn,
                    schemas.clone(),
                ))),
                None => Ok(Box::new(conn.with_unsupported_type_action(self.action))),
            },
            Ok(Err(e)) => Err(Box::new(e)),
            Err(_) => Err(format!(
                "no connection within {} s (is the source up?)",
                self.timeout.as_secs()
            )
            .into()),
        }
    }

    fn join_push_down(&self) -> JoinPushDown {
        self.inner.join_push_down()
    }
}

struct PgPool {
    /// Maps jsonb and the known types, fails on others.
    strict: Arc<DynPool>,
    /// Leaves columns of unknown types (and jsonb) out, with a warning.
    lenient: Arc<DynPool>,
    pool: Arc<PostgresConnectionPool>,
    timeout: Duration,
    /// Whole statements with parameters, prepared once per connection.
    direct: Arc<PgDirect>,
}

impl PgPool {
    /// Run one catalog query on a pooled connection.
    async fn query(&self, sql: &str) -> Result<Vec<tokio_postgres::Row>, DataFusionError> {
        self.query_with(sql, &[]).await
    }

    /// The planner's estimate of a table's rows (`reltuples`; unknown for a
    /// table never analysed or vacuumed).
    async fn row_estimate(&self, schema: &str, table: &str) -> Option<usize> {
        let rows = self
            .query_with(
                "SELECT c.reltuples::float8 FROM pg_class c
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relname = $2",
                &[&schema, &table],
            )
            .await
            .ok()?;
        let estimate: f64 = rows.first()?.try_get(0).ok()?;
        (estimate >= 0.0).then_some(estimate as usize)
    }

    async fn query_with(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, DataFusionError> {
        let conn = self
            .strict
            .connect()
            .await
            .map_err(DataFusionError::External)?;
        let conn = conn
            .as_any()
            .downcast_ref::<PostgresConnection>()
            .ok_or_else(|| DataFusionError::Internal("unexpected connection type".into()))?;
        conn.conn
            .query(sql, params)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))
    }

    /// The schema of a table with columns of unmapped types: the mapped
    /// columns, jsonb as text, in the table's column order.
    async fn partial_schema(&self, reference: &TableReference) -> DfResult<SchemaRef> {
        let mapped = SqlTable::new("postgres", &self.lenient, reference.clone())
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .schema();
        let conn = self
            .pool
            .connect_direct()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let columns = conn
            .conn
            .query(
                "SELECT column_name::text, udt_name::text, is_nullable = 'YES' FROM information_schema.columns
                  WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                &[&reference.schema().unwrap_or("public"), &reference.table()],
            )
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let mut fields = Vec::new();
        for row in columns {
            let (name, udt, nullable): (String, String, bool) =
                (row.get(0), row.get(1), row.get(2));
            if let Ok(field) = mapped.field_with_name(&name) {
                fields.push(field.clone());
            } else if udt == "jsonb" {
                fields.push(Field::new(name, DataType::Utf8, nullable));
            } else {
                tracing::warn!(table = %reference, column = %name, r#type = %udt, "column type has no Arrow mapping; the column is left out");
            }
        }
        Ok(Arc::new(Schema::new(fields)))
    }
}

/// Tables, views, foreign tables and materialized views the user can read.
const LIST_SQL: &str = "\
SELECT table_schema::text, table_name::text FROM information_schema.tables
 WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
UNION
SELECT schemaname::text, matviewname::text FROM pg_matviews
 WHERE has_table_privilege(format('%I.%I', schemaname, matviewname), 'SELECT')";

#[async_trait]
impl SourcePool for PgPool {
    async fn list(&self, _: &NameFilter) -> Result<Vec<(String, String)>, DataFusionError> {
        let rows = self.query(LIST_SQL).await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect())
    }

    async fn table_size(&self, schema: &str, table: &str) -> DfResult<Option<crate::TableSize>> {
        let rows = self
            .query_with(
                "SELECT pg_table_size(c.oid), pg_total_relation_size(c.oid) FROM pg_class c
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relname = $2",
                &[&schema, &table],
            )
            .await?;
        Ok(rows.first().map(|row| {
            let bytes = |i| row.get::<_, Option<i64>>(i).unwrap_or(0).max(0) as u64;
            crate::TableSize {
                table: bytes(0),
                total: bytes(1),
            }
        }))
    }

    async fn comments(&self) -> Result<Vec<crate::Description>, DataFusionError> {
        let rows = self.query(POSTGRES_COMMENTS_SQL).await?;
        Ok(descriptions(rows.iter().map(|r| {
            std::array::from_fn(|i| r.get::<_, Option<String>>(i))
        })))
    }

    async fn keys(&self) -> Result<Vec<KeyColumn>, DataFusionError> {
        let rows = self.query(POSTGRES_KEYS_SQL).await?;
        Ok(key_columns(rows.iter().map(|r| {
            std::array::from_fn(|i| {
                if i == 5 {
                    r.get::<_, Option<i32>>(i).map(|n| n.to_string())
                } else {
                    r.get::<_, Option<String>>(i)
                }
            })
        })))
    }

    async fn ping(&self) -> Result<(), DataFusionError> {
        let conn = self
            .pool
            .connect_direct()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        conn.conn
            .simple_query("SELECT 1")
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(())
    }

    async fn table(&self, schema: &str, table: &str) -> DfResult<SourceTable> {
        let rows = self.row_estimate(schema, table).await;
        let reference = TableReference::partial(schema, table);
        let table = match SqlTable::new("postgres", &self.strict, reference.clone()).await {
            Ok(t) => t,
            Err(e) if e.to_string().to_ascii_lowercase().contains("unsupported") => {
                let schema = self.partial_schema(&reference).await?;
                let pinned: Arc<DynPool> = Arc::new(TimedPool {
                    inner: self.pool.clone(),
                    timeout: self.timeout,
                    action: UnsupportedTypeAction::Warn,
                    schemas: Some(Arc::new(TableSchemas::from([(reference.clone(), schema)]))),
                });
                SqlTable::new("postgres", &pinned, reference)
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))?
            }
            Err(e) => return Err(DataFusionError::External(Box::new(e))),
        };
        let table = Arc::new(table.with_dialect(Arc::new(PostgreSqlDialect {})));
        Ok(SourceTable {
            provider: table.clone() as Arc<dyn TableProvider>,
            executor: table as Arc<dyn SQLExecutor>,
            reference: None,
            direct: Some(self.direct.clone()),
            rows,
        })
    }
}
