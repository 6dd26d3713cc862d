//! JSON Web Tokens from an identity provider, verified and turned into an
//! identity (user, groups, attributes).
//!
//! What a token must satisfy, all fixed by `[auth.jwt]` and none by the
//! token: its `alg` is the one configured (so `none`, or HS256 signed with a
//! public key, never verify); it is signed by the configured key — a shared
//! secret, a PEM public key, or the key its `kid` names in a JWKS; `exp` is
//! present and not past, `nbf` (when present) not in the future, both with
//! a small leeway for clock skew; `iss` equals the configured issuer when one
//! is set; and `aud` — when an audience is configured the token must name
//! it, and when none is configured a token that names any audience is
//! refused (it was issued for some other service).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use meshgate_planner::Identity;

use super::jwks::{JwkCache, JwksLocation, KeySet};
use super::settings::JwtConfig;
use super::tokens::is_signed_token;
use super::AuthError;

/// Most leeway accepted for clock skew.
const MAX_LEEWAY_SECS: u64 = 300;

/// Whether `s` is a token for the identity provider's keys: a compact JWS
/// (three base64url parts, the first a JSON header) that is not one of
/// meshgate's own signed tokens (see [`super::TokenSigner`]), which have the
/// same shape but are verified with meshgate's key.
pub fn looks_like_jwt(s: &str) -> bool {
    s.starts_with("eyJ") && s.split('.').count() == 3 && !is_signed_token(s)
}

/// Where verification keys come from.
enum Keys {
    /// A shared secret or one PEM public key.
    Fixed(DecodingKey),
    /// A JWKS file or URL.
    Set(Arc<JwkCache>),
}

/// Verifies JSON Web Tokens from the configured issuer and maps their claims
/// to an identity: user, groups and attributes.
pub struct JwtVerifier {
    algorithm: Algorithm,
    keys: Keys,
    validation: Validation,
    audience_configured: bool,
    user_claim: String,
    groups_claim: String,
    attribute_claims: Vec<String>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The algorithm `name` names, in any case (`rs256`, `EdDSA`).
fn parse_algorithm(name: &str) -> Option<Algorithm> {
    let upper = name.to_ascii_uppercase();
    let canonical = if upper == "EDDSA" { "EdDSA" } else { &upper };
    canonical.parse().ok()
}

impl JwtVerifier {
    /// From `[auth.jwt]`, with relative key file paths resolved against
    /// `base_dir`; errors are `(key, problem)`, the key a full path such as
    /// `auth.jwt.secret`. A JWKS file is read here (so a broken one fails the
    /// configuration); a JWKS URL is fetched on first use (see
    /// [`JwtVerifier::refresh_keys`]).
    pub fn from_config(c: &JwtConfig, base_dir: &Path) -> Result<Self, (String, String)> {
        let bad = |key: &str, problem: String| (format!("auth.jwt.{key}"), problem);
        let algorithm = parse_algorithm(&c.algorithm).ok_or_else(|| {
            bad(
                "algorithm",
                format!(
                    "`{}` is not one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA",
                    c.algorithm
                ),
            )
        })?;
        let hmac = matches!(
            algorithm,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        );
        let sources = [
            ("secret", c.secret.is_some()),
            ("public_key_file", c.public_key_file.is_some()),
            ("jwks_file", c.jwks_file.is_some()),
            ("jwks_url", c.jwks_url.is_some()),
        ];
        let given: Vec<&str> = sources.iter().filter(|s| s.1).map(|s| s.0).collect();
        let keys = match (hmac, given.as_slice()) {
            (true, ["secret"]) => {
                let secret = c.secret.as_deref().unwrap_or_default();
                if secret.len() < 32 {
                    return Err(bad("secret", "must be at least 32 bytes".into()));
                }
                Keys::Fixed(DecodingKey::from_secret(secret.as_bytes()))
            }
            (true, _) => {
                return Err(bad(
                    "secret",
                    format!("{:?} needs `secret` (and no public key or key set)", algorithm),
                ))
            }
            (false, ["public_key_file"]) => {
                let file = c.public_key_file.as_deref().unwrap_or_default();
                let path = base_dir.join(file);
                let pem = std::fs::read(&path)
                    .map_err(|e| bad("public_key_file", format!("{}: {e}", path.display())))?;
                let key = match algorithm {
                    Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
                    Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
                    _ => DecodingKey::from_rsa_pem(&pem),
                }
                .map_err(|e| {
                    bad(
                        "public_key_file",
                        format!(
                            "{}: not a {algorithm:?} public key (PEM): {e}",
                            path.display()
                        ),
                    )
                })?;
                Keys::Fixed(key)
            }
            (false, ["jwks_file"]) => {
                let file = c.jwks_file.as_deref().unwrap_or_default();
                let path = base_dir.join(file);
                let bytes = std::fs::read(&path)
                    .map_err(|e| bad("jwks_file", format!("{}: {e}", path.display())))?;
                let set = KeySet::parse(&bytes, algorithm)
                    .map_err(|e| bad("jwks_file", format!("{}: {e}", path.display())))?;
                Keys::Set(Arc::new(
                    JwkCache::new(
                        JwksLocation::File(path),
                        algorithm,
                        Duration::from_secs(c.jwks_refresh_secs),
                        Duration::from_secs(c.jwks_min_refetch_secs),
                    )
                    .with_keys(set),
                ))
            }
            (false, ["jwks_url"]) => {
                let url = c.jwks_url.clone().unwrap_or_default();
                let parsed = url::Url::parse(&url)
                    .map_err(|e| bad("jwks_url", format!("`{url}` is not a URL: {e}")))?;
                if !matches!(parsed.scheme(), "https" | "http") {
                    return Err(bad("jwks_url", "must be an https:// (or http://) URL".into()));
                }
                Keys::Set(Arc::new(JwkCache::new(
                    JwksLocation::Url(url),
                    algorithm,
                    Duration::from_secs(c.jwks_refresh_secs),
                    Duration::from_secs(c.jwks_min_refetch_secs),
                )))
            }
            (false, _) => {
                return Err(bad(
                    "algorithm",
                    format!(
                        "{algorithm:?} needs exactly one of `public_key_file`, `jwks_file`, `jwks_url` (got: {})",
                        if given.is_empty() { "none".to_owned() } else { given.join(", ") }
                    ),
                ))
            }
        };
        if c.leeway_secs > MAX_LEEWAY_SECS {
            return Err(bad(
                "leeway_secs",
                format!("must be at most {MAX_LEEWAY_SECS} seconds"),
            ));
        }
        if c.jwks_refresh_secs == 0 {
            return Err(bad("jwks_refresh_secs", "must be at least 1".into()));
        }
        let mut validation = Validation::new(algorithm);
        validation.leeway = c.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // Without a configured audience, jsonwebtoken refuses any token that
        // carries `aud`; with one, the token must carry it.
        validation.validate_aud = true;
        let mut required = vec!["exp"];
        if let Some(aud) = &c.audience {
            validation.set_audience(&[aud]);
            required.push("aud");
        }
        if let Some(iss) = &c.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(Self {
            algorithm,
            keys,
            validation,
            audience_configured: c.audience.is_some(),
            user_claim: c.user_claim.clone(),
            groups_claim: c.groups_claim.clone(),
            attribute_claims: c.attribute_claims.clone(),
        })
    }

