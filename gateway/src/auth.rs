//! Users and passwords, shared by every front end.
//!
//! Passwords are stored as PBKDF2-HMAC-SHA256 hashes in the form
//! `pbkdf2-sha256$ITERATIONS$SALT$HASH` (base64). That hash is exactly SCRAM's
//! `SaltedPassword`, so pgwire can run SCRAM-SHA-256 against it and Flight SQL
//! can verify a basic-auth password against it; neither ever needs the
//! password. Unknown users and wrong passwords fail the same way, so a client
//! cannot probe which user names exist.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use meshgate_planner::Identity;
use pgwire::api::auth::sasl::scram::gen_salted_password;

use crate::config::Config;

/// The iteration count meshgate hashes with; SCRAM announces one count per
/// server, so every stored hash must use it.
pub const ITERATIONS: usize = 4096;
const PREFIX: &str = "pbkdf2-sha256";

#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

impl PasswordHash {
    /// Hash `password` with a fresh random salt.
    pub fn generate(password: &str) -> Self {
        let salt: [u8; 16] = rand::random();
        Self {
            salted_password: gen_salted_password(password, &salt, ITERATIONS),
            salt: salt.to_vec(),
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let hint = "expected a hash printed by `meshgate hash-password` (pbkdf2-sha256$4096$SALT$HASH), never a plain password";
        let parts: Vec<&str> = s.split('$').collect();
        let [prefix, iterations, salt, hash] = parts.as_slice() else {
            return Err(hint.to_owned());
        };
        if *prefix != PREFIX {
            return Err(hint.to_owned());
        }
        if iterations.parse::<usize>().ok() != Some(ITERATIONS) {
            return Err(format!(
                "iterations must be {ITERATIONS}, got `{iterations}`"
            ));
        }
        let salt = B64.decode(salt).map_err(|e| format!("bad salt: {e}"))?;
        let salted_password = B64.decode(hash).map_err(|e| format!("bad hash: {e}"))?;
        if salted_password.len() != 32 || salt.is_empty() {
            return Err("hash must be 32 bytes with a non-empty salt".into());
        }
        Ok(Self {
            salt,
            salted_password,
        })
    }

    pub fn verify(&self, password: &str) -> bool {
        let candidate = gen_salted_password(password, &self.salt, ITERATIONS);
        constant_time_eq(&candidate, &self.salted_password)
    }
}

impl std::fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{PREFIX}${ITERATIONS}${}${}",
            B64.encode(&self.salt),
            B64.encode(&self.salted_password)
        )
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    #[error("password authentication failed for user \"{0}\"")]
    BadCredentials(String),
    #[error("token authentication failed: {0}")]
    BadToken(String),
}

/// A compact JWS: three base64url parts, the first a JSON header.
pub fn looks_like_jwt(s: &str) -> bool {
    s.starts_with("eyJ") && s.split('.').count() == 3
}

/// Verifies JSON Web Tokens from the configured issuer and maps their claims
/// to an identity: user, groups and attributes.
pub struct JwtVerifier {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
    user_claim: String,
    groups_claim: String,
    attribute_claims: Vec<String>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.validation.algorithms)
            .finish()
    }
}

