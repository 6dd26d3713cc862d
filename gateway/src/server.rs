//! Builds the gateway from a configuration and runs its listeners.
//!
//! [`Gateway::build`] does the slow part once (catalogs from connectors);
//! [`Gateway::start`] binds every configured listener (port 0 picks a free
//! port, which tests rely on) and returns a [`RunningGateway`] that knows the
//! bound addresses and shuts everything down on request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use meshgate_connectors::ConnectorRegistry;
use meshgate_planner::policy::Policy;
use meshgate_planner::{AuditLog, CatalogRegistry, QueryService};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::transport::ServerTlsConfig;

use crate::auth::{TokenSigner, UserStore};
use crate::config::{Config, ConfigError};
use crate::flight_sql::{self, FlightSqlFrontend};
use crate::http::health::Health;
use crate::http::metrics::Metrics;
use crate::pgwire::{PgWireFrontend, PgWireSettings};
use crate::tls;

#[derive(Debug, Error)]
pub enum GatewayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {address} ({listener}): {source}")]
    Bind {
        listener: &'static str,
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
}

/// A configured gateway whose catalogs are built.
pub struct Gateway {
    config: Config,
    service: Arc<QueryService>,
    users: Arc<UserStore>,
    metrics: Arc<Metrics>,
    /// Writes audit records to the shared audit store, once started.
    audit_writer: Option<crate::audit_store::Writer>,
}

impl Gateway {
    pub async fn build(config: Config) -> Result<Self, GatewayError> {
        tls::install_crypto_provider();
        let limits = config
            .limits
            .runtime()
            .map_err(|(key, problem)| ConfigError::Invalid {
                file: config.file.clone(),
                key,
                problem,
            })?;
        let admission =
            config
                .limits
                .admission()
                .map_err(|(key, problem)| ConfigError::Invalid {
                    file: config.file.clone(),
                    key,
                    problem,
                })?;
        let registry = CatalogRegistry::build(
            &config.catalog_specs()?,
            &ConnectorRegistry::builtin(),
            config.base_dir.clone(),
            &limits,
        )
        .await
        .map_err(|e| config.registry_error(e))?;
        // Comments of SQL sources, read in the background.
        registry.load_all_comments();
        let mut service =
            QueryService::new(Arc::new(registry), config.server.default_catalog.clone())
                .with_statement_timeout(limits.statement_timeout)
                .with_execution(config.execution_options()?)
                .with_result_cache(config.result_cache()?)
                .with_admission(admission)
                .with_roles(config.users.keys().cloned().collect())
                .with_token_users(config.auth.jwt.is_some());
        if let Some(policy) = config.load_policy()? {
            service = service.with_policy(policy);
        }
        let store = config.policy.as_ref().and_then(|p| p.store.clone());
        let file = config.policy.as_ref().and_then(|p| p.file.clone());
        if let Some(url) = &store {
            // The store's latest version is in force; an empty store is
            // seeded with the policy file.
            let invalid = |e: String| config.invalid("policy.store", e);
            let store = crate::policy_store::PgPolicyStore::open(url)
                .await
                .map_err(invalid)?;
            match store.latest().await.map_err(invalid)? {
                Some((version, text)) => {
                    let policy = Policy::from_toml(&text).map_err(|e| {
                        invalid(format!("version {version} in the store is invalid: {e}"))
                    })?;
                    service = service.with_policy(policy);
                }
                None => {
                    if service.policy().is_some() {
                        let (text, version) = service
                            .policy_admin()
                            .current_text()
                            .map_err(|e| invalid(e.to_string()))?;
                        store.seed(version, &text).await.map_err(invalid)?;
                    }
                }
            }
            service = service.with_policy_store(Arc::new(store));
        } else if let Some(file) = &file {
            service = service.with_policy_file(config.resolve_path(file));
        }
        // Metrics count from audit records, kept in a file or not.
        let metrics = Arc::new(Metrics::new());
        let invalid_audit = |key: &str, problem: String| ConfigError::Invalid {
            file: config.file.clone(),
            key: key.into(),
            problem,
        };
        let mut log = match config.audit.as_ref().and_then(|a| a.file.as_ref()) {
            Some(file) => {
                let path = config.resolve_path(file);
                AuditLog::open(&path).map_err(|e| {
                    invalid_audit("audit.file", format!("cannot open {}: {e}", path.display()))
                })?
            }
            None => AuditLog::without_file(),
        };
        let mut audit_writer = None;
        if let Some(url) = config.audit.as_ref().and_then(|a| a.store.as_ref()) {
            let (store, writer) =
                crate::audit_store::PgAuditStore::open(url, metrics.audit_store_counts())
                    .await
                    .map_err(|e| invalid_audit("audit.store", e))?;
            log = log.with_store(store);
            audit_writer = Some(writer);
        }
        let mut log = log.with_observer(metrics.observer());
        if let Some((target, namespace)) = config.openlineage()? {
            log = log.with_observer(crate::openlineage::start(target, namespace));
        }
        service = service.with_audit(log);
        let service = Arc::new(service);
        let users = Arc::new(UserStore::new(
            &config.users,
            &config.auth,
            &config.base_dir,
        ));
        if let Some(jwt) = users.jwt() {
            // A JWKS URL is fetched once up front; if the issuer is down, tokens
            // are refused until a later fetch succeeds.
            jwt.prefetch_keys().await;
        }
        Ok(Self {
            config,
            service,
            users,
            metrics,
            audit_writer,
        })
    }

