//! `connector = "flightsql"`: a catalog of another Flight SQL server —
//! another meshgate (a domain's own gateway), or any server that speaks
//! Flight SQL.
//!
//! The remote's tables and their schemas come from GetTables (with
//! `include_schema`) for the one remote catalog this catalog exposes.
//! Queries reach it as SQL: the largest sub-plan that reads only this
//! catalog (filters, projections, limits, aggregates, joins between its
//! tables) is unparsed to SQL with three-part names and executed there,
//! as far as the server's GetSqlInfo says it supports (see
//! `flightsql_info`);
//! the endpoints of the answer are fetched in parallel and the batches
//! stream back as they arrive.
//!
//! Identity: the gateway signs in as one service account (`user` and
//! `password`, or a bearer `token`). The remote applies its own policy to
//! that account; this gateway applies its policy to the end user on top,
//! so a user sees at most what both allow. End users' identities are not
//! forwarded.
//!
//! ```toml
//! [catalogs.claims_domain]
//! connector = "flightsql"
//! endpoint = "https://claims-gateway.internal:50051"
//! catalog = "claims"                # the remote catalog to expose
//! user = "mesh_reader"
//! password = "${CLAIMS_READER_PASSWORD}"
//! # token = "${CLAIMS_TOKEN}"       # instead of user/password
//! # ca_cert = "claims-ca.pem"       # to verify an https endpoint
//! # allow_http = true               # an http:// endpoint: credentials in cleartext
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::CommandGetTables;
use arrow_flight::FlightInfo;
use async_trait::async_trait;
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::convert::try_schema_from_ipc_buffer;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{CatalogProvider, TableProvider};
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::sql::unparser::dialect::{CustomDialectBuilder, Dialect};

use super::flightsql_info::RemoteSupport;
use datafusion_federation::sql::SQLExecutor;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::federation::FunctionSet;
use super::keys::KeyColumn;
use super::options::{
    default_connect_timeout, default_metadata_ttl, default_true, NameFilter, SqlOptions,
};
use super::{SourceKind, SourcePool, SourceTable, SqlCatalog};
use crate::{parse_options, Connector, ConnectorContext, ConnectorError};

pub struct FlightSqlConnector;

/// How many endpoints of one answer are fetched at the same time (a remote
/// may list many).
const PARALLEL_ENDPOINTS: usize = 8;

/// `[catalogs.NAME]` options of a `flightsql` catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlightOptions {
    /// `http://host:port` or `https://host:port`.
    endpoint: String,
    /// The remote catalog this catalog exposes.
    catalog: String,
    user: Option<String>,
    password: Option<crate::secrets::Secret>,
    token: Option<crate::secrets::Secret>,
    /// PEM root certificates for an `https` endpoint (system roots otherwise).
    ca_cert: Option<String>,
    /// Send the service account's credentials over `http://` (loopback or a
    /// protected network only).
    #[serde(default)]
    allow_http: bool,
    #[serde(default = "default_connect_timeout")]
    connect_timeout_secs: u64,
    #[serde(default = "default_metadata_ttl")]
    metadata_ttl_secs: u64,
    #[serde(default)]
    include_schemas: Vec<String>,
    #[serde(default)]
    exclude_schemas: Vec<String>,
    #[serde(default)]
    include_tables: Vec<String>,
    #[serde(default)]
    exclude_tables: Vec<String>,
    #[serde(default = "default_true")]
    pushdown: bool,
    #[allow(dead_code)]
    description: Option<String>,
}

/// The option keys of a `flightsql` catalog that hold secrets.
const SECRET_KEYS: &[&str] = &["password", "token"];

impl FlightOptions {
    fn sql_options(&self) -> SqlOptions {
        SqlOptions {
            user: self.user.clone().unwrap_or_default(),
            connect_timeout_secs: self.connect_timeout_secs,
            metadata_ttl_secs: self.metadata_ttl_secs,
            include_schemas: self.include_schemas.clone(),
            exclude_schemas: self.exclude_schemas.clone(),
            include_tables: self.include_tables.clone(),
            exclude_tables: self.exclude_tables.clone(),
            pushdown: self.pushdown,
            ..SqlOptions::named(self.endpoint.clone(), self.catalog.clone())
        }
    }
}

