//! The server side of the policy admin API.
//!
//! A call is signed in first; a caller who is not signed in is answered
//! `UNAUTHENTICATED` and audited as a failed sign-in by
//! `crate::auth::SignInLayer`, like on Flight SQL. A signed-in caller who is
//! not a policy admin is refused with 42501 (`PERMISSION_DENIED`). Every
//! outcome of a signed-in call is recorded with the same record constructors
//! front ends use, and errors become statuses through [`crate::status`], so
//! the admin API answers like Flight SQL does. The policy text itself is not
//! copied into the log (its version is).

use std::sync::Arc;
use std::time::Instant;

use meshgate_planner::policy::{Policy, PolicyDocument};
use meshgate_planner::{AuditRecord, QueryError, QueryService};
use meshgate_proto::admin::v1 as pb;
use pb::policy_admin_server::{PolicyAdmin, PolicyAdminServer};
use tonic::{Request, Response, Status};

use crate::auth::{authenticate, TokenSigner, UserStore};
use crate::status::to_status;

/// The protocol admin calls are recorded under.
const PROTOCOL: &str = "admin_grpc";

/// Serves the policy admin API over the planner's [`QueryService`].
pub struct PolicyAdminService {
    service: Arc<QueryService>,
    users: Arc<UserStore>,
    signer: Arc<TokenSigner>,
}

impl PolicyAdminService {
    /// The service, checking credentials against `users` and the bearer
    /// tokens of `signer` (the Flight SQL listener's, so a Flight SQL session
    /// token signs in here too).
    pub fn new(
        service: Arc<QueryService>,
        users: Arc<UserStore>,
        signer: Arc<TokenSigner>,
    ) -> PolicyAdminServer<Self> {
        PolicyAdminServer::new(Self {
            service,
            users,
            signer,
        })
    }

    /// Sign the caller in and check that they are a policy admin; the call
    /// `what` is then recorded when it ends ([`Call::finish`]). A signed-in
    /// caller who is not an admin is refused, and the refusal recorded.
    fn admin<T>(&self, request: &Request<T>, what: impl Into<String>) -> Result<Call, Status> {
        let (identity, call) = signed_in(request, &self.users, &self.signer, what)?;
        if self.service.policy_admin().is_admin(&identity) {
            Ok(call)
        } else {
            let denied =
                QueryError::PermissionDenied(format!("{} is not a policy admin", identity.user));
            call.record(&self.service, Some(&denied));
            Err(to_status(&denied))
        }
    }

    /// The policy in force as TOML, and its version.
    fn current(&self) -> Result<(String, u64), QueryError> {
        self.service.policy_admin().current_text()
    }
}

/// Sign the caller of an admin call in; the call `what` is then recorded
/// when it ends ([`Call::finish`]).
pub(super) fn signed_in<T>(
    request: &Request<T>,
    users: &UserStore,
    signer: &TokenSigner,
    what: impl Into<String>,
) -> Result<(meshgate_planner::Identity, Call), Status> {
    let identity = authenticate(request.metadata(), users, signer)?;
    let call = Call {
        record: AuditRecord::access(
            identity.user.clone(),
            request.remote_addr().map(|a| a.to_string()),
            PROTOCOL,
            what,
        ),
        started: Instant::now(),
    };
    Ok((identity, call))
}

/// An admin call being served, and its audit record.
pub(super) struct Call {
    pub(super) record: AuditRecord,
    started: Instant,
}

impl Call {
    /// Record how the call ended (when an audit log is configured): allowed,
    /// or `error`'s decision (`denied` for 42501) and message.
    fn record(self, service: &QueryService, error: Option<&QueryError>) {
        if let Some(log) = service.audit_log() {
            log.write(&self.record.with_duration(self.started).with_outcome(error));
        }
    }