    pub fn service(&self) -> &Arc<QueryService> {
        &self.service
    }

    /// Bind the listeners and start serving.
    pub async fn start(mut self) -> Result<RunningGateway, GatewayError> {
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        if let Some(writer) = self.audit_writer.take() {
            tasks.spawn(writer.run(shutdown.clone()));
        }
        let mut running = RunningGateway {
            pgwire_addr: None,
            flight_sql_addr: None,
            http_addr: None,
            health: None,
            shutdown: shutdown.clone(),
            tasks: JoinSet::new(),
        };
        let requests =
            self.config
                .limits
                .requests()
                .map_err(|(key, problem)| ConfigError::Invalid {
                    file: self.config.file.clone(),
                    key,
                    problem,
                })?;
        let tls = match &self.config.tls {
            Some(t) => {
                let cert = self.config.resolve_path(&t.cert);
                let key = self.config.resolve_path(&t.key);
                let server =
                    tls::server_config(&cert, &key, &[b"postgresql"]).map_err(GatewayError::Tls)?;
                let pem = std::fs::read(&cert)
                    .map_err(|e| GatewayError::Tls(format!("{}: {e}", cert.display())))?;
                Some((TlsAcceptor::from(server), pem, t.required))
            }
            None => None,
        };
        if let Some(listener) = &self.config.listeners.pgwire {
            let (socket, addr) = bind("pgwire", &listener.address).await?;
            let settings = PgWireSettings {
                tls: tls.as_ref().map(|(acceptor, _, _)| acceptor.clone()),
                tls_cert_pem: tls.as_ref().map(|(_, pem, _)| pem.clone()),
                tls_required: tls
                    .as_ref()
                    .map(|(_, _, required)| *required)
                    .unwrap_or(false),
                allow_cleartext: self.config.auth.allow_cleartext,
                max_statement_bytes: requests.max_statement_bytes,
            };
            let frontend = Arc::new(PgWireFrontend::new(
                self.service.clone(),
                self.users.clone(),
                settings,
            ));
            tasks.spawn(frontend.serve(socket, shutdown.clone()));
            tracing::info!(%addr, tls = tls.is_some(), "pgwire listening");
            running.pgwire_addr = Some(addr);
        }
        // One signer for the process: Flight SQL's tokens sign in over HTTP
        // too, and replicas with the same `[[auth.signing_keys]]` share them.
        let signer = Arc::new(TokenSigner::from_config(&self.config.auth.signing_keys));
        // What /readyz says of the shared policy store, kept by its follower.
        let store_health = self
            .config
            .policy
            .as_ref()
            .and_then(|p| p.store.as_ref())
            .map(|_| {
                Arc::new(std::sync::RwLock::new(crate::policy_store::StoreHealth {
                    status: "unknown",
                    ..Default::default()
                }))
            });
        if let Some(listener) = &self.config.listeners.flight_sql {
            let (socket, addr) = bind("flight_sql", &listener.address).await?;
            let frontend = FlightSqlFrontend::new(
                self.service.clone(),
                self.users.clone(),
                signer.clone(),
                Duration::from_secs(self.config.auth.token_ttl_secs),
                requests,
            );
            let mut builder = tonic::transport::Server::builder();
            if let Some(t) = &self.config.tls {
                let cert = read(&self.config.resolve_path(&t.cert))?;
                let key = read(&self.config.resolve_path(&t.key))?;
                builder = builder
                    .tls_config(
                        ServerTlsConfig::new()
                            .identity(tonic::transport::Identity::from_pem(cert, key)),
                    )
                    .map_err(|e| GatewayError::Tls(e.to_string()))?;
            }
            let admin = crate::admin::PolicyAdminService::new(
                self.service.clone(),
                self.users.clone(),
                frontend.signer(),
            );
            let products = crate::admin::ProductAdminService::new(
                self.service.clone(),
                self.users.clone(),
                frontend.signer(),
            );
            let catalogs = crate::admin::CatalogAdminService::new(
                self.service.clone(),
                self.users.clone(),
                frontend.signer(),
                std::path::PathBuf::from(&self.config.file),
            );
            let router = builder
                .layer(crate::auth::SignInLayer::new(
                    self.users.clone(),
                    self.service.clone(),
                ))
                .add_service(flight_sql::service(frontend, &requests))
                .add_service(admin)
                .add_service(products)
                .add_service(catalogs);
            let incoming = TcpIncoming::from(socket).with_nodelay(Some(true));
            let stop = shutdown.clone();
            tasks.spawn(async move {
                if let Err(e) = router
                    .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                    .await
                {
                    tracing::error!(error = %e, "Flight SQL server failed");
                }
            });
            tracing::info!(%addr, tls = self.config.tls.is_some(), "Flight SQL listening");
            running.flight_sql_addr = Some(addr);
        }
        if let Some(listener) = &self.config.listeners.http {
            let (socket, addr) = bind("http", &listener.address).await?;
            let health = Arc::new(Health::new(self.service.registry().catalog_names()));
            let state = crate::http::HttpState {
                service: self.service.clone(),
                metrics: self.metrics.clone(),
                health: health.clone(),
                started: std::time::Instant::now(),
                users: self.users.clone(),
                signer: signer.clone(),
                allow_cleartext: self.config.auth.allow_cleartext,
                policy_store: store_health.clone(),
                pgwire_port: running.pgwire_addr.map(|a| a.port()),
                flight_sql_port: running.flight_sql_addr.map(|a| a.port()),
            };
            tasks.spawn(crate::http::health::run_probes(
                self.service.clone(),
                health.clone(),
                self.metrics.clone(),
                Duration::from_secs(listener.probe_interval_secs),
                shutdown.clone(),
            ));
            tasks.spawn(crate::http::serve(
                socket,
                crate::http::router(state),
                shutdown.clone(),
            ));
            tracing::info!(%addr, "HTTP (health, metrics) listening");
            running.http_addr = Some(addr);
            running.health = Some(health);
        }
        let policy = self.config.policy.as_ref();
        if let (Some(url), Some(health)) = (policy.and_then(|p| p.store.clone()), store_health) {
            tasks.spawn(crate::policy_store::follow(
                self.service.clone(),
                url,
                health,
                shutdown.clone(),
            ));
        } else if let Some(file) = policy.and_then(|p| p.file.as_ref()) {
            let path = self.config.resolve_path(file);
            tasks.spawn(watch_policy(self.service.clone(), path, shutdown.clone()));
        }
        tasks.spawn(crate::catalog_reload::reload_on_hangup(
            self.service.clone(),
            std::path::PathBuf::from(&self.config.file),
            shutdown.clone(),
        ));
        if let Some((every, user)) = self.config.quality_schedule()? {
            tasks.spawn(crate::quality::run_on_schedule(
                self.service.clone(),
                user,
                every,
                shutdown.clone(),
            ));
        }
        running.tasks = tasks;
        if let Some(health) = &running.health {
            health.set_ready(true);
        }
        Ok(running)
    }
}

