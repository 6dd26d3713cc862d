//! Direct statements on PostgreSQL (see `direct.rs`): a pool of its own
//! whose connections each keep the statements they prepared.
//!
//! One execution is one round trip: Bind and Execute of a statement the
//! connection prepared the first time it ran that SQL (with the parameter
//! types fixed by the plan). A statement without parameters that the
//! connection has not prepared (a literal query from the simple protocol,
//! rarely the same twice) is sent unnamed, Parse to Execute in the same
//! round trip, and not kept. Connections are not probed on check-out;
//! a closed one is dropped by the pool. The pool opens at most the
//! catalog's `pool_size` connections, lazily, beside the table-provider
//! pool used by the rest of federation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion_table_providers::sql::arrow_sql_gen::postgres::rows_to_arrow;
use futures::{StreamExt, TryStreamExt};
use postgres_native_tls::MakeTlsConnector;
use tokio::sync::OnceCell;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, Statement};

use super::direct::{conform, DirectRunner};
use super::options::SqlOptions;
use crate::ConnectorError;

/// Statements one connection keeps; past this the oldest are let go.
const STATEMENTS_PER_CONNECTION: usize = 256;
/// Rows per Arrow batch.
const BATCH_ROWS: usize = 4096;

pub(crate) struct PgDirect(Arc<Shared>);

struct Shared {
    catalog: String,
    manager: Manager,
    size: u32,
    timeout: Duration,
    pool: OnceCell<bb8::Pool<Manager>>,
}

impl PgDirect {
    pub(crate) fn new(catalog: &str, o: &SqlOptions) -> Result<Self, ConnectorError> {
        let mut config = Config::new();
        config
            .host(&o.host)
            .port(o.port.unwrap_or(5432))
            .user(&o.user)
            .dbname(&o.database)
            .application_name("meshgate")
            .connect_timeout(o.connect_timeout())
            .ssl_mode(match o.sslmode.as_str() {
                "disable" => tokio_postgres::config::SslMode::Disable,
                "prefer" => tokio_postgres::config::SslMode::Prefer,
                _ => tokio_postgres::config::SslMode::Require,
            });
        if let Some(password) = &o.password {
            config.password(password.expose());
        }
        let tls = tls_connector(&o.sslmode, o.sslrootcert.as_deref()).map_err(|message| {
            ConnectorError::Source {
                catalog: catalog.to_owned(),
                message,
            }
        })?;
        Ok(Self(Arc::new(Shared {
            catalog: catalog.to_owned(),
            manager: Manager { config, tls },
            size: o.pool_size.max(1),
            timeout: o.connect_timeout(),
            pool: OnceCell::new(),
        })))
    }
}

impl Shared {
    async fn pool(&self) -> &bb8::Pool<Manager> {
        self.pool
            .get_or_init(|| async {
                bb8::Pool::builder()
                    .max_size(self.size)
                    .test_on_check_out(false)
                    .connection_timeout(self.timeout)
                    .build_unchecked(self.manager.clone())
            })
            .await
    }
}

/// The TLS connector for `sslmode` as libpq reads it: `require` and
/// `prefer` encrypt without checking the certificate, `verify-ca` checks
/// the chain, `verify-full` also the host name.
fn tls_connector(sslmode: &str, rootcert: Option<&str>) -> Result<MakeTlsConnector, String> {
    let mut builder = native_tls::TlsConnector::builder();
    match sslmode {
        "verify-full" => {}
        "verify-ca" => {
            builder.danger_accept_invalid_hostnames(true);
        }
        _ => {
            builder
                .danger_accept_invalid_certs(true)
                .danger_accept_invalid_hostnames(true);
        }
    }
    if let Some(path) = rootcert {
        let pem = std::fs::read(path).map_err(|e| format!("sslrootcert {path}: {e}"))?;
        let cert = native_tls::Certificate::from_pem(&pem)
            .map_err(|e| format!("sslrootcert {path}: {e}"))?;
        builder.add_root_certificate(cert);
    }
    let connector = builder.build().map_err(|e| e.to_string())?;
    Ok(MakeTlsConnector::new(connector))
}

#[derive(Clone)]
struct Manager {
    config: Config,
    tls: MakeTlsConnector,
}

struct Conn {
    client: Client,
    statements: HashMap<Arc<str>, Statement>,
}

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = tokio_postgres::Error;

    async fn connect(&self) -> Result<Conn, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(self.tls.clone()).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "direct statement connection closed");
            }
        });
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }

    async fn is_valid(&self, conn: &mut Conn) -> Result<(), tokio_postgres::Error> {
        conn.client.simple_query("").await.map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed()
    }
}

/// The PostgreSQL type a parameter of `ty` is prepared with.
fn pg_type(ty: &DataType) -> Option<Type> {
    Some(match ty {
        DataType::Boolean => Type::BOOL,
        DataType::Int16 => Type::INT2,
        DataType::Int32 => Type::INT4,
        DataType::Int64 => Type::INT8,
        DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Type::TEXT,
        DataType::Date32 => Type::DATE,
        DataType::Timestamp(TimeUnit::Microsecond, None) => Type::TIMESTAMP,
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => Type::TIMESTAMPTZ,
        _ => return None,
    })
}

type Param = Box<dyn ToSql + Send + Sync>;

