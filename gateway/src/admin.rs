//! The policy admin gRPC service (`proto/meshgate/admin/v1`), served on the
//! Flight SQL listener with the same credentials. Only policy admins may call
//! it. Every call by a signed-in user — reads and writes, allowed, refused
//! or failed — is written to the audit log through the planner's
//! [`AuditRecord`], like every other access; the policy text itself is not
//! copied into the log (the version is).

use std::sync::Arc;
use std::time::Instant;

use meshgate_planner::policy::{Policy, PolicyDocument};
use meshgate_planner::{AuditRecord, Identity, QueryError, QueryService};
use meshgate_proto::admin::v1 as pb;
use pb::policy_admin_server::{PolicyAdmin, PolicyAdminServer};
use tonic::{Request, Response, Status};

use crate::auth::{TokenSigner, UserStore};
use crate::flight_sql::{authenticate, errors::to_status};

pub struct PolicyAdminService {
    service: Arc<QueryService>,
    users: Arc<UserStore>,
    signer: Arc<TokenSigner>,
}

impl PolicyAdminService {
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

    /// The caller, if a policy admin, and the record of the call `what`.
    /// A signed-in caller who is not an admin is refused, and the refusal
    /// recorded as `denied`.
    fn admin<T>(
        &self,
        request: &Request<T>,
        what: impl Into<String>,
    ) -> Result<(Identity, Call), Status> {
        let identity = authenticate(request.metadata(), &self.users, &self.signer)?;
        let call = Call {
            record: AuditRecord::access(
                identity.user.clone(),
                request.remote_addr().map(|a| a.to_string()),
                "admin_grpc",
                what,
            ),
            started: Instant::now(),
        };
        if self.service.policy_admin().is_admin(&identity) {
            Ok((identity, call))
        } else {
            let denied =
                QueryError::PermissionDenied(format!("{} is not a policy admin", identity.user));
            let status = to_status(&denied);
            self.finish(call, Err(&status));
            Err(status)
        }
    }

    /// Record the outcome of a call.
    fn finish(&self, call: Call, outcome: Result<(), &Status>) {
        let Some(log) = self.service.audit_log() else {
            return;
        };
        let mut record = call.record.with_duration(call.started);
        if let Err(status) = outcome {
            record.decision = if status.code() == tonic::Code::PermissionDenied {
                AuditRecord::DENIED
            } else {
                AuditRecord::ERROR
            }
            .into();
            record.error = Some(status.message().to_owned());
        }
        log.write(&record);
    }

    fn current(&self) -> Result<(String, u64), Status> {
        self.service
            .policy_admin()
            .current_text()
            .map_err(|e| to_status(&e))
    }
}

/// An admin call being served: its record, completed by
/// [`PolicyAdminService::finish`].
struct Call {
    record: AuditRecord,
    started: Instant,
}

