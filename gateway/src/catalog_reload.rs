//! Catalogs without a restart: read the configuration file again and put
//! its `[catalogs]` in force (on SIGHUP, and through the admin API's
//! `ReloadCatalogs`). The file is checked as at start-up, and every added
//! or changed catalog is built, before anything changes; a file that is
//! invalid, or a catalog that cannot be built, is refused with the file,
//! the key and the problem, and the catalogs in force keep serving. Other
//! sections (listeners, users, limits, policy) take effect at a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use meshgate_connectors::ConnectorRegistry;
use meshgate_planner::{CatalogChanges, QueryService};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};

/// Read `config_file` and put its catalogs in force.
pub async fn reload_catalogs(
    service: &QueryService,
    config_file: &Path,
) -> Result<CatalogChanges, ConfigError> {
    let config = Config::load(config_file)?;
    let specs = config.catalog_specs()?;
    service
        .reload_catalogs(&specs, &ConnectorRegistry::builtin())
        .await
        .map_err(|e| config.registry_error(e))
}

/// Reload the catalogs of `config_file` on each SIGHUP until `stop`.
pub(crate) async fn reload_on_hangup(
    service: Arc<QueryService>,
    config_file: PathBuf,
    stop: CancellationToken,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; catalogs reload through the admin API only");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                received = hangups.recv() => if received.is_none() { return },
            }
            match reload_catalogs(&service, &config_file).await {
                Ok(changes) => tracing::info!(%changes, "SIGHUP: catalogs reloaded"),
                Err(e) => tracing::error!(
                    "SIGHUP: catalog reload refused, the catalogs in force keep serving: {e}"
                ),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (service, config_file);
        stop.cancelled().await;
    }
}