impl JwtVerifier {
    /// From `[auth.jwt]`; errors are `(key, problem)`.
    pub fn from_config(config: &Config) -> Result<Self, (String, String)> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation};
        let Some(c) = &config.auth.jwt else {
            return Err(("auth.jwt".into(), "is not configured".into()));
        };
        let bad = |key: &str, problem: String| (format!("auth.jwt.{key}"), problem);
        let (algorithm, key) = match c.algorithm.to_ascii_uppercase().as_str() {
            "HS256" => {
                let secret = c
                    .secret
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| bad("secret", "HS256 needs a secret".into()))?;
                if secret.len() < 32 {
                    return Err(bad("secret", "must be at least 32 bytes".into()));
                }
                (
                    Algorithm::HS256,
                    DecodingKey::from_secret(secret.as_bytes()),
                )
            }
            "RS256" => {
                let file = c.public_key_file.as_deref().ok_or_else(|| {
                    bad(
                        "public_key_file",
                        "RS256 needs the issuer's public key (PEM)".into(),
                    )
                })?;
                let path = config.resolve_path(std::path::Path::new(file));
                let pem = std::fs::read(&path)
                    .map_err(|e| bad("public_key_file", format!("{}: {e}", path.display())))?;
                let key = DecodingKey::from_rsa_pem(&pem).map_err(|e| {
                    bad(
                        "public_key_file",
                        format!("{}: not an RSA public key: {e}", path.display()),
                    )
                })?;
                (Algorithm::RS256, key)
            }
            other => return Err(bad("algorithm", format!("`{other}` is not HS256 or RS256"))),
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = 30;
        match &c.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &c.issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(Self {
            key,
            validation,
            user_claim: c.user_claim.clone(),
            groups_claim: c.groups_claim.clone(),
            attribute_claims: c.attribute_claims.clone(),
        })
    }

    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &self.key,
            &self.validation,
        )
        .map_err(|e| AuthError::BadToken(e.to_string()))?;
        let claims = data.claims;
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        let user = claims
            .get(&self.user_claim)
            .and_then(text)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                AuthError::BadToken(format!("the token has no `{}` claim", self.user_claim))
            })?;
        let mut identity = Identity::new(user);
        match claims.get(&self.groups_claim) {
            Some(serde_json::Value::Array(items)) => {
                identity.groups = items.iter().filter_map(text).collect();
            }
            Some(serde_json::Value::String(s)) => {
                identity.groups = s
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            _ => {}
        }
        for name in &self.attribute_claims {
            if let Some(value) = claims.get(name).and_then(text) {
                identity.attributes.insert(name.clone(), value);
            }
        }
        Ok(identity)
    }
}

/// The configured users, and the JWT issuer meshgate trusts, if any.
#[derive(Debug, Clone, Default)]
pub struct UserStore {
    users: HashMap<String, PasswordHash>,
    jwt: Option<std::sync::Arc<JwtVerifier>>,
}

impl UserStore {
    /// The users of a validated configuration.
    pub fn from_config(config: &Config) -> Self {
        let users = config
            .users
            .iter()
            .filter_map(|(name, u)| {
                PasswordHash::parse(&u.password)
                    .ok()
                    .map(|h| (name.clone(), h))
            })
            .collect();
        let jwt = config
            .auth
            .jwt
            .as_ref()
            .and_then(|_| JwtVerifier::from_config(config).ok())
            .map(std::sync::Arc::new);
        Self { users, jwt }
    }

    /// Whether JWTs are accepted.
    pub fn accepts_jwt(&self) -> bool {
        self.jwt.is_some()
    }

    /// Verify a JWT; the identity comes from its claims.
    pub fn verify_jwt(&self, token: &str) -> Result<Identity, AuthError> {
        match &self.jwt {
            Some(jwt) => jwt.verify(token),
            None => Err(AuthError::BadToken("JWTs are not accepted here".into())),
        }
    }

    pub fn insert(&mut self, user: impl Into<String>, hash: PasswordHash) {
        self.users.insert(user.into(), hash);
    }

    pub fn get(&self, user: &str) -> Option<&PasswordHash> {
        self.users.get(user)
    }

    /// Check a cleartext password (Flight basic auth, pgwire cleartext mode).
    /// With JWTs configured, a password that is a JWT is verified as one and
    /// must name `user`.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_and_verify() {
        let hash = PasswordHash::generate("s3cret");
        let parsed = PasswordHash::parse(&hash.to_string()).unwrap();
        assert_eq!(parsed, hash);
        assert!(parsed.verify("s3cret"));
        assert!(!parsed.verify("S3cret"));
    }

    #[test]
    fn plain_or_malformed_values_are_rejected() {
        assert!(PasswordHash::parse("s3cret").is_err());
        assert!(PasswordHash::parse("pbkdf2-sha256$1000$YQ==$YQ==")
            .unwrap_err()
            .contains("iterations"));
        assert!(PasswordHash::parse("pbkdf2-sha256$4096$YQ==$YQ==").is_err());
    }

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
}