#[async_trait]
impl Connector for FlightSqlConnector {
    fn kind(&self) -> &'static str {
        "flightsql"
    }

    fn secret_keys(&self) -> &'static [&'static str] {
        SECRET_KEYS
    }

    fn validate(&self, options: &toml::Table) -> Result<(), ConnectorError> {
        let o = parse_options::<FlightOptions>(options)?;
        if !(o.endpoint.starts_with("http://") || o.endpoint.starts_with("https://")) {
            return Err(ConnectorError::option(
                "endpoint",
                "must be an http:// or https:// URL",
            ));
        }
        if o.endpoint.starts_with("http://") && !o.allow_http {
            return Err(ConnectorError::option(
                "endpoint",
                "http:// sends the service account's credentials in cleartext: use https://, \
                 or set allow_http = true (loopback or a protected network only)",
            ));
        }
        if o.catalog.trim().is_empty() {
            return Err(ConnectorError::option("catalog", "must not be empty"));
        }
        match (&o.user, &o.password, &o.token) {
            (Some(_), Some(_), None) | (None, None, Some(_)) => {}
            _ => {
                return Err(ConnectorError::option(
                    "user",
                    "give `user` and `password`, or `token`, for the service account",
                ))
            }
        }
        if o.connect_timeout_secs == 0 {
            return Err(ConnectorError::option(
                "connect_timeout_secs",
                "must be at least 1",
            ));
        }
        o.sql_options().validate()
    }

    async fn build_catalog(
        &self,
        ctx: &ConnectorContext,
        name: &str,
        options: &toml::Table,
    ) -> Result<Arc<dyn CatalogProvider>, ConnectorError> {
        self.validate(options)?;
        let mut o = parse_options::<FlightOptions>(options)?;
        if let Some(ca) = &o.ca_cert {
            o.ca_cert = Some(ctx.base_dir.join(ca).to_string_lossy().into_owned());
        }
        let sql = o.sql_options();
        Ok(SqlCatalog::open(name, Arc::new(FlightKind { options: o }), sql).await)
    }
}

struct FlightKind {
    options: FlightOptions,
}

#[async_trait]
impl SourceKind for FlightKind {
    async fn connect(
        &self,
        _catalog: &str,
        sql: &SqlOptions,
    ) -> Result<Arc<dyn SourcePool>, DataFusionError> {
        let o = &self.options;
        let external = |e: &dyn std::fmt::Display| DataFusionError::External(e.to_string().into());
        let mut endpoint = Endpoint::from_shared(o.endpoint.clone())
            .map_err(|e| external(&e))?
            .connect_timeout(sql.connect_timeout());
        if o.endpoint.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_enabled_roots();
            if let Some(ca) = &o.ca_cert {
                let pem = std::fs::read(ca).map_err(|e| external(&format!("{ca}: {e}")))?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| external(&e))?;
        }
        let channel = endpoint.connect().await.map_err(|e| external(&e))?;
        let authorization = match (&o.user, &o.password, &o.token) {
            (_, _, Some(token)) => format!("Bearer {}", token.expose()),
            (Some(user), Some(password), None) => {
                use base64::Engine as _;
                let pair = format!("{user}:{}", password.expose());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            }
            _ => String::new(),
        };
        let remote = Arc::new(Remote {
            channel,
            authorization,
            context: format!("flightsql:{}:{}:{}", o.endpoint, sql.user, o.catalog),
        });
        let support = super::flightsql_info::remote_support(&remote, &o.endpoint).await?;
        let pool = FlightPool {
            remote,
            catalog: o.catalog.clone(),
            schemas: Mutex::default(),
            support,
        };
        pool.ping().await?;
        Ok(Arc::new(pool))
    }

    fn functions(&self) -> FunctionSet {
        // A Flight SQL server of meshgate's kind runs DataFusion.
        FunctionSet::postgres()
    }
}

/// A connection to the remote server and how to sign in to it.
pub(crate) struct Remote {
    channel: Channel,
    authorization: String,
    /// Same server, same account, same catalog: one federation context.
    context: String,
}

impl Remote {
    pub(super) fn client(&self) -> FlightSqlServiceClient<Channel> {
        let mut client = FlightSqlServiceClient::new(self.channel.clone());
        if !self.authorization.is_empty() {
            client.set_header("authorization", self.authorization.clone());
        }
        client
    }

