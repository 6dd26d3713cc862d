//! How DataFusion runs every session's queries: the `[execution]` options
//! and how they become a session's configuration.

use datafusion::prelude::SessionConfig;

/// How DataFusion runs every session's queries (`[execution]`); `None`
/// keeps DataFusion's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionOptions {
    /// Partitions a query's scans and operators are split into (default:
    /// the machine's CPU count). A query over files comes back in this
    /// many parts, one Flight SQL endpoint each.
    pub target_partitions: Option<std::num::NonZeroUsize>,
    /// Rows per record batch (default 8,192).
    pub batch_size: Option<std::num::NonZeroUsize>,
    /// DataFusion settings by name (`execution.parquet.pushdown_filters`,
    /// with or without the `datafusion.` prefix) and value, applied to
    /// every session after meshgate's own.
    pub datafusion: Vec<(String, String)>,
    /// The Ballista cluster that runs large queries over files
    /// (`[execution] ballista`); `None` runs every query in the gateway.
    pub ballista: Option<crate::BallistaOptions>,
    /// Rows of a join's large (Parquet) side whose keys its built side
    /// lacks are dropped right above the scan (`[execution]
    /// filter_probe_rows`, default on; see `probe_filter`). Off, the keys
    /// only skip row groups and pages by their statistics.
    pub filter_probe_rows: bool,
}

impl Default for ExecutionOptions {
    fn default() -> Self {
        Self {
            target_partitions: None,
            batch_size: None,
            datafusion: Vec::new(),
            ballista: None,
            filter_probe_rows: true,
        }
    }
}

impl ExecutionOptions {
    /// `config` with the DataFusion settings applied; the first that
    /// DataFusion refuses is returned as (its key, the problem).
    pub fn apply(&self, mut config: SessionConfig) -> Result<SessionConfig, (String, String)> {
        if let Some(n) = self.target_partitions {
            config = config.with_target_partitions(n.get());
        }
        if let Some(n) = self.batch_size {
            config = config.with_batch_size(n.get());
        }
        for (key, value) in &self.datafusion {
            let name = if key.starts_with("datafusion.") {
                key.clone()
            } else {
                format!("datafusion.{key}")
            };
            config
                .options_mut()
                .set(&name, value)
                .map_err(|e| (key.clone(), e.strip_backtrace()))?;
        }
        Ok(config)
    }
}
