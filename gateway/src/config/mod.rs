//! `meshgate.toml`: listeners, TLS, users and catalogs.
//!
//! Loading is three steps, each of which names the file, the key and the
//! problem when it fails: TOML syntax, `${ENV_VAR}` substitution in every
//! string value (so secrets can stay out of the file, see [`env`]), then
//! typed deserialisation that rejects unknown keys, followed by checks that
//! need more than one key (users' password hashes, JWT settings, catalog
//! options through their connectors, TLS files, the default catalog, the
//! policy file).
//!
//! The sections are plain data: this module's own in [`sections`], the
//! `[auth]` and `[users]` types from `crate::auth` and `[limits]` from
//! `crate::limits`, which the configuration uses and which never use it.
//!
//! ```toml
//! [listeners.pgwire]
//! address = "127.0.0.1:5433"
//! [listeners.flight_sql]
//! address = "127.0.0.1:50051"
//! [listeners.http]         # /healthz, /readyz, /metrics, /v1/info
//! address = "127.0.0.1:8080"
//! [tls]                    # Flight SQL needs TLS (or `[auth] allow_cleartext = true`)
//! cert = "server.crt"
//! key = "server.key"
//!
//! [users.alice]
//! password = "pbkdf2-sha256$4096$...$..."   # `meshgate hash-password`
//!
//! [catalogs.members]
//! connector = "files"
//! root = "data/members"
//! products_file = "members.products.yaml"   # data product descriptors
//! [catalogs.members.tables.members]
//! path = "members.csv"
//! ```

mod env;
mod products;
mod sections;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use meshgate_connectors::ConnectorRegistry;
use meshgate_planner::policy::{Policy, PolicyError};
use meshgate_planner::{CatalogRegistry, CatalogSpec, DataProducts, RegistryError};
use serde::Deserialize;
use thiserror::Error;

pub use crate::auth::{AuthConfig, JwtConfig, UserConfig};
use crate::auth::{JwtVerifier, PasswordHash};
use env::substitute_env;
pub use sections::{
    AuditConfig, CatalogConfig, ExecutionConfig, HttpListenerConfig, ListenerConfig, Listeners,
    PolicyConfig, ProductsConfig, ResultCacheConfig, ServerConfig, TlsConfig,
};

/// A configuration that cannot be used: every variant names the file, and
/// `Invalid` the key and the problem.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: {key}: {problem}")]
    Invalid {
        file: String,
        key: String,
        problem: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub listeners: Listeners,
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub users: BTreeMap<String, UserConfig>,
    #[serde(default)]
    pub catalogs: BTreeMap<String, CatalogConfig>,
    /// The access policy; without one every user reads every table.
    pub policy: Option<PolicyConfig>,
    /// The audit log; without one nothing is recorded.
    pub audit: Option<AuditConfig>,
    /// Memory, spill and time limits (see [`crate::limits`]).
    #[serde(default)]
    pub limits: crate::limits::LimitsConfig,
    /// Scheduled quality checks of the data products.
    #[serde(default)]
    pub products: ProductsConfig,
    /// How queries run (partitions, batch size).
    #[serde(default)]
    pub execution: ExecutionConfig,
    /// Results kept for repeated queries.
    #[serde(default)]
    pub result_cache: ResultCacheConfig,
    /// Directory relative paths resolve against (the file's own directory).
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The file's name as given, which every error names.
    #[serde(skip)]
    pub file: String,
}

