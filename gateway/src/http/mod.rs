//! The gateway's HTTP listener (`[listeners.http]`).
//!
//! It serves the operations endpoints ([`ops`]): `/healthz`, `/readyz`,
//! `/metrics` ([`metrics`]) and `/v1/info`, all without sign-in and meant
//! for the operator network; SQL over HTTP (`POST /v1/sql`, `sql`); the
//! data product discovery API
//! (`/v1/products`, `/openapi.json`, [`products`]) and its page
//! (`/products`, `products_page`); and the admin page (`/admin`,
//! `admin_page`).
//! Other HTTP endpoints join the one [`router`] here; any that shows data
//! signs its caller in with [`sign_in::SignedIn`], answers errors as
//! [`json_error::JsonError`] and runs statements through the planner like
//! the other front ends.
//!
//! Source health ([`health`]) is probed in the background while the
//! listener runs; [`metrics::Metrics`] is created with the gateway (it
//! counts from audit records) so it exists whether or not the listener is
//! configured.

mod admin_page;
mod assets;
pub mod health;
pub mod json_error;
pub mod metrics;
mod openapi;
mod ops;
pub mod products;
mod products_page;
pub mod sign_in;
mod sql;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::routing::{get, post};
use axum::Router;
use meshgate_planner::QueryService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{TokenSigner, UserStore};
use health::Health;
use metrics::Metrics;

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub service: Arc<QueryService>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// When the gateway started serving (for the uptime).
    pub started: Instant,
    /// Sign-in of the endpoints that show data (see [`sign_in`]).
    pub users: Arc<UserStore>,
    pub signer: Arc<TokenSigner>,
    /// `[auth] allow_cleartext`: this listener has no TLS.
    pub allow_cleartext: bool,
    /// The ports of the SQL listeners, for connection strings (`/v1/info`).
    pub pgwire_port: Option<u16>,
    pub flight_sql_port: Option<u16>,
    /// The shared policy store's health, when one is configured.
    pub policy_store: Option<crate::policy_store::SharedStoreHealth>,
}

/// The routes of the HTTP listener.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/v1/info", get(ops::info))
        .route("/v1/products", get(products::list))
        .route("/v1/products/{name}", get(products::detail))
        .route("/openapi.json", get(openapi::openapi))
        .route("/v1/sql", post(sql::run))
        .merge(admin_page::routes())
        .merge(products_page::routes())
        .with_state(state)
}

/// Serve `router` on `listener` until `stop`.
pub async fn serve(listener: TcpListener, router: Router, stop: CancellationToken) {
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, service)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, "HTTP listener failed");
    }
}
