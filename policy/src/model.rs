//! Who asks and what they ask for: [`Principal`]s, [`TableName`]s, and how
//! the rule specs of a policy match them (`user:NAME`, `group:NAME`, `*`;
//! `catalog.schema.table` glob patterns).

use std::collections::{BTreeMap, BTreeSet};

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

/// Tags a table's resource metadata (data product descriptors) puts on the
/// table and on its columns, matched by the rules' `tags` and `column_tags`
/// besides the policy's own `[tags]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceTags {
    pub table: BTreeSet<String>,
    /// column → its tags.
    pub columns: BTreeMap<String, BTreeSet<String>>,
}

/// Who asks: a user, the groups they belong to, and their attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Principal {
    pub user: String,
    pub groups: BTreeSet<String>,
    pub attributes: BTreeMap<String, String>,
}

/// Whether `principal` is the one `spec` names: `*`, `user:NAME` or
/// `group:NAME` (of one of the principal's groups).
pub(crate) fn matches_principal(principal: &Principal, spec: &str) -> bool {
    spec == "*"
        || spec.strip_prefix("user:") == Some(principal.user.as_str())
        || spec
            .strip_prefix("group:")
            .is_some_and(|g| principal.groups.contains(g))
}

/// Whether a rule naming `principals`, minus `except`, applies to `principal`.
pub(crate) fn applies(principal: &Principal, principals: &[String], except: &[String]) -> bool {
    principals.iter().any(|p| matches_principal(principal, p))
        && !except.iter().any(|p| matches_principal(principal, p))
}

/// `*` matches any run of characters within a name part or across parts;
/// every other character matches itself, ignoring ASCII case.
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

    #[test]
    fn globs_match_names() {
        assert!(glob_match("claims.public.*", "claims.public.claims"));
        assert!(glob_match("*", "a.b.c"));
        assert!(glob_match("members.*.*", "members.public.members"));
        assert!(!glob_match("claims.public.*", "members.public.claims"));
        assert!(glob_match("CLAIMS.public.c*s", "claims.public.claims"));
    }
}
