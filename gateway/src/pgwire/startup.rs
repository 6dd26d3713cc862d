//! Connection start-up: TLS policy, authentication, then the database.
//!
//! What the server asks for is decided by [`Mechanism::choose`] from the
//! configuration and the connection alone — never from the user name or a
//! start-up parameter, which the client writes:
//! - with `[auth.jwt]`, on a connection that may carry cleartext (TLS, or
//!   `[auth] allow_cleartext = true`), every user is asked for a cleartext
//!   password — a configured user's password, or a JWT (SCRAM cannot carry a
//!   token);
//! - otherwise every user runs SCRAM-SHA-256 (`-PLUS` with channel binding
//!   over TLS) on pgwire's implementation against the stored PBKDF2 hash; a
//!   name meshgate does not know runs a mock exchange (stable fake salt) that
//!   fails at its end with 28P01, exactly like a wrong password.
//!
//! The database the start-up message names is checked only once the
//! credentials are (3D000 then, naming no catalog), so nothing about catalogs
//! is told before authentication; so is `meshgate.impersonate` (42501 unless
//! the policy lets the user act as that one, see `crate::auth::impersonate`). Every start-up failure is FATAL, is
//! answered here rather than handed back to pgwire (which would mark the
//! connection ready for queries and go on reading what the client already
//! sent), leaves the connection deaf to anything else, and is audited (user,
//! client, mechanism, reason; never the password or token).

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use meshgate_planner::{Identity, QueryError, QueryService, SERVER_VERSION};
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::sasl::{SASLState, SCRAM_SHA_256_METHOD, SCRAM_SHA_256_PLUS_METHOD};
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata, AuthSource,
    DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use pgwire::api::{
    ClientInfo, ConnectionGuard, ConnectionHandle, ConnectionManager, PgWireConnectionState,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator, METADATA_DATABASE, METADATA_USER,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::{Authentication, PasswordMessageFamily};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::errors::to_pg_error;
use super::PgWireSettings;
use crate::auth::{
    audit_failed_sign_in, impersonate, startup_impersonation, AuthError, UserStore,
    IMPERSONATE_PARAMETER, ITERATIONS,
};

/// What the server asks a connection for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Scram,
    /// A password or a JWT, in a cleartext password message.
    Cleartext,
}

impl Mechanism {
    /// The one rule: tokens need a cleartext password message, which is only
    /// sent over TLS unless the configuration allows cleartext.
    pub(crate) fn choose(accepts_jwt: bool, secure: bool, allow_cleartext: bool) -> Self {
        if accepts_jwt && (secure || allow_cleartext) {
            Mechanism::Cleartext
        } else {
            Mechanism::Scram
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mechanism::Scram => "SCRAM-SHA-256",
            Mechanism::Cleartext => "cleartext password",
        }
    }
}

/// Where a connection's authentication stands.
enum Exchange {
    AwaitingStartup,
    Cleartext,
    Scram(SASLState),
    /// Sign-in failed: nothing the client sends is read any more.
    Failed,
}

