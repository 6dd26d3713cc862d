//! Connection start-up: TLS policy, database check, then password authentication.
//!
//! SCRAM-SHA-256 (with `-PLUS` channel binding when TLS is configured) runs on
//! pgwire's implementation against the stored PBKDF2 hash. Cleartext passwords
//! are only offered when the configuration says so. Before either, a client
//! that skipped TLS where TLS is required, or that names a database which is
//! no catalog, is refused with a PostgreSQL error it can show its user.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use meshgate_planner::{Identity, QueryService, SERVER_VERSION};
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata, AuthSource,
    DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use pgwire::api::{
    ClientInfo, ConnectionGuard, ConnectionHandle, ConnectionManager, PgWireConnectionState,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::errors::to_pg_error;
use super::PgWireSettings;
use crate::auth::{AuthError, UserStore, ITERATIONS};

pub(crate) struct MeshgateStartup {
    service: Arc<QueryService>,
    users: Arc<UserStore>,
    tls_required: bool,
    params: Arc<DefaultServerParameterProvider>,
    connections: Arc<ConnectionManager>,
    mode: Mode,
    token_pids: RandomPidSecretKeyGenerator,
}

/// Connection metadata key marking a connection that signs in with a JWT.
const TOKEN_AUTH: &str = "meshgate.token_auth";

enum Mode {
    Scram(SASLAuthStartupHandler<DefaultServerParameterProvider>),
    Cleartext(RandomPidSecretKeyGenerator),
}

fn server_parameters() -> DefaultServerParameterProvider {
    let mut params = DefaultServerParameterProvider::default();
    params.server_version = SERVER_VERSION.to_owned();
    params.is_superuser = false;
    params.default_transaction_read_only = true;
    params.time_zone = "UTC".to_owned();
    params.date_style = "ISO, MDY".to_owned();
    params
}

impl MeshgateStartup {
    pub(crate) fn new(
        service: Arc<QueryService>,
        users: Arc<UserStore>,
        settings: &PgWireSettings,
        connections: Arc<ConnectionManager>,
    ) -> Self {
        let params = Arc::new(server_parameters());
        let mode = if settings.allow_cleartext {
            Mode::Cleartext(RandomPidSecretKeyGenerator::default())
        } else {
            let mut scram = ScramAuth::new(Arc::new(ScramUsers(users.clone())));
            scram.set_iterations(ITERATIONS);
            if let Some(pem) = &settings.tls_cert_pem {
                if let Err(e) = scram.configure_certificate(pem) {
                    tracing::warn!(error = %e, "SCRAM channel binding disabled: certificate not usable");
                }
            }
            Mode::Scram(
                SASLAuthStartupHandler::new(params.clone())
                    .with_scram(scram)
                    .with_connection_manager(connections.clone()),
            )
        };
        Self {
            service,
            users,
            tls_required: settings.tls.is_some() && settings.tls_required,
            params,
            connections,
            mode,
            token_pids: RandomPidSecretKeyGenerator::default(),
        }
    }

    async fn cleartext<C>(
        &self,
        generator: &RandomPidSecretKeyGenerator,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(msg) => {
                let password = msg.into_password()?;
                let user = client.metadata().get("user").cloned().unwrap_or_default();
                let identity =
                    self.users
                        .verify(&user, &password.password)
                        .map_err(|e| match e {
                            AuthError::BadToken(problem) => fatal("28P01", problem),
                            AuthError::BadCredentials(_) => {
                                PgWireError::InvalidPassword(user.clone())
                            }
                        })?;
                // The identity (with a token's groups and attributes) for the
                // session this connection opens.
                client.session_extensions().insert::<Identity>(identity);
                let (pid, secret) = generator.generate(client);
                client.set_pid_and_secret_key(pid, secret.clone());
                // Register for CancelRequest, as the SCRAM path does.
                let (handle, guard) = self.connections.register(pid, secret);
                client
                    .session_extensions()
                    .insert::<Arc<ConnectionHandle>>(handle);
                client.session_extensions().insert::<ConnectionGuard>(guard);
                finish_authentication(client, self.params.as_ref()).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_owned(),
        code.to_owned(),
        message,
    )))
}

#[async_trait]
impl StartupHandler for MeshgateStartup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let PgWireFrontendMessage::Startup(ref startup) = message {
            if self.tls_required && !client.is_secure() {
                return Err(fatal(
                    "28000",
                    "meshgate requires TLS on this listener (use sslmode=require)".to_owned(),
                ));
            }
            let user = startup.parameters.get("user").ok_or_else(|| {
                fatal(
                    "28000",
                    "no PostgreSQL user name specified in startup packet".into(),
                )
            })?;
            let database = startup.parameters.get("database").map(String::as_str);
            if let Err(e) = self
                .service
                .resolve_database(&Identity::new(user), database)
            {
                let mut err = to_pg_error(&e);
                if let PgWireError::UserError(info) = &mut err {
                    info.severity = "FATAL".to_owned();
                }
                return Err(err);
            }
        }
        // With JWTs accepted, a user meshgate has no password for signs in
        // with a token as a cleartext password (SCRAM cannot carry one).
        if let PgWireFrontendMessage::Startup(ref startup) = message {
            let user = startup.parameters.get("user").cloned().unwrap_or_default();
            if self.users.accepts_jwt() && self.users.get(&user).is_none() {
                client
                    .metadata_mut()
                    .insert(TOKEN_AUTH.to_owned(), "jwt".to_owned());
            }
        }
        let token_auth = client.metadata().contains_key(TOKEN_AUTH);
        let result = match &self.mode {
            Mode::Scram(_) if token_auth => self.cleartext(&self.token_pids, client, message).await,
            Mode::Scram(handler) => handler.on_startup(client, message).await,
            Mode::Cleartext(generator) => self.cleartext(generator, client, message).await,
        };
        // SCRAM reports the user of its own exchange, which libpq leaves empty.
        result.map_err(|e| match e {
            PgWireError::InvalidPassword(_) => PgWireError::InvalidPassword(
                client.metadata().get("user").cloned().unwrap_or_default(),
            ),
            other => other,
        })
    }
}

/// Hands pgwire's SCRAM the stored salted password of a user.
#[derive(Debug)]
struct ScramUsers(Arc<UserStore>);

#[async_trait]
impl AuthSource for ScramUsers {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        match self.0.get(user) {
            Some(hash) => Ok(Password::new(
                Some(hash.salt.clone()),
                hash.salted_password.clone(),
            )),
            None => Err(PgWireError::InvalidPassword(user.to_owned())),
        }
    }
}