/// `value` as the Rust value tokio-postgres sends for its type.
fn to_param(value: ScalarValue) -> DfResult<Param> {
    Ok(match value {
        ScalarValue::Boolean(v) => Box::new(v),
        ScalarValue::Int16(v) => Box::new(v),
        ScalarValue::Int32(v) => Box::new(v),
        ScalarValue::Int64(v) => Box::new(v),
        ScalarValue::Float32(v) => Box::new(v),
        ScalarValue::Float64(v) => Box::new(v),
        ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => Box::new(v),
        ScalarValue::Date32(v) => Box::new(v.and_then(|d| {
            DateTime::UNIX_EPOCH
                .date_naive()
                .checked_add_signed(chrono::Duration::days(i64::from(d)))
        })) as Box<Option<NaiveDate>>,
        ScalarValue::TimestampMicrosecond(v, None) => Box::new(
            v.and_then(DateTime::from_timestamp_micros)
                .map(|t| t.naive_utc()),
        ) as Box<Option<NaiveDateTime>>,
        ScalarValue::TimestampMicrosecond(v, Some(_)) => {
            Box::new(v.and_then(DateTime::from_timestamp_micros)) as Box<Option<DateTime<Utc>>>
        }
        other => {
            return Err(DataFusionError::NotImplemented(format!(
                "a parameter of type {} in a direct statement",
                other.data_type()
            )))
        }
    })
}

impl DirectRunner for PgDirect {
    fn supports(&self, ty: &DataType) -> bool {
        pg_type(ty).is_some()
    }

    fn run(
        &self,
        sql: Arc<str>,
        types: Arc<[DataType]>,
        params: Vec<ScalarValue>,
        schema: SchemaRef,
    ) -> DfResult<SendableRecordBatchStream> {
        let params = params
            .into_iter()
            .map(to_param)
            .collect::<DfResult<Vec<_>>>()?;
        let shared = self.0.clone();
        let target = schema.clone();
        let batches = futures::stream::once(async move {
            let catalog = shared.catalog.clone();
            let error = move |e: &(dyn std::error::Error + 'static)| {
                DataFusionError::External(Box::new(ConnectorError::source(&catalog, e)))
            };
            let mut conn = shared
                .pool()
                .await
                .get_owned()
                .await
                .map_err(|e| error(&e))?;
            let prepared = conn.statements.get(&sql).cloned();
            if prepared.is_none() && types.is_empty() {
                let no_params: Vec<(&(dyn ToSql + Sync), Type)> = Vec::new();
                let rows = conn
                    .client
                    .query_typed_raw(&sql, no_params)
                    .await
                    .map_err(|e| error(&e))?;
                return Ok(batches_of(rows, conn, target, error).boxed());
            }
            let statement = match prepared {
                Some(statement) => statement,
                None => {
                    let pg_types: Vec<Type> = types.iter().filter_map(pg_type).collect();
                    let statement = conn
                        .client
                        .prepare_typed(&sql, &pg_types)
                        .await
                        .map_err(|e| error(&e))?;
                    if conn.statements.len() >= STATEMENTS_PER_CONNECTION {
                        conn.statements.clear();
                    }
                    conn.statements.insert(sql.clone(), statement.clone());
                    statement
                }
            };
            let rows = conn
                .client
                .query_raw(
                    &statement,
                    params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)),
                )
                .await
                .map_err(|e| {
                    // A statement the source no longer accepts (its table
                    // changed) is prepared again next time.
                    conn.statements.remove(&sql);
                    error(&e)
                })?;
            Ok::<_, DataFusionError>(batches_of(rows, conn, target, error).boxed())
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

/// `rows` as Arrow batches of `target`; `conn` goes back to the pool when
/// the rows are read.
fn batches_of(
    rows: tokio_postgres::RowStream,
    conn: bb8::PooledConnection<'static, Manager>,
    target: SchemaRef,
    error: impl Fn(&(dyn std::error::Error + 'static)) -> DataFusionError + Send + 'static,
) -> impl futures::Stream<Item = DfResult<datafusion::arrow::array::RecordBatch>> + Send {
    let schema = Some(target.clone());
    row_chunks(rows).map(move |chunk| {
        let _held = &conn;
        let rows = chunk.map_err(|e| error(&e))?;
        let batch = rows_to_arrow(&rows, &schema).map_err(|e| error(&e))?;
        conform(batch, &target, "PostgreSQL")
    })
}

/// `rows` in chunks of up to [`BATCH_ROWS`], each grown as its rows come
/// (a point lookup's one row does not allocate room for 4,096, as
/// `StreamExt::chunks` would); an error ends the stream.
fn row_chunks(
    rows: tokio_postgres::RowStream,
) -> impl futures::Stream<Item = Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>> + Send {
    futures::stream::unfold(Some(Box::pin(rows)), |rows| async move {
        let mut rows = rows?;
        let mut chunk = Vec::new();
        while let Some(row) = rows.next().await {
            match row {
                Ok(row) => chunk.push(row),
                Err(e) => return Some((Err(e), None)),
            }
            if chunk.len() == BATCH_ROWS {
                return Some((Ok(chunk), Some(rows)));
            }
        }
        (!chunk.is_empty()).then_some((Ok(chunk), None))
    })
}
