//! Who is calling, shared by every front end: configured users and their
//! password hashes (pgwire runs SCRAM against them), JSON Web Tokens from an
//! identity provider, meshgate's own signed tokens, the credentials of a
//! gRPC call, impersonation, and the audit record of a failed sign-in.
//!
//! Two rules a newcomer must know:
//! - **What a client is asked for depends on the server's configuration and
//!   on the connection (TLS or not), never on the user name or on anything
//!   the client sends.** A name meshgate does not know goes through the same
//!   exchange as a known one and fails at its end exactly like a wrong
//!   password (mock SCRAM on pgwire, see [`password`]), so sign-in never
//!   tells which names exist.
//! - **No password or token crosses a connection without TLS in cleartext
//!   unless `[auth] allow_cleartext = true`.** pgwire then only runs
//!   SCRAM-SHA-256 (which never sends the password); a Flight SQL listener,
//!   whose credentials always travel in headers, needs `[tls]` or that key
//!   (checked when the configuration is loaded).
//!
//! Front ends call [`UserStore::sign_in`] (or [`UserStore::verify`] when the
//! JWT keys are known to be current; gRPC services [`authenticate`] a call's
//! headers), report failures with [`audit_failed_sign_in`], and then let a
//! signed-in service account act as an end user where the policy allows it
//! ([`impersonate`]).
//!
//! This module sits below the configuration: it owns its settings types
//! ([`AuthConfig`], [`JwtConfig`], [`UserConfig`]), which `meshgate.toml`
//! embeds, and never reads the configuration as a whole.

mod credentials;
mod grpc;
mod impersonation;
mod jwks;
mod jwt;
mod password;
mod presented;
mod settings;
mod tokens;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use meshgate_planner::{AuditRecord, Identity, QueryService};

pub use credentials::{authenticate, presented_jwt};
pub use grpc::SignInLayer;
pub use impersonation::{
    flight_identity, impersonate, startup_impersonation, IMPERSONATE_HEADER, IMPERSONATE_PARAMETER,
};
pub use jwt::{looks_like_jwt, JwtVerifier};
pub use password::{PasswordHash, ITERATIONS};
pub(crate) use presented::Presented;
pub use settings::{AuthConfig, JwtConfig, SigningKeyConfig, UserConfig};
pub use tokens::{Claims, TokenError, TokenSigner, SESSION_TOKEN};

use password::MockSecret;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    #[error("password authentication failed for user \"{0}\"")]
    BadCredentials(String),
    #[error("token authentication failed: {0}")]
    BadToken(String),
}

/// The configured users, and the JWT issuer meshgate trusts, if any.
#[derive(Debug, Clone, Default)]
pub struct UserStore {
    users: HashMap<String, PasswordHash>,
    jwt: Option<Arc<JwtVerifier>>,
    mock: MockSecret,
}

impl UserStore {
    /// The users and JWT issuer of a configuration that has been validated
    /// (a hash or JWT setting that does not parse is left out here; loading
    /// the configuration refuses it). Relative key files of `[auth.jwt]`
    /// resolve against `base_dir`.
    pub fn new(users: &BTreeMap<String, UserConfig>, auth: &AuthConfig, base_dir: &Path) -> Self {
        let hashes: HashMap<String, PasswordHash> = users
            .iter()
            .filter_map(|(name, u)| {
                PasswordHash::parse(&u.password)
                    .ok()
                    .map(|h| (name.clone(), h))
            })
            .collect();
        let jwt = auth
            .jwt
            .as_ref()
            .and_then(|jwt| JwtVerifier::from_config(jwt, base_dir).ok())
            .map(Arc::new);
        // `users` is ordered by name, so the secret is stable.
        let secrets = users
            .iter()
            .flat_map(|(name, u)| [name.as_bytes(), u.password.as_bytes()])
            .chain(
                auth.jwt
                    .as_ref()
                    .and_then(|j| j.secret.as_deref())
                    .map(str::as_bytes),
            );
        Self {
            users: hashes,
            jwt,
            mock: MockSecret::derive(secrets),
        }
    }

    /// Whether JWTs are accepted.
    pub fn accepts_jwt(&self) -> bool {
        self.jwt.is_some()
    }

    /// The JWT verifier, when JWTs are accepted.
    pub fn jwt(&self) -> Option<&JwtVerifier> {
        self.jwt.as_deref()
    }

