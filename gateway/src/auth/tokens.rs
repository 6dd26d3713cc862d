//! Meshgate's own short-lived tokens: Flight SQL session tokens, statement
//! tickets and prepared-statement handles.
//!
//! A token is a JSON Web Token signed with HS256 (through `jsonwebtoken`)
//! whose claims say who it was issued to, until when, and what for. Two
//! decisions a newcomer must know:
//! - The keys come from `[[auth.signing_keys]]` (an `id` and a `secret`):
//!   the first signs, every one verifies, and the header's `kid` says which
//!   signed. Replicas configured with the same keys accept each other's
//!   tokens, tickets and handles, and a new key is rolled in by putting it
//!   first while the old one still verifies. Without configured keys the key
//!   is random per process: tokens do not outlive a restart, and one
//!   gateway's tokens are not accepted by another (the safe default for a
//!   single gateway; a client signs in again).
//! - The header says `typ: meshgate+jwt` (explicit typing, RFC 8725), so a
//!   token of ours is never mistaken for an identity provider's JWT, which
//!   has the same shape (see [`super::looks_like_jwt`]); and a token of one
//!   kind (`session`, `ticket`, `prepared`) is never accepted as another.
//!
//! A client presents the same token on every call (its session token, a
//! prepared statement's handle), so a token whose signature was checked is
//! remembered by a SHA-256 of its text (at most [`VERIFIED_BYTES`], each for
//! [`VERIFIED_FOR`] after its last use): the keys do not change for a
//! signer's life, so its signature stays as good as it was. Its kind and
//! expiry are checked at every use. Only tokens that verified are kept, and
//! a statement ticket, redeemed about once, is not kept at all
//! ([`TokenSigner::verify_once`]): it would only push out the others.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sha2::Digest;

/// The `typ` header of every token meshgate signs.
const TOKEN_TYPE: &str = "meshgate+jwt";
/// The one algorithm meshgate signs its tokens with.
const ALGORITHM: Algorithm = Algorithm::HS256;

/// The kind of the bearer token Flight SQL's Handshake issues, which every
/// gRPC service of the Flight SQL listener accepts.
pub const SESSION_TOKEN: &str = "session";

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

/// The shortest secret a signing key may have: HS256's own key size.
pub const MIN_SECRET_BYTES: usize = 32;

/// Signs and verifies bearer tokens, tickets and handles (see the module
/// docs for where the keys come from).
pub struct TokenSigner {
    /// The key that signs, with its id.
    signing: (String, EncodingKey),
    /// Every key that verifies, by id.
    verifying: Vec<(String, DecodingKey)>,
    validation: Validation,
    /// Claims of tokens whose signature verified, by their text's SHA-256.
    verified: moka::sync::Cache<[u8; 32], Arc<Claims>>,
}

/// What the remembered tokens may hold at most, counted as their claims'
/// text plus [`VERIFIED_ENTRY_BYTES`] each.
const VERIFIED_BYTES: u64 = 4 << 20;
const VERIFIED_ENTRY_BYTES: u32 = 128;
/// How long a verified token is remembered after its last use.
const VERIFIED_FOR: Duration = Duration::from_secs(600);

/// A key drawn at random for this process only.
impl Default for TokenSigner {
    fn default() -> Self {
        let key: [u8; 32] = rand::random();
        let id = format!("process-{:016x}", rand::random::<u64>());
        Self::with_keys(&[(id, key.to_vec())])
    }
}

impl TokenSigner {
    /// A signer from `[[auth.signing_keys]]` (`(id, secret)`, the first
    /// signs), or a random key when none is configured. The configuration
    /// checks ids and secret lengths (see [`MIN_SECRET_BYTES`]).
    pub fn from_config(keys: &[super::SigningKeyConfig]) -> Self {
        if keys.is_empty() {
            return Self::default();
        }
        let keys: Vec<(String, Vec<u8>)> = keys
            .iter()
            .map(|k| (k.id.clone(), k.secret.as_bytes().to_vec()))
            .collect();
        Self::with_keys(&keys)
    }

