//! Who may edit a data product's descriptor: a grant whose privilege is
//! `edit_product` and whose `tables` cover every table of the product, for
//! the domain team that owns it:
//!
//! ```toml
//! [[grants]]
//! effect = "allow"
//! principals = ["group:claims_team"]
//! privilege = "edit_product"
//! tables = ["claims.*"]
//! ```
//!
//! An editor decides the descriptor's tags, which the policy's tag rules
//! match (a column tagged `pii` is masked), so edit grants name tables by
//! pattern only, never by tag: an editor cannot grant themselves a scope
//! by tagging. Deny beats allow; nothing is allowed by default; an
//! `edit_product` grant never opens a table for reading.

use crate::document::{Effect, Grant};
use crate::load::invalid;
use crate::model::{applies, glob_match};
use crate::{Policy, PolicyError, Principal, TableName};

/// The privilege name.
pub(crate) const EDIT_PRODUCT: &str = "edit_product";

/// Check an `edit_product` grant (`grants[i]`).
pub(crate) fn validate(i: usize, grant: &Grant) -> Result<(), PolicyError> {
    if grant.tables.is_empty() {
        return Err(invalid(
            format!("grants[{i}].tables"),
            "an `edit_product` grant names the tables whose products may be edited",
        ));
    }
    if !grant.tags.is_empty() || !grant.columns.is_empty() || !grant.targets.is_empty() {
        return Err(invalid(
            format!("grants[{i}]"),
            "an `edit_product` grant names tables only (no tags, columns or targets)",
        ));
    }
    Ok(())
}

/// Whether a principal may edit a product's descriptor, and the rule that decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditDecision {
    pub allowed: bool,
    pub explanation: String,
}

impl Policy {
    /// May `principal` edit the descriptor of a product made of `tables`
    /// (the tables it has and the tables an edit would give it)? Every
    /// table must be covered by an allowing grant and none by a denying one.
    pub fn may_edit_product(&self, principal: &Principal, tables: &[TableName]) -> EditDecision {
        let grants: Vec<(usize, &Grant)> = self
            .doc
            .grants
            .iter()
            .enumerate()
            .filter(|(_, g)| {
                g.privilege.eq_ignore_ascii_case(EDIT_PRODUCT)
                    && applies(principal, &g.principals, &g.except)
            })
            .collect();
        let covers = |g: &Grant, t: &TableName| {
            let name = t.to_string();
            g.tables.iter().any(|p| glob_match(p, &name))
        };
        for table in tables {
            if let Some((i, _)) = grants
                .iter()
                .find(|(_, g)| g.effect == Effect::Deny && covers(g, table))
            {
                return EditDecision {
                    allowed: false,
                    explanation: format!(
                        "grants[{i}] denies {} editing the product of {table}",
                        principal.user
                    ),
                };
            }
            if !grants
                .iter()
                .any(|(_, g)| g.effect == Effect::Allow && covers(g, table))
            {
                return EditDecision {
                    allowed: false,
                    explanation: format!(
                        "no grant allows {} to edit the product of {table} (deny by default)",
                        principal.user
                    ),
                };
            }
        }
        if tables.is_empty() {
            return EditDecision {
                allowed: false,
                explanation: "a product without tables is nobody's to edit".into(),
            };
        }
        EditDecision {
            allowed: true,
            explanation: "edit_product grants cover every table of the product".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Policy, TableName};

    const POLICY: &str = r#"
[groups]
claims_team = ["carol", "dan"]

[[grants]]
effect = "allow"
principals = ["group:claims_team"]
privilege = "edit_product"
tables = ["claims.*"]

[[grants]]
effect = "deny"
principals = ["user:dan"]
privilege = "edit_product"
tables = ["claims.lake.payments"]
"#;

    fn may(policy: &Policy, user: &str, tables: &[&str]) -> bool {
        let tables: Vec<TableName> = tables
            .iter()
            .map(|t| {
                let p: Vec<&str> = t.split('.').collect();
                TableName::new(p[0], p[1], p[2])
            })
            .collect();
        policy
            .may_edit_product(&policy.principal(user), &tables)
            .allowed
    }

    #[test]
    fn owners_edit_their_domain_only_and_deny_wins() {
        let policy = Policy::from_toml(POLICY).unwrap();
        assert!(may(&policy, "carol", &["claims.lake.claims"]));
        assert!(!may(
            &policy,
            "carol",
            &["claims.lake.claims", "members.public.members"]
        ));
        assert!(!may(&policy, "dan", &["claims.lake.payments"]));
        assert!(may(&policy, "dan", &["claims.lake.claims"]));
        assert!(!may(&policy, "eve", &["claims.lake.claims"]));
        assert!(!may(&policy, "carol", &[]));
    }

    #[test]
    fn edit_grants_never_open_tables() {
        let policy = Policy::from_toml(POLICY).unwrap();
        let table = TableName::new("claims", "lake", "claims");
        assert!(!policy.evaluate(&policy.principal("carol"), &table).allowed);
    }

    #[test]
    fn edit_grants_name_tables_only() {
        for (extra, key) in [
            ("tags = [\"pii\"]\ntables = [\"a.*\"]", "grants[0]"),
            ("", "grants[0].tables"),
        ] {
            let text = format!(
                "[[grants]]\neffect = \"allow\"\nprincipals = [\"*\"]\nprivilege = \"edit_product\"\n{extra}\n"
            );
            let err = Policy::from_toml(&text).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
    }
}