    /// Verify a JWT against the keys at hand; the identity comes from its
    /// claims. Call [`UserStore::refresh_jwt_keys`] first where a key set
    /// may have rotated.
    pub fn verify_jwt(&self, token: &str) -> Result<Identity, AuthError> {
        match &self.jwt {
            Some(jwt) => jwt.verify(token),
            None => Err(AuthError::BadToken("JWTs are not accepted here".into())),
        }
    }

    /// If `credential` is a JWT and keys come from a JWKS, let the key set
    /// catch up (stale, or the token names a key id it lacks; rate limited).
    pub async fn refresh_jwt_keys(&self, credential: &str) {
        if let Some(jwt) = &self.jwt {
            if looks_like_jwt(credential) {
                jwt.refresh_keys(credential).await;
            }
        }
    }

    pub fn insert(&mut self, user: impl Into<String>, hash: PasswordHash) {
        self.users.insert(user.into(), hash);
    }

    pub fn get(&self, user: &str) -> Option<&PasswordHash> {
        self.users.get(user)
    }

    /// The SCRAM secret (salt and salted password) to run an exchange
    /// against: the stored one, or for a name meshgate does not know a mock
    /// one with a stable salt that no password matches.
    pub fn scram_secret(&self, user: &str) -> PasswordHash {
        match self.users.get(user) {
            Some(hash) => hash.clone(),
            None => self.mock.scram_secret(user),
        }
    }

    /// Check a cleartext password (Flight basic auth; pgwire when it asks
    /// for a cleartext password, see `pgwire::startup`). With JWTs
    /// configured, a password that is a JWT is verified as one and must name
    /// `user`.
    pub fn verify(&self, user: &str, password: &str) -> Result<Identity, AuthError> {
        if self.jwt.is_some() && looks_like_jwt(password) {
            let identity = self.verify_jwt(password)?;
            if identity.user != user {
                return Err(AuthError::BadToken(format!(
                    "the token is for user \"{}\", not \"{user}\"",
                    identity.user
                )));
            }
            return Ok(identity);
        }
        match self.users.get(user) {
            Some(hash) if hash.verify(password) => Ok(Identity::new(user)),
            Some(_) => Err(AuthError::BadCredentials(user.to_owned())),
            None => {
                // Spend the same work as a real check so timing does not reveal the user.
                let _ = PasswordHash::generate(password);
                Err(AuthError::BadCredentials(user.to_owned()))
            }
        }
    }

    /// [`UserStore::verify`] after letting the JWT keys catch up.
    pub async fn sign_in(&self, user: &str, password: &str) -> Result<Identity, AuthError> {
        self.refresh_jwt_keys(password).await;
        self.verify(user, password)
    }
}

/// Record a failed sign-in in the audit log (when one is configured) and the
/// server log: who it claimed to be, from where, over which protocol and
/// mechanism, and why it failed — never the password or token.
pub fn audit_failed_sign_in(
    service: &QueryService,
    user: &str,
    client: Option<SocketAddr>,
    protocol: &str,
    mechanism: &str,
    reason: &str,
) {
    tracing::info!(user, client = ?client, protocol, mechanism, reason, "sign-in failed");
    if let Some(log) = service.audit_log() {
        let mut record = AuditRecord::access(
            user,
            client.map(|c| c.to_string()),
            protocol,
            format!("sign-in ({mechanism})"),
        );
        record.decision = AuditRecord::DENIED.into();
        record.error = Some(reason.to_owned());
        log.write(&record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_users_fail_like_wrong_passwords() {
        let mut store = UserStore::default();
        store.insert("alice", PasswordHash::generate("pw"));
        assert_eq!(store.verify("alice", "pw").unwrap().user, "alice");
        assert!(matches!(
            store.verify("alice", "no"),
            Err(AuthError::BadCredentials(_))
        ));
        assert!(matches!(
            store.verify("mallory", "pw"),
            Err(AuthError::BadCredentials(_))
        ));
    }

    #[test]
    fn unknown_users_get_a_stable_scram_salt_like_known_ones() {
        let mut store = UserStore::default();
        let alice = PasswordHash::generate("pw");
        store.insert("alice", alice.clone());
        assert_eq!(store.scram_secret("alice"), alice);
        let mallory = store.scram_secret("mallory");
        assert_eq!(mallory.salt, store.scram_secret("mallory").salt);
        assert_eq!(mallory.salt.len(), alice.salt.len());
        assert_eq!(mallory.salted_password.len(), alice.salted_password.len());
    }
}
