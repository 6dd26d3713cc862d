//! The policy admin gRPC service (`proto/meshgate/admin/v1`), served on the
//! Flight SQL listener with the same credentials. Only policy admins may call
//! it; every apply, whatever its outcome, is written to the audit log.

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

    /// The caller, if a policy admin.
    fn admin<T>(&self, request: &Request<T>) -> Result<Identity, Status> {
        let identity = authenticate(request.metadata(), &self.users, &self.signer)?;
        if self.service.policy_admin().is_admin(&identity) {
            Ok(identity)
        } else {
            Err(Status::permission_denied(format!(
                "[42501] {} is not a policy admin",
                identity.user
            )))
        }
    }

    fn current(&self) -> Result<(String, u64), Status> {
        self.service
            .policy_admin()
            .current_text()
            .map_err(|e| to_status(&e))
    }

    fn audit(
        &self,
        user: &str,
        client: Option<std::net::SocketAddr>,
        what: String,
        started: Instant,
        error: Option<&QueryError>,
    ) {
        let Some(log) = self.service.audit_log() else {
            return;
        };
        log.write(&AuditRecord {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            user: user.to_owned(),
            client: client.map(|a| a.to_string()).unwrap_or_default(),
            protocol: "admin_grpc".into(),
            sql: what,
            objects: vec![],
            decision: match error {
                None => "allowed".into(),
                Some(QueryError::PermissionDenied(_)) => "denied".into(),
                Some(_) => "error".into(),
            },
            rule: String::new(),
            rows: 0,
            duration_ms: started.elapsed().as_secs_f64() * 1e3,
            error: error.map(|e| format!("[{}] {e}", e.sqlstate())),
        });
    }
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
        self.admin(&request)?;
        let (toml, version) = self.current()?;
        Ok(Response::new(pb::PolicyDocument { toml, version }))
    }

    async fn list_rules(
        &self,
        request: Request<pb::ListRulesRequest>,
    ) -> Result<Response<pb::ListRulesResponse>, Status> {
        self.admin(&request)?;
        let (toml, version) = self.current()?;
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
        Ok(Response::new(pb::ListRulesResponse { version, rules }))
    }

    async fn diff_policy(
        &self,
        request: Request<pb::DiffPolicyRequest>,
    ) -> Result<Response<pb::DiffPolicyResponse>, Status> {
        self.admin(&request)?;
        let (current, version) = self.current()?;
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
        Ok(Response::new(pb::DiffPolicyResponse {
            version,
            diff,
            problems,
        }))
    }

    async fn apply_policy(
        &self,
        request: Request<pb::ApplyPolicyRequest>,
    ) -> Result<Response<pb::ApplyPolicyResponse>, Status> {
        let started = Instant::now();
        let client = request.remote_addr();
        let expected = request.get_ref().expected_version;
        let what = format!("ApplyPolicy (expected version {expected})");
        let identity = match self.admin(&request) {
            Ok(identity) => identity,
            Err(status) => {
                if let Ok(who) = authenticate(request.metadata(), &self.users, &self.signer) {
                    let denied = QueryError::PermissionDenied(status.message().to_owned());
                    self.audit(&who.user, client, what, started, Some(&denied));
                }
                return Err(status);
            }
        };
        let result = self
            .service
            .policy_admin()
            .replace(&request.get_ref().toml, Some(expected))
            .await;
        self.audit(&identity.user, client, what, started, result.as_ref().err());
        let version = result.map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::ApplyPolicyResponse { version }))
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
