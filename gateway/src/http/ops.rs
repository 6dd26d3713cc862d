//! The operations endpoints: `/healthz`, `/readyz`, `/metrics`, `/v1/info`.
//!
//! None of them needs a sign-in, so none shows data, a statement, a user, a
//! client address, a connection string or any other secret: only catalog
//! names and connectors from the configuration, counts, and source errors
//! as the connectors word them (with secrets redacted). They are meant for
//! the operator network (a load balancer's health check, a Prometheus
//! scraper), not for the internet.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::HttpState;

/// `GET /healthz`: the process is alive and answers HTTP.
pub async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

/// `GET /readyz`: 200 while the gateway serves (even with some sources
/// down, which are named in the body), 503 before it serves or while it
/// shuts down.
pub async fn readyz(State(state): State<HttpState>) -> Response {
    let ready = state.health.ready();
    let catalogs = state.health.catalogs();
    let down: Vec<&String> = catalogs
        .iter()
        .filter(|(_, c)| c.status == "down")
        .map(|(name, _)| name)
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let store = state
        .policy_store
        .as_ref()
        .map(|h| h.read().expect("store health lock").clone());
    // A gateway that cannot enforce the newest shared policy still serves
    // (with the policy it holds) but says so.
    let policy_behind = store.as_ref().is_some_and(|s| s.status != "current");
    let mut body = json!({
        "status": if !ready { "unavailable" } else if down.is_empty() && !policy_behind { "ready" } else { "degraded" },
        "catalogs": catalogs,
    });
    if let Some(store) = store {
        body["policy_store"] = json!(store);
    }
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus metrics (OpenMetrics text).
pub async fn metrics(State(state): State<HttpState>) -> Response {
    let runtime = state.service.registry().runtime();
    let queries = state.service.query_registry();
    let now = super::metrics::Snapshot {
        memory_reserved: runtime.memory_pool.reserved(),
        spilled: runtime.disk_manager.used_disk_space(),
        bytes_sent: queries.bytes_sent(),
        active: queries.active_counts(),
        result_cache: state.service.result_cache().stats(),
    };
    (
        [(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)],
        state.metrics.encode(&now),
    )
        .into_response()
}

/// `GET /v1/info`: version, uptime and the catalogs served.
pub async fn info(State(state): State<HttpState>) -> Response {
    let registry = state.service.registry();
    let health = state.health.catalogs();
    let catalogs: Vec<_> = registry
        .catalog_names()
        .into_iter()
        .map(|name| {
            json!({
                "connector": registry.connector_of(&name),
                "description": registry.description(&name),
                "status": health.get(&name).map(|h| h.status).unwrap_or("unknown"),
                "name": name,
            })
        })
        .collect();
    Json(json!({
        "name": "meshgate",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.started.elapsed().as_secs(),
        "default_catalog": state.service.default_catalog(),
        "listeners": { "pgwire": state.pgwire_port, "flight_sql": state.flight_sql_port },
        "catalogs": catalogs,
    }))
    .into_response()
}
