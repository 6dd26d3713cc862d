//! The admin page's policy calls: who is signed in, the policy in force,
//! a preview of a change (validation and a diff), and applying it.
//!
//! They go through the planner's `PolicyAdmin` like SQL `GRANT` and the
//! gRPC admin API, and are recorded the same way. A preview answers the
//! version it compared against; apply must name that version, so a change
//! someone made in between is refused with 409 (not overwritten).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use meshgate_planner::QueryError;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{json_body, Admin, Call};
use crate::admin::policy_diff;
use crate::http::json_error::JsonError;
use crate::http::HttpState;

/// `GET /admin/api/me`: who is signed in, and what the page can show.
pub(super) async fn me(State(state): State<HttpState>, Admin(caller): Admin) -> Json<Value> {
    let audit = state
        .service
        .audit_log()
        .is_some_and(|log| log.path().is_some());
    Json(json!({
        "user": caller.identity.user,
        "impersonator": caller.identity.impersonator,
        "admin": true,
        "audit": audit,
    }))
}

/// `GET /admin/api/policy`: the policy in force as TOML, and its version.
pub(super) async fn current(
    State(state): State<HttpState>,
    Admin(caller): Admin,
) -> Result<Json<Value>, JsonError> {
    let call = Call::start(&caller, "admin page GetPolicy");
    let result = state
        .service
        .policy_admin()
        .current_text()
        .map(|(toml, version)| json!({ "toml": toml, "version": version }));
    call.finish(&state.service, result)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Proposal {
    toml: String,
}

/// `POST /admin/api/policy/preview` `{toml}`: the unified diff from the
/// policy in force to the proposal, the problems found checking it (a
/// proposal that does not parse is a problem, not an error of the call),
/// and the version compared against — the one to apply with.
pub(super) async fn preview(
    State(state): State<HttpState>,
    Admin(caller): Admin,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, JsonError> {
    let proposal: Proposal = json_body(body)?;
    let call = Call::start(&caller, "admin page DiffPolicy");
    let (current, version) = match state.service.policy_admin().current_text() {
        Ok(current) => current,
        Err(e) => return call.finish(&state.service, Err(e)),
    };
    let (diff, problems) = policy_diff(&state.service, &current, version, &proposal.toml).await;
    let answer = json!({ "version": version, "diff": diff, "problems": problems });
    call.finish(&state.service, Ok(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Change {
    toml: String,
    /// The version the preview compared against.
    version: u64,
}

/// `POST /admin/api/policy/apply` `{toml, version}`: make the proposal the
/// policy, if `version` is still the one in force (else 409). Answers the
/// new version.
pub(super) async fn apply(
    State(state): State<HttpState>,
    Admin(caller): Admin,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, JsonError> {
    let change: Change = json_body(body)?;
    let what = format!(
        "admin page ApplyPolicy (expected version {})",
        change.version
    );
    let call = Call::start(&caller, what);
    let result: Result<Value, QueryError> = state
        .service
        .policy_admin()
        .replace(&change.toml, Some(change.version))
        .await
        .map(|version| json!({ "version": version }));
    call.finish(&state.service, result)
}