pub(crate) struct MeshgateStartup {
    service: Arc<QueryService>,
    users: Arc<UserStore>,
    tls_required: bool,
    allow_cleartext: bool,
    params: Arc<DefaultServerParameterProvider>,
    connections: Arc<ConnectionManager>,
    scram: ScramAuth,
    /// Shared by every connection of the listener, so each gets its own pid.
    pids: Arc<RandomPidSecretKeyGenerator>,
    exchange: tokio::sync::Mutex<Exchange>,
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
        pids: Arc<RandomPidSecretKeyGenerator>,
    ) -> Self {
        let mut scram = ScramAuth::new(Arc::new(ScramUsers(users.clone())));
        scram.set_iterations(ITERATIONS);
        if let Some(pem) = &settings.tls_cert_pem {
            if let Err(e) = scram.configure_certificate(pem) {
                tracing::warn!(error = %e, "SCRAM channel binding disabled: certificate not usable");
            }
        }
        Self {
            service,
            users,
            tls_required: settings.tls.is_some() && settings.tls_required,
            allow_cleartext: settings.allow_cleartext,
            params: Arc::new(server_parameters()),
            connections,
            scram,
            pids,
            exchange: tokio::sync::Mutex::new(Exchange::AwaitingStartup),
        }
    }

    async fn step<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(startup) => {
                if self.tls_required && !client.is_secure() {
                    return Err(fatal(
                        "28000",
                        "meshgate requires TLS on this listener (use sslmode=require)".into(),
                    ));
                }
                if !startup.parameters.contains_key(METADATA_USER) {
                    return Err(fatal(
                        "28000",
                        "no PostgreSQL user name specified in startup packet".into(),
                    ));
                }
                protocol_negotiation(client, &startup).await?;
                save_startup_parameters_to_metadata(client, &startup);
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                let mechanism = Mechanism::choose(
                    self.users.accepts_jwt(),
                    client.is_secure(),
                    self.allow_cleartext,
                );
                let (exchange, request) = match mechanism {
                    Mechanism::Cleartext => {
                        (Exchange::Cleartext, Authentication::CleartextPassword)
                    }
                    Mechanism::Scram => {
                        let mut offered = vec![SCRAM_SHA_256_METHOD.to_owned()];
                        if self.scram.supports_channel_binding() && client.is_secure() {
                            offered.push(SCRAM_SHA_256_PLUS_METHOD.to_owned());
                        }
                        (
                            Exchange::Scram(SASLState::Initial),
                            Authentication::SASL(offered),
                        )
                    }
                };
                *self.exchange.lock().await = exchange;
                client
                    .send(PgWireBackendMessage::Authentication(request))
                    .await?;
                Ok(())
            }
            PgWireFrontendMessage::PasswordMessageFamily(msg) => {
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                let mut exchange = self.exchange.lock().await;
                let identity = match &mut *exchange {
                    Exchange::AwaitingStartup | Exchange::Failed => {
                        return Err(fatal("08P01", "password message before start-up".into()))
                    }
                    Exchange::Cleartext => {
                        let password = msg.into_password()?.password;
                        self.users
                            .sign_in(&user, &password)
                            .await
                            .map_err(|e| match e {
                                AuthError::BadToken(_) => fatal("28P01", e.to_string()),
                                AuthError::BadCredentials(_) => PgWireError::InvalidPassword(user),
                            })?
                    }
                    Exchange::Scram(state) => {
                        if !self.scram_step(client, msg, state).await? {
                            return Ok(());
                        }
                        Identity::new(user)
                    }
                };
                // Signed in: only now may the client learn about databases,
                // or act as someone else.
                drop(exchange);
                let identity = self.impersonation(client, identity)?;
                self.check_database(client, &identity)?;
                self.finish(client, identity).await
            }
            _ => Ok(()),
        }
    }

    /// One SCRAM message; true once the exchange has succeeded.
    async fn scram_step<C>(
        &self,
        client: &mut C,
        msg: PasswordMessageFamily,
        state: &mut SASLState,
    ) -> PgWireResult<bool>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let msg = if let SASLState::Initial = state {
            if !well_formed_initial_response(&msg) {
                return Err(fatal("08P01", "malformed SASLInitialResponse".into()));
            }
            let initial = msg.into_sasl_initial_response()?;
            let method = initial.auth_method.as_str();
            if method != SCRAM_SHA_256_METHOD && method != SCRAM_SHA_256_PLUS_METHOD {
                // Not echoed: a client that sends its password here instead
                // would find it in the error and the audit log.
                return Err(fatal(
                    "08P01",
                    "the client chose a SASL mechanism the server did not offer".into(),
                ));
            }
            *state = SASLState::ScramClientFirstReceived;
            PasswordMessageFamily::SASLInitialResponse(initial)
        } else {
            PasswordMessageFamily::SASLResponse(msg.into_sasl_response()?)
        };
        let (reply, next) = self
            .scram
            .process_scram_message(&*client, msg, state)
            .await?;
        client
            .send(PgWireBackendMessage::Authentication(reply))
            .await?;
        *state = next;
        Ok(matches!(state, SASLState::Finished))
    }

    /// The user named by `meshgate.impersonate`, if any and if the policy
    /// lets `identity` act as them (42501 otherwise).
    fn impersonation<C: ClientInfo>(
        &self,
        client: &C,
        identity: Identity,
    ) -> PgWireResult<Identity> {
        let metadata = client.metadata();
        let Some(target) = startup_impersonation(
            metadata.get(IMPERSONATE_PARAMETER).map(String::as_str),
            metadata.get("options").map(String::as_str),
        ) else {
            return Ok(identity);
        };
        impersonate(
            &self.service,
            identity,
            &target,
            Some(client.socket_addr()),
            "pgwire",
        )
        .map_err(|e| to_pg_error(&e))
    }

    /// The start-up database must be a catalog (or a name PostgreSQL tools
    /// use for "the default"); the error names no catalog.
    fn check_database<C: ClientInfo>(&self, client: &C, identity: &Identity) -> PgWireResult<()> {
        let database = client.metadata().get(METADATA_DATABASE).map(String::as_str);
        match self.service.resolve_database(identity, database) {
            Ok(_) => Ok(()),
            Err(e @ QueryError::UndefinedDatabase(_)) => Err(fatal(
                e.sqlstate(),
                format!(
                    "database \"{}\" does not exist",
                    database.unwrap_or_default()
                ),
            )),
            Err(e) => Err(to_pg_error(&e)),
        }
    }

    async fn finish<C>(&self, client: &mut C, identity: Identity) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // The identity (with a token's groups and attributes) for the
        // session this connection opens.
        client.session_extensions().insert::<Identity>(identity);
        let (pid, secret) = self.pids.generate(client);
        client.set_pid_and_secret_key(pid, secret.clone());
        // Register for CancelRequest.
        let (handle, guard) = self.connections.register(pid, secret);
        client
            .session_extensions()
            .insert::<Arc<ConnectionHandle>>(handle);
        client.session_extensions().insert::<ConnectionGuard>(guard);
        finish_authentication(client, self.params.as_ref()).await
    }

    async fn mechanism_name(&self) -> &'static str {
        match &*self.exchange.lock().await {
            Exchange::AwaitingStartup | Exchange::Failed => "start-up",
            Exchange::Cleartext => Mechanism::Cleartext.name(),
            Exchange::Scram(_) => Mechanism::Scram.name(),
        }
    }
}

