//! Which rules can concern a (principal, table) pair, so evaluation looks
//! only at those, not at every rule of the policy.
//!
//! The index narrows; it never decides. Every candidate is still checked
//! against its principals, `except` list, tables and tags by the caller, so
//! an index that returned every rule would give the same decisions, only
//! slower.

use std::collections::HashMap;

use crate::Principal;

/// Where rules of one kind may apply.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleIndex {
    by_user: HashMap<String, Vec<usize>>,
    by_group: HashMap<String, Vec<usize>>,
    any_principal: Vec<usize>,
    /// Rules naming tables only literally (no `*`, no tags), by table.
    by_table: HashMap<String, Vec<usize>>,
    /// Rules with a glob or a tag: checked for every table.
    any_table: Vec<usize>,
}

impl RuleIndex {
    /// Index rules given as `(principals, tables, tags)`, in policy order.
    pub(crate) fn build<'a>(
        rules: impl Iterator<Item = (&'a [String], &'a [String], &'a [String])>,
    ) -> Self {
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
    pub(crate) fn candidates(&self, principal: &Principal, table: &str) -> Vec<usize> {
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
