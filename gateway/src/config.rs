//! `meshgate.toml`: listeners, TLS, users and catalogs.
//!
//! Loading is three steps, each of which names the file, the key and the
//! problem when it fails: TOML syntax, `${ENV_VAR}` substitution in every
//! string value (so secrets can stay out of the file), then typed
//! deserialisation that rejects unknown keys, followed by checks that need
//! more than one key (users' password hashes, catalog options through their
//! connectors, TLS files, the default catalog).
//!
//! ```toml
//! [listeners.pgwire]
//! address = "127.0.0.1:5433"
//! [listeners.flight_sql]
//! address = "127.0.0.1:50051"
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
//! [catalogs.members.tables.members]
//! path = "members.csv"
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use meshgate_connectors::ConnectorRegistry;
use meshgate_planner::policy::{Policy, PolicyError};
use meshgate_planner::{CatalogRegistry, CatalogSpec, RegistryError};
use serde::Deserialize;
use thiserror::Error;

use crate::auth::PasswordHash;

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
    /// Directory relative paths resolve against (the file's own directory).
    #[serde(skip)]
    pub base_dir: PathBuf,
    #[serde(skip)]
    pub file: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Catalog used when a client names no database (default: first by name).
    pub default_catalog: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listeners {
    pub pgwire: Option<ListenerConfig>,
    pub flight_sql: Option<ListenerConfig>,
}

impl Default for Listeners {
    fn default() -> Self {
        Self {
            pgwire: Some(ListenerConfig {
                address: "127.0.0.1:5433".into(),
            }),
            flight_sql: None,
        }
    }
}

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Let passwords and tokens cross connections without TLS in cleartext:
    /// pgwire may then ask for a JWT without TLS, and a Flight SQL listener
    /// may run without `[tls]`. Off by default (pgwire then only runs
    /// SCRAM-SHA-256 on connections without TLS); for loopback or an
    /// otherwise protected network only.
    #[serde(default)]
    pub allow_cleartext: bool,
    /// Lifetime of Flight SQL bearer tokens and tickets.
    #[serde(default = "default_token_ttl")]
    pub token_ttl_secs: u64,
    /// Accept JSON Web Tokens from an identity provider as the pgwire
    /// password and as the Flight SQL bearer token.
    pub jwt: Option<JwtConfig>,
}

/// `[auth.jwt]`: how to verify tokens and read an identity from them (see
/// [`crate::auth::JwtVerifier`] for what a token must satisfy).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The one algorithm tokens must be signed with: `HS256`/`HS384`/`HS512`
    /// (shared secret), `RS*`/`PS*`, `ES256`/`ES384` or `EdDSA` (public keys).
    pub algorithm: String,
    /// HS*: the shared secret (use `${ENV}` substitution).
    pub secret: Option<String>,
    /// Public-key algorithms, one of these three: a PEM file with the
    /// issuer's public key,
    pub public_key_file: Option<String>,
    /// a JSON Web Key Set file (re-read like a URL, so keys can rotate),
    pub jwks_file: Option<String>,
    /// or the issuer's JWKS URL; a token's `kid` selects the key.
    pub jwks_url: Option<String>,
    /// The key set is fetched again when older than this.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_secs: u64,
    /// At most one fetch per this many seconds, however many tokens name an
    /// unknown `kid`.
    #[serde(default = "default_jwks_min_refetch")]
    pub jwks_min_refetch_secs: u64,
    /// Clock skew allowed on `exp` and `nbf` (at most 300).
    #[serde(default = "default_jwt_leeway")]
    pub leeway_secs: u64,
    /// When set, the `iss` claim must be present and equal it.
    pub issuer: Option<String>,
    /// When set, the `aud` claim must be present and contain it; when not
    /// set, tokens that carry any `aud` are refused.
    pub audience: Option<String>,
    /// The claim naming the user.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// The claim listing the user's groups (an array, or a space- or
    /// comma-separated string).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Claims copied into the user's attributes (`current_user_attribute`).
    #[serde(default)]
    pub attribute_claims: Vec<String>,
}

fn default_jwks_refresh() -> u64 {
    300
}

fn default_jwks_min_refetch() -> u64 {
    30
}

fn default_jwt_leeway() -> u64 {
    30
}

fn default_user_claim() -> String {
    "sub".into()
}

fn default_groups_claim() -> String {
    "groups".into()
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            allow_cleartext: false,
            token_ttl_secs: default_token_ttl(),
            jwt: None,
        }
    }
}

fn default_token_ttl() -> u64 {
    3600
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// A password hash from `meshgate hash-password`, never the password itself.
    pub password: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// A TOML policy document (see the `meshgate-policy` crate).
    pub file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// JSON lines, appended and flushed per statement.
    pub file: PathBuf,
}