/// pgwire's decoder panics on a SASLInitialResponse whose length fields do
/// not fit the message (pgwire 0.41); check them first. The body is the
/// mechanism (a C string), then an i32 length (-1: no data) and the data.
fn well_formed_initial_response(msg: &PasswordMessageFamily) -> bool {
    let PasswordMessageFamily::Raw(body) = msg else {
        return true;
    };
    let Some(nul) = body.iter().position(|b| *b == 0) else {
        return false;
    };
    let rest = &body[nul + 1..];
    let Some(len) = rest.get(..4) else {
        return false;
    };
    let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    len == -1 || usize::try_from(len).is_ok_and(|len| len <= rest.len() - 4)
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
        let claimed = match &message {
            PgWireFrontendMessage::Startup(startup) => startup.parameters.get(METADATA_USER),
            _ => client.metadata().get(METADATA_USER),
        }
        .cloned()
        .unwrap_or_default();
        if matches!(*self.exchange.lock().await, Exchange::Failed) {
            return Ok(());
        }
        let Err(error) = self.step(client, message).await else {
            return Ok(());
        };
        let mut info = match error {
            // SCRAM names the user of its own exchange, which libpq leaves
            // empty; name the start-up user, in PostgreSQL's words, whether
            // the name exists or not.
            PgWireError::InvalidPassword(_) => ErrorInfo::new(
                "FATAL".into(),
                "28P01".into(),
                format!("password authentication failed for user \"{claimed}\""),
            ),
            other => ErrorInfo::from(other),
        };
        // Whatever went wrong, the connection is not signed in: close it.
        info.severity = "FATAL".to_owned();
        if info.severity_nonlocalized.is_some() {
            info.severity_nonlocalized = Some("FATAL".to_owned());
        }
        audit_failed_sign_in(
            &self.service,
            &claimed,
            Some(client.socket_addr()),
            "pgwire",
            self.mechanism_name().await,
            &format!("[{}] {}", info.code, info.message),
        );
        // Not returned as an error: pgwire would answer it, mark the
        // connection ready for queries and go on reading what the client
        // already sent. Answer here, stop writing, and ignore the rest until
        // the client hangs up (or the start-up timeout ends it).
        *self.exchange.lock().await = Exchange::Failed;
        client
            .send(PgWireBackendMessage::ErrorResponse(info.into()))
            .await?;
        client.close().await?;
        Ok(())
    }
}

/// Hands pgwire's SCRAM the salted password to run against: the stored one,
/// or a mock one for a name meshgate does not know.
#[derive(Debug)]
struct ScramUsers(Arc<UserStore>);

#[async_trait]
impl AuthSource for ScramUsers {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let secret = self.0.scram_secret(login.user().unwrap_or_default());
        Ok(Password::new(Some(secret.salt), secret.salted_password))
    }
}

#[cfg(test)]
mod tests {
    use super::{well_formed_initial_response, Mechanism};
    use pgwire::messages::startup::PasswordMessageFamily;

    #[test]
    fn malformed_initial_responses_are_caught_before_pgwire_decodes_them() {
        let raw = |bytes: &[u8]| PasswordMessageFamily::Raw(bytes.into());
        let mut good = b"SCRAM-SHA-256\0".to_vec();
        good.extend(3i32.to_be_bytes());
        good.extend(b"abc");
        assert!(well_formed_initial_response(&raw(&good)));
        let mut none = b"SCRAM-SHA-256\0".to_vec();
        none.extend((-1i32).to_be_bytes());
        assert!(well_formed_initial_response(&raw(&none)));
        for bad in [
            b"a cleartext password\0".to_vec(),
            b"no terminator".to_vec(),
            [b"M\0".as_slice(), &100i32.to_be_bytes(), b"short"].concat(),
            [b"M\0".as_slice(), &(-7i32).to_be_bytes()].concat(),
        ] {
            assert!(!well_formed_initial_response(&raw(&bad)), "{bad:?}");
        }
    }

    #[test]
    fn the_mechanism_depends_on_configuration_and_tls_only() {
        // (accepts_jwt, secure, allow_cleartext)
        assert_eq!(Mechanism::choose(false, false, false), Mechanism::Scram);
        assert_eq!(Mechanism::choose(false, true, true), Mechanism::Scram);
        assert_eq!(Mechanism::choose(true, false, false), Mechanism::Scram);
        assert_eq!(Mechanism::choose(true, true, false), Mechanism::Cleartext);
        assert_eq!(Mechanism::choose(true, false, true), Mechanism::Cleartext);
    }
}