    fn with_keys(keys: &[(String, Vec<u8>)]) -> Self {
        let mut validation = Validation::new(ALGORITHM);
        // Expiry is checked after the kind (see `verify`), to the second.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let (id, secret) = &keys[0];
        Self {
            signing: (id.clone(), EncodingKey::from_secret(secret)),
            verifying: keys
                .iter()
                .map(|(id, secret)| (id.clone(), DecodingKey::from_secret(secret)))
                .collect(),
            validation,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_BYTES)
                .weigher(|_, claims: &Arc<Claims>| {
                    let text = claims.sub.len()
                        + claims.kind.len()
                        + claims.data.as_ref().map_or(0, String::len);
                    u32::try_from(text)
                        .unwrap_or(u32::MAX)
                        .saturating_add(VERIFIED_ENTRY_BYTES)
                })
                .time_to_idle(VERIFIED_FOR)
                .build(),
        }
    }

    /// The compact JWS of `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = Header {
            typ: Some(TOKEN_TYPE.into()),
            kid: Some(self.signing.0.clone()),
            ..Header::new(ALGORITHM)
        };
        jsonwebtoken::encode(&header, claims, &self.signing.1)
            .expect("an HMAC key signs any claims")
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

    /// Check signature (by the key the header's `kid` names), kind and
    /// expiry (in that order), and remember the verified token for its next
    /// use.
    pub fn verify(&self, token: &str, kind: &str) -> Result<Claims, TokenError> {
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let claims = match self.verified.get(&digest) {
            Some(claims) => claims,
            None => {
                let claims = Arc::new(self.verify_signature(token)?);
                self.verified.insert(digest, claims.clone());
                claims
            }
        };
        Self::check(&claims, kind)?;
        Ok(Claims::clone(&claims))
    }

    /// [`Self::verify`] for a token presented about once (a statement
    /// ticket): its signature is checked every time and it is not
    /// remembered, so it does not push out the tokens clients present on
    /// every call.
    pub fn verify_once(&self, token: &str, kind: &str) -> Result<Claims, TokenError> {
        let claims = self.verify_signature(token)?;
        Self::check(&claims, kind)?;
        Ok(claims)
    }

    /// A verified token's kind, then its expiry.
    fn check(claims: &Claims, kind: &str) -> Result<(), TokenError> {
        if claims.kind != kind {
            return Err(TokenError::WrongKind(kind.to_owned()));
        }
        if claims.exp <= now_secs() {
            return Err(TokenError::Expired);
        }
        Ok(())
    }

    /// The claims of `token` if its signature (by the key the header's
    /// `kid` names) and its type are ours, whatever its kind and expiry.
    fn verify_signature(&self, token: &str) -> Result<Claims, TokenError> {
        let kid = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Invalid)?
            .kid
            .ok_or(TokenError::Invalid)?;
        let (_, key) = self
            .verifying
            .iter()
            .find(|(id, _)| *id == kid)
            .ok_or(TokenError::Invalid)?;
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        if data.header.typ.as_deref() != Some(TOKEN_TYPE) {
            return Err(TokenError::Invalid);
        }
        Ok(data.claims)
    }
}

