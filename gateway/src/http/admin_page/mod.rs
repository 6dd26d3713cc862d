//! The admin page: `GET /admin` and its JSON API under `/admin/api/`, for
//! the people who operate and govern the mesh — running statements (and
//! killing them), the access policy (view, edit with a diff preview, apply)
//! and the audit log (search).
//!
//! The page is one static asset set (HTML, JS, CSS, embedded at build time)
//! with no data in it; its script signs in with the credentials the other
//! front ends take, keeps them in memory only and sends them on every API
//! call ([`super::sign_in`]). Every API call is for policy admins only
//! ([`Admin`]): anyone else gets 403 and learns nothing. Statements run as
//! SQL in a planner session of the caller ([`statements`]), so identity,
//! policy, audit and the query registry apply exactly as over pgwire;
//! policy changes go through the same `PolicyAdmin` as SQL `GRANT` and the
//! gRPC admin API ([`policy`]), with optimistic concurrency.
//!
//! Every answer carries a strict content security policy (scripts and
//! styles only from this origin, no framing) and `Cache-Control: no-store`.

mod policy;
mod statements;

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};
use meshgate_planner::{AuditRecord, QueryError, QueryService};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::assets::{security_headers, static_page};
use super::json_error::JsonError;
use super::sign_in::SignedIn;
use super::HttpState;

/// The protocol the admin page's accesses and statements are recorded under.
const PROTOCOL: &str = "admin_http";

const PAGE_HTML: &str = include_str!("page.html");
const PAGE_JS: &str = include_str!("page.js");
const PAGE_CSS: &str = include_str!("page.css");

/// The page, its assets and its API.
pub fn routes() -> Router<HttpState> {
    let api = Router::new()
        .route("/admin/api/me", get(policy::me))
        .route("/admin/api/queries", get(statements::queries))
        .route("/admin/api/queries/kill", post(statements::kill))
        .route("/admin/api/policy", get(policy::current))
        .route("/admin/api/policy/preview", post(policy::preview))
        .route("/admin/api/policy/apply", post(policy::apply))
        .route("/admin/api/audit", post(statements::audit))
        .layer(axum::middleware::map_response(security_headers));
    static_page("/admin", PAGE_HTML, PAGE_JS, PAGE_CSS).merge(api)
}

/// A signed-in policy admin. Anyone else signed in is refused with 403, and
/// the refusal is recorded in the audit log.
pub(super) struct Admin(SignedIn);

impl FromRequestParts<HttpState> for Admin {
    type Rejection = JsonError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &HttpState,
    ) -> Result<Self, Self::Rejection> {
        let signed_in = SignedIn::from_request_parts(parts, state).await?;
        if state.service.policy_admin().is_admin(&signed_in.identity) {
            return Ok(Self(signed_in));
        }
        let denied = QueryError::PermissionDenied(format!(
            "{} is not a policy admin",
            signed_in.identity.user
        ));
        let what = format!("admin page {} {}", parts.method, parts.uri.path());
        Call::start(&signed_in, what).record(&state.service, Some(&denied));
        Err(JsonError::from(&denied))
    }
}

/// An admin API call that is not a statement, and its audit record (like
/// the gRPC admin API's: the planner records statements itself).
struct Call {
    record: AuditRecord,
    started: Instant,
}

impl Call {
    fn start(caller: &SignedIn, what: impl Into<String>) -> Self {
        let mut record = AuditRecord::access(
            caller.identity.user.clone(),
            caller.client.map(|a| a.to_string()),
            PROTOCOL,
            what,
        );
        record.impersonator = caller.identity.impersonator.clone();
        Self {
            record,
            started: Instant::now(),
        }
    }

    /// Record how the call ended (when an audit log is kept).
    fn record(self, service: &QueryService, error: Option<&QueryError>) {
        if let Some(log) = service.audit_log() {
            log.write(&self.record.with_duration(self.started).with_outcome(error));
        }
    }

    /// Record the outcome of the call and answer it.
    fn finish(
        self,
        service: &QueryService,
        result: Result<Value, QueryError>,
    ) -> Result<Json<Value>, JsonError> {
        self.record(service, result.as_ref().err());
        result.map(Json).map_err(JsonError::from)
    }
}

/// A JSON request body, or 400 saying what is wrong with it.
fn json_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, JsonError> {
    let body = body.map_err(|e| JsonError::new(e.status(), e.body_text()))?;
    serde_json::from_slice(&body).map_err(|e| {
        JsonError::bad_request(format!(
            "the request body is not valid JSON for this call: {e}"
        ))
    })
}
