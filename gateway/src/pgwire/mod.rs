//! The PostgreSQL wire protocol front end.
//!
//! Per connection, pgwire asks [`ConnectionHandlers`] for its handlers; we
//! hand out a fresh [`startup::MeshgateStartup`] (authentication state is per
//! connection) and one [`query::PgConnection`] that owns the connection's
//! [`meshgate_planner::QuerySession`]. Everything SQL goes through that
//! session: this module only authenticates, translates parameters and
//! encodes Arrow batches into rows.

mod cancel;
mod encode;
mod errors;
mod fast_rows;
mod floats;
mod query;
mod replies;
mod session;
mod startup;

use std::sync::Arc;

use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::CancelHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{
    ClientInfo, ConnectionManager, ErrorHandler, PgWireServerHandlers, RandomPidSecretKeyGenerator,
};
use pgwire::error::PgWireError;
use pgwire::tokio::process_socket;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use meshgate_planner::QueryService;

use crate::auth::UserStore;

pub use errors::to_pg_error;

/// Settings of the pgwire listener.
#[derive(Clone)]
pub struct PgWireSettings {
    pub tls: Option<TlsAcceptor>,
    /// The PEM certificate, for SCRAM-SHA-256-PLUS channel binding.
    pub tls_cert_pem: Option<Vec<u8>>,
    pub tls_required: bool,
    pub allow_cleartext: bool,
    /// The longest SQL text a Query or Parse may carry (`[limits]
    /// max_statement_bytes`).
    pub max_statement_bytes: usize,
}

/// Serves the PostgreSQL protocol for one listener.
pub struct PgWireFrontend {
    service: Arc<QueryService>,
    users: Arc<UserStore>,
    settings: PgWireSettings,
    connections: Arc<ConnectionManager>,
    /// Who signed in on each connection, for the audit of cancel requests.
    owners: Arc<cancel::ConnectionOwners>,
    /// Backend pids and cancel keys: one generator for the listener, so
    /// pg_stat_activity, pg_cancel_backend and cancel requests name one
    /// connection each.
    pids: Arc<RandomPidSecretKeyGenerator>,
}

impl PgWireFrontend {
    pub fn new(
        service: Arc<QueryService>,
        users: Arc<UserStore>,
        settings: PgWireSettings,
    ) -> Self {
        Self {
            service,
            users,
            settings,
            connections: Arc::new(ConnectionManager::new()),
            owners: Arc::default(),
            pids: Arc::default(),
        }
    }

    /// Accept connections until `shutdown` fires; each runs on its own task.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (socket, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "pgwire accept failed");
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            let handlers = ConnectionHandlers::new(self.clone(), peer);
            let tls = self.settings.tls.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    result = process_socket(socket, tls, handlers) => {
                        if let Err(e) = result {
                            tracing::debug!(%peer, error = %e, "pgwire connection ended with an error");
                        }
                    }
                    _ = shutdown.cancelled() => {}
                }
            });
        }
    }
}

/// The handlers of one connection.
struct ConnectionHandlers {
    frontend: Arc<PgWireFrontend>,
    connection: Arc<query::PgConnection>,
    peer: std::net::SocketAddr,
}

impl ConnectionHandlers {
    fn new(frontend: Arc<PgWireFrontend>, peer: std::net::SocketAddr) -> Self {
        let connection = Arc::new(query::PgConnection::new(
            frontend.service.clone(),
            frontend.settings.max_statement_bytes,
            frontend.owners.clone(),
        ));
        Self {
            frontend,
            connection,
            peer,
        }
    }
}

impl PgWireServerHandlers for ConnectionHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.connection.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.connection.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(startup::MeshgateStartup::new(
            self.frontend.service.clone(),
            self.frontend.users.clone(),
            &self.frontend.settings,
            self.frontend.connections.clone(),
            self.frontend.pids.clone(),
        ))
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::new(cancel::AuditedCancel {
            manager: self.frontend.connections.clone(),
            owners: self.frontend.owners.clone(),
            service: self.frontend.service.clone(),
            peer: self.peer,
        })
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(LogErrors)
    }
}

struct LogErrors;

impl ErrorHandler for LogErrors {
    fn on_error<C: ClientInfo>(&self, client: &C, error: &mut PgWireError) {
        tracing::debug!(peer = %client.socket_addr(), error = %error, "pgwire error sent to client");
    }
}