    /// Every batch of `info`'s endpoints, up to [`PARALLEL_ENDPOINTS`]
    /// fetched at the same time, as they arrive.
    pub(super) async fn fetch_all(
        &self,
        info: FlightInfo,
    ) -> DfResult<impl futures::Stream<Item = DfResult<RecordBatch>> + Send + 'static> {
        let tickets = info
            .endpoint
            .into_iter()
            .map(|e| {
                e.ticket
                    .ok_or_else(|| DataFusionError::External("an endpoint without a ticket".into()))
            })
            .collect::<DfResult<Vec<_>>>()?;
        let clients: Vec<_> = tickets.iter().map(|_| self.client()).collect();
        let streams = futures::stream::iter(clients.into_iter().zip(tickets)).map(
            |(mut client, ticket)| async move {
                client
                    .do_get(ticket)
                    .await
                    .map(|s| s.map_err(remote_error))
                    .map_err(remote_error)
            },
        );
        Ok(streams
            .buffer_unordered(PARALLEL_ENDPOINTS)
            .try_flatten_unordered(PARALLEL_ENDPOINTS))
    }
}

pub(super) fn remote_error(e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::External(format!("the Flight SQL server answered: {e}").into())
}

struct FlightPool {
    remote: Arc<Remote>,
    catalog: String,
    support: RemoteSupport,
    /// The schemas GetTables returned at the last listing.
    schemas: Mutex<HashMap<(String, String), SchemaRef>>,
}

