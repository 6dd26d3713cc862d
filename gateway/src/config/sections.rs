//! The sections of `meshgate.toml` other than `[auth]`, `[users]` (see
//! `crate::auth`) and `[limits]` (see `crate::limits`): plain data, read
//! by serde with unknown keys refused. Checks that need more than one key
//! are made when the whole file is loaded (see [`super::Config::load`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use meshgate_planner::ProductDescriptor;
use serde::Deserialize;

/// `[server]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Catalog used when a client names no database (default: first by name).
    pub default_catalog: Option<String>,
}

/// `[execution]`: how queries run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionConfig {
    /// Partitions a query's scans and operators are split into (default:
    /// the CPU count); a query over files comes back over Flight SQL in
    /// this many endpoints.
    pub target_partitions: Option<std::num::NonZeroUsize>,
    /// Rows per record batch (default 8192).
    pub batch_size: Option<std::num::NonZeroUsize>,
    /// DataFusion's own settings by name (`[execution.datafusion]`,
    /// e.g. `"execution.parquet.pushdown_filters" = true`), checked when
    /// the file is loaded.
    #[serde(default)]
    pub datafusion: toml::Table,
    /// The Ballista scheduler (`df://host:port`) that large queries over
    /// files run on; unset, every query runs in the gateway.
    pub ballista: Option<String>,
    /// The least a query's file scans add up to (e.g. `"1GiB"`) before it
    /// goes to the Ballista cluster (default 1 GiB).
    pub ballista_min_scan_bytes: Option<String>,
    /// Whether a join's built keys drop the rows of its large side's
    /// Parquet scan that cannot match, as they are read (default true;
    /// false: the keys only skip row groups and pages; see BENCHMARKS.md).
    pub filter_probe_rows: Option<bool>,
}

/// `ballista_min_scan_bytes` when unset.
const BALLISTA_MIN_SCAN_BYTES: u64 = 1 << 30;

impl ExecutionConfig {
    /// The options, or the key under `[execution]` that is wrong and why.
    pub fn options(&self) -> Result<meshgate_planner::ExecutionOptions, (String, String)> {
        let min_scan_bytes = match &self.ballista_min_scan_bytes {
            Some(text) => meshgate_planner::parse_bytes(text)
                .map_err(|p| ("ballista_min_scan_bytes".to_owned(), p))?,
            None => BALLISTA_MIN_SCAN_BYTES,
        };
        if self.ballista_min_scan_bytes.is_some() && self.ballista.is_none() {
            return Err((
                "ballista_min_scan_bytes".into(),
                "needs `ballista` (the scheduler's df://host:port)".into(),
            ));
        }
        let ballista = match &self.ballista {
            Some(url) => Some(
                meshgate_planner::BallistaOptions::parse(url, min_scan_bytes)
                    .map_err(|p| ("ballista".to_owned(), p))?,
            ),
            None => None,
        };
        Ok(meshgate_planner::ExecutionOptions {
            ballista,
            target_partitions: self.target_partitions,
            batch_size: self.batch_size,
            filter_probe_rows: self.filter_probe_rows.unwrap_or(true),
            datafusion: self
                .datafusion
                .iter()
                .map(|(key, value)| {
                    let value = match value {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (key.clone(), value)
                })
                .collect(),
        })
    }
}

/// `[result_cache]`: results kept for the next run of the same query
/// under the same effective policy (see `meshgate_planner::ResultCache`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultCacheConfig {
    /// Bytes of results kept in all (`"64MiB"` by default; `"0"` keeps none).
    pub max_bytes: Option<String>,
    /// The largest single result kept (`"8MiB"` by default).
    pub max_entry_bytes: Option<String>,
}

/// `[products]`: the data products' quality rules on a schedule, and
/// where read lineage goes besides `system.lineage`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductsConfig {
    /// How often every product's quality rules run (`"1h"`); never when unset.
    pub quality_interval: Option<String>,
    /// The user the scheduled runs act as: the policy decides what their
    /// queries read, as for any user, and results name them.
    pub quality_user: Option<String>,
    /// Read lineage also sent as OpenLineage run events.
    pub openlineage: Option<OpenLineageConfig>,
}

