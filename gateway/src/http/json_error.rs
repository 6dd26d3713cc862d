//! The error answer of every HTTP endpoint that signs its caller in:
//! `{ "error": "..." }` with a status code that says what went wrong.
//!
//! A planner error is mapped once, through the same table the gRPC
//! services use (`crate::status`), so a client reads the same SQLSTATE and
//! text over HTTP as over Flight SQL, and source secrets are redacted the
//! same way.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use meshgate_planner::QueryError;
use serde_json::json;
use tonic::Code;

/// An error answered as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub status: StatusCode,
    pub message: String,
}

impl JsonError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401: not signed in, or the credentials were refused.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403: signed in, but not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
}

impl From<&QueryError> for JsonError {
    fn from(err: &QueryError) -> Self {
        let status = crate::status::to_status(err);
        let code = match status.code() {
            Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists | Code::Aborted | Code::FailedPrecondition => StatusCode::CONFLICT,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            // A cancelled statement: the client asked, or an admin killed it.
            Code::Cancelled => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(code, status.message())
    }
}

impl From<QueryError> for JsonError {
    fn from(err: QueryError) -> Self {
        Self::from(&err)
    }
}

impl IntoResponse for JsonError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.message }))).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            // Not `Basic`: a browser would pop up its own sign-in dialog.
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"meshgate\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planner_errors_keep_their_sqlstate_and_get_a_status() {
        let e = JsonError::from(QueryError::Conflict("the policy is at version 3".into()));
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert_eq!(e.message, "[40001] the policy is at version 3");
        let e = JsonError::from(QueryError::PermissionDenied("no".into()));
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        let e = JsonError::from(QueryError::Syntax("near x".into()));
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
