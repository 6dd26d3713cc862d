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
//! so a user sees at most what both allow. With `identity = "forward"`,
//! queries run at the remote as the end user instead, presented by a
//! short-lived token this gateway signs (see `flightsql_identity`); the
//! service account only lists tables.
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
//! # identity = "forward"            # queries run as the end user:
//! # forward_algorithm = "EdDSA"     #   tokens signed with this gateway's key,
//! # forward_key_file = "mesh-forward.pem"   # which the remote's [auth.jwt] trusts
//! # forward_audience = "claims-gateway"
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
use datafusion::catalog::CatalogProvider;
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result as DfResult};

use super::flightsql_exec::{remote_table, FlightExecutor, RunAs};
use super::flightsql_identity::{ForwardOptions, Forwarder, IdentityMode};
use super::flightsql_info::RemoteSupport;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::federation::FunctionSet;
use super::keys::KeyColumn;
use super::options::{
    default_connect_timeout, default_metadata_ttl, default_true, NameFilter, SqlOptions,
};
use super::{SourceKind, SourcePool, SourceTable, SqlCatalog};
use crate::{parse_options, Connector, ConnectorContext, ConnectorError, EndUser};

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
    /// Who queries run as at the remote.
    #[serde(default)]
    identity: IdentityMode,
    forward_algorithm: Option<String>,
    forward_secret: Option<crate::secrets::Secret>,
    forward_key_file: Option<String>,
    forward_key_id: Option<String>,
    forward_issuer: Option<String>,
    forward_audience: Option<String>,
    #[serde(default = "default_forward_ttl")]
    forward_ttl_secs: u64,
    #[serde(default = "default_groups_claim")]
    forward_groups_claim: String,
}

fn default_forward_ttl() -> u64 {
    60
}

fn default_groups_claim() -> String {
    "groups".into()
}

/// The option keys of a `flightsql` catalog that hold secrets.
const SECRET_KEYS: &[&str] = &["password", "token", "forward_secret"];

impl FlightOptions {
    fn forward_options(&self) -> ForwardOptions<'_> {
        ForwardOptions {
            algorithm: self.forward_algorithm.as_deref(),
            secret: self.forward_secret.as_ref().map(|s| s.expose()),
            key_file: self.forward_key_file.as_deref(),
            key_id: self.forward_key_id.as_deref(),
            issuer: self.forward_issuer.as_deref(),
            audience: self.forward_audience.as_deref(),
            ttl_secs: self.forward_ttl_secs,
            groups_claim: &self.forward_groups_claim,
        }
    }

    /// Check the identity options: `forward_*` only with `identity = "forward"`.
    fn validate_identity(&self) -> Result<(), ConnectorError> {
        if self.identity == IdentityMode::Forward {
            return self.forward_options().validate().map(drop);
        }
        let forward_keys = [
            ("forward_algorithm", self.forward_algorithm.is_some()),
            ("forward_secret", self.forward_secret.is_some()),
            ("forward_key_file", self.forward_key_file.is_some()),
            ("forward_key_id", self.forward_key_id.is_some()),
            ("forward_issuer", self.forward_issuer.is_some()),
            ("forward_audience", self.forward_audience.is_some()),
        ];
        match forward_keys.iter().find(|(_, given)| *given) {
            Some((key, _)) => Err(ConnectorError::option(
                *key,
                "applies only with identity = \"forward\"",
            )),
            None => Ok(()),
        }
    }

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
        o.validate_identity()?;
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
        let forwarder = match o.identity {
            IdentityMode::Forward => Some(Arc::new(o.forward_options().forwarder(&ctx.base_dir)?)),
            IdentityMode::ServiceAccount => None,
        };
        let sql = o.sql_options();
        let kind = FlightKind {
            options: o,
            forwarder,
        };
        Ok(SqlCatalog::open(name, Arc::new(kind), sql).await)
    }
}

struct FlightKind {
    options: FlightOptions,
    /// Signs end users' tokens (`identity = "forward"`).
    forwarder: Option<Arc<Forwarder>>,
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
            forwarder: self.forwarder.clone(),
        };
        pool.ping().await?;
        Ok(Arc::new(pool))
    }

    fn functions(&self) -> FunctionSet {
        // A Flight SQL server of meshgate's kind runs DataFusion.
        FunctionSet::postgres()
    }

    fn forwards_identity(&self) -> bool {
        self.forwarder.is_some()
    }
}

/// A connection to the remote server and how to sign in to it.
pub(crate) struct Remote {
    channel: Channel,
    pub(super) authorization: String,
    /// Same server, same account, same catalog: one federation context.
    context: String,
}

impl Remote {
    /// A client signed in as the service account.
    pub(super) fn client(&self) -> FlightSqlServiceClient<Channel> {
        self.client_as(&self.authorization)
    }

    /// A client that presents `authorization` (empty: none).
    pub(super) fn client_as(&self, authorization: &str) -> FlightSqlServiceClient<Channel> {
        let mut client = FlightSqlServiceClient::new(self.channel.clone());
        if !authorization.is_empty() {
            client.set_header("authorization", authorization);
        }
        client
    }

    /// Every batch of `info`'s endpoints, up to [`PARALLEL_ENDPOINTS`]
    /// fetched at the same time, as they arrive, as the service account.
    pub(super) async fn fetch_all(
        &self,
        info: FlightInfo,
    ) -> DfResult<impl futures::Stream<Item = DfResult<RecordBatch>> + Send + 'static> {
        self.fetch_all_as(info, &self.authorization).await
    }

    /// [`Self::fetch_all`], presenting `authorization` (the identity that
    /// asked for `info`: the remote's tickets are its own).
    pub(super) async fn fetch_all_as(
        &self,
        info: FlightInfo,
        authorization: &str,
    ) -> DfResult<impl futures::Stream<Item = DfResult<RecordBatch>> + Send + 'static> {
        let tickets = info
            .endpoint
            .into_iter()
            .map(|e| {
                e.ticket
                    .ok_or_else(|| DataFusionError::External("an endpoint without a ticket".into()))
            })
            .collect::<DfResult<Vec<_>>>()?;
        let clients: Vec<_> = tickets
            .iter()
            .map(|_| self.client_as(authorization))
            .collect();
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
    /// Signs end users' tokens (`identity = "forward"`).
    forwarder: Option<Arc<Forwarder>>,
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
        self.table_for(schema, table, None).await
    }

    async fn table_as(&self, schema: &str, table: &str, user: &EndUser) -> DfResult<SourceTable> {
        let forwarder = self.forwarder.clone().ok_or_else(|| {
            DataFusionError::Internal("this catalog runs queries as its service account".into())
        })?;
        self.table_for(
            schema,
            table,
            Some(RunAs {
                forwarder,
                user: user.clone(),
            }),
        )
        .await
    }
}

impl FlightPool {
    /// One table, its queries run as the service account or `run_as`.
    async fn table_for(
        &self,
        schema: &str,
        table: &str,
        run_as: Option<RunAs>,
    ) -> DfResult<SourceTable> {
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
        let context = match &run_as {
            Some(run_as) => format!("{}:as:{}", self.remote.context, run_as.user.name),
            None => self.remote.context.clone(),
        };
        let executor = Arc::new(FlightExecutor {
            remote: self.remote.clone(),
            schema: arrow.clone(),
            reference: reference.clone(),
            quote: self.support.quote,
            run_as,
            context,
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
