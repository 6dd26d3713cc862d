//! meshgate's access policy: the pure model and its evaluation.
//!
//! A policy names principals (users, with attributes and groups), matches
//! tables by `catalog.schema.table` glob patterns or by tags, and says what
//! each principal may read:
//! - `[[grants]]` allow or deny `select` on tables; deny by default, deny
//!   beats allow;
//! - `[[row_filters]]` are SQL boolean expressions; several that apply to one
//!   user and table combine with AND;
//! - `[[masks]]` are SQL expressions that replace a column's value.
//!
//! Evaluation is per (principal, table) and returns a [`TableAccess`] with an
//! explanation of every rule that decided it. The planner turns that into a
//! plan; this crate does no I/O beyond parsing a policy document.
//!
//! ```toml
//! [groups]
//! adjusters = ["alice"]
//! [users.alice.attributes]
//! region = "CA"
//!
//! [[grants]]
//! effect = "allow"
//! principals = ["group:adjusters"]
//! tables = ["claims.public.*", "members.public.members"]
//!
//! [[row_filters]]
//! principals = ["group:adjusters"]
//! tables = ["members.public.members"]
//! filter = "state = current_user_attribute('region')"
//!
//! [[masks]]
//! principals = ["*"]
//! except = ["user:auditor"]
//! tables = ["members.public.members"]
//! column = "last_name"
//! mask = "'***'"
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

mod edit;
mod impersonation;
pub use edit::{EditError, RuleSummary};
pub use impersonation::ImpersonationDecision;
#[cfg(test)]
mod parser_props;
use thiserror::Error;

/// A table's full name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    pub catalog: String,
    pub schema: String,
    pub table: String,
}

impl TableName {
    pub fn new(
        catalog: impl Into<String>,
        schema: impl Into<String>,
        table: impl Into<String>,
    ) -> Self {
        Self {
            catalog: catalog.into(),
            schema: schema.into(),
            table: table.into(),
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.catalog, self.schema, self.table)
    }
}

/// Who asks: a user, the groups they belong to, and their attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Principal {
    pub user: String,
    pub groups: BTreeSet<String>,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PolicyError {
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: String },
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

/// The policy document (TOML).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// Raised by one on every change made through meshgate (SQL or the admin
    /// API); an apply that names an older version is refused.
    #[serde(default)]
    pub version: u64,
    /// group → members (user names).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub users: BTreeMap<String, UserEntry>,
    /// Tags on tables: pattern → tags (e.g. `"members.public.*" = ["pii"]`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub row_filters: Vec<RowFilterRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masks: Vec<MaskRule>,
    /// Principals that administer meshgate (read the audit log).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admins: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub effect: Effect,
    /// `user:NAME`, `group:NAME` or `*`.
    pub principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// For `allow`: only these columns are readable; the others read as NULL.
    /// Empty means every column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// `select` (on `tables`/`tags`), or `impersonate` (on `targets`).
    #[serde(default = "select")]
    pub privilege: String,
    /// For `privilege = "impersonate"`: whom the principals may act as
    /// (`user:NAME`, `group:NAME`; see [`Policy::may_impersonate`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
}

fn select() -> String {
    "select".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RowFilterRule {
    pub principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// A SQL boolean expression over the table's columns.
    pub filter: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaskRule {
    pub principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    pub column: String,
    /// A SQL expression replacing the column's value (may use the column).
    pub mask: String,
}

/// What one principal may do with one table, and why.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableAccess {
    pub allowed: bool,
    /// Row filters to AND together, in policy order.
    pub row_filters: Vec<String>,
    /// column → mask expression (the first matching mask rule wins).
    pub masks: BTreeMap<String, String>,
    /// When only column grants allow the table: the readable columns; the
    /// others read as NULL. `None`: every column.
    pub columns: Option<BTreeSet<String>>,
    /// One line per rule that took part in the decision.
    pub explanation: Vec<String>,
}

impl TableAccess {
    /// True when the table is readable without filters or masks.
    pub fn is_unrestricted(&self) -> bool {
        self.allowed
            && self.row_filters.is_empty()
            && self.masks.is_empty()
            && self.columns.is_none()
    }
}

/// A validated policy, ready to evaluate.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    doc: PolicyDocument,
    grants: RuleIndex,
    row_filters: RuleIndex,
    masks: RuleIndex,
}

