//! What one client's requests may make the gateway hold in memory.
//!
//! ```toml
//! [limits]
//! max_statement_bytes = "1MiB"                  # SQL text of one statement (pgwire Query/Parse, Flight SQL)
//! max_parameter_bytes = "16MiB"                 # the parameters of one Flight SQL DoPut
//! prepared_statement_memory = "256MiB"          # Flight SQL prepared statements kept, all users
//! prepared_statement_memory_per_user = "32MiB"  # ... and per user
//! ```
//!
//! Two decisions a newcomer must know:
//! - Limits are checked where the bytes arrive, before anything is kept: a
//!   statement over `max_statement_bytes` is refused before it is parsed,
//!   and a parameter upload is read message by message and refused as soon
//!   as it passes `max_parameter_bytes`, never buffered whole. The gRPC
//!   message limit of the Flight SQL listener follows from both.
//! - Prepared statements are counted in bytes per user and in total; a
//!   prepare or bind over either budget is refused (53400), nothing another
//!   user prepared is evicted to make room.

use meshgate_planner::parse_bytes;
use thiserror::Error;

use crate::limits::LimitsConfig;

/// The limits in force, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    pub max_statement_bytes: usize,
    pub max_parameter_bytes: usize,
    pub prepared_statement_memory: u64,
    pub prepared_statement_memory_per_user: u64,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_statement_bytes: 1 << 20,
            max_parameter_bytes: 16 << 20,
            prepared_statement_memory: 256 << 20,
            prepared_statement_memory_per_user: 32 << 20,
        }
    }
}

/// A statement longer than `max_statement_bytes`.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error(
    "the statement is {len} bytes long; this server accepts at most {limit} \
     (limits.max_statement_bytes)"
)]
pub struct StatementTooLong {
    pub len: usize,
    pub limit: usize,
}

impl StatementTooLong {
    /// PostgreSQL's `program_limit_exceeded`.
    pub const SQLSTATE: &'static str = "54000";
}

impl RequestLimits {
    /// Refuse SQL text over `max_statement_bytes`.
    pub fn check_statement(&self, sql: &str) -> Result<(), StatementTooLong> {
        if sql.len() > self.max_statement_bytes {
            Err(StatementTooLong {
                len: sql.len(),
                limit: self.max_statement_bytes,
            })
        } else {
            Ok(())
        }
    }

    /// The largest gRPC message the Flight SQL listener decodes: a
    /// statement or one parameter message, with room for the envelope.
    pub fn grpc_max_message_bytes(&self) -> usize {
        self.max_statement_bytes
            .max(self.max_parameter_bytes)
            .saturating_add(64 << 10)
    }
}

impl LimitsConfig {
    /// The request limits in force, or the key and the problem.
    pub fn requests(&self) -> Result<RequestLimits, (String, String)> {
        let mut limits = RequestLimits::default();
        let size = |key: &str, value: &Option<String>| -> Result<Option<u64>, (String, String)> {
            let Some(text) = value else { return Ok(None) };
            let key = format!("limits.{key}");
            let bytes = parse_bytes(text).map_err(|p| (key.clone(), p))?;
            if bytes == 0 {
                return Err((key, format!("`{text}` leaves nothing: give a size above 0")));
            }
            Ok(Some(bytes))
        };
        let usize_of = |b: u64| usize::try_from(b).unwrap_or(usize::MAX);
        if let Some(b) = size("max_statement_bytes", &self.max_statement_bytes)? {
            limits.max_statement_bytes = usize_of(b);
        }
        if let Some(b) = size("max_parameter_bytes", &self.max_parameter_bytes)? {
            limits.max_parameter_bytes = usize_of(b);
        }
        if let Some(b) = size("prepared_statement_memory", &self.prepared_statement_memory)? {
            limits.prepared_statement_memory = b;
        }
        if let Some(b) = size(
            "prepared_statement_memory_per_user",
            &self.prepared_statement_memory_per_user,
        )? {
            limits.prepared_statement_memory_per_user = b;
        }
        // A gRPC message limit must fit the 32-bit length of its framing.
        for (key, value) in [
            ("max_statement_bytes", limits.max_statement_bytes),
            ("max_parameter_bytes", limits.max_parameter_bytes),
        ] {
            if value > 1 << 30 {
                return Err((
                    format!("limits.{key}"),
                    format!("{value} bytes is above the 1GiB maximum"),
                ));
            }
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_sizes_and_bad_values() {
        let defaults = LimitsConfig::default().requests().unwrap();
        assert_eq!(defaults, RequestLimits::default());
        assert_eq!(defaults.max_statement_bytes, 1 << 20);
        let config = LimitsConfig {
            max_statement_bytes: Some("64KiB".into()),
            prepared_statement_memory_per_user: Some("1MiB".into()),
            ..Default::default()
        };
        let limits = config.requests().unwrap();
        assert_eq!(limits.max_statement_bytes, 64 << 10);
        assert_eq!(limits.prepared_statement_memory_per_user, 1 << 20);
        let zero = LimitsConfig {
            max_parameter_bytes: Some("0".into()),
            ..Default::default()
        };
        assert_eq!(zero.requests().unwrap_err().0, "limits.max_parameter_bytes");
        let bad = LimitsConfig {
            prepared_statement_memory: Some("lots".into()),
            ..Default::default()
        };
        assert_eq!(
            bad.requests().unwrap_err().0,
            "limits.prepared_statement_memory"
        );
    }

    #[test]
    fn statements_over_the_limit_are_refused_with_their_size() {
        let limits = RequestLimits {
            max_statement_bytes: 10,
            ..Default::default()
        };
        assert!(limits.check_statement("SELECT 1").is_ok());
        let err = limits.check_statement("SELECT 12345").unwrap_err();
        assert_eq!(err, StatementTooLong { len: 12, limit: 10 });
        assert!(err.to_string().contains("limits.max_statement_bytes"));
    }
}
