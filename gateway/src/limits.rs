//! `[limits]`: what one statement may use of the gateway.
//!
//! ```toml
//! [limits]
//! memory = "4GiB"              # shared by all running queries (default: half the machine)
//! spill = "16GiB"              # temporary files sorts, joins and aggregates may spill to
//! statement_timeout = "30min"  # the longest any statement runs ("0": no limit)
//! ```
//!
//! The keys that bound what one client's requests may make the gateway
//! hold (statement text, Flight SQL parameters and prepared statements) are
//! read by [`crate::request_limits`].

use meshgate_planner::{parse_bytes, parse_duration, RuntimeLimits};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub memory: Option<String>,
    pub spill: Option<String>,
    pub statement_timeout: Option<String>,
    /// See [`crate::request_limits`].
    pub max_statement_bytes: Option<String>,
    pub max_parameter_bytes: Option<String>,
    pub prepared_statement_memory: Option<String>,
    pub prepared_statement_memory_per_user: Option<String>,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
    }
}