/// Where rules of one kind may apply, so evaluation looks only at rules that
/// can concern the principal and the table, not at every rule of the policy.
#[derive(Debug, Clone, Default)]
struct RuleIndex {
    by_user: std::collections::HashMap<String, Vec<usize>>,
    by_group: std::collections::HashMap<String, Vec<usize>>,
    any_principal: Vec<usize>,
    /// Rules naming tables only literally (no `*`, no tags), by table.
    by_table: std::collections::HashMap<String, Vec<usize>>,
    /// Rules with a glob or a tag: checked for every table.
    any_table: Vec<usize>,
}

impl RuleIndex {
    fn build<'a>(rules: impl Iterator<Item = (&'a [String], &'a [String], &'a [String])>) -> Self {
        let mut index = Self::default();
        for (i, (principals, tables, tags)) in rules.enumerate() {
            for p in principals {
                if let Some(user) = p.strip_prefix("user:") {
                    index.by_user.entry(user.to_owned()).or_default().push(i);
                } else if let Some(group) = p.strip_prefix("group:") {
                    index.by_group.entry(group.to_owned()).or_default().push(i);
                } else {
                    index.any_principal.push(i);
                }
            }
            if tags.is_empty() && tables.iter().all(|t| !t.contains('*')) {
                for t in tables {
                    index
                        .by_table
                        .entry(t.to_ascii_lowercase())
                        .or_default()
                        .push(i);
                }
            } else {
                index.any_table.push(i);
            }
        }
        index
    }

    /// Indices of rules that may apply to `principal` and `table`, in policy
    /// order (the final principal and table checks are still the caller's).
    fn candidates(&self, principal: &Principal, table: &str) -> Vec<usize> {
        let mut by_principal: Vec<usize> = self.any_principal.clone();
        if let Some(rules) = self.by_user.get(&principal.user) {
            by_principal.extend(rules);
        }
        for group in &principal.groups {
            if let Some(rules) = self.by_group.get(group) {
                by_principal.extend(rules);
            }
        }
        let mut by_table: Vec<usize> = self.any_table.clone();
        if let Some(rules) = self.by_table.get(&table.to_ascii_lowercase()) {
            by_table.extend(rules);
        }
        by_principal.sort_unstable();
        by_principal.dedup();
        by_table.sort_unstable();
        by_table.dedup();
        by_principal.retain(|i| by_table.binary_search(i).is_ok());
        by_principal
    }
}