    /// Record the outcome of the call and answer it.
    pub(super) fn finish<T>(
        self,
        service: &QueryService,
        result: Result<T, QueryError>,
    ) -> Result<Response<T>, Status> {
        self.record(service, result.as_ref().err());
        result.map(Response::new).map_err(|e| to_status(&e))
    }
}

/// The unified diff from the policy in force (`current`, `version`) to the
/// proposal `toml`, and the proposal's problems (the planner's check). A
/// proposal that does not parse is a problem to report, not an error of the
/// call.
pub(crate) async fn policy_diff(
    service: &QueryService,
    current: &str,
    version: u64,
    toml: &str,
) -> (String, Vec<String>) {
    let (proposed, problems) = match normalized(toml, version) {
        Ok((text, policy)) => (text, service.check_policy(&policy).await),
        Err(e) => (current.to_owned(), vec![e]),
    };
    let diff = if current == proposed {
        String::new()
    } else {
        similar::TextDiff::from_lines(current, &proposed)
            .unified_diff()
            .context_radius(3)
            .header(&format!("policy in force (version {version})"), "proposed")
            .to_string()
    };
    (diff, problems)
}

/// `text` as the policy in force would be written (same key order and
/// formatting, the version in force), so a diff shows only real changes.
fn normalized(text: &str, version: u64) -> Result<(String, Policy), String> {
    let policy = Policy::from_toml(text).map_err(|e| e.to_string())?;
    let doc = PolicyDocument {
        version,
        ..policy.document().clone()
    };
    let text = toml::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    Ok((text, policy))
}

/// The rules of the policy in force, one line each.
fn rules(toml: &str, version: u64) -> Result<pb::ListRulesResponse, QueryError> {
    let doc = Policy::from_toml(toml)
        .map_err(|e| QueryError::Internal(format!("the policy in force: {e}")))?
        .document()
        .clone();
    let rules = doc
        .rule_summaries()
        .into_iter()
        .map(|r| pb::Rule {
            kind: r.kind.to_owned(),
            index: r.index as u32,
            summary: r.summary,
        })
        .collect();
    Ok(pb::ListRulesResponse { version, rules })
}

#[tonic::async_trait]
impl PolicyAdmin for PolicyAdminService {
    async fn get_policy(
        &self,
        request: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::PolicyDocument>, Status> {
        let call = self.admin(&request, "admin GetPolicy")?;
        let result = self
            .current()
            .map(|(toml, version)| pb::PolicyDocument { toml, version });
        call.finish(&self.service, result)
    }

    async fn list_rules(
        &self,
        request: Request<pb::ListRulesRequest>,
    ) -> Result<Response<pb::ListRulesResponse>, Status> {
        let call = self.admin(&request, "admin ListRules")?;
        let result = self
            .current()
            .and_then(|(toml, version)| rules(&toml, version));
        call.finish(&self.service, result)
    }

    async fn diff_policy(
        &self,
        request: Request<pb::DiffPolicyRequest>,
    ) -> Result<Response<pb::DiffPolicyResponse>, Status> {
        let call = self.admin(&request, "admin DiffPolicy")?;
        let (current, version) = match self.current() {
            Ok(current) => current,
            Err(e) => return call.finish(&self.service, Err(e)),
        };
        let (diff, problems) =
            policy_diff(&self.service, &current, version, &request.get_ref().toml).await;
        let response = pb::DiffPolicyResponse {
            version,
            diff,
            problems,
        };
        call.finish(&self.service, Ok(response))
    }

    async fn apply_policy(
        &self,
        request: Request<pb::ApplyPolicyRequest>,
    ) -> Result<Response<pb::ApplyPolicyResponse>, Status> {
        let expected = request.get_ref().expected_version;
        let what = format!("admin ApplyPolicy (expected version {expected})");
        let call = self.admin(&request, what)?;
        let result = self
            .service
            .policy_admin()
            .replace(&request.get_ref().toml, Some(expected))
            .await
            .map(|version| pb::ApplyPolicyResponse { version });
        call.finish(&self.service, result)
    }
}