impl FlightPool {
    /// The remote catalog's tables with their schemas.
    async fn get_tables(&self) -> DfResult<Vec<(String, String, SchemaRef)>> {
        let mut client = self.remote.client();
        let info = client
            .get_tables(CommandGetTables {
                catalog: Some(self.catalog.clone()),
                db_schema_filter_pattern: None,
                table_name_filter_pattern: None,
                table_types: Vec::new(),
                include_schema: true,
            })
            .await
            .map_err(remote_error)?;
        let batches: Vec<RecordBatch> = self.remote.fetch_all(info).await?.try_collect().await?;
        let mut out = Vec::new();
        for batch in &batches {
            let column = |name: &str| {
                batch.column_by_name(name).cloned().ok_or_else(|| {
                    DataFusionError::External(format!("GetTables has no {name} column").into())
                })
            };
            let schemas = cast(
                &column("db_schema_name")?,
                &datafusion::arrow::datatypes::DataType::Utf8,
            )?;
            let tables = cast(
                &column("table_name")?,
                &datafusion::arrow::datatypes::DataType::Utf8,
            )?;
            let ipc = column("table_schema")?;
            let (schemas, tables, ipc) = (
                schemas.as_string::<i32>(),
                tables.as_string::<i32>(),
                ipc.as_binary_opt::<i32>().ok_or_else(|| {
                    DataFusionError::External("GetTables sent table_schema not as binary".into())
                })?,
            );
            for row in 0..batch.num_rows() {
                let schema = try_schema_from_ipc_buffer(ipc.value(row))?;
                out.push((
                    schemas.value(row).to_owned(),
                    tables.value(row).to_owned(),
                    Arc::new(schema),
                ));
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl SourcePool for FlightPool {
    async fn list(&self, filter: &NameFilter) -> DfResult<Vec<(String, String)>> {
        let tables = self.get_tables().await?;
        let mut schemas = self.schemas.lock().expect("schemas lock");
        schemas.clear();
        let mut out = Vec::new();
        for (schema, table, arrow) in tables {
            if filter.schema(&schema) {
                schemas.insert((schema.clone(), table.clone()), arrow);
                out.push((schema, table));
            }
        }
        Ok(out)
    }

    async fn ping(&self) -> DfResult<()> {
        let mut client = self.remote.client();
        client.get_catalogs().await.map_err(remote_error).map(drop)
    }

    fn sends_sub_plans(&self) -> bool {
        self.support.sub_plans
    }

    async fn keys(&self) -> DfResult<Vec<KeyColumn>> {
        Ok(Vec::new())
    }

    async fn comments(&self) -> DfResult<Vec<crate::Description>> {
        Ok(Vec::new())
    }

    async fn table(&self, schema: &str, table: &str) -> DfResult<SourceTable> {
        let key = (schema.to_owned(), table.to_owned());
        let known = self
            .schemas
            .lock()
            .expect("schemas lock")
            .get(&key)
            .cloned();
        let arrow = match known {
            Some(s) => s,
            None => self
                .get_tables()
                .await?
                .into_iter()
                .find(|(s, t, _)| *s == key.0 && *t == key.1)
                .map(|(_, _, arrow)| arrow)
                .ok_or_else(|| {
                    DataFusionError::Plan(format!("the remote has no table {schema}.{table}"))
                })?,
        };
        let reference = TableReference::full(self.catalog.as_str(), schema, table);
        let executor = Arc::new(FlightExecutor {
            remote: self.remote.clone(),
            schema: arrow.clone(),
            reference: reference.clone(),
            quote: self.support.quote,
        });
        Ok(SourceTable {
            provider: remote_table(arrow, &reference, executor.clone())?,
            executor,
            reference: Some(reference),
            direct: None,
            rows: None,
        })
    }
}

/// The table as scanned without federation (`pushdown = false`): every
/// row, projected here.
fn remote_table(
    schema: SchemaRef,
    reference: &TableReference,
    executor: Arc<FlightExecutor>,
) -> DfResult<Arc<dyn TableProvider>> {
    // Named columns: a remote that reorders its columns cannot move
    // values under other names (where a local mask would miss them).
    let columns = schema
        .fields()
        .iter()
        .map(|f| quote_part(f.name()))
        .collect::<Vec<_>>()
        .join(", ");
    let scan = RemoteScan {
        sql: format!("SELECT {columns} FROM {}", quoted(reference)),
        schema: schema.clone(),
        executor,
    };
    Ok(Arc::new(StreamingTable::try_new(
        schema,
        vec![Arc::new(scan)],
    )?))
}

/// `"name"`.
fn quote_part(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"catalog"."schema"."table"`.
fn quoted(reference: &TableReference) -> String {
    let part = quote_part;
    match reference {
        TableReference::Full {
            catalog,
            schema,
            table,
        } => format!("{}.{}.{}", part(catalog), part(schema), part(table)),
        TableReference::Partial { schema, table } => format!("{}.{}", part(schema), part(table)),
        TableReference::Bare { table } => part(table),
    }
}

#[derive(Debug)]
struct RemoteScan {
    sql: String,
    schema: SchemaRef,
    executor: Arc<FlightExecutor>,
}

impl std::fmt::Debug for FlightExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FlightExecutor({})", self.reference)
    }
}

impl PartitionStream for RemoteScan {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        match self.executor.execute(&self.sql, self.schema.clone(), &[]) {
            Ok(stream) => stream,
            Err(e) => Box::pin(RecordBatchStreamAdapter::new(
                self.schema.clone(),
                futures::stream::once(async move { Err(e) }),
            )),
        }
    }
}

/// Runs SQL on the remote server for federation.
struct FlightExecutor {
    remote: Arc<Remote>,
    schema: SchemaRef,
    reference: TableReference,
    /// The remote's identifier quote (GetSqlInfo).
    quote: char,
}

#[async_trait]
impl SQLExecutor for FlightExecutor {
    fn name(&self) -> &str {
        "flightsql"
    }

    fn compute_context(&self) -> Option<String> {
        Some(self.remote.context.clone())
    }

    fn dialect(&self) -> Arc<dyn Dialect> {
        Arc::new(
            CustomDialectBuilder::new()
                .with_identifier_quote_style(self.quote)
                .build(),
        )
    }

    fn execute(
        &self,
        query: &str,
        schema: SchemaRef,
        _filters: &[Arc<dyn PhysicalExpr>],
    ) -> DfResult<SendableRecordBatchStream> {
        let remote = self.remote.clone();
        let sql = query.to_owned();
        let target = schema.clone();
        let batches = futures::stream::once(async move {
            let info = remote
                .client()
                .execute(sql, None)
                .await
                .map_err(remote_error)?;
            remote.fetch_all(info).await
        })
        .try_flatten()
        .map(move |batch| super::direct::conform(batch?, &target, "the Flight SQL server"));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }

    async fn table_names(&self) -> DfResult<Vec<String>> {
        Ok(vec![self.reference.to_string()])
    }

    async fn get_table_schema(&self, _table_name: &str) -> DfResult<SchemaRef> {
        Ok(self.schema.clone())
    }
}
