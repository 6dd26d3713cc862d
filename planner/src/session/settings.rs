//! PostgreSQL-style session settings (`SET`, `SHOW`, `RESET`).
//!
//! Clients and BI tools set and read a handful of well-known parameters; they
//! are kept here, per session, with PostgreSQL's names and defaults. Names are
//! case-insensitive; `SHOW` answers with the canonical spelling. Custom
//! dotted names (`myapp.tenant`) are accepted, as in PostgreSQL; any other
//! unknown name is an error (42704), so a typo is not silently ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::limits::parse_duration;
use crate::{QueryError, QueryResult};

/// The PostgreSQL server version meshgate reports to clients.
pub const SERVER_VERSION: &str = "16.6";

const DEFAULTS: &[(&str, &str, &str)] = &[
    (
        "application_name",
        "",
        "Sets the application name reported in logs and audit.",
    ),
    (
        "client_encoding",
        "UTF8",
        "The client's character set encoding (only UTF8).",
    ),
    (
        "client_min_messages",
        "notice",
        "Message levels sent to the client.",
    ),
    (
        "DateStyle",
        "ISO, MDY",
        "Display format for date and time values.",
    ),
    (
        "default_transaction_isolation",
        "read committed",
        "Isolation level of new transactions.",
    ),
    (
        "default_transaction_read_only",
        "on",
        "meshgate only reads.",
    ),
    (
        "extra_float_digits",
        "1",
        "Extra digits for floating-point output.",
    ),
    ("integer_datetimes", "on", "Datetimes are 64-bit integers."),
    (
        "IntervalStyle",
        "postgres",
        "Display format for interval values.",
    ),
    (
        "is_superuser",
        "off",
        "Whether the session user is a superuser.",
    ),
    ("lc_messages", "C", "Language of messages."),
    ("max_identifier_length", "63", "Maximum identifier length."),
    (
        "max_index_keys",
        "32",
        "Maximum number of columns in a key (JDBC drivers read it).",
    ),
    (
        "search_path",
        "\"$user\", public",
        "Schema search order for unqualified names.",
    ),
    (
        "server_encoding",
        "UTF8",
        "The server's character set encoding.",
    ),
    (
        "server_version",
        SERVER_VERSION,
        "The PostgreSQL version meshgate emulates.",
    ),
    (
        "server_version_num",
        "160006",
        "The emulated PostgreSQL version as a number.",
    ),
    (
        "standard_conforming_strings",
        "on",
        "Backslashes in ordinary strings are literal.",
    ),
    (
        "statement_timeout",
        "0",
        "Maximum time a statement may run (0 = no limit).",
    ),
    ("TimeZone", "UTC", "Time zone for displaying timestamps."),
    (
        "transaction_isolation",
        "read committed",
        "Isolation level of the current transaction.",
    ),
    ("transaction_read_only", "on", "meshgate only reads."),
];

/// Parameters whose value a client may not change.
const READ_ONLY: &[&str] = &[
    "integer_datetimes",
    "is_superuser",
    "max_identifier_length",
    "max_index_keys",
    "server_encoding",
    "server_version",
    "server_version_num",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// lowercase name → (canonical name, value)
    values: BTreeMap<String, (String, String)>,
}

impl Default for SessionSettings {
    fn default() -> Self {
        let values = DEFAULTS
            .iter()
            .map(|(name, value, _)| {
                (
                    name.to_ascii_lowercase(),
                    (name.to_string(), value.to_string()),
                )
            })
            .collect();
        Self { values }
    }
}

impl SessionSettings {
    pub fn get(&self, name: &str) -> QueryResult<&str> {
        self.values
            .get(&name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| unrecognized(name))
    }

