//! Evaluation: what one principal may read of one table, and why.
//!
//! Grants decide access: deny by default, and one matching deny beats any
//! number of allows. An allowed table then collects every row filter that
//! applies (to be combined with AND, in policy order) and, per column, the
//! first mask that applies. Only the rules the rule index offers for the
//! pair are checked.

use std::collections::{BTreeMap, BTreeSet};

use crate::document::Effect;
use crate::model::{applies, glob_match, matches_principal};
use crate::{Policy, Principal, ResourceTags, TableName};

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

impl Policy {
    /// True when `principal` is listed in `admins`.
    pub fn is_admin(&self, principal: &Principal) -> bool {
        self.doc
            .admins
            .iter()
            .any(|spec| matches_principal(principal, spec))
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

    /// The policy's own `[tags]` on `table`, and the resource's.
    fn table_tags(&self, table: &TableName, resource: &ResourceTags) -> BTreeSet<String> {
        let name = table.to_string();
        self.doc
            .tags
            .iter()
            .filter(|(pattern, _)| glob_match(pattern, &name))
            .flat_map(|(_, tags)| tags.iter().cloned())
            .chain(resource.table.iter().cloned())
            .collect()
    }

    /// Decide what `principal` may read of `table`. Fails closed: no
    /// matching allow means no access.
    pub fn evaluate(&self, principal: &Principal, table: &TableName) -> TableAccess {
        self.evaluate_tagged(principal, table, &ResourceTags::default())
    }

    /// [`Self::evaluate`] with the tags `resource` metadata puts on the
    /// table and its columns (matched by `tags` and by masks' `column_tags`).
    pub fn evaluate_tagged(
        &self,
        principal: &Principal,
        table: &TableName,
        resource: &ResourceTags,
    ) -> TableAccess {
        let name = table.to_string();
        let tags = std::cell::OnceCell::new();
        // Whether a rule naming `tables` and `tags` concerns the table: how
        // it matched, as the explanation says it (`None`: it does not).
        let targets = |tables: &[String], tag_list: &[String]| -> Option<String> {
            if tables.iter().any(|p| glob_match(p, &name)) {
                return Some(String::new());
            }
            let tags = tags.get_or_init(|| self.table_tags(table, resource));
            tag_list
                .iter()
                .find(|t| tags.contains(*t))
                .map(|t| format!(" (tagged `{t}`)"))
        };
        let mut access = TableAccess::default();
        let mut allowed_by = None;
        // Columns readable through column grants; `None` once a grant allows all.
        let mut columns: Option<BTreeSet<String>> = Some(BTreeSet::new());
        for i in self.grants.candidates(principal, &name) {
            let grant = &self.doc.grants[i];
            if !grant.privilege.eq_ignore_ascii_case("select")
                || !applies(principal, &grant.principals, &grant.except)
            {
                continue;
            }
            let Some(how) = targets(&grant.tables, &grant.tags) else {
                continue;
            };
            match grant.effect {
                Effect::Deny => {
                    access.allowed = false;
                    access.explanation = vec![format!("grants[{i}] denies select on {name}{how}")];
                    return access;
                }
                Effect::Allow => {
                    if allowed_by.is_none() {
                        allowed_by = Some((i, how));
                    }
                    match (&mut columns, grant.columns.is_empty()) {
                        (Some(_), true) => columns = None,
                        (Some(set), false) => set.extend(grant.columns.iter().cloned()),
                        (None, _) => {}
                    }
                }
            }
        }
        let Some((i, how)) = allowed_by else {
            access.explanation.push(format!(
                "no grant allows {} to select {name} (deny by default)",
                principal.user
            ));
            return access;
        };
        access.allowed = true;
        access
            .explanation
            .push(format!("grants[{i}] allows select on {name}{how}"));
        if let Some(columns) = &columns {
            access.explanation.push(format!(
                "column grants allow only {}; other columns read as NULL",
                columns.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        access.columns = columns;
        for i in self.row_filters.candidates(principal, &name) {
            let rule = &self.doc.row_filters[i];
            if !applies(principal, &rule.principals, &rule.except) {
                continue;
            }
            if let Some(how) = targets(&rule.tables, &rule.tags) {
                access.row_filters.push(rule.filter.clone());
                access.explanation.push(format!(
                    "row_filters[{i}] keeps rows where {}{how}",
                    rule.filter
                ));
            }
        }
        for i in self.masks.candidates(principal, &name) {
            let rule = &self.doc.masks[i];
            if !applies(principal, &rule.principals, &rule.except) {
                continue;
            }
            let how = if rule.tables.is_empty() && rule.tags.is_empty() {
                Some(String::new())
            } else {
                targets(&rule.tables, &rule.tags)
            };
            let Some(how) = how else {
                continue;
            };
            // The columns the rule masks, each with why.
            let masked: Vec<(String, String)> = if rule.column_tags.is_empty() {
                vec![(rule.column.clone(), how)]
            } else {
                resource
                    .columns
                    .iter()
                    .filter_map(|(column, column_tags)| {
                        let tag = rule.column_tags.iter().find(|t| column_tags.contains(*t))?;
                        Some((column.clone(), format!("{how} (column tagged `{tag}`)")))
                    })
                    .collect()
            };
            for (column, why) in masked {
                if access.masks.contains_key(&column) {
                    continue;
                }
                access.explanation.push(format!(
                    "masks[{i}] replaces {column} with {}{why}",
                    rule.mask
                ));
                access.masks.insert(column, rule.mask.clone());
            }
        }
        access
    }
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
    fn column_tags_mask_every_tagged_column_and_say_why() {
        let p = Policy::from_toml(
            r#"
[groups]
privacy = ["priya"]
[[grants]]
effect = "allow"
principals = ["*"]
tags = ["gold"]
[[masks]]
principals = ["*"]
except = ["group:privacy"]
column_tags = ["pii"]
mask = "NULL"
"#,
        )
        .unwrap();
        let resource = ResourceTags {
            table: ["gold".to_owned()].into_iter().collect(),
            columns: [
                ("ssn".to_owned(), ["pii".to_owned()].into_iter().collect()),
                (
                    "plan".to_owned(),
                    ["public".to_owned()].into_iter().collect(),
                ),
            ]
            .into_iter()
            .collect(),
        };
        let access = p.evaluate_tagged(&p.principal("ann"), &members(), &resource);
        assert!(access.allowed);
        assert_eq!(access.masks.keys().collect::<Vec<_>>(), ["ssn"]);
        assert_eq!(
            access.explanation,
            [
                "grants[0] allows select on members.public.members (tagged `gold`)",
                "masks[0] replaces ssn with NULL (column tagged `pii`)",
            ]
        );
        let privacy = p.evaluate_tagged(&p.principal("priya"), &members(), &resource);
        assert!(privacy.masks.is_empty());
        // Without the resource's tags, nothing grants the table.
        assert!(!p.evaluate(&p.principal("ann"), &members()).allowed);
        let both = Policy::from_toml(
            "[[masks]]\nprincipals = [\"*\"]\ncolumn = \"a\"\ncolumn_tags = [\"pii\"]\nmask = \"NULL\"\n",
        )
        .unwrap_err();
        assert!(both.to_string().contains("masks[0]"), "{both}");
    }
}
