//! Meshgate's own short-lived tokens: Flight SQL session tokens, statement
//! tickets and prepared-statement handles.
//!
//! A token is a JSON Web Token signed with HS256 (through `jsonwebtoken`)
//! whose claims say who it was issued to, until when, and what for. Two
//! decisions a newcomer must know:
//! - The key is random per process: tokens do not outlive a restart, and one
//!   gateway's tokens are not accepted by another. That is the safe default
//!   for a gateway that keeps no session store; a client signs in again.
//! - The header says `typ: meshgate+jwt` (explicit typing, RFC 8725), so a
//!   token of ours is never mistaken for an identity provider's JWT, which
//!   has the same shape (see [`super::looks_like_jwt`]); and a token of one
//!   kind (`session`, `ticket`, `prepared`) is never accepted as another.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

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

/// Signs and verifies bearer tokens, tickets and handles with a key drawn
/// at random when it is created (one per process: see the module docs).
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Default for TokenSigner {
    fn default() -> Self {
        let key: [u8; 32] = rand::random();
        let mut validation = Validation::new(ALGORITHM);
        // Expiry is checked after the kind (see `verify`), to the second.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            validation,
        }
    }
}

impl TokenSigner {
    /// The compact JWS of `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = Header {
            typ: Some(TOKEN_TYPE.into()),
            ..Header::new(ALGORITHM)
        };
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("an HMAC key signs any claims")
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

    /// Check signature, kind and expiry (in that order).
    pub fn verify(&self, token: &str, kind: &str) -> Result<Claims, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        if data.header.typ.as_deref() != Some(TOKEN_TYPE) {
            return Err(TokenError::Invalid);
        }
        let claims = data.claims;
        if claims.kind != kind {
            return Err(TokenError::WrongKind(kind.to_owned()));
        }
        if claims.exp <= now_secs() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
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
            &Header::new(ALGORITHM),
            &Claims {
                sub: "alice".into(),
                exp: now_secs() + 60,
                kind: "session".into(),
                data: None,
            },
            &signer.encoding,
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
}