impl Policy {
    /// Parse and validate a TOML policy document; errors name the key.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            invalid(
                "(syntax)",
                e.to_string().lines().next().unwrap_or_default().to_owned(),
            )
        })?;
        let doc: PolicyDocument = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let key = e.path().to_string();
                invalid(
                    key,
                    e.into_inner()
                        .to_string()
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })?;
        Self::new(doc)
    }

    pub fn new(doc: PolicyDocument) -> Result<Self, PolicyError> {
        let check_principals = |key: &str, list: &[String]| -> Result<(), PolicyError> {
            for (i, p) in list.iter().enumerate() {
                let ok = p == "*"
                    || p.strip_prefix("user:").is_some_and(|u| !u.is_empty())
                    || p.strip_prefix("group:")
                        .is_some_and(|g| doc.groups.contains_key(g));
                if !ok {
                    return Err(invalid(
                        format!("{key}.principals[{i}]"),
                        format!(
                            "`{p}` is not `*`, `user:NAME` or `group:NAME` of a declared group"
                        ),
                    ));
                }
            }
            Ok(())
        };
        check_principals("admins", &doc.admins).map_err(|e| match e {
            PolicyError::Invalid { key, problem } => {
                invalid(key.replace("admins.principals", "admins"), problem)
            }
        })?;
        for (i, g) in doc.grants.iter().enumerate() {
            check_principals(&format!("grants[{i}]"), &g.principals)?;
            if g.privilege.eq_ignore_ascii_case("impersonate") {
                impersonation::validate(i, g, &doc)?;
                continue;
            }
            if !g.privilege.eq_ignore_ascii_case("select") {
                return Err(invalid(
                    format!("grants[{i}].privilege"),
                    "only `select` and `impersonate` are supported",
                ));
            }
            if !g.targets.is_empty() {
                return Err(invalid(
                    format!("grants[{i}].targets"),
                    "only `impersonate` grants name targets",
                ));
            }
            if g.tables.is_empty() && g.tags.is_empty() {
                return Err(invalid(
                    format!("grants[{i}]"),
                    "names no `tables` and no `tags`",
                ));
            }
        }
        for (i, f) in doc.row_filters.iter().enumerate() {
            check_principals(&format!("row_filters[{i}]"), &f.principals)?;
            if f.filter.trim().is_empty() {
                return Err(invalid(format!("row_filters[{i}].filter"), "is empty"));
            }
        }
        for (i, m) in doc.masks.iter().enumerate() {
            check_principals(&format!("masks[{i}]"), &m.principals)?;
            if m.mask.trim().is_empty() {
                return Err(invalid(format!("masks[{i}].mask"), "is empty"));
            }
        }
        let grants = RuleIndex::build(doc.grants.iter().map(|r| {
            (
                r.principals.as_slice(),
                r.tables.as_slice(),
                r.tags.as_slice(),
            )
        }));
        let row_filters = RuleIndex::build(doc.row_filters.iter().map(|r| {
            (
                r.principals.as_slice(),
                r.tables.as_slice(),
                r.tags.as_slice(),
            )
        }));
        let masks = RuleIndex::build(doc.masks.iter().map(|r| {
            (
                r.principals.as_slice(),
                r.tables.as_slice(),
                r.tags.as_slice(),
            )
        }));
        Ok(Self {
            doc,
            grants,
            row_filters,
            masks,
        })
    }

    /// True when `principal` is listed in `admins`.
    pub fn is_admin(&self, principal: &Principal) -> bool {
        self.doc
            .admins
            .iter()
            .any(|spec| matches_principal(principal, spec))
    }

    pub fn document(&self) -> &PolicyDocument {
        &self.doc
    }

    /// The principal for `user`: groups and attributes from the policy.
    pub fn principal(&self, user: &str) -> Principal {
        Principal {
            user: user.to_owned(),
            groups: self
                .doc
                .groups
                .iter()
                .filter(|(_, members)| members.iter().any(|m| m == user))
                .map(|(g, _)| g.clone())
                .collect(),
            attributes: self
                .doc
                .users
                .get(user)
                .map(|u| u.attributes.clone())
                .unwrap_or_default(),
        }
    }

    fn table_tags(&self, table: &TableName) -> BTreeSet<String> {
        let name = table.to_string();
        self.doc
            .tags
            .iter()
            .filter(|(pattern, _)| glob_match(pattern, &name))
            .flat_map(|(_, tags)| tags.iter().cloned())
            .collect()
    }

    /// Decide what `principal` may read of `table`. Fails closed: no
    /// matching allow means no access.
    pub fn evaluate(&self, principal: &Principal, table: &TableName) -> TableAccess {
        let name = table.to_string();
        let tags = std::cell::OnceCell::new();
        let targets = |tables: &[String], tag_list: &[String]| {
            tables.iter().any(|p| glob_match(p, &name))
                || (!tag_list.is_empty()
                    && tag_list
                        .iter()
                        .any(|t| tags.get_or_init(|| self.table_tags(table)).contains(t)))
        };
        let mut access = TableAccess::default();
        let mut allowed_by = None;
        // Columns readable through column grants; `None` once a grant allows all.
        let mut columns: Option<BTreeSet<String>> = Some(BTreeSet::new());
        for i in self.grants.candidates(principal, &name) {
            let grant = &self.doc.grants[i];
            if !applies(principal, &grant.principals, &grant.except)
                || !targets(&grant.tables, &grant.tags)
            {
                continue;
            }
            match grant.effect {
                Effect::Deny => {
                    access.allowed = false;
                    access.explanation = vec![format!("grants[{i}] denies select on {name}")];
                    return access;
                }
                Effect::Allow => {
                    allowed_by = allowed_by.or(Some(i));
                    match (&mut columns, grant.columns.is_empty()) {
                        (Some(_), true) => columns = None,
                        (Some(set), false) => set.extend(grant.columns.iter().cloned()),
                        (None, _) => {}
                    }
                }
            }
        }
        let Some(i) = allowed_by else {
            access.explanation.push(format!(
                "no grant allows {} to select {name} (deny by default)",
                principal.user
            ));
            return access;
        };
        access.allowed = true;
        access
            .explanation
            .push(format!("grants[{i}] allows select on {name}"));
        if let Some(columns) = &columns {
            access.explanation.push(format!(
                "column grants allow only {}; other columns read as NULL",
                columns.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        access.columns = columns;
        for i in self.row_filters.candidates(principal, &name) {
            let rule = &self.doc.row_filters[i];
            if applies(principal, &rule.principals, &rule.except)
                && targets(&rule.tables, &rule.tags)
            {
                access.row_filters.push(rule.filter.clone());
                access
                    .explanation
                    .push(format!("row_filters[{i}] keeps rows where {}", rule.filter));
            }
        }
        for i in self.masks.candidates(principal, &name) {
            let rule = &self.doc.masks[i];
            if applies(principal, &rule.principals, &rule.except)
                && !access.masks.contains_key(&rule.column)
                && targets(&rule.tables, &rule.tags)
            {
                access.masks.insert(rule.column.clone(), rule.mask.clone());
                access.explanation.push(format!(
                    "masks[{i}] replaces {} with {}",
                    rule.column, rule.mask
                ));
            }
        }
        access
    }
}

fn matches_principal(principal: &Principal, spec: &str) -> bool {
    spec == "*"
        || spec.strip_prefix("user:") == Some(principal.user.as_str())
        || spec
            .strip_prefix("group:")
            .is_some_and(|g| principal.groups.contains(g))
}

fn applies(principal: &Principal, principals: &[String], except: &[String]) -> bool {
    principals.iter().any(|p| matches_principal(principal, p))
        && !except.iter().any(|p| matches_principal(principal, p))
}

/// `*` matches any run of characters within a name part or across parts.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
[groups]
adjusters = ["alice", "carol"]
[users.alice.attributes]
region = "CA"
[tags]
"members.public.members" = ["pii"]

[[grants]]
effect = "allow"
principals = ["group:adjusters", "user:auditor"]
tables = ["claims.public.*", "members.public.members"]

[[grants]]
effect = "deny"
principals = ["user:carol"]
tags = ["pii"]

[[row_filters]]
principals = ["group:adjusters"]
tables = ["members.public.members"]
filter = "state = current_user_attribute('region')"

[[row_filters]]
principals = ["*"]
except = ["user:auditor"]
tables = ["members.*.*"]
filter = "plan <> 'gold'"

[[masks]]
principals = ["*"]
except = ["user:auditor"]
tags = ["pii"]
column = "last_name"
mask = "'***'"
"#;

    fn policy() -> Policy {
        Policy::from_toml(POLICY).unwrap()
    }

    fn members() -> TableName {
        TableName::new("members", "public", "members")
    }

    #[test]
    fn deny_by_default() {
        let p = policy();
        let access = p.evaluate(&p.principal("mallory"), &members());
        assert!(!access.allowed);
        assert!(access.explanation[0].contains("deny by default"));
        assert!(
            !p.evaluate(
                &p.principal("alice"),
                &TableName::new("providers", "public", "providers")
            )
            .allowed
        );
    }

    #[test]
    fn deny_beats_allow_and_tags_match() {
        let p = policy();
        let access = p.evaluate(&p.principal("carol"), &members());
        assert!(!access.allowed);
        assert!(access.explanation[0].starts_with("grants[1] denies"));
        // carol still reads claims (not tagged pii).
        assert!(
            p.evaluate(
                &p.principal("carol"),
                &TableName::new("claims", "public", "claims")
            )
            .allowed
        );
    }

    #[test]
    fn row_filters_combine_and_masks_apply() {
        let p = policy();
        let access = p.evaluate(&p.principal("alice"), &members());
        assert!(access.allowed);
        assert_eq!(
            access.row_filters,
            vec![
                "state = current_user_attribute('region')".to_owned(),
                "plan <> 'gold'".to_owned()
            ]
        );
        assert_eq!(
            access.masks.get("last_name").map(String::as_str),
            Some("'***'")
        );
        assert_eq!(access.explanation.len(), 4);
    }

    #[test]
    fn except_lists_exempt_principals() {
        let p = policy();
        let access = p.evaluate(&p.principal("auditor"), &members());
        assert!(access.allowed && access.is_unrestricted(), "{access:?}");
    }

    #[test]
    fn principals_carry_groups_and_attributes() {
        let p = policy();
        let alice = p.principal("alice");
        assert!(alice.groups.contains("adjusters"));
        assert_eq!(
            alice.attributes.get("region").map(String::as_str),
            Some("CA")
        );
        assert!(p.principal("nobody").groups.is_empty());
    }

    #[test]
    fn invalid_documents_name_the_key() {
        let err = Policy::from_toml(
            "[[grants]]\neffect = \"allow\"\nprincipals = [\"group:ghosts\"]\ntables = [\"*\"]",
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("grants[0].principals[0]:"),
            "{err}"
        );
        let err = Policy::from_toml(
            "[[grants]]\neffect = \"maybe\"\nprincipals = [\"*\"]\ntables = [\"*\"]",
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("grants[0].effect:"), "{err}");
        let err =
            Policy::from_toml("[[grants]]\neffect = \"allow\"\nprincipals = [\"*\"]").unwrap_err();
        assert!(err.to_string().contains("names no `tables`"), "{err}");
        let err =
            Policy::from_toml("[[masks]]\nprincipals = [\"*\"]\ncolumn = \"a\"\nmask = \" \"")
                .unwrap_err();
        assert!(err.to_string().starts_with("masks[0].mask"), "{err}");
    }

    #[test]
    fn unrelated_rules_do_not_change_decisions() {
        let mut text = POLICY.to_owned();
        for i in 0..50 {
            text.push_str(&format!(
                "[[grants]]\neffect = \"deny\"\nprincipals = [\"user:u{i}\"]\ntables = [\"members.public.members\"]\n\
                 [[masks]]\nprincipals = [\"*\"]\ntables = [\"other{i}.public.t\"]\ncolumn = \"state\"\nmask = \"NULL\"\n"
            ));
        }
        let (small, large) = (policy(), Policy::from_toml(&text).unwrap());
        for user in ["alice", "carol", "auditor", "mallory"] {
            for table in [members(), TableName::new("claims", "public", "claims")] {
                assert_eq!(
                    small.evaluate(&small.principal(user), &table),
                    large.evaluate(&large.principal(user), &table),
                    "{user} on {table}"
                );
            }
        }
        // And the added rules do apply where they should.
        let u3 = large.principal("u3");
        assert!(!large.evaluate(&u3, &members()).allowed);
    }

    #[test]
    fn globs_match_names() {
        assert!(glob_match("claims.public.*", "claims.public.claims"));
        assert!(glob_match("*", "a.b.c"));
        assert!(glob_match("members.*.*", "members.public.members"));
        assert!(!glob_match("claims.public.*", "members.public.claims"));
        assert!(glob_match("CLAIMS.public.c*s", "claims.public.claims"));
    }
}
