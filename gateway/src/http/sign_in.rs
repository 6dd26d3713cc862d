//! Who is calling an HTTP endpoint that shows data: the [`SignedIn`]
//! extractor, the one sign-in rule of the HTTP listener.
//!
//! A request carries its credential in the `Authorization` header on every
//! call — `Basic` (user and password, the password possibly a JWT) or
//! `Bearer` (meshgate's session token from Flight SQL's Handshake, or an
//! identity provider's JWT) — exactly what the gRPC services accept: the
//! decision is `crate::auth::authenticate`'s, so no front end signs in by a
//! rule of its own. There are no cookies, so a page on another site cannot
//! make a browser call these endpoints with its user's credentials.
//!
//! The listener serves plain HTTP, so credentials are refused unless
//! `[auth] allow_cleartext = true` (put TLS in front of it in production).
//! A refused sign-in is audited like on the other listeners (claimed user,
//! client, mechanism, reason; never the secret). With the
//! `x-meshgate-impersonate` header a signed-in service account acts as
//! another user where the policy allows it, as on Flight SQL.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use meshgate_planner::Identity;
use tonic::metadata::MetadataMap;

use super::json_error::JsonError;
use super::HttpState;
use crate::auth::{
    audit_failed_sign_in, authenticate, impersonate, presented_jwt, Presented, UserStore,
    IMPERSONATE_HEADER,
};

/// The protocol failed HTTP sign-ins are recorded under.
const PROTOCOL: &str = "http";

/// A signed-in caller: who they act as, and where they call from.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub identity: Identity,
    pub client: Option<SocketAddr>,
}

impl FromRequestParts<HttpState> for SignedIn {
    type Rejection = JsonError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &HttpState,
    ) -> Result<Self, Self::Rejection> {
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0);
        let refuse = |reason: &str| {
            let (user, mechanism) = claimed(&parts.headers, &state.users);
            audit_failed_sign_in(&state.service, &user, client, PROTOCOL, mechanism, reason);
            JsonError::unauthorized(reason)
        };
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Err(refuse(
                "not signed in: send an Authorization header (Basic user:password, or Bearer token)",
            ));
        }
        if !state.allow_cleartext {
            return Err(refuse(
                "this HTTP listener has no TLS: credentials are refused unless [auth] allow_cleartext = true",
            ));
        }
        let metadata = MetadataMap::from_headers(parts.headers.clone());
        if let Some(jwt) = presented_jwt(&metadata) {
            state.users.refresh_jwt_keys(&jwt).await;
        }
        let signed_in = authenticate(&metadata, &state.users, &state.signer)
            .map_err(|status| refuse(status.message()))?;
        let identity = match parts.headers.get(IMPERSONATE_HEADER) {
            None => signed_in,
            Some(target) => {
                let target = target.to_str().map_err(|_| {
                    JsonError::bad_request(format!("{IMPERSONATE_HEADER} is not ASCII"))
                })?;
                impersonate(&state.service, signed_in, target, client, PROTOCOL)
                    .map_err(|e| JsonError::from(&e))?
            }
        };
        Ok(Self { identity, client })
    }
}

/// The user a refused credential claims to be, and its kind, for the audit
/// record (unverified; never the password or token).
fn claimed(headers: &HeaderMap, users: &UserStore) -> (String, &'static str) {
    let presented = Presented::from_headers(headers, users);
    (presented.user, presented.mechanism)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn the_claimed_user_never_carries_the_secret() {
        let users = UserStore::default();
        let mut headers = HeaderMap::new();
        let basic = base64::engine::general_purpose::STANDARD.encode("mallory:hunter2");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {basic}").parse().unwrap(),
        );
        assert_eq!(claimed(&headers, &users), ("mallory".into(), "basic"));
        headers.insert(header::AUTHORIZATION, "Digest x".parse().unwrap());
        assert_eq!(
            claimed(&headers, &users),
            (String::new(), "unsupported scheme")
        );
        assert_eq!(claimed(&HeaderMap::new(), &users), (String::new(), "none"));
    }
}