    /// Set `name`; `None` restores the default (`SET x TO DEFAULT`, `RESET x`).
    pub fn set(&mut self, name: &str, value: Option<&str>) -> QueryResult<()> {
        let key = name.to_ascii_lowercase();
        let default = DEFAULTS
            .iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(name));
        if READ_ONLY.contains(&key.as_str()) {
            return Err(QueryError::InvalidParameter(format!(
                "parameter \"{name}\" cannot be changed"
            )));
        }
        match (default, value) {
            (Some((canonical, default_value, _)), value) => {
                let value = value.unwrap_or(default_value);
                let value = validate(canonical, value)?;
                self.values.insert(key, (canonical.to_string(), value));
            }
            (None, Some(value)) if key.contains('.') => {
                self.values
                    .insert(key, (name.to_string(), value.to_string()));
            }
            (None, None) if key.contains('.') => {
                self.values.remove(&key);
            }
            (None, _) => return Err(unrecognized(name)),
        }
        Ok(())
    }

    /// Whether `name` is a parameter a client may not change.
    pub fn is_read_only(name: &str) -> bool {
        READ_ONLY.contains(&name.to_ascii_lowercase().as_str())
    }

    pub fn reset_all(&mut self) {
        *self = Self::default();
    }

    /// Every setting as (name, value, description), for `SHOW ALL`.
    pub fn all(&self) -> Vec<(String, String, String)> {
        self.values
            .values()
            .map(|(name, value)| {
                let description = DEFAULTS
                    .iter()
                    .find(|(n, _, _)| n == name)
                    .map(|(_, _, d)| d.to_string())
                    .unwrap_or_default();
                (name.clone(), value.clone(), description)
            })
            .collect()
    }

    /// The schemas of `search_path`, in order, with `$user` left to the caller.
    pub fn search_path(&self) -> Vec<String> {
        split_list(self.get("search_path").unwrap_or("public"))
    }

    /// `statement_timeout`, or `None` for no limit.
    pub fn statement_timeout(&self) -> Option<Duration> {
        parse_duration(self.get("statement_timeout").unwrap_or("0"))
            .ok()
            .filter(|d| !d.is_zero())
    }
}

fn unrecognized(name: &str) -> QueryError {
    QueryError::UndefinedObject(format!("unrecognized configuration parameter \"{name}\""))
}

fn validate(name: &str, value: &str) -> QueryResult<String> {
    match name {
        "statement_timeout" => {
            parse_duration(value).map_err(|e| {
                QueryError::InvalidParameter(format!(
                    "invalid value for parameter \"statement_timeout\": \"{value}\" ({e})"
                ))
            })?;
            Ok(value.to_string())
        }
        "client_encoding" => {
            let upper = value.to_ascii_uppercase().replace(['-', '_'], "");
            if upper == "UTF8" || upper == "UNICODE" {
                Ok("UTF8".to_string())
            } else {
                Err(QueryError::FeatureNotSupported(format!(
                    "client encoding \"{value}\" is not supported; meshgate speaks UTF8"
                )))
            }
        }
        "extra_float_digits" => value
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|d| (-15..=3).contains(d))
            .map(|d| d.to_string())
            .ok_or_else(|| {
                QueryError::InvalidParameter(format!(
                    "invalid value for parameter \"extra_float_digits\": \"{value}\""
                ))
            }),
        _ => Ok(value.to_string()),
    }
}

/// Split a comma-separated setting (search_path) into unquoted items.
pub(crate) fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_canonical() {
        let mut s = SessionSettings::default();
        s.set("datestyle", Some("ISO, DMY")).unwrap();
        assert_eq!(s.get("DATESTYLE").unwrap(), "ISO, DMY");
        assert!(s
            .all()
            .iter()
            .any(|(n, v, _)| n == "DateStyle" && v == "ISO, DMY"));
    }

    #[test]
    fn unknown_names_fail_but_custom_dotted_names_work() {
        let mut s = SessionSettings::default();
        assert_eq!(
            s.set("no_such_thing", Some("1")).unwrap_err().sqlstate(),
            "42704"
        );
        s.set("myapp.tenant", Some("acme")).unwrap();
        assert_eq!(s.get("myapp.tenant").unwrap(), "acme");
        assert_eq!(
            s.set("server_version", Some("9")).unwrap_err().sqlstate(),
            "22023"
        );
    }

    #[test]
    fn statement_timeout_parses_units() {
        let mut s = SessionSettings::default();
        assert_eq!(s.statement_timeout(), None);
        s.set("statement_timeout", Some("1500")).unwrap();
        assert_eq!(s.statement_timeout(), Some(Duration::from_millis(1500)));
        s.set("statement_timeout", Some("2s")).unwrap();
        assert_eq!(s.statement_timeout(), Some(Duration::from_secs(2)));
        assert!(s.set("statement_timeout", Some("soon")).is_err());
        s.set("statement_timeout", None).unwrap();
        assert_eq!(s.statement_timeout(), None);
    }

    #[test]
    fn search_path_is_split() {
        let s = SessionSettings::default();
        assert_eq!(s.search_path(), vec!["$user", "public"]);
    }
}