/// The call's result, with the outcome recorded.
fn recorded<T>(
    service: &PolicyAdminService,
    call: Call,
    result: Result<T, Status>,
) -> Result<Response<T>, Status> {
    service.finish(call, result.as_ref().map(|_| ()));
    result.map(Response::new)
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

#[tonic::async_trait]
impl PolicyAdmin for PolicyAdminService {
    async fn get_policy(
        &self,
        request: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::PolicyDocument>, Status> {
        let (_, call) = self.admin(&request, "admin GetPolicy")?;
        let result = self
            .current()
            .map(|(toml, version)| pb::PolicyDocument { toml, version });
        recorded(self, call, result)
    }

    async fn list_rules(
        &self,
        request: Request<pb::ListRulesRequest>,
    ) -> Result<Response<pb::ListRulesResponse>, Status> {
        let (_, call) = self.admin(&request, "admin ListRules")?;
        let result = self.current().and_then(|(toml, version)| {
            let doc = Policy::from_toml(&toml)
                .map_err(|e| Status::internal(e.to_string()))?
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
        });
        recorded(self, call, result)
    }

    async fn diff_policy(
        &self,
        request: Request<pb::DiffPolicyRequest>,
    ) -> Result<Response<pb::DiffPolicyResponse>, Status> {
        let (_, call) = self.admin(&request, "admin DiffPolicy")?;
        let (current, version) = match self.current() {
            Ok(current) => current,
            Err(status) => return recorded(self, call, Err(status)),
        };
        let (proposed, problems) = match normalized(&request.get_ref().toml, version) {
            Ok((text, policy)) => (text, self.service.check_policy(&policy).await),
            Err(e) => (current.clone(), vec![e]),
        };
        let diff = similar::TextDiff::from_lines(&current, &proposed)
            .unified_diff()
            .context_radius(3)
            .header(&format!("policy in force (version {version})"), "proposed")
            .to_string();
        let diff = if current == proposed {
            String::new()
        } else {
            diff
        };
        let result = Ok(pb::DiffPolicyResponse {
            version,
            diff,
            problems,
        });
        recorded(self, call, result)
    }

    async fn apply_policy(
        &self,
        request: Request<pb::ApplyPolicyRequest>,
    ) -> Result<Response<pb::ApplyPolicyResponse>, Status> {
        let expected = request.get_ref().expected_version;
        let what = format!("admin ApplyPolicy (expected version {expected})");
        let (_, call) = self.admin(&request, what)?;
        let result = self
            .service
            .policy_admin()
            .replace(&request.get_ref().toml, Some(expected))
            .await
            .map(|version| pb::ApplyPolicyResponse { version })
            .map_err(|e| to_status(&e));
        recorded(self, call, result)
    }
}

/// A client of the policy admin service, for `meshgate policy ...`.
pub struct AdminClient {
    inner: pb::policy_admin_client::PolicyAdminClient<tonic::transport::Channel>,
    authorization: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
}

/// How to reach and sign in to a gateway.
pub struct AdminTarget {
    /// `http://host:port` or `https://host:port` (the Flight SQL listener).
    pub server: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// A bearer token (a JWT) instead of user and password.
    pub token: Option<String>,
    /// PEM file of the CA that signed the gateway's certificate.
    pub ca_cert: Option<std::path::PathBuf>,
}

impl AdminClient {
    pub async fn connect(target: &AdminTarget) -> anyhow::Result<Self> {
        use anyhow::Context;
        use base64::Engine as _;
        let authorization = match (&target.token, &target.user, &target.password) {
            (Some(token), _, _) => format!("Bearer {token}"),
            (None, Some(user), Some(password)) => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
            _ => anyhow::bail!(
                "no credentials: give --user and MESHGATE_PASSWORD (or --password), or --token"
            ),
        };
        let mut endpoint = tonic::transport::Channel::from_shared(target.server.clone())
            .with_context(|| format!("`{}` is not a URL", target.server))?;
        if let Some(ca) = &target.ca_cert {
            let pem = std::fs::read(ca).with_context(|| format!("{}", ca.display()))?;
            endpoint = endpoint.tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
            )?;
        } else if target.server.starts_with("https://") {
            anyhow::bail!(
                "https needs --ca-cert: the PEM of the CA that signed the gateway's certificate"
            );
        }
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("connecting to {}", target.server))?;
        Ok(Self {
            inner: pb::policy_admin_client::PolicyAdminClient::new(channel),
            authorization: authorization.parse().context("credentials are not ASCII")?,
        })
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        request
    }

    pub async fn get(&mut self) -> Result<pb::PolicyDocument, Status> {
        let r = self.request(pb::GetPolicyRequest {});
        Ok(self.inner.get_policy(r).await?.into_inner())
    }

    pub async fn list(&mut self) -> Result<pb::ListRulesResponse, Status> {
        let r = self.request(pb::ListRulesRequest {});
        Ok(self.inner.list_rules(r).await?.into_inner())
    }

    pub async fn diff(&mut self, toml: String) -> Result<pb::DiffPolicyResponse, Status> {
        let r = self.request(pb::DiffPolicyRequest { toml });
        Ok(self.inner.diff_policy(r).await?.into_inner())
    }

    pub async fn apply(&mut self, toml: String, expected_version: u64) -> Result<u64, Status> {
        let r = self.request(pb::ApplyPolicyRequest {
            toml,
            expected_version,
        });
        Ok(self.inner.apply_policy(r).await?.into_inner().version)
    }
}
