//! Acting as another user: a signed-in service account (a BI server, a
//! notebook hub) asks to run as an end user, and the policy's `impersonate`
//! grants decide (see `meshgate_policy::Policy::may_impersonate`).
//!
//! The request travels with the credentials — the pgwire start-up parameter
//! `meshgate.impersonate` (or `options=-c meshgate.impersonate=NAME`), the
//! Flight SQL header `x-meshgate-impersonate` on every call — and is decided
//! right after sign-in, so a session never exists under the wrong identity.
//! The session then runs as the target (their grants, filters and masks)
//! with the signed-in user kept as [`Identity::impersonator`], which every
//! audit record carries. Without a policy nobody may impersonate; a refusal
//! is 42501 and is audited.

use std::net::SocketAddr;

use meshgate_planner::policy::ImpersonationDecision;
use meshgate_planner::{AuditRecord, Identity, QueryError, QueryService};

/// The pgwire start-up parameter (also accepted as `-c` in `options`).
pub const IMPERSONATE_PARAMETER: &str = "meshgate.impersonate";
/// The Flight SQL (gRPC) header.
pub const IMPERSONATE_HEADER: &str = "x-meshgate-impersonate";

/// `actor` acting as `target` if the policy allows it, else 42501; both
/// outcomes are audited.
pub fn impersonate(
    service: &QueryService,
    actor: Identity,
    target: &str,
    client: Option<SocketAddr>,
    protocol: &str,
) -> Result<Identity, QueryError> {
    let target = target.trim();
    if target.is_empty() || target == actor.user {
        return Ok(actor);
    }
    let decision = match service.policy() {
        Some(policy) => {
            policy.may_impersonate(&actor.principal(&policy), &policy.principal(target))
        }
        None => ImpersonationDecision {
            allowed: false,
            explanation: "no policy is configured: nobody may impersonate".into(),
        },
    };
    let refusal = (!decision.allowed).then(|| {
        QueryError::PermissionDenied(format!("permission denied to impersonate \"{target}\""))
    });
    // Who asked, and whom they asked to become; the statements that follow
    // are recorded as the target with the asker as `impersonator`.
    if let Some(log) = service.audit_log() {
        let mut record = AuditRecord::access(
            actor.user.clone(),
            client.map(|c| c.to_string()),
            protocol,
            format!("impersonate {target}"),
        )
        .with_outcome(refusal.as_ref());
        record.rule = decision.explanation.clone();
        log.write(&record);
    }
    if let Some(refusal) = refusal {
        tracing::info!(actor = %actor.user, target, "impersonation refused");
        return Err(refusal);
    }
    let mut identity = Identity::new(target);
    identity.impersonator = Some(actor.user);
    Ok(identity)
}

/// The identity a Flight SQL call acts as: the signed-in user, or the user
/// the `x-meshgate-impersonate` header names when the policy allows it.
pub fn flight_identity(
    service: &QueryService,
    signed_in: Identity,
    metadata: &tonic::metadata::MetadataMap,
) -> Result<Identity, tonic::Status> {
    let Some(target) = metadata.get(IMPERSONATE_HEADER) else {
        return Ok(signed_in);
    };
    let target = target.to_str().map_err(|_| {
        tonic::Status::invalid_argument(format!("{IMPERSONATE_HEADER} is not ASCII"))
    })?;
    impersonate(service, signed_in, target, None, "flight_sql")
        .map_err(|e| tonic::Status::permission_denied(e.to_string()))
}

/// The `meshgate.impersonate` value of a pgwire start-up: the parameter, or
/// `-c meshgate.impersonate=NAME` / `--meshgate.impersonate=NAME` in
/// `options`.
pub fn startup_impersonation(parameter: Option<&str>, options: Option<&str>) -> Option<String> {
    if let Some(value) = parameter {
        return Some(value.to_owned());
    }
    let mut tokens = options?.split_whitespace();
    let prefix = format!("{IMPERSONATE_PARAMETER}=");
    while let Some(token) = tokens.next() {
        let setting = match token {
            "-c" => tokens.next(),
            t => t.strip_prefix("-c").or_else(|| t.strip_prefix("--")),
        };
        if let Some(value) = setting.and_then(|s| s.strip_prefix(&prefix)) {
            return Some(value.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::startup_impersonation;

    #[test]
    fn the_target_comes_from_the_parameter_or_options() {
        assert_eq!(
            startup_impersonation(Some("alice"), Some("-c meshgate.impersonate=bob")),
            Some("alice".into())
        );
        for options in [
            "-c meshgate.impersonate=bob",
            "-cmeshgate.impersonate=bob",
            "--meshgate.impersonate=bob",
            "-c search_path=x -c meshgate.impersonate=bob",
        ] {
            assert_eq!(
                startup_impersonation(None, Some(options)),
                Some("bob".into()),
                "{options}"
            );
        }
        assert_eq!(startup_impersonation(None, Some("-c search_path=x")), None);
        assert_eq!(startup_impersonation(None, None), None);
    }
}