    /// Let a JWKS catch up before `token` is verified: fetch it when stale or
    /// when the token names a key id it lacks (rate limited). Nothing to do
    /// for a fixed key.
    pub async fn refresh_keys(&self, token: &str) {
        if let Keys::Set(cache) = &self.keys {
            let kid = jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid);
            cache.refresh_for(kid.as_deref()).await;
        }
    }

    /// Load a JWKS that has not been loaded yet (a URL, at start-up).
    pub async fn prefetch_keys(&self) {
        if let Keys::Set(cache) = &self.keys {
            cache.refresh_for(None).await;
        }
    }

    /// The claim that names the user.
    pub fn user_claim(&self) -> &str {
        &self.user_claim
    }

    /// How many times the key set was fetched (0 for a fixed key).
    pub fn key_fetches(&self) -> u64 {
        match &self.keys {
            Keys::Set(cache) => cache.fetch_count(),
            Keys::Fixed(_) => 0,
        }
    }

    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::BadToken("the token is malformed".into()))?;
        if header.alg != self.algorithm {
            return Err(AuthError::BadToken(format!(
                "the token is signed with {:?}; only {:?} is accepted",
                header.alg, self.algorithm
            )));
        }
        let cached;
        let key = match &self.keys {
            Keys::Fixed(key) => key,
            Keys::Set(cache) => {
                cached = cache
                    .key(header.kid.as_deref())
                    .map_err(AuthError::BadToken)?;
                cached.as_ref()
            }
        };
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            key,
            &self.validation,
        )
        .map_err(|e| AuthError::BadToken(self.explain(e.kind())))?;
        self.identity(data.claims)
    }

    /// What the client is told; never the token or key material.
    fn explain(&self, kind: &ErrorKind) -> String {
        match kind {
            ErrorKind::ExpiredSignature => "the token has expired".into(),
            ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
            ErrorKind::InvalidIssuer => "the token is from another issuer (iss)".into(),
            ErrorKind::InvalidAudience if self.audience_configured => {
                "the token is for another audience (aud)".into()
            }
            ErrorKind::InvalidAudience => {
                "the token names an audience (aud) and meshgate has none configured".into()
            }
            ErrorKind::MissingRequiredClaim(claim) => {
                format!("the token has no `{claim}` claim")
            }
            ErrorKind::InvalidClaimFormat(claim) => {
                format!("the token's `{claim}` claim is malformed")
            }
            ErrorKind::InvalidAlgorithm => "the token's algorithm does not fit the key".into(),
            ErrorKind::InvalidSignature => "the token's signature is invalid".into(),
            _ => "the token is malformed".into(),
        }
    }

    fn identity(
        &self,
        claims: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Identity, AuthError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const SECRET: &str = "a shared secret of at least 32 bytes!";

    fn from_toml(text: &str) -> Result<JwtVerifier, (String, String)> {
        let config: JwtConfig = toml::from_str(text).unwrap();
        JwtVerifier::from_config(&config, Path::new("/tmp"))
    }

    fn verifier(extra: &str) -> JwtVerifier {
        from_toml(&format!(
            "algorithm = \"HS256\"\nsecret = \"{SECRET}\"\n{extra}\n"
        ))
        .unwrap()
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn hs256(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn time_claims_are_checked_with_a_small_leeway() {
        let v = verifier("");
        let ok = hs256(json!({"sub": "carol", "exp": now() + 600}));
        assert_eq!(v.verify(&ok).unwrap().user, "carol");
        // Within the default 30 s leeway.
        let skewed = hs256(json!({"sub": "carol", "exp": now() - 5, "nbf": now() + 5}));
        assert!(v.verify(&skewed).is_ok());
        let expired = hs256(json!({"sub": "carol", "exp": now() - 3600}));
        assert_eq!(
            v.verify(&expired).unwrap_err(),
            AuthError::BadToken("the token has expired".into())
        );
        let early = hs256(json!({"sub": "carol", "exp": now() + 600, "nbf": now() + 86400}));
        assert_eq!(
            v.verify(&early).unwrap_err(),
            AuthError::BadToken("the token is not valid yet (nbf)".into())
        );
        let forever = hs256(json!({"sub": "carol"}));
        assert_eq!(
            v.verify(&forever).unwrap_err(),
            AuthError::BadToken("the token has no `exp` claim".into())
        );
    }

    #[test]
    fn audience_is_required_when_configured_and_refused_when_not() {
        let exp = now() + 600;
        let none = verifier("");
        assert!(none.verify(&hs256(json!({"sub": "c", "exp": exp}))).is_ok());
        let other = hs256(json!({"sub": "c", "exp": exp, "aud": "other-app"}));
        assert!(none.verify(&other).is_err(), "an aud nobody configured");
        let ours = verifier("audience = \"meshgate\"\nissuer = \"https://idp\"");
        let good = hs256(json!({"sub": "c", "exp": exp, "aud": "meshgate", "iss": "https://idp"}));
        assert!(ours.verify(&good).is_ok());
        let many =
            hs256(json!({"sub": "c", "exp": exp, "aud": ["x", "meshgate"], "iss": "https://idp"}));
        assert!(ours.verify(&many).is_ok());
        for bad in [
            json!({"sub": "c", "exp": exp, "aud": "other-app", "iss": "https://idp"}),
            json!({"sub": "c", "exp": exp, "iss": "https://idp"}),
            json!({"sub": "c", "exp": exp, "aud": "meshgate"}),
            json!({"sub": "c", "exp": exp, "aud": "meshgate", "iss": "https://evil"}),
        ] {
            assert!(ours.verify(&hs256(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_algorithm_is_pinned() {
        let v = verifier("");
        let claims = json!({"sub": "root", "exp": now() + 600});
        // alg "none": header {"alg":"none"}, no signature.
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
        use base64::Engine;
        let none = format!(
            "{}.{}.",
            B64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            B64.encode(claims.to_string())
        );
        assert!(v.verify(&none).is_err());
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(matches!(v.verify(&hs512), Err(AuthError::BadToken(m)) if m.contains("HS512")));
    }

    #[test]
    fn key_sources_are_validated() {
        let parse = |text: &str| from_toml(text).map(|_| ());
        let (key, _) = parse("algorithm = \"RS256\"\nsecret = \"x\"").unwrap_err();
        assert_eq!(key, "auth.jwt.algorithm");
        let (_, problem) =
            parse("algorithm = \"ES256\"\njwks_file = \"a\"\njwks_url = \"https://x\"")
                .unwrap_err();
        assert!(problem.contains("exactly one"), "{problem}");
        let (key, _) =
            parse("algorithm = \"ES256\"\njwks_url = \"file:///etc/passwd\"").unwrap_err();
        assert_eq!(key, "auth.jwt.jwks_url");
        let (key, _) = parse("algorithm = \"none\"").unwrap_err();
        assert_eq!(key, "auth.jwt.algorithm");
        let (key, _) = parse(&format!(
            "algorithm = \"HS256\"\nsecret = \"{SECRET}\"\nleeway_secs = 86400"
        ))
        .unwrap_err();
        assert_eq!(key, "auth.jwt.leeway_secs");
    }

    #[test]
    fn meshgate_tokens_are_not_taken_for_the_providers() {
        let ours = super::super::TokenSigner::default().issue(
            "alice",
            "session",
            None,
            Duration::from_secs(60),
        );
        assert!(!looks_like_jwt(&ours));
        assert!(looks_like_jwt(&hs256(
            json!({"sub": "carol", "exp": now() + 600})
        )));
    }
}
