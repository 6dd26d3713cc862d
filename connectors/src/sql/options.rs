//! The options every SQL-database catalog shares, and its name filters.

use std::time::Duration;

use serde::Deserialize;

use crate::ConnectorError;

/// `[catalogs.NAME]` options of a `postgres` or `mysql` catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SqlOptions {
    pub host: String,
    pub port: Option<u16>,
    pub user: String,
    /// Never printed: `Debug` shows it redacted.
    #[serde(default)]
    pub password: Option<crate::secrets::Secret>,
    /// The database this catalog exposes (one catalog = one database).
    pub database: String,
    /// `disable`, `prefer` (default), `require`, `verify-ca` or `verify-full`
    /// (MySQL takes the first three).
    #[serde(default = "default_sslmode")]
    pub sslmode: String,
    /// A PEM file of root certificates to verify the source's certificate.
    pub sslrootcert: Option<String>,
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// How long to wait for a connection before failing the query.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// How long schema and table lists are cached.
    #[serde(default = "default_metadata_ttl")]
    pub metadata_ttl_secs: u64,
    /// Schemas to expose (glob patterns); empty means every non-system schema
    /// for PostgreSQL and only `database` for MySQL.
    #[serde(default)]
    pub include_schemas: Vec<String>,
    #[serde(default)]
    pub exclude_schemas: Vec<String>,
    /// Tables to expose, as `table` or `schema.table` glob patterns; empty means all.
    #[serde(default)]
    pub include_tables: Vec<String>,
    #[serde(default)]
    pub exclude_tables: Vec<String>,
    /// Send whole single-source sub-plans (joins, aggregates, sorts) to the
    /// source. With `false` only projections, filters and limits of single
    /// table scans are; useful to compare, or for a source whose SQL dialect
    /// misbehaves.
    #[serde(default = "default_true")]
    pub pushdown: bool,
    #[allow(dead_code)]
    pub description: Option<String>,
}

pub(crate) fn default_true() -> bool {
    true
}

fn default_sslmode() -> String {
    "prefer".into()
}
fn default_pool_size() -> u32 {
    10
}
pub(crate) fn default_connect_timeout() -> u64 {
    5
}
pub(crate) fn default_metadata_ttl() -> u64 {
    60
}

pub(crate) const SSL_MODES: &[&str] = &["disable", "prefer", "require", "verify-ca", "verify-full"];

impl SqlOptions {
    /// The options of a source that is not a database server login (a
    /// file, another gateway): `host` names it in messages, `database` is
    /// what it exposes, everything else is at its default.
    pub(crate) fn named(host: String, database: String) -> Self {
        Self {
            host,
            port: None,
            user: String::new(),
            password: None,
            database,
            sslmode: "disable".into(),
            sslrootcert: None,
            pool_size: 1,
            connect_timeout_secs: default_connect_timeout(),
            metadata_ttl_secs: default_metadata_ttl(),
            include_schemas: Vec::new(),
            exclude_schemas: Vec::new(),
            include_tables: Vec::new(),
            exclude_tables: Vec::new(),
            pushdown: true,
            description: None,
        }
    }

    pub fn validate(&self) -> Result<(), ConnectorError> {
        if self.host.trim().is_empty() {
            return Err(ConnectorError::option("host", "must not be empty"));
        }
        if self.database.trim().is_empty() {
            return Err(ConnectorError::option("database", "must not be empty"));
        }
        if !SSL_MODES.contains(&self.sslmode.as_str()) {
            return Err(ConnectorError::option(
                "sslmode",
                format!("`{}` is not one of {}", self.sslmode, SSL_MODES.join(", ")),
            ));
        }
        if self.pool_size == 0 {
            return Err(ConnectorError::option("pool_size", "must be at least 1"));
        }
        if self.connect_timeout_secs == 0 {
            return Err(ConnectorError::option(
                "connect_timeout_secs",
                "must be at least 1",
            ));
        }
        for (key, patterns) in [
            ("include_schemas", &self.include_schemas),
            ("exclude_schemas", &self.exclude_schemas),
            ("include_tables", &self.include_tables),
            ("exclude_tables", &self.exclude_tables),
        ] {
            for p in patterns {
                glob::Pattern::new(p)
                    .map_err(|e| ConnectorError::option(key, format!("`{p}`: {e}")))?;
            }
        }
        Ok(())
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    pub fn metadata_ttl(&self) -> Duration {
        Duration::from_secs(self.metadata_ttl_secs)
    }

    pub fn filter(&self) -> NameFilter {
        let compile = |v: &[String]| {
            v.iter()
                .filter_map(|p| glob::Pattern::new(p).ok())
                .collect::<Vec<_>>()
        };
        NameFilter {
            include_schemas: compile(&self.include_schemas),
            exclude_schemas: compile(&self.exclude_schemas),
            include_tables: compile(&self.include_tables),
            exclude_tables: compile(&self.exclude_tables),
        }
    }
}

/// Which schemas and tables of the source the catalog exposes.
#[derive(Debug, Clone, Default)]
pub(crate) struct NameFilter {
    include_schemas: Vec<glob::Pattern>,
    exclude_schemas: Vec<glob::Pattern>,
    include_tables: Vec<glob::Pattern>,
    exclude_tables: Vec<glob::Pattern>,
}

impl NameFilter {
    pub fn schema(&self, schema: &str) -> bool {
        (self.include_schemas.is_empty() || self.include_schemas.iter().any(|p| p.matches(schema)))
            && !self.exclude_schemas.iter().any(|p| p.matches(schema))
    }

    pub fn table(&self, schema: &str, table: &str) -> bool {
        let qualified = format!("{schema}.{table}");
        let hit = |p: &glob::Pattern| p.matches(table) || p.matches(&qualified);
        self.schema(schema)
            && (self.include_tables.is_empty() || self.include_tables.iter().any(hit))
            && !self.exclude_tables.iter().any(hit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(toml: &str) -> SqlOptions {
        let table: toml::Table = toml::from_str(toml).unwrap();
        crate::parse_options(&table).unwrap()
    }

    #[test]
    fn filters_match_schemas_and_qualified_tables() {
        let o = options(
            r#"host = "h"
user = "u"
database = "d"
include_schemas = ["sales*"]
exclude_tables = ["*_tmp", "sales_eu.secret"]"#,
        );
        let f = o.filter();
        assert!(f.schema("sales"));
        assert!(f.schema("sales_eu"));
        assert!(!f.schema("hr"));
        assert!(f.table("sales", "orders"));
        assert!(!f.table("sales", "orders_tmp"));
        assert!(!f.table("sales_eu", "secret"));
        assert!(f.table("sales", "secret"));
        assert!(!f.table("hr", "people"));
    }

    #[test]
    fn bad_options_name_the_key() {
        let o = options("host = \"h\"\nuser = \"u\"\ndatabase = \"d\"\nsslmode = \"maybe\"");
        let err = o.validate().unwrap_err().to_string();
        assert!(err.starts_with("sslmode: `maybe` is not one of"), "{err}");
        let table: toml::Table =
            toml::from_str("host = \"h\"\nuser = \"u\"\ndatabase = \"d\"\npool = 3").unwrap();
        let err = crate::parse_options::<SqlOptions>(&table)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("pool: unknown field"), "{err}");
    }
}
