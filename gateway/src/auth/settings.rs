//! The `[auth]` and `[users.NAME]` sections of `meshgate.toml`, as plain
//! data: the configuration file embeds these types, and the sign-in code
//! reads them. They live here, not in `crate::config`, so that
//! authentication depends on nothing above it: the configuration uses auth
//! (to check hashes and JWT settings when a file is loaded), never the
//! other way round.
//!
//! ```toml
//! [auth]
//! allow_cleartext = false     # passwords and tokens only over TLS (pgwire: SCRAM without TLS)
//! token_ttl_secs = 3600       # Flight SQL bearer tokens and tickets
//! [auth.jwt]                  # tokens from an identity provider
//! algorithm = "RS256"
//! jwks_url = "https://idp.example/.well-known/jwks.json"
//!
//! [users.alice]
//! password = "pbkdf2-sha256$4096$...$..."   # `meshgate hash-password`
//! ```

use serde::Deserialize;

/// `[auth]`: how clients prove who they are.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Let passwords and tokens cross connections without TLS in cleartext:
    /// pgwire may then ask for a JWT without TLS, and a Flight SQL listener
    /// may run without `[tls]`. Off by default (pgwire then only runs
    /// SCRAM-SHA-256 on connections without TLS); for loopback or an
    /// otherwise protected network only.
    #[serde(default)]
    pub allow_cleartext: bool,
    /// Lifetime of Flight SQL bearer tokens and tickets.
    #[serde(default = "default_token_ttl")]
    pub token_ttl_secs: u64,
    /// Accept JSON Web Tokens from an identity provider as the pgwire
    /// password and as the Flight SQL bearer token.
    pub jwt: Option<JwtConfig>,
    /// `[[auth.signing_keys]]`: the keys meshgate signs its own tokens,
    /// tickets and prepared-statement handles with. The first signs, all
    /// verify; replicas sharing them accept each other's. None: a random
    /// key per process.
    #[serde(default)]
    pub signing_keys: Vec<SigningKeyConfig>,
}

/// One `[[auth.signing_keys]]` entry.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyConfig {
    /// Names the key in the tokens it signs (their `kid`).
    pub id: String,
    /// At least 32 bytes (use `${ENV}` substitution).
    pub secret: String,
}

impl std::fmt::Debug for SigningKeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyConfig")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl AuthConfig {
    /// The problem with `[[auth.signing_keys]]`, as (key, problem).
    pub fn check_signing_keys(&self) -> Result<(), (String, String)> {
        let mut seen = std::collections::HashSet::new();
        for (i, key) in self.signing_keys.iter().enumerate() {
            let at = |field: &str| format!("auth.signing_keys[{i}].{field}");
            if key.id.trim().is_empty() {
                return Err((at("id"), "must not be empty".into()));
            }
            if !seen.insert(key.id.as_str()) {
                return Err((at("id"), format!("`{}` is used by another key", key.id)));
            }
            let min = super::tokens::MIN_SECRET_BYTES;
            if key.secret.len() < min {
                return Err((
                    at("secret"),
                    format!(
                        "must be at least {min} bytes (it is {}); generate one with \
                         `openssl rand -base64 48`",
                        key.secret.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            allow_cleartext: false,
            token_ttl_secs: default_token_ttl(),
            jwt: None,
            signing_keys: Vec::new(),
        }
    }
}

fn default_token_ttl() -> u64 {
    3600
}

/// `[auth.jwt]`: how to verify tokens and read an identity from them (see
/// [`super::JwtVerifier`] for what a token must satisfy).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The one algorithm tokens must be signed with: `HS256`/`HS384`/`HS512`
    /// (shared secret), `RS*`/`PS*`, `ES256`/`ES384` or `EdDSA` (public keys).
    pub algorithm: String,
    /// HS*: the shared secret (use `${ENV}` substitution).
    pub secret: Option<String>,
    /// Public-key algorithms, one of these three: a PEM file with the
    /// issuer's public key,
    pub public_key_file: Option<String>,
    /// a JSON Web Key Set file (re-read like a URL, so keys can rotate),
    pub jwks_file: Option<String>,
    /// or the issuer's JWKS URL; a token's `kid` selects the key.
    pub jwks_url: Option<String>,
    /// The key set is fetched again when older than this.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_secs: u64,
    /// At most one fetch per this many seconds, however many tokens name an
    /// unknown `kid`.
    #[serde(default = "default_jwks_min_refetch")]
    pub jwks_min_refetch_secs: u64,
    /// Clock skew allowed on `exp` and `nbf` (at most 300).
    #[serde(default = "default_jwt_leeway")]
    pub leeway_secs: u64,
    /// When set, the `iss` claim must be present and equal it.
    pub issuer: Option<String>,
    /// When set, the `aud` claim must be present and contain it; when not
    /// set, tokens that carry any `aud` are refused.
    pub audience: Option<String>,
    /// The claim naming the user.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// The claim listing the user's groups (an array, or a space- or
    /// comma-separated string).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Claims copied into the user's attributes (`current_user_attribute`).
    #[serde(default)]
    pub attribute_claims: Vec<String>,
}

fn default_jwks_refresh() -> u64 {
    300
}

fn default_jwks_min_refetch() -> u64 {
    30
}

fn default_jwt_leeway() -> u64 {
    30
}

fn default_user_claim() -> String {
    "sub".into()
}

fn default_groups_claim() -> String {
    "groups".into()
}

/// `[users.NAME]`: a user who signs in with a password.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// A password hash from `meshgate hash-password`, never the password itself.
    pub password: String,
}