impl Config {
    /// Read, substitute, parse and validate a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            file: file.clone(),
            source,
        })?;
        let base_dir = path
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&text, &file, base_dir)
    }

    /// Parse and validate configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: &str, base_dir: PathBuf) -> Result<Self, ConfigError> {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    file: file.to_owned(),
                    message: e.to_string().trim_end().replace('\n', "\n  "),
                })?;
        substitute_env(&mut table, "", &|var| std::env::var(var).ok()).map_err(
            |(key, problem)| ConfigError::Invalid {
                file: file.to_owned(),
                key,
                problem,
            },
        )?;
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|err| {
                let key = err.path().to_string();
                ConfigError::Invalid {
                    file: file.to_owned(),
                    key: if key == "." {
                        "(top level)".into()
                    } else {
                        key
                    },
                    problem: first_line(&err.into_inner().to_string()),
                }
            })?;
        config.base_dir = base_dir;
        config.file = file.to_owned();
        config.validate()?;
        Ok(config)
    }

    pub(crate) fn invalid(
        &self,
        key: impl Into<String>,
        problem: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.clone(),
            key: key.into(),
            problem: problem.into(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.limits
            .runtime()
            .map_err(|(key, problem)| self.invalid(key, problem))?;
        self.limits
            .requests()
            .map_err(|(key, problem)| self.invalid(key, problem))?;
        self.limits
            .admission()
            .map_err(|(key, problem)| self.invalid(key, problem))?;
        let http = self.listeners.http.as_ref().map(|h| h.listener());
        for (name, listener) in [
            ("pgwire", &self.listeners.pgwire),
            ("flight_sql", &self.listeners.flight_sql),
            ("http", &http),
        ] {
            if let Some(l) = listener {
                l.socket_addr()
                    .map_err(|e| self.invalid(format!("listeners.{name}.address"), e))?;
            }
        }
        if self.listeners.pgwire.is_none() && self.listeners.flight_sql.is_none() {
            return Err(self.invalid("listeners", "no listener is configured"));
        }
        if let Some(tls) = &self.tls {
            for (key, path) in [("tls.cert", &tls.cert), ("tls.key", &tls.key)] {
                let full = self.resolve_path(path);
                if !full.is_file() {
                    return Err(
                        self.invalid(key, format!("{} is not a readable file", full.display()))
                    );
                }
            }
        }
        let stores = [
            (
                "policy",
                self.policy.as_ref().map(|p| (p.file.is_some(), &p.store)),
            ),
            (
                "audit",
                self.audit.as_ref().map(|a| (a.file.is_some(), &a.store)),
            ),
        ];
        for (section, keys) in stores {
            match keys {
                Some((false, None)) => {
                    return Err(self.invalid(section, "set `file`, `store`, or both"))
                }
                Some((_, Some(store)))
                    if !(store.starts_with("postgres://")
                        || store.starts_with("postgresql://")) =>
                {
                    return Err(self.invalid(
                        format!("{section}.store"),
                        "must be a postgres:// connection URL",
                    ))
                }
                _ => {}
            }
        }
        self.auth
            .check_signing_keys()
            .map_err(|(key, problem)| self.invalid(key, problem))?;
        if let Some(jwt) = &self.auth.jwt {
            JwtVerifier::from_config(jwt, &self.base_dir)
                .map_err(|(key, problem)| self.invalid(key, problem))?;
        }
        // Flight SQL has no challenge-response sign-in: its passwords and
        // tokens travel in every call's headers.
        if self.listeners.flight_sql.is_some() && self.tls.is_none() && !self.auth.allow_cleartext {
            return Err(self.invalid(
                "listeners.flight_sql",
                "Flight SQL sends passwords and tokens in every call's headers: configure [tls], \
                 or set `allow_cleartext = true` under [auth] to accept them without TLS \
                 (loopback or a protected network only)",
            ));
        }
        for (name, user) in &self.users {
            PasswordHash::parse(&user.password)
                .map_err(|e| self.invalid(format!("users.{name}.password"), e))?;
        }
        if let Some(default) = &self.server.default_catalog {
            if !self.catalogs.contains_key(default) {
                return Err(self.invalid(
                    "server.default_catalog",
                    format!("no catalog named `{default}` is configured"),
                ));
            }
        }
        for name in self.catalogs.keys() {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(self.invalid(
                    format!("catalogs.{name}"),
                    "catalog names are letters, digits and underscores",
                ));
            }
        }
        self.quality_schedule()?;
        self.openlineage()?;
        self.result_cache()?;
        self.execution_options()?
            .apply(meshgate_planner::datafusion::prelude::SessionConfig::new())
            .map_err(|(key, problem)| {
                self.invalid(format!("execution.datafusion.{key}"), problem)
            })?;
        CatalogRegistry::validate(&self.catalog_specs()?, &ConnectorRegistry::builtin())
            .map_err(|e| self.registry_error(e))?;
        self.load_policy()?;
        Ok(())
    }

    /// `[execution]`: how queries run.
    pub fn execution_options(&self) -> Result<meshgate_planner::ExecutionOptions, ConfigError> {
        self.execution
            .options()
            .map_err(|(key, problem)| self.invalid(format!("execution.{key}"), problem))
    }

    /// `[result_cache]` and each catalog's `result_cache_ttl`.
    pub fn result_cache(&self) -> Result<meshgate_planner::ResultCacheSettings, ConfigError> {
        let mut settings = meshgate_planner::ResultCacheSettings::default();
        let section = &self.result_cache;
        for (key, text, value) in [
            ("max_bytes", &section.max_bytes, &mut settings.max_bytes),
            (
                "max_entry_bytes",
                &section.max_entry_bytes,
                &mut settings.max_entry_bytes,
            ),
        ] {
            if let Some(text) = text {
                *value = meshgate_planner::parse_bytes(text)
                    .map_err(|problem| self.invalid(format!("result_cache.{key}"), problem))?;
            }
        }
        for (name, catalog) in &self.catalogs {
            if let Some(ttl) = &catalog.result_cache_ttl {
                let ttl = meshgate_planner::parse_duration(ttl)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        self.invalid(
                            format!("catalogs.{name}.result_cache_ttl"),
                            format!("`{ttl}` is not a duration above zero such as `30s` or `5min`"),
                        )
                    })?;
                settings.catalog_ttl.insert(name.clone(), ttl);
            }
        }
        Ok(settings)
    }

    /// `[products]`: how often the quality rules run, and as whom (`None`:
    /// not on a schedule).
    pub fn quality_schedule(&self) -> Result<Option<(std::time::Duration, String)>, ConfigError> {
        let Some(every) = &self.products.quality_interval else {
            return Ok(None);
        };
        let every = meshgate_planner::parse_duration(every)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                self.invalid(
                    "products.quality_interval",
                    format!("`{every}` is not a duration above zero such as `15min` or `1h`"),
                )
            })?;
        let user = self.products.quality_user.clone().ok_or_else(|| {
            self.invalid(
                "products.quality_user",
                "a quality_interval needs the user the scheduled checks act as",
            )
        })?;
        Ok(Some((every, user)))
    }

    /// `[products.openlineage]`: where run events go and their namespace
    /// (`None`: no events).
    pub fn openlineage(&self) -> Result<Option<(crate::openlineage::Target, String)>, ConfigError> {
        use crate::openlineage::Target;
        let Some(ol) = &self.products.openlineage else {
            return Ok(None);
        };
        let target = match (&ol.url, &ol.file) {
            (Some(url), None) => {
                let parsed = url::Url::parse(url)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| {
                        self.invalid(
                            "products.openlineage.url",
                            format!("`{url}` is not an http:// or https:// URL"),
                        )
                    })?;
                Target::Http(parsed)
            }
            (None, Some(file)) => Target::File(self.resolve_path(file)),
            _ => {
                return Err(self.invalid(
                    "products.openlineage",
                    "name exactly one of `url` (an HTTP endpoint) and `file`",
                ))
            }
        };
        let namespace = ol.namespace.clone().unwrap_or_else(|| "meshgate".into());
        if namespace.trim().is_empty() {
            return Err(self.invalid("products.openlineage.namespace", "is empty"));
        }
        Ok(Some((target, namespace)))
    }

    /// Read and validate the policy file, if one is configured. Errors name
    /// the policy file and the key inside it.
    pub fn load_policy(&self) -> Result<Option<Policy>, ConfigError> {
        let Some(file) = self.policy.as_ref().and_then(|p| p.file.as_ref()) else {
            return Ok(None);
        };
        let path = self.resolve_path(file);
        let file = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
            file: file.clone(),
            source,
        })?;
        Policy::from_toml(&text)
            .map(Some)
            .map_err(
                |PolicyError::Invalid { key, problem }| ConfigError::Invalid { file, key, problem },
            )
    }

    /// Turn a catalog-building error into one that names the config key.
    pub fn registry_error(&self, err: RegistryError) -> ConfigError {
        match err {
            RegistryError::UnknownConnector {
                catalog,
                kind,
                known,
            } => self.invalid(
                format!("catalogs.{catalog}.connector"),
                format!("unknown connector `{kind}` (known: {known})"),
            ),
            RegistryError::Connector { catalog, source } => match source {
                meshgate_connectors::ConnectorError::InvalidOption { key, message } => {
                    let key = if key.is_empty() {
                        format!("catalogs.{catalog}")
                    } else {
                        format!("catalogs.{catalog}.{key}")
                    };
                    self.invalid(key, message)
                }
                other => self.invalid(format!("catalogs.{catalog}"), other.to_string()),
            },
            RegistryError::Runtime(msg) => self.invalid("(runtime)", msg),
            RegistryError::Products(e) => self.invalid("catalogs", e.to_string()),
        }
    }

    /// Every catalog as the planner builds it, with its data products
    /// (descriptor files read and checked here).
    pub fn catalog_specs(&self) -> Result<Vec<CatalogSpec>, ConfigError> {
        let mut products = self.load_products()?;
        DataProducts::new(
            products
                .iter()
                .map(|(name, p)| (name.clone(), p.products.clone())),
        )
        .map_err(|e| self.products_error(&products, e))?;
        Ok(self
            .catalogs
            .iter()
            .map(|(name, c)| {
                let declared = products.remove(name);
                CatalogSpec {
                    name: name.clone(),
                    connector: c.connector.clone(),
                    description: c.description.clone(),
                    options: c.options.clone(),
                    products_file: declared.as_ref().and_then(|p| p.source()),
                    products: declared.map(|p| p.products).unwrap_or_default(),
                }
            })
            .collect())
    }

    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }
}

/// toml appends "in `key`" lines to messages; the key is already named.
fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).to_owned()
}

#[cfg(test)]
mod tests;
