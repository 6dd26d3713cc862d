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

use meshgate_planner::QueryService;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use super::presented::Presented;
use super::{audit_failed_sign_in, UserStore};

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