/// Reload the policy file when its content changes. A valid new policy
/// applies to statements planned afterwards; an invalid one is logged and
/// the policy in force stays.
async fn watch_policy(
    service: Arc<QueryService>,
    path: std::path::PathBuf,
    stop: CancellationToken,
) {
    let mut last = std::fs::read_to_string(&path).ok();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let Ok(text) = tokio::fs::read_to_string(&path).await else {
            continue;
        };
        if last.as_deref() == Some(text.as_str()) {
            continue;
        }
        last = Some(text.clone());
        let file = path.display();
        match Policy::from_toml(&text) {
            Err(e) => tracing::error!(
                "policy reload rejected, previous policy stays in force: {file}: {e}"
            ),
            Ok(policy) => {
                let problems = service.check_policy(&policy).await;
                if problems.is_empty() {
                    let version = policy.document().version;
                    match service.set_policy_unless_older(policy) {
                        Ok(()) => tracing::info!(version, "policy reloaded from {file}"),
                        Err(in_force) => tracing::error!(
                            "policy reload rejected: {file} has version {version}, older than \
                             version {in_force} in force (raise `version` to apply an edit)"
                        ),
                    }
                } else {
                    tracing::error!(
                        "policy reload rejected, previous policy stays in force: {file}: {}",
                        problems.join("; ")
                    );
                }
            }
        }
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, GatewayError> {
    std::fs::read(path).map_err(|e| GatewayError::Tls(format!("{}: {e}", path.display())))
}

async fn bind(
    listener: &'static str,
    address: &str,
) -> Result<(TcpListener, SocketAddr), GatewayError> {
    let err = |source| GatewayError::Bind {
        listener,
        address: address.to_owned(),
        source,
    };
    let socket = TcpListener::bind(address).await.map_err(err)?;
    let addr = socket.local_addr().map_err(err)?;
    Ok((socket, addr))
}

/// A serving gateway.
pub struct RunningGateway {
    pub pgwire_addr: Option<SocketAddr>,
    pub flight_sql_addr: Option<SocketAddr>,
    /// The ops HTTP listener's address (`[listeners.http]`).
    pub http_addr: Option<SocketAddr>,
    health: Option<Arc<Health>>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl RunningGateway {
    /// Stop accepting, close connections and wait for the listeners to end.
    pub async fn shutdown(mut self) {
        if let Some(health) = &self.health {
            health.set_ready(false);
        }
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Serve until Ctrl-C (or SIGTERM), then shut down.
    pub async fn run_until_signal(self) {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("install SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}
