//! The credential a request presents (gRPC call or HTTP request), as far as
//! an audit record of a refused sign-in may tell: the claimed user and the
//! kind of credential, never the password or token.

use base64::Engine as _;

use super::credentials::decode_basic;
use super::{looks_like_jwt, UserStore};

/// The credential a call presents, as far as an audit record may say.
pub(crate) struct Presented {
    /// The claimed user (unverified: whatever the credential names).
    pub(crate) user: String,
    pub(crate) mechanism: &'static str,
    /// A JWT credential, for the JWKS to catch up before it is verified.
    pub(crate) jwt: Option<String>,
}

impl Presented {
    pub(crate) fn from_headers(headers: &http::HeaderMap, users: &UserStore) -> Self {
        let none = Self {
            user: String::new(),
            mechanism: "none",
            jwt: None,
        };
        let Some((scheme, value)) = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
        else {
            return none;
        };
        let value = value.trim();
        let user_claim = users.jwt().map(|j| j.user_claim()).unwrap_or("sub");
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let (user, password) = decode_basic(value).unwrap_or_default();
                let jwt = (users.accepts_jwt() && looks_like_jwt(&password)).then_some(password);
                Self {
                    user,
                    mechanism: if jwt.is_some() { "basic, JWT" } else { "basic" },
                    jwt,
                }
            }
            "bearer" if users.accepts_jwt() && looks_like_jwt(value) => Self {
                user: claimed_user(value, user_claim),
                mechanism: "bearer JWT",
                jwt: Some(value.to_owned()),
            },
            "bearer" => Self {
                user: claimed_user(value, "sub"),
                mechanism: "bearer token",
                jwt: None,
            },
            _ => Self {
                mechanism: "unsupported scheme",
                ..none
            },
        }
    }
}

/// The user a token names, without verifying it (for the audit record of a
/// token that failed verification). Identity providers' JWTs and meshgate's
/// own tokens are both compact JWS: the claims are the middle part.
fn claimed_user(token: &str, claim: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|claims| {
            claims
                .get(claim)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_names_the_claimed_user_never_the_secret() {
        let users = UserStore::default();
        let mut headers = http::HeaderMap::new();
        let basic = base64::engine::general_purpose::STANDARD.encode("mallory:hunter2");
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Basic {basic}").parse().unwrap(),
        );
        let presented = Presented::from_headers(&headers, &users);
        assert_eq!(
            (presented.user.as_str(), presented.mechanism),
            ("mallory", "basic")
        );
        assert!(presented.jwt.is_none());
        let signer = crate::auth::TokenSigner::default();
        let token = signer.issue("alice", "session", None, std::time::Duration::from_secs(60));
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        let presented = Presented::from_headers(&headers, &users);
        assert_eq!(
            (presented.user.as_str(), presented.mechanism),
            ("alice", "bearer token")
        );
    }
}
