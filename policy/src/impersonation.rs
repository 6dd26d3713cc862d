//! Impersonation: a principal — a BI server, a notebook hub — acting as an
//! end user, as Trino's impersonation rules and PostgreSQL's `SET ROLE`
//! allow. It is a grant whose privilege is `impersonate` and whose
//! `targets` name users and groups:
//!
//! ```toml
//! [[grants]]
//! effect = "allow"
//! principals = ["user:bi_server"]
//! privilege = "impersonate"
//! targets = ["group:analysts", "user:alice"]
//! ```
//!
//! Deny beats allow and nothing is allowed by default, as for tables. A
//! target is matched against the impersonated user's principal (their policy
//! groups). `*` is not a target: whom a service may become is spelled out.

use crate::document::{Effect, Grant, PolicyDocument};
use crate::load::invalid;
use crate::model::{applies, matches_principal};
use crate::{Policy, PolicyError, Principal};

/// Check an `impersonate` grant (`grants[i]`).
pub(crate) fn validate(i: usize, grant: &Grant, doc: &PolicyDocument) -> Result<(), PolicyError> {
    if grant.targets.is_empty() {
        return Err(invalid(
            format!("grants[{i}].targets"),
            "an `impersonate` grant names whom: `user:NAME` or `group:NAME`",
        ));
    }
    for (j, target) in grant.targets.iter().enumerate() {
        let ok = target.strip_prefix("user:").is_some_and(|u| !u.is_empty())
            || target
                .strip_prefix("group:")
                .is_some_and(|g| doc.groups.contains_key(g));
        if !ok {
            return Err(invalid(
                format!("grants[{i}].targets[{j}]"),
                format!("`{target}` is not `user:NAME` or `group:NAME` of a declared group"),
            ));
        }
    }
    if !grant.tables.is_empty() || !grant.tags.is_empty() || !grant.columns.is_empty() {
        return Err(invalid(
            format!("grants[{i}]"),
            "an `impersonate` grant names no tables, tags or columns",
        ));
    }
    Ok(())
}

/// Whether one principal may act as another, and the rule that decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImpersonationDecision {
    pub allowed: bool,
    pub explanation: String,
}

impl Policy {
    /// May `actor` act as `target`? Fails closed: without a matching allow,
    /// no; any matching deny, no. Acting as oneself needs no grant.
    pub fn may_impersonate(&self, actor: &Principal, target: &Principal) -> ImpersonationDecision {
        if actor.user == target.user {
            return ImpersonationDecision {
                allowed: true,
                explanation: "acting as oneself".into(),
            };
        }
        let mut allowed_by = None;
        for (i, grant) in self.doc.grants.iter().enumerate() {
            if !grant.privilege.eq_ignore_ascii_case("impersonate")
                || !applies(actor, &grant.principals, &grant.except)
                || !grant.targets.iter().any(|t| matches_principal(target, t))
            {
                continue;
            }
            match grant.effect {
                Effect::Deny => {
                    return ImpersonationDecision {
                        allowed: false,
                        explanation: format!(
                            "grants[{i}] denies {} impersonating {}",
                            actor.user, target.user
                        ),
                    }
                }
                Effect::Allow => allowed_by = allowed_by.or(Some(i)),
            }
        }
        match allowed_by {
            Some(i) => ImpersonationDecision {
                allowed: true,
                explanation: format!(
                    "grants[{i}] allows {} to impersonate {}",
                    actor.user, target.user
                ),
            },
            None => ImpersonationDecision {
                allowed: false,
                explanation: format!(
                    "no grant allows {} to impersonate {} (deny by default)",
                    actor.user, target.user
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Policy, TableName};

    const POLICY: &str = r#"
[groups]
analysts = ["alice", "bob"]
admins_group = ["root"]
hubs = ["notebook_hub"]

[[grants]]
effect = "allow"
principals = ["user:bi_server", "group:hubs"]
privilege = "impersonate"
targets = ["group:analysts"]

[[grants]]
effect = "deny"
principals = ["group:hubs"]
privilege = "impersonate"
targets = ["user:bob"]

[[grants]]
effect = "allow"
principals = ["group:analysts"]
tables = ["sales.public.*"]
"#;

    fn may(policy: &Policy, actor: &str, target: &str) -> bool {
        policy
            .may_impersonate(&policy.principal(actor), &policy.principal(target))
            .allowed
    }

    #[test]
    fn only_granted_targets_may_be_impersonated_and_deny_wins() {
        let policy = Policy::from_toml(POLICY).unwrap();
        assert!(may(&policy, "bi_server", "alice"));
        assert!(may(&policy, "bi_server", "bob"));
        assert!(may(&policy, "notebook_hub", "alice"));
        assert!(!may(&policy, "notebook_hub", "bob"), "deny beats allow");
        assert!(!may(&policy, "bi_server", "root"), "not a target");
        assert!(!may(&policy, "alice", "bob"), "no grant");
        assert!(
            !may(&policy, "alice", "bi_server"),
            "not the other way round"
        );
        assert!(may(&policy, "alice", "alice"));
        let decision = policy.may_impersonate(&policy.principal("eve"), &policy.principal("alice"));
        assert!(
            decision.explanation.contains("deny by default"),
            "{decision:?}"
        );
    }

    #[test]
    fn impersonate_grants_never_open_tables() {
        let policy = Policy::from_toml(POLICY).unwrap();
        let table = TableName::new("sales", "public", "orders");
        assert!(
            !policy
                .evaluate(&policy.principal("bi_server"), &table)
                .allowed
        );
        assert!(policy.evaluate(&policy.principal("alice"), &table).allowed);
    }

    #[test]
    fn impersonate_grants_are_validated() {
        for (extra, key) in [
            (
                "privilege = \"impersonate\"\ntables = [\"a.b.c\"]\ntargets = [\"user:x\"]",
                "grants[3]",
            ),
            ("privilege = \"impersonate\"", "grants[3].targets"),
            (
                "privilege = \"impersonate\"\ntargets = [\"*\"]",
                "grants[3].targets[0]",
            ),
            (
                "privilege = \"impersonate\"\ntargets = [\"group:nope\"]",
                "grants[3].targets[0]",
            ),
            (
                "tables = [\"a.b.c\"]\ntargets = [\"user:x\"]",
                "grants[3].targets",
            ),
            (
                "tables = [\"a.b.c\"]\nprivilege = \"insert\"",
                "grants[3].privilege",
            ),
        ] {
            let text = format!(
                "{POLICY}\n[[grants]]\neffect = \"allow\"\nprincipals = [\"user:x\"]\n{extra}\n"
            );
            let err = Policy::from_toml(&text).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{key}:")), "{extra}: {err}");
        }
    }
}