/// `[products.openlineage]`: where run events go (`url` or `file`, one of
/// them) and the namespace their datasets and jobs are named in.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenLineageConfig {
    /// An HTTP(S) endpoint events are POSTed to (Marquez: `/api/v1/lineage`).
    pub url: Option<String>,
    /// A JSON-lines file events are appended to (relative to the config file).
    pub file: Option<PathBuf>,
    /// Default `meshgate`.
    pub namespace: Option<String>,
}

/// `[listeners]`: without the section, pgwire on `127.0.0.1:5433` only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listeners {
    pub pgwire: Option<ListenerConfig>,
    pub flight_sql: Option<ListenerConfig>,
    /// The operations endpoints (`/healthz`, `/readyz`, `/metrics`,
    /// `/v1/info`; see `crate::http`).
    pub http: Option<HttpListenerConfig>,
}

impl Default for Listeners {
    fn default() -> Self {
        Self {
            pgwire: Some(ListenerConfig {
                address: "127.0.0.1:5433".into(),
            }),
            flight_sql: None,
            http: None,
        }
    }
}

/// `[listeners.pgwire]`, `[listeners.flight_sql]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// `host:port`; port 0 picks a free port (tests).
    pub address: String,
}

impl ListenerConfig {
    pub fn socket_addr(&self) -> Result<SocketAddr, String> {
        self.address
            .parse()
            .map_err(|e| format!("`{}` is not a host:port address: {e}", self.address))
    }
}

/// `[listeners.http]`: plain HTTP, meant for the operator network (the
/// endpoints need no sign-in and show no data, statements or secrets).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpListenerConfig {
    /// `host:port`; port 0 picks a free port (tests).
    pub address: String,
    /// How often every catalog's source is probed for `/readyz` and the
    /// source metrics (default 10 s).
    #[serde(default = "probe_interval_secs")]
    pub probe_interval_secs: u64,
}

fn probe_interval_secs() -> u64 {
    10
}

impl HttpListenerConfig {
    pub fn listener(&self) -> ListenerConfig {
        ListenerConfig {
            address: self.address.clone(),
        }
    }
}

/// `[tls]`: the certificate the pgwire and Flight SQL listeners present.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Refuse clients that do not negotiate TLS (default true: configuring TLS
    /// never silently leaves a plaintext path open).
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

/// `[policy]`: a policy file, a policy store the replicas share, or both
/// (the file then seeds an empty store).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// A TOML policy document (see the `meshgate-policy` crate).
    pub file: Option<PathBuf>,
    /// `postgres://user:password@host:port/database`: the policy lives in
    /// that database, and every gateway using it applies each change.
    pub store: Option<String>,
}

impl std::fmt::Debug for PolicyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyConfig")
            .field("file", &self.file)
            .field("store", &self.store.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `[audit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// JSON lines, appended and flushed per statement.
    pub file: Option<PathBuf>,
    /// A PostgreSQL database the gateways of a fleet share
    /// (`postgres://…`): every record also goes there, and
    /// `system.audit.queries` reads it.
    pub store: Option<String>,
}

/// `[catalogs.NAME]`: the connector, and its options.
#[derive(Clone, Deserialize)]
pub struct CatalogConfig {
    pub connector: String,
    pub description: Option<String>,
    /// A YAML descriptor file of the catalog's data products (relative to
    /// this file), see `meshgate_planner::DescriptorFile`.
    pub products_file: Option<PathBuf>,
    /// Data products declared inline (`[[catalogs.NAME.products]]`).
    #[serde(default)]
    pub products: Vec<ProductDescriptor>,
    /// How stale a kept result of this database catalog may be served
    /// (`"30s"`); without it, results that read its tables are not kept.
    /// File and Delta tables need none: their results are checked against
    /// the files at every run.
    pub result_cache_ttl: Option<String>,
    /// Everything else belongs to the connector.
    #[serde(flatten)]
    pub options: toml::Table,
}

/// Secrets in the options are shown redacted (the connector's secret keys).
impl std::fmt::Debug for CatalogConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogConfig")
            .field("connector", &self.connector)
            .field("description", &self.description)
            .field("products_file", &self.products_file)
            .field("products", &self.products.len())
            .field("result_cache_ttl", &self.result_cache_ttl)
            .field(
                "options",
                &meshgate_connectors::secrets::RedactedOptions::new(&self.connector, &self.options),
            )
            .finish()
    }
}
