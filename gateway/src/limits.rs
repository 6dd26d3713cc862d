//! `[limits]`: what one statement may use of the gateway.
//!
//! ```toml
//! [limits]
//! memory = "4GiB"              # shared by all running queries (default: half the machine)
//! query_memory = "1GiB"        # the most of it one query may hold (default: no cap of its own)
//! spill = "16GiB"              # temporary files sorts, joins and aggregates may spill to
//! statement_timeout = "30min"  # the longest any statement runs ("0": no limit)
//! max_running_per_user = 8     # queries one user runs at once (default: no limit)
//! max_queued_per_user = 100    # and how many more wait for a slot (default 100)
//! queue_timeout = "30s"        # the longest a query waits for a slot (default for every limit)
//!
//! [limits.users.etl]           # one user's own limit, instead of the per-user default
//! max_running = 16
//!
//! [limits.groups.analysts]     # all members of a policy group together
//! max_running = 4
//! max_queued = 100             # default 100
//! queue_timeout = "30s"        # default: [limits] queue_timeout
//! ```
//!
//! A query needs a slot in its user's limit and in the limit of each of its
//! groups that has one (see the planner's `admission`); a full queue or a
//! wait past `queue_timeout` fails with 53300.
//!
//! The keys that bound what one client's requests may make the gateway
//! hold (statement text, Flight SQL parameters and prepared statements) are
//! read by [`crate::request_limits`].

use std::collections::BTreeMap;
use std::time::Duration;

use meshgate_planner::{
    parse_bytes, parse_duration, AdmissionLimits, ConcurrencyLimit, RuntimeLimits,
};
use serde::Deserialize;

/// Queries that may wait for a slot when a limit does not say.
const DEFAULT_MAX_QUEUED: usize = 100;
/// The longest a query waits for a slot when no limit says.
const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(30);
/// The smallest `query_memory` that lets a query do anything.
const MIN_QUERY_MEMORY: u64 = 1 << 20;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub memory: Option<String>,
    pub query_memory: Option<String>,
    pub spill: Option<String>,
    pub statement_timeout: Option<String>,
    pub max_running_per_user: Option<usize>,
    pub max_queued_per_user: Option<usize>,
    pub queue_timeout: Option<String>,
    #[serde(default)]
    pub users: BTreeMap<String, ConcurrencyConfig>,
    #[serde(default)]
    pub groups: BTreeMap<String, ConcurrencyConfig>,
    /// See [`crate::request_limits`].
    pub max_statement_bytes: Option<String>,
    pub max_parameter_bytes: Option<String>,
    pub prepared_statement_memory: Option<String>,
    pub prepared_statement_memory_per_user: Option<String>,
}

/// `[limits.users.NAME]` or `[limits.groups.NAME]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyConfig {
    pub max_running: usize,
    pub max_queued: Option<usize>,
    pub queue_timeout: Option<String>,
}

impl LimitsConfig {
    /// The limits in force, or the key and the problem.
    pub fn runtime(&self) -> Result<RuntimeLimits, (String, String)> {
        let mut limits = RuntimeLimits::default();
        let bad = |key: &str, problem: String| (format!("limits.{key}"), problem);
        if let Some(memory) = &self.memory {
            let bytes = parse_bytes(memory).map_err(|p| bad("memory", p))?;
            if bytes < 16 << 20 {
                return Err(bad(
                    "memory",
                    format!("`{memory}` is below the 16MiB minimum"),
                ));
            }
            limits.memory_bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        }
        if let Some(query_memory) = &self.query_memory {
            let bytes = parse_bytes(query_memory).map_err(|p| bad("query_memory", p))?;
            if bytes < MIN_QUERY_MEMORY {
                return Err(bad(
                    "query_memory",
                    format!("`{query_memory}` is below the 1MiB minimum"),
                ));
            }
            let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
            if bytes > limits.memory_bytes {
                return Err(bad(
                    "query_memory",
                    format!(
                        "`{query_memory}` is more than all queries share ([limits] memory, {} bytes)",
                        limits.memory_bytes
                    ),
                ));
            }
            limits.query_memory_bytes = Some(bytes);
        }
        if let Some(spill) = &self.spill {
            limits.spill_bytes = parse_bytes(spill).map_err(|p| bad("spill", p))?;
        }
        if let Some(timeout) = &self.statement_timeout {
            let duration = parse_duration(timeout)
                .map_err(|p| bad("statement_timeout", format!("`{timeout}`: {p}")))?;
            limits.statement_timeout = (!duration.is_zero()).then_some(duration);
        }
        Ok(limits)
    }