#[derive(Clone, Deserialize)]
pub struct CatalogConfig {
    pub connector: String,
    pub description: Option<String>,
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
            .field(
                "options",
                &meshgate_connectors::secrets::RedactedOptions::new(&self.connector, &self.options),
            )
            .finish()
    }
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

    fn invalid(&self, key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
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
        for (name, listener) in [
            ("pgwire", &self.listeners.pgwire),
            ("flight_sql", &self.listeners.flight_sql),
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
        if self.auth.jwt.is_some() {
            crate::auth::JwtVerifier::from_config(self)
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
        CatalogRegistry::validate(&self.catalog_specs(), &ConnectorRegistry::builtin())
            .map_err(|e| self.registry_error(e))?;
        self.load_policy()?;
        Ok(())
    }

    /// Read and validate the policy file, if one is configured. Errors name
    /// the policy file and the key inside it.
    pub fn load_policy(&self) -> Result<Option<Policy>, ConfigError> {
        let Some(policy) = &self.policy else {
            return Ok(None);
        };
        let path = self.resolve_path(&policy.file);
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
        }
    }

    pub fn catalog_specs(&self) -> Vec<CatalogSpec> {
        self.catalogs
            .iter()
            .map(|(name, c)| CatalogSpec {
                name: name.clone(),
                connector: c.connector.clone(),
                description: c.description.clone(),
                options: c.options.clone(),
            })
            .collect()
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

/// Replace `${VAR}` in every string value. Errors carry the key path.
fn substitute_env(
    table: &mut toml::Table,
    prefix: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    for (key, value) in table.iter_mut() {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        substitute_value(value, &path, lookup)?;
    }
    Ok(())
}

fn substitute_value(
    value: &mut toml::Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    match value {
        toml::Value::String(s) if s.contains("${") => {
            *s = expand(s, lookup).map_err(|problem| (path.to_owned(), problem))?;
        }
        toml::Value::Table(t) => substitute_env(t, path, lookup)?,
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_value(item, &format!("{path}[{i}]"), lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated `${` in value".to_owned())?;
        let var = &after[..end];
        if var.is_empty() {
            return Err("empty `${}` in value".to_owned());
        }
        let value =
            lookup(var).ok_or_else(|| format!("environment variable `{var}` is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "meshgate.toml", PathBuf::from("/tmp"))
    }

    #[test]
    fn minimal_config_has_a_pgwire_listener() {
        let config = parse("").unwrap();
        assert_eq!(config.listeners.pgwire.unwrap().address, "127.0.0.1:5433");
    }

    #[test]
    fn unknown_keys_name_file_and_key() {
        let err = parse("[listeners.pgwire]\nadress = '127.0.0.1:1'").unwrap_err();
        let msg = err.to_string();
        assert_eq!(
            msg,
            "meshgate.toml: listeners.pgwire.adress: unknown field `adress`, expected `address`"
        );
    }

    #[test]
    fn syntax_errors_name_the_file_and_line() {
        let msg = parse("[listeners\n").unwrap_err().to_string();
        assert!(msg.starts_with("meshgate.toml: "), "{msg}");
        assert!(msg.contains("line 1"), "{msg}");
    }

    #[test]
    fn plaintext_passwords_are_refused() {
        let msg = parse("[users.bob]\npassword = 'hunter2'")
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("meshgate.toml: users.bob.password: "),
            "{msg}"
        );
        assert!(msg.contains("hash-password"), "{msg}");
    }

    #[test]
    fn bad_addresses_and_connectors_are_named() {
        let msg = parse("[listeners.pgwire]\naddress = 'nowhere'")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("listeners.pgwire.address"), "{msg}");
        let msg = parse("[catalogs.x]\nconnector = 'oracle'")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("catalogs.x.connector: unknown connector `oracle`"),
            "{msg}"
        );
        let msg = parse("[catalogs.x]\nconnector = 'files'\n[catalogs.x.tables.t]\npath = 'a.csv'\ndelimiter = 'ab'")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("catalogs.x.tables.t.delimiter"), "{msg}");
    }

    #[test]
    fn flight_sql_without_tls_needs_allow_cleartext() {
        let flight = "[listeners.flight_sql]\naddress = '127.0.0.1:0'\n";
        let msg = parse(flight).unwrap_err().to_string();
        assert!(msg.contains("listeners.flight_sql: "), "{msg}");
        assert!(msg.contains("allow_cleartext"), "{msg}");
        parse(&format!("{flight}[auth]\nallow_cleartext = true\n")).unwrap();
    }

    #[test]
    fn env_vars_are_substituted_with_key_in_errors() {
        let lookup = |v: &str| (v == "SECRET").then(|| "s3cr3t".to_string());
        let mut t: toml::Table = "[a]\nb = 'x-${SECRET}-y'\nc = ['${SECRET}']"
            .parse()
            .unwrap();
        substitute_env(&mut t, "", &lookup).unwrap();
        assert_eq!(t["a"]["b"].as_str(), Some("x-s3cr3t-y"));
        assert_eq!(t["a"]["c"][0].as_str(), Some("s3cr3t"));
        let mut t: toml::Table = "[a]\nb = '${MISSING}'".parse().unwrap();
        let (key, problem) = substitute_env(&mut t, "", &lookup).unwrap_err();
        assert_eq!(key, "a.b");
        assert!(problem.contains("MISSING"));
    }
}
