//! What `/readyz` reports: whether the gateway serves, and what the last
//! probe of each catalog's source found.
//!
//! Sources are probed in the background every interval (see [`run_probes`])
//! rather than when `/readyz` is asked, so a slow or hanging source never
//! makes the health check itself slow, and a scrape of `/readyz` cannot be
//! used to hammer the sources. A source that is down makes only its own
//! catalog `down`: the gateway still serves every other catalog and stays
//! ready. The SQL connectors drop a failed connection pool, so a source that
//! comes back is found by the next probe without a restart.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use meshgate_planner::QueryService;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;

/// The last probe of one catalog's source.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogHealth {
    /// `up`, `down`, or `unknown` before the first probe.
    pub status: &'static str,
    /// Why the source is down (secrets redacted by the connector).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the last probe finished (RFC 3339, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked: Option<String>,
}

/// The gateway's readiness and its catalogs' health.
#[derive(Debug)]
pub struct Health {
    ready: AtomicBool,
    catalogs: RwLock<BTreeMap<String, CatalogHealth>>,
}

impl Health {
    /// Not ready yet; every catalog in `names` is `unknown`.
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        let catalogs = names
            .into_iter()
            .map(|name| {
                let unknown = CatalogHealth {
                    status: "unknown",
                    error: None,
                    checked: None,
                };
                (name, unknown)
            })
            .collect();
        Self {
            ready: AtomicBool::new(false),
            catalogs: RwLock::new(catalogs),
        }
    }

    /// Whether the gateway serves: set once its listeners are bound, unset
    /// when it starts shutting down.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn catalogs(&self) -> BTreeMap<String, CatalogHealth> {
        self.catalogs.read().expect("health lock").clone()
    }

    fn set(&self, catalog: &str, result: Result<(), String>) {
        let health = CatalogHealth {
            status: if result.is_ok() { "up" } else { "down" },
            error: result.err(),
            checked: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        };
        self.catalogs
            .write()
            .expect("health lock")
            .insert(catalog.to_owned(), health);
    }
}

/// Probe every catalog's source now, all at once, and record the results
/// (a catalog removed by a reload is no longer reported).
pub async fn probe_all(service: &QueryService, health: &Health, metrics: &Metrics) {
    let catalogs = service.registry().catalogs();
    health
        .catalogs
        .write()
        .expect("health lock")
        .retain(|name, _| catalogs.contains_key(name));
    let probes = catalogs.iter().map(|(name, catalog)| {
        let catalog = catalog.clone();
        async move {
            let result = meshgate_connectors::probe_catalog(&catalog)
                .await
                .map_err(|e| e.to_string());
            (name, result)
        }
    });
    for (name, result) in futures::future::join_all(probes).await {
        metrics.probed(name, result.is_ok());
        if let Err(error) = &result {
            tracing::warn!(catalog = %name, %error, "source probe failed");
        }
        health.set(name, result);
    }
}

/// Probe every `interval` (the first time at once) until `stop`.
pub async fn run_probes(
    service: Arc<QueryService>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(100)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = probe_all(&service, &health, &metrics) => {}
        }
    }
}
