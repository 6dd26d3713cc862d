//! Connectors turn one catalog's configuration into a DataFusion catalog.
//!
//! A connector knows storage and pushdown; it never sees policies or wire
//! protocols. The contract is deliberately small ([`Connector`]): check and
//! build a catalog from options, list the descriptions written in them, and
//! name the option keys that are secrets (so they are redacted anywhere
//! configuration or errors are printed). What a source evaluates itself is
//! stated by the table providers it builds (filter pushdown, and for SQL
//! sources federation of whole sub-plans), not by the contract. Concrete
//! connectors live in one module per source kind and are wired in by the
//! binary through [`ConnectorRegistry`].
//!
//! Options arrive as the TOML table of the catalog (minus the keys the gateway
//! owns, such as `connector` and `description`); each connector deserialises
//! them into its own typed struct that rejects unknown keys, so a typo is an
//! error that names the key rather than a silently ignored setting.

mod delta;
mod delta_write;
mod error;
mod files;
mod freshness;
pub mod secrets;
mod sizes;
mod sql;
mod storage;
mod types;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::CatalogProvider;
use datafusion::execution::SessionState;

pub use delta::DeltaConnector;
pub use delta_write::{append_delta_table, create_delta_table};
pub use error::ConnectorError;
pub use files::FilesConnector;
pub use freshness::{change_stamp, has_change_stamp, last_modified, ChangeSource};
pub use sizes::{table_size, TableSize};
pub use sql::{
    catalog_as_end_user, catalog_comments, catalog_keys, forwards_identity, probe_catalog,
    refresh_catalog, AbsorbIntoFederated, DirectStatement, FlightSqlConnector, KeyColumn,
    MySqlConnector, PostgresConnector, Referenced, ShowSourceKeys, SourceKeyFilterExec, SqlCatalog,
    SqliteConnector,
};
pub use storage::StorageOptions;

/// The person a query runs for, as a source that runs queries as the end
/// user sees them (a `flightsql` catalog with `identity = "forward"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndUser {
    pub name: String,
    pub groups: Vec<String>,
    pub attributes: BTreeMap<String, String>,
}

/// A description a domain team wrote for one of its tables or columns
/// (shown to users by `\d+`, `obj_description`, BI tools' catalog browsers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    pub schema: String,
    pub table: String,
    /// `None` for the table itself.
    pub column: Option<String>,
    pub text: String,
}

/// Everything a connector may use while it builds a catalog.
pub struct ConnectorContext {
    /// A session whose runtime is the one queries will run on: object stores a
    /// connector registers here are the ones its scans will read through.
    pub session: SessionState,
    /// Relative paths in options are resolved against this directory (the
    /// directory of the configuration file).
    pub base_dir: PathBuf,
}

/// The contract every source kind implements.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The value of `connector = "..."` in a catalog's configuration.
    fn kind(&self) -> &'static str;

    /// Option keys (dotted paths inside the catalog table) whose values are
    /// secrets and must never be printed.
    fn secret_keys(&self) -> &'static [&'static str];

    /// Check the options without touching the source.
    fn validate(&self, options: &toml::Table) -> Result<(), ConnectorError>;

    /// The table and column descriptions written in the options.
    fn descriptions(&self, _options: &toml::Table) -> Vec<Description> {
        Vec::new()
    }

    /// Build the catalog named `name` from its options.
    async fn build_catalog(
        &self,
        ctx: &ConnectorContext,
        name: &str,
        options: &toml::Table,
    ) -> Result<Arc<dyn CatalogProvider>, ConnectorError>;
}

/// The connectors a binary knows, by kind.
#[derive(Clone, Default)]
pub struct ConnectorRegistry {
    connectors: BTreeMap<&'static str, Arc<dyn Connector>>,
}

impl ConnectorRegistry {
    /// A registry holding every connector built into this crate.
    pub fn builtin() -> Self {
        let mut registry = Self::default();
        registry.register(Arc::new(FilesConnector));
        registry.register(Arc::new(DeltaConnector));
        registry.register(Arc::new(PostgresConnector));
        registry.register(Arc::new(MySqlConnector));
        registry.register(Arc::new(SqliteConnector));
        registry.register(Arc::new(FlightSqlConnector));
        registry
    }

    /// Add `connector`; the secrets its options hold (by its
    /// [`Connector::secret_keys`]) are remembered for [`secrets::redact`]
    /// whenever a catalog is validated or built through this registry.
    pub fn register(&mut self, connector: Arc<dyn Connector>) {
        self.connectors
            .insert(connector.kind(), Arc::new(SecretAware(connector)));
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Connector>> {
        self.connectors.get(kind)
    }

    /// The known kinds, for error messages.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.connectors.keys().copied().collect()
    }
}

/// A connector whose secrets are remembered before it sees its options.
struct SecretAware(Arc<dyn Connector>);

#[async_trait]
impl Connector for SecretAware {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }

    fn secret_keys(&self) -> &'static [&'static str] {
        self.0.secret_keys()
    }

    fn validate(&self, options: &toml::Table) -> Result<(), ConnectorError> {
        secrets::remember_options(options, self.secret_keys());
        self.0.validate(options)
    }

    fn descriptions(&self, options: &toml::Table) -> Vec<Description> {
        self.0.descriptions(options)
    }

    async fn build_catalog(
        &self,
        ctx: &ConnectorContext,
        name: &str,
        options: &toml::Table,
    ) -> Result<Arc<dyn CatalogProvider>, ConnectorError> {
        secrets::remember_options(options, self.secret_keys());
        self.0.build_catalog(ctx, name, options).await
    }
}

/// Deserialise a connector's options into its typed form, naming the key on error.
pub(crate) fn parse_options<T: serde::de::DeserializeOwned>(
    options: &toml::Table,
) -> Result<T, ConnectorError> {
    let value = toml::Value::Table(options.clone());
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        ConnectorError::InvalidOption {
            key: if path == "." { String::new() } else { path },
            message: err
                .into_inner()
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
        }
    })
}
