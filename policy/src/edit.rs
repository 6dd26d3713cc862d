//! Changes to a policy document, as admins make them with SQL (`CREATE ROLE`,
//! `GRANT`, `REVOKE`, ...). Roles are groups: `GRANT role TO user` adds the
//! user to the group, and rules name roles as `group:ROLE`.
//!
//! Every function changes the document in memory only; the caller validates
//! the result ([`crate::Policy::new`]), raises the version and persists it.

use thiserror::Error;

use crate::document::{Effect, Grant, PolicyDocument};

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EditError {
    #[error("role \"{0}\" already exists")]
    DuplicateRole(String),
    #[error("role \"{0}\" does not exist")]
    UndefinedRole(String),
    #[error(
        "role \"{role}\" cannot be dropped because {count} rule(s) name it; revoke them first"
    )]
    RoleInUse { role: String, count: usize },
}

impl PolicyDocument {
    /// The principal string for `name`: `group:` when a role (group) of that
    /// name exists, `user:` otherwise.
    pub fn principal_for(&self, name: &str) -> String {
        if self.groups.contains_key(name) {
            format!("group:{name}")
        } else {
            format!("user:{name}")
        }
    }

    pub fn create_role(&mut self, role: &str) -> Result<(), EditError> {
        if self.groups.contains_key(role) {
            return Err(EditError::DuplicateRole(role.to_owned()));
        }
        self.groups.insert(role.to_owned(), Vec::new());
        Ok(())
    }

    /// Drop a role nobody's rules name. `Ok(false)`: it did not exist and
    /// `if_exists` was given.
    pub fn drop_role(&mut self, role: &str, if_exists: bool) -> Result<bool, EditError> {
        if !self.groups.contains_key(role) {
            return if if_exists {
                Ok(false)
            } else {
                Err(EditError::UndefinedRole(role.to_owned()))
            };
        }
        let spec = format!("group:{role}");
        let names = |list: &[String]| list.contains(&spec);
        let count = self
            .grants
            .iter()
            .filter(|g| names(&g.principals) || names(&g.except))
            .count()
            + self
                .row_filters
                .iter()
                .filter(|r| names(&r.principals) || names(&r.except))
                .count()
            + self
                .masks
                .iter()
                .filter(|m| names(&m.principals) || names(&m.except))
                .count()
            + usize::from(names(&self.admins));
        if count > 0 {
            return Err(EditError::RoleInUse {
                role: role.to_owned(),
                count,
            });
        }
        self.groups.remove(role);
        Ok(true)
    }

    pub fn grant_role(&mut self, role: &str, member: &str) -> Result<(), EditError> {
        let members = self
            .groups
            .get_mut(role)
            .ok_or_else(|| EditError::UndefinedRole(role.to_owned()))?;
        if !members.iter().any(|m| m == member) {
            members.push(member.to_owned());
        }
        Ok(())
    }

    /// `Ok(false)`: `member` was not in the role.
    pub fn revoke_role(&mut self, role: &str, member: &str) -> Result<bool, EditError> {
        let members = self
            .groups
            .get_mut(role)
            .ok_or_else(|| EditError::UndefinedRole(role.to_owned()))?;
        let before = members.len();
        members.retain(|m| m != member);
        Ok(members.len() != before)
    }

    /// Allow `principal` to select `table` (a full name or pattern); with
    /// `columns`, only those columns. Repeating a grant changes nothing;
    /// column grants to the same principal and table merge.
    pub fn grant_select(&mut self, principal: &str, table: &str, columns: &[String]) {
        let same = |g: &Grant| {
            g.effect == Effect::Allow
                && g.privilege.eq_ignore_ascii_case("select")
                && g.principals == [principal]
                && g.tables == [table]
                && g.except.is_empty()
                && g.tags.is_empty()
        };
        if let Some(existing) = self.grants.iter_mut().find(|g| same(g)) {
            if existing.columns.is_empty() {
                return;
            }
            if columns.is_empty() {
                existing.columns.clear();
            } else {
                for c in columns {
                    if !existing.columns.contains(c) {
                        existing.columns.push(c.clone());
                    }
                }
            }
            return;
        }
        self.grants.push(Grant {
            effect: Effect::Allow,
            principals: vec![principal.to_owned()],
            except: vec![],
            tables: vec![table.to_owned()],
            tags: vec![],
            columns: columns.to_vec(),
            privilege: "select".into(),
            targets: vec![],
        });
    }