/// What a signed token says: who, until when, and what for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    /// The user the token was issued to.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// What the token is for (`session`, `ticket`, `prepared`); a token of one
    /// kind is never accepted as another.
    pub kind: String,
    /// Kind-specific payload (a ticket's SQL, a prepared statement's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is malformed or its signature is invalid")]
    Invalid,
    #[error("token has expired")]
    Expired,
    #[error("token is not a {0} token")]
    WrongKind(String),
}

/// Signs and verifies bearer tokens, tickets and handles with HMAC-SHA256.
///
/// The key is random per process: tokens do not outlive a restart, which is
/// the safe default for a gateway that keeps no session store.
pub struct TokenSigner {
    key: [u8; 32],
}

impl Default for TokenSigner {
    fn default() -> Self {
        Self {
            key: rand::random(),
        }
    }
}

impl TokenSigner {
    fn mac(&self, payload: &[u8]) -> Vec<u8> {
        use hmac::{Mac, SimpleHmac};
        let mut mac =
            SimpleHmac::<sha2::Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(payload);
        mac.finalize().into_bytes().to_vec()
    }

    /// `base64url(json claims) . base64url(hmac)`
    pub fn sign(&self, claims: &Claims) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
        let payload = serde_json::to_vec(claims).expect("claims serialise");
        format!(
            "{}.{}",
            B64URL.encode(&payload),
            B64URL.encode(self.mac(&payload))
        )
    }

    /// Issue a token of `kind` for `user` valid for `ttl`.
    pub fn issue(
        &self,
        user: &str,
        kind: &str,
        data: Option<String>,
        ttl: std::time::Duration,
    ) -> String {
        self.sign(&Claims {
            sub: user.to_owned(),
            exp: now_secs() + ttl.as_secs(),
            kind: kind.to_owned(),
            data,
        })
    }

    /// Check signature, kind and expiry.
    pub fn verify(&self, token: &str, kind: &str) -> Result<Claims, TokenError> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
        let (payload, signature) = token.split_once('.').ok_or(TokenError::Invalid)?;
        let payload = B64URL.decode(payload).map_err(|_| TokenError::Invalid)?;
        let signature = B64URL.decode(signature).map_err(|_| TokenError::Invalid)?;
        if !constant_time_eq(&self.mac(&payload), &signature) {
            return Err(TokenError::Invalid);
        }
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Invalid)?;
        if claims.kind != kind {
            return Err(TokenError::WrongKind(kind.to_owned()));
        }
        if claims.exp <= now_secs() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod token_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tokens_verify_and_bind_user_kind_and_expiry() {
        let signer = TokenSigner::default();
        let token = signer.issue(
            "alice",
            "ticket",
            Some("SELECT 1".into()),
            Duration::from_secs(60),
        );
        let claims = signer.verify(&token, "ticket").unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.data.as_deref()),
            ("alice", Some("SELECT 1"))
        );
        assert_eq!(
            signer.verify(&token, "session"),
            Err(TokenError::WrongKind("session".into()))
        );
        let expired = signer.sign(&Claims {
            exp: now_secs() - 1,
            ..claims.clone()
        });
        assert_eq!(signer.verify(&expired, "ticket"), Err(TokenError::Expired));
    }

    #[test]
    fn forged_or_foreign_tokens_fail() {
        let signer = TokenSigner::default();
        let token = signer.issue("alice", "session", None, Duration::from_secs(60));
        // Another process's key.
        assert_eq!(
            TokenSigner::default().verify(&token, "session"),
            Err(TokenError::Invalid)
        );
        // A payload edited to another user keeps the old signature.
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
        let (_, sig) = token.split_once('.').unwrap();
        let forged_payload = B64URL.encode(
            serde_json::to_vec(&Claims {
                sub: "root".into(),
                exp: u64::MAX,
                kind: "session".into(),
                data: None,
            })
            .unwrap(),
        );
        assert_eq!(
            signer.verify(&format!("{forged_payload}.{sig}"), "session"),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            signer.verify("garbage", "session"),
            Err(TokenError::Invalid)
        );
    }
}