    /// The concurrency limits, or the key and the problem.
    pub fn admission(&self) -> Result<AdmissionLimits, (String, String)> {
        let default_timeout = match &self.queue_timeout {
            Some(text) => timeout("limits.queue_timeout", text)?,
            None => DEFAULT_QUEUE_TIMEOUT,
        };
        let per_user = match (self.max_running_per_user, self.max_queued_per_user) {
            (Some(running), queued) => Some(ConcurrencyLimit {
                max_running: at_least_one("limits.max_running_per_user", running)?,
                max_queued: queued.unwrap_or(DEFAULT_MAX_QUEUED),
                queue_timeout: default_timeout,
            }),
            (None, Some(_)) => {
                return Err((
                    "limits.max_queued_per_user".into(),
                    "needs `max_running_per_user` (how many run before others queue)".into(),
                ))
            }
            (None, None) => None,
        };
        let table = |kind: &str, entries: &BTreeMap<String, ConcurrencyConfig>| {
            entries
                .iter()
                .map(|(name, entry)| {
                    let key = |k: &str| format!("limits.{kind}.{name}.{k}");
                    Ok((
                        name.clone(),
                        ConcurrencyLimit {
                            max_running: at_least_one(&key("max_running"), entry.max_running)?,
                            max_queued: entry.max_queued.unwrap_or(DEFAULT_MAX_QUEUED),
                            queue_timeout: match &entry.queue_timeout {
                                Some(text) => timeout(&key("queue_timeout"), text)?,
                                None => default_timeout,
                            },
                        },
                    ))
                })
                .collect::<Result<BTreeMap<_, _>, (String, String)>>()
        };
        Ok(AdmissionLimits {
            per_user,
            users: table("users", &self.users)?,
            groups: table("groups", &self.groups)?,
        })
    }
}

fn at_least_one(key: &str, value: usize) -> Result<usize, (String, String)> {
    if value == 0 {
        Err((
            key.to_owned(),
            "must be at least 1 (0 would admit no query)".into(),
        ))
    } else {
        Ok(value)
    }
}

fn timeout(key: &str, text: &str) -> Result<Duration, (String, String)> {
    parse_duration(text).map_err(|p| (key.to_owned(), format!("`{text}`: {p}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_are_read_and_checked() {
        let config = LimitsConfig {
            memory: Some("256MiB".into()),
            spill: Some("1GiB".into()),
            statement_timeout: Some("5min".into()),
            ..Default::default()
        };
        let limits = config.runtime().unwrap();
        assert_eq!(limits.memory_bytes, 256 << 20);
        assert_eq!(limits.spill_bytes, 1 << 30);
        assert_eq!(limits.statement_timeout, Some(Duration::from_secs(300)));
        let none = LimitsConfig {
            statement_timeout: Some("0".into()),
            ..Default::default()
        };
        assert_eq!(none.runtime().unwrap().statement_timeout, None);
        let bad = LimitsConfig {
            memory: Some("1KiB".into()),
            ..Default::default()
        };
        assert_eq!(bad.runtime().unwrap_err().0, "limits.memory");
        let capped = LimitsConfig {
            memory: Some("1GiB".into()),
            query_memory: Some("256MiB".into()),
            ..Default::default()
        };
        assert_eq!(
            capped.runtime().unwrap().query_memory_bytes,
            Some(256 << 20)
        );
        let over = LimitsConfig {
            memory: Some("1GiB".into()),
            query_memory: Some("2GiB".into()),
            ..Default::default()
        };
        let (key, problem) = over.runtime().unwrap_err();
        assert_eq!(key, "limits.query_memory");
        assert!(problem.contains("[limits] memory"), "{problem}");
    }

    #[test]
    fn concurrency_limits_take_defaults_and_name_bad_keys() {
        let text = r#"
            max_running_per_user = 3
            queue_timeout = "5s"
            [users.etl]
            max_running = 10
            [groups.analysts]
            max_running = 2
            max_queued = 7
        "#;
        let config: LimitsConfig = toml::from_str(text).unwrap();
        let limits = config.admission().unwrap();
        let per_user = limits.per_user.unwrap();
        assert_eq!(per_user.max_running, 3);
        assert_eq!(per_user.max_queued, DEFAULT_MAX_QUEUED);
        assert_eq!(per_user.queue_timeout, Duration::from_secs(5));
        assert_eq!(limits.users["etl"].max_running, 10);
        let analysts = limits.groups["analysts"];
        assert_eq!((analysts.max_running, analysts.max_queued), (2, 7));
        assert_eq!(analysts.queue_timeout, Duration::from_secs(5));

        let zero: LimitsConfig = toml::from_str("[groups.g]\nmax_running = 0").unwrap();
        assert_eq!(
            zero.admission().unwrap_err().0,
            "limits.groups.g.max_running"
        );
        let lonely: LimitsConfig = toml::from_str("max_queued_per_user = 3").unwrap();
        assert_eq!(
            lonely.admission().unwrap_err().0,
            "limits.max_queued_per_user"
        );
        let slow: LimitsConfig =
            toml::from_str("[users.u]\nmax_running = 1\nqueue_timeout = \"soon\"").unwrap();
        assert_eq!(
            slow.admission().unwrap_err().0,
            "limits.users.u.queue_timeout"
        );
        assert_eq!(
            LimitsConfig::default().admission().unwrap(),
            AdmissionLimits::default()
        );
    }
}