    /// Take back what allow grants give `principal` on `table` (named
    /// exactly as granted). Grants that also name other principals or tables
    /// keep those. Returns how many grants were changed. Other grants that
    /// still match (a wildcard, a tag, a role) keep allowing.
    pub fn revoke_select(&mut self, principal: &str, table: &str) -> usize {
        let mut changed = 0;
        let mut split = Vec::new();
        self.grants.retain_mut(|g| {
            if g.effect != Effect::Allow
                || !g.privilege.eq_ignore_ascii_case("select")
                || !g.principals.iter().any(|p| p == principal)
                || !g.tables.iter().any(|t| t == table)
            {
                return true;
            }
            changed += 1;
            let others: Vec<String> = g.tables.iter().filter(|t| *t != table).cloned().collect();
            if g.principals.len() == 1 {
                g.tables = others;
                return !(g.tables.is_empty() && g.tags.is_empty());
            }
            g.principals.retain(|p| p != principal);
            if !others.is_empty() || !g.tags.is_empty() {
                let mut rest = g.clone();
                rest.principals = vec![principal.to_owned()];
                rest.tables = others;
                split.push(rest);
            }
            true
        });
        self.grants.extend(split);
        changed
    }
}

#[cfg(test)]
mod tests {
    use crate::{Policy, TableName};

    use super::*;

    fn can_read(doc: &PolicyDocument, user: &str, table: &str) -> bool {
        let policy = Policy::new(doc.clone()).unwrap();
        let mut parts = table.split('.');
        let name = TableName::new(
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        policy.evaluate(&policy.principal(user), &name).allowed
    }

    #[test]
    fn roles_carry_grants_to_their_members() {
        let mut doc = PolicyDocument::default();
        doc.create_role("analysts").unwrap();
        assert_eq!(
            doc.create_role("analysts"),
            Err(EditError::DuplicateRole("analysts".into()))
        );
        let p = doc.principal_for("analysts");
        assert_eq!(p, "group:analysts");
        doc.grant_select(&p, "sales.public.orders", &[]);
        assert!(!can_read(&doc, "bob", "sales.public.orders"));
        doc.grant_role("analysts", "bob").unwrap();
        assert!(can_read(&doc, "bob", "sales.public.orders"));
        assert_eq!(
            doc.drop_role("analysts", false),
            Err(EditError::RoleInUse {
                role: "analysts".into(),
                count: 1
            })
        );
        assert!(doc.revoke_role("analysts", "bob").unwrap());
        assert!(!can_read(&doc, "bob", "sales.public.orders"));
        assert_eq!(doc.revoke_select(&p, "sales.public.orders"), 1);
        assert!(doc.grants.is_empty());
        assert!(doc.drop_role("analysts", false).unwrap());
        assert!(!doc.drop_role("analysts", true).unwrap());
        assert_eq!(
            doc.grant_role("analysts", "bob"),
            Err(EditError::UndefinedRole("analysts".into()))
        );
    }

    #[test]
    fn revoke_keeps_what_other_principals_and_tables_were_given() {
        let mut doc: PolicyDocument = toml::from_str(
            r#"
[[grants]]
effect = "allow"
principals = ["user:a", "user:b"]
tables = ["c.s.t1", "c.s.t2"]
"#,
        )
        .unwrap();
        assert_eq!(doc.revoke_select("user:a", "c.s.t1"), 1);
        assert!(!can_read(&doc, "a", "c.s.t1"));
        assert!(can_read(&doc, "a", "c.s.t2"));
        assert!(can_read(&doc, "b", "c.s.t1"));
        assert!(can_read(&doc, "b", "c.s.t2"));
        assert_eq!(doc.revoke_select("user:a", "c.s.t1"), 0);
    }

    #[test]
    fn column_grants_merge_and_limit_columns() {
        let mut doc = PolicyDocument::default();
        doc.grant_select("user:a", "c.s.t", &["x".into()]);
        doc.grant_select("user:a", "c.s.t", &["y".into()]);
        assert_eq!(doc.grants.len(), 1);
        let policy = Policy::new(doc.clone()).unwrap();
        let access = policy.evaluate(&policy.principal("a"), &TableName::new("c", "s", "t"));
        assert!(access.allowed);
        assert_eq!(
            access.columns,
            Some(["x".to_owned(), "y".to_owned()].into_iter().collect())
        );
        doc.grant_select("user:a", "c.s.t", &[]);
        let policy = Policy::new(doc).unwrap();
        let access = policy.evaluate(&policy.principal("a"), &TableName::new("c", "s", "t"));
        assert_eq!(access.columns, None);
    }

    #[test]
    fn documents_round_trip_through_toml() {
        let mut doc = PolicyDocument::default();
        doc.create_role("r").unwrap();
        doc.grant_role("r", "u").unwrap();
        doc.grant_select("group:r", "c.s.*", &["a".into()]);
        doc.version = 7;
        let text = toml::to_string_pretty(&doc).unwrap();
        let back = Policy::from_toml(&text).unwrap();
        assert_eq!(back.document().version, 7);
        assert_eq!(back.document().grants[0].columns, ["a"]);
        assert_eq!(back.document().groups["r"], ["u"]);
    }
}
