//! Sign-in around every gRPC call of the Flight SQL listener (Flight SQL and
//! the admin service): a tower layer that does the parts of authentication
//! a synchronous per-call check cannot.
//!
//! Before the call, a JWT credential lets the JWKS catch up (a rotated key
//! is fetched here, rate limited, so the service's own check finds it).
//! After the call, an `UNAUTHENTICATED` answer is a failed sign-in: it is
//! audited with the claimed user, the client address and the reason the
//! client was given — never the password or token. The services keep the
//! one decision of who the caller is ([`super::authenticate`]), so no call
//! is authenticated by two rules.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine as _;
use meshgate_planner::QueryService;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use super::credentials::decode_basic;
use super::{audit_failed_sign_in, looks_like_jwt, UserStore};

/// Adds JWKS refresh and failed-sign-in auditing to a gRPC server.
#[derive(Clone)]
pub struct SignInLayer {
    users: Arc<UserStore>,
    service: Arc<QueryService>,
}

impl SignInLayer {
    pub fn new(users: Arc<UserStore>, service: Arc<QueryService>) -> Self {
        Self { users, service }
    }
}

impl<S> tower_layer::Layer<S> for SignInLayer {
    type Service = SignInService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SignInService {
            inner,
            users: self.users.clone(),
            service: self.service.clone(),
        }
    }
}

/// See [`SignInLayer`].
#[derive(Clone)]
pub struct SignInService<S> {
    inner: S,
    users: Arc<UserStore>,
    service: Arc<QueryService>,
}

/// The credential a call presents, as far as an audit record may say.
struct Presented {
    /// The claimed user (unverified: whatever the credential names).
    user: String,
    mechanism: &'static str,
    jwt: Option<String>,
}

impl Presented {
    fn from_headers(headers: &http::HeaderMap, users: &UserStore) -> Self {
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

fn peer<B>(request: &http::Request<B>) -> Option<SocketAddr> {
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|info| info.get_ref().remote_addr())
        })
}

impl<S, ReqBody, ResBody> tower_service::Service<http::Request<ReqBody>> for SignInService<S>
where
    S: tower_service::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        // Call the instance that was polled ready; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let users = self.users.clone();
        let service = self.service.clone();
        let presented = Presented::from_headers(request.headers(), &users);
        let client = peer(&request);
        Box::pin(async move {
            if let Some(jwt) = &presented.jwt {
                users.refresh_jwt_keys(jwt).await;
            }
            let response = inner.call(request).await?;
            if let Some(status) = tonic::Status::from_header_map(response.headers()) {
                if status.code() == tonic::Code::Unauthenticated {
                    audit_failed_sign_in(
                        &service,
                        &presented.user,
                        client,
                        "flight_sql",
                        presented.mechanism,
                        status.message(),
                    );
                }
            }
            Ok(response)
        })
    }
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
        let signer = super::super::TokenSigner::default();
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
