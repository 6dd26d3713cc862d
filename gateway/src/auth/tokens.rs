//! Meshgate's own short-lived tokens: Flight SQL session tokens, statement
//! tickets and prepared-statement handles, signed with HMAC-SHA256.
//!
//! The key is random per process: tokens do not outlive a restart, which is
//! the safe default for a gateway that keeps no session store.

use base64::Engine as _;

use super::password::constant_time_eq;

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