/// Whether `token` claims to be one of meshgate's own (its header's `typ`),
/// whoever signed it; [`TokenSigner::verify`] decides whether it is.
pub(crate) fn is_signed_token(token: &str) -> bool {
    jsonwebtoken::decode_header(token).is_ok_and(|h| h.typ.as_deref() == Some(TOKEN_TYPE))
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
        assert!(is_signed_token(&token));
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
        // Remembered after its first check, still checked for kind and expiry.
        assert_eq!(signer.verify(&token, "ticket").unwrap(), claims);
        assert_eq!(signer.verify(&expired, "ticket"), Err(TokenError::Expired));
        assert_eq!(
            signer.verify(&token, "prepared"),
            Err(TokenError::WrongKind("prepared".into()))
        );
    }

    #[test]
    fn tokens_verified_once_are_checked_alike_and_not_remembered() {
        let signer = TokenSigner::default();
        let token = signer.issue("alice", "ticket", None, Duration::from_secs(60));
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        assert_eq!(signer.verify_once(&token, "ticket").unwrap().sub, "alice");
        assert!(!signer.verified.contains_key(&digest));
        assert_eq!(
            signer.verify_once(&token, "session"),
            Err(TokenError::WrongKind("session".into()))
        );
        let expired = signer.issue("alice", "ticket", None, Duration::ZERO);
        assert_eq!(
            signer.verify_once(&expired, "ticket"),
            Err(TokenError::Expired)
        );
        assert_eq!(
            TokenSigner::default().verify_once(&token, "ticket"),
            Err(TokenError::Invalid)
        );
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
        use base64::Engine as _;
        let parts: Vec<&str> = token.split('.').collect();
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
            signer.verify(
                &format!("{}.{forged_payload}.{}", parts[0], parts[2]),
                "session"
            ),
            Err(TokenError::Invalid)
        );
        // Signed with our key but without our `typ`: not one of ours.
        let untyped = jsonwebtoken::encode(
            &Header {
                kid: Some(signer.signing.0.clone()),
                ..Header::new(ALGORITHM)
            },
            &Claims {
                sub: "alice".into(),
                exp: now_secs() + 60,
                kind: "session".into(),
                data: None,
            },
            &signer.signing.1,
        )
        .unwrap();
        assert_eq!(signer.verify(&untyped, "session"), Err(TokenError::Invalid));
        // `alg: none`.
        let none = format!(
            "{}.{}.",
            B64URL.encode(br#"{"typ":"meshgate+jwt","alg":"none"}"#),
            parts[1]
        );
        assert_eq!(signer.verify(&none, "session"), Err(TokenError::Invalid));
        assert_eq!(
            signer.verify("garbage", "session"),
            Err(TokenError::Invalid)
        );
    }

    fn key(id: &str, secret: &str) -> super::super::SigningKeyConfig {
        super::super::SigningKeyConfig {
            id: id.into(),
            secret: secret.into(),
        }
    }

    #[test]
    fn configured_keys_verify_across_replicas_and_rotate() {
        let old = key("2026-11", "an old secret of thirty-two bytes!!");
        let new = key("2026-12", "a new secret of at least 32 bytes!!");
        // Two replicas with the same keys accept each other's tokens.
        let a = TokenSigner::from_config(std::slice::from_ref(&old));
        let b = TokenSigner::from_config(std::slice::from_ref(&old));
        let token = a.issue("alice", "ticket", None, Duration::from_secs(60));
        assert_eq!(b.verify(&token, "ticket").unwrap().sub, "alice");
        // The new key signs and the old one still verifies.
        let rotated = TokenSigner::from_config(&[new.clone(), old.clone()]);
        assert_eq!(rotated.verify(&token, "ticket").unwrap().sub, "alice");
        let fresh = rotated.issue("bob", "ticket", None, Duration::from_secs(60));
        assert_eq!(
            jsonwebtoken::decode_header(&fresh).unwrap().kid.as_deref(),
            Some("2026-12")
        );
        // A replica that knows only the old key refuses the new key's tokens.
        assert_eq!(a.verify(&fresh, "ticket"), Err(TokenError::Invalid));
        // A key id of ours with another secret is refused.
        let impostor =
            TokenSigner::from_config(&[key("2026-12", "not the secret at all, 32 bytes")]);
        let forged = impostor.issue("root", "ticket", None, Duration::from_secs(60));
        assert_eq!(rotated.verify(&forged, "ticket"), Err(TokenError::Invalid));
    }
}
