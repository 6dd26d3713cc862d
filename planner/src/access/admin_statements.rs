//! The SQL statements that change the policy (`CREATE ROLE`, `DROP ROLE`,
//! `GRANT`, `REVOKE`): recognised in parsed SQL and applied to a policy
//! document by [`super::admin::PolicyAdmin`].

use datafusion::sql::sqlparser::ast;
use meshgate_policy::{EditError, PolicyDocument};

use crate::{QueryError, QueryResult};

/// A policy statement as parsed, before names are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyStatement {
    CreateRole(Vec<String>),
    DropRole {
        names: Vec<String>,
        if_exists: bool,
    },
    Select {
        grant: bool,
        /// `(name parts, all tables in that schema)`
        objects: Vec<(Vec<String>, bool)>,
        columns: Vec<String>,
        grantees: Vec<Grantee>,
    },
    Role {
        grant: bool,
        roles: Vec<String>,
        members: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grantee {
    name: String,
    /// `GROUP name` / `ROLE name`: a role; `USER name`: a user; bare: a role
    /// when one of that name exists.
    role: Option<bool>,
}

impl PolicyStatement {
    pub(crate) fn tag(&self) -> &'static str {
        match self {
            PolicyStatement::CreateRole(_) => "CREATE ROLE",
            PolicyStatement::DropRole { .. } => "DROP ROLE",
            PolicyStatement::Select { grant: true, .. }
            | PolicyStatement::Role { grant: true, .. } => "GRANT",
            _ => "REVOKE",
        }
    }

    /// Recognise a policy statement.
    pub(crate) fn from_ast(stmt: &ast::Statement) -> QueryResult<Option<Self>> {
        let ident = |n: &ast::ObjectName| n.to_string().trim_matches('"').to_owned();
        Ok(Some(match stmt {
            ast::Statement::CreateRole(create) => {
                PolicyStatement::CreateRole(create.names.iter().map(ident).collect())
            }
            ast::Statement::Drop {
                object_type: ast::ObjectType::Role,
                if_exists,
                names,
                ..
            } => PolicyStatement::DropRole {
                names: names.iter().map(ident).collect(),
                if_exists: *if_exists,
            },
            ast::Statement::Grant(g) => {
                Self::privileges(true, &g.privileges, g.objects.as_ref(), &g.grantees)?
            }
            ast::Statement::Revoke(r) => {
                Self::privileges(false, &r.privileges, r.objects.as_ref(), &r.grantees)?
            }
            _ => return Ok(None),
        }))
    }

    fn privileges(
        grant: bool,
        privileges: &ast::Privileges,
        objects: Option<&ast::GrantObjects>,
        grantees: &[ast::Grantee],
    ) -> QueryResult<Self> {
        let unsupported = |what: String| {
            QueryError::FeatureNotSupported(format!(
                "{what}: meshgate grants SELECT on tables and roles to users (it is read-only)"
            ))
        };
        let names: Vec<Grantee> = grantees
            .iter()
            .map(|g| {
                let name = match &g.name {
                    Some(ast::GranteeName::ObjectName(n)) => {
                        n.to_string().trim_matches('"').to_owned()
                    }
                    _ => return Err(unsupported(format!("grantee {g}"))),
                };
                let role = match g.grantee_type {
                    ast::GranteesType::Role | ast::GranteesType::Group => Some(true),
                    ast::GranteesType::User => Some(false),
                    ast::GranteesType::None => None,
                    _ => return Err(unsupported(format!("grantee {g}"))),
                };
                Ok(Grantee { name, role })
            })
            .collect::<QueryResult<_>>()?;
        let actions = match privileges {
            ast::Privileges::Actions(a) => a,
            ast::Privileges::All { .. } => {
                return Err(unsupported("ALL PRIVILEGES".into()));
            }
        };
        if actions
            .iter()
            .all(|a| matches!(a, ast::Action::Role { .. }))
        {
            if objects.is_some() {
                return Err(unsupported("a role ON an object".into()));
            }
            let roles = actions
                .iter()
                .filter_map(|a| match a {
                    ast::Action::Role { role } => {
                        Some(role.to_string().trim_matches('"').to_owned())
                    }
                    _ => None,
                })
                .collect();
            return Ok(PolicyStatement::Role {
                grant,
                roles,
                members: names.into_iter().map(|g| g.name).collect(),
            });
        }
        let mut columns = Vec::new();
        for action in actions {
            match action {
                ast::Action::Select { columns: cols } => {
                    columns.extend(cols.iter().flatten().map(|c| c.value.clone()));
                }
                other => return Err(unsupported(format!("privilege {other}"))),
            }
        }
        let objects = match objects {
            Some(ast::GrantObjects::Tables(tables)) => tables
                .iter()
                .map(|t| {
                    (
                        t.0.iter()
                            .map(|p| p.to_string().trim_matches('"').to_owned())
                            .collect(),
                        false,
                    )
                })
                .collect(),
            Some(ast::GrantObjects::AllTablesInSchema { schemas }) => schemas
                .iter()
                .map(|s| {
                    (
                        s.0.iter()
                            .map(|p| p.to_string().trim_matches('"').to_owned())
                            .collect(),
                        true,
                    )
                })
                .collect(),
            Some(other) => return Err(unsupported(format!("ON {other}"))),
            None => return Err(QueryError::Syntax("GRANT SELECT needs ON table".into())),
        };
        Ok(PolicyStatement::Select {
            grant,
            objects,
            columns,
            grantees: names,
        })
    }

    /// Apply to `doc`; unqualified names resolve against `catalog`/`schema`.
    pub(crate) fn apply(
        &self,
        doc: &mut PolicyDocument,
        catalog: &str,
        schema: &str,
    ) -> QueryResult<()> {
        let edit_error = |e: EditError| match e {
            EditError::DuplicateRole(_) => QueryError::DuplicateObject(e.to_string()),
            EditError::UndefinedRole(_) => QueryError::UndefinedObject(e.to_string()),
            EditError::RoleInUse { .. } => QueryError::DependentObjects(e.to_string()),
        };
        match self {
            PolicyStatement::CreateRole(names) => {
                for n in names {
                    doc.create_role(n).map_err(edit_error)?;
                }
            }
            PolicyStatement::DropRole { names, if_exists } => {
                for n in names {
                    doc.drop_role(n, *if_exists).map_err(edit_error)?;
                }
            }
            PolicyStatement::Role {
                grant,
                roles,
                members,
            } => {
                for r in roles {
                    for m in members {
                        if *grant {
                            doc.grant_role(r, m).map_err(edit_error)?;
                        } else {
                            doc.revoke_role(r, m).map_err(edit_error)?;
                        }
                    }
                }
            }
            PolicyStatement::Select {
                grant,
                objects,
                columns,
                grantees,
            } => {
                let tables = objects
                    .iter()
                    .map(|(parts, all)| qualify(parts, *all, catalog, schema))
                    .collect::<QueryResult<Vec<_>>>()?;
                for g in grantees {
                    let principal = match g.role {
                        Some(true) => {
                            if !doc.groups.contains_key(&g.name) {
                                return Err(QueryError::UndefinedObject(format!(
                                    "role \"{}\" does not exist",
                                    g.name
                                )));
                            }
                            format!("group:{}", g.name)
                        }
                        Some(false) => format!("user:{}", g.name),
                        None => doc.principal_for(&g.name),
                    };
                    for t in &tables {
                        if *grant {
                            doc.grant_select(&principal, t, columns);
                        } else {
                            doc.revoke_select(&principal, t);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// `catalog.schema.table` (or `catalog.schema.*` for ALL TABLES IN SCHEMA).
fn qualify(parts: &[String], all: bool, catalog: &str, schema: &str) -> QueryResult<String> {
    let full: Vec<&str> = match (all, parts.len()) {
        (false, 1) => vec![catalog, schema, &parts[0]],
        (false, 2) => vec![catalog, &parts[0], &parts[1]],
        (false, 3) => parts.iter().map(String::as_str).collect(),
        (true, 1) => vec![catalog, &parts[0], "*"],
        (true, 2) => vec![&parts[0], &parts[1], "*"],
        _ => {
            return Err(QueryError::Syntax(format!(
                "`{}` is not a table name",
                parts.join(".")
            )))
        }
    };
    Ok(full.join("."))
}

/// PostgreSQL's `GRANT role [, ...] TO user` / `REVOKE role FROM user` name
/// no privilege keyword; the SQL parser knows them as `GRANT ROLE role`.
/// Rewrite a statement of that shape so it parses.
pub(crate) fn rewrite_role_grant(sql: &str) -> Option<String> {
    const KEYWORDS: &[&str] = &[
        "select",
        "insert",
        "update",
        "delete",
        "truncate",
        "references",
        "trigger",
        "usage",
        "create",
        "connect",
        "temporary",
        "temp",
        "execute",
        "all",
        "role",
        "on",
    ];
    let trimmed = sql.trim().trim_end_matches(';').trim();
    let mut words = trimmed.split_whitespace();
    let verb = words.next()?.to_ascii_uppercase();
    let (verb, link) = match verb.as_str() {
        "GRANT" => ("GRANT", "TO"),
        "REVOKE" => ("REVOKE", "FROM"),
        _ => return None,
    };
    let rest = trimmed[verb.len()..].trim_start();
    let upper = rest.to_ascii_uppercase();
    let at = upper.find(&format!(" {link} "))?;
    let (list, tail) = (&rest[..at], &rest[at..]);
    let roles: Vec<&str> = list.split(',').map(str::trim).collect();
    let plain = |r: &&str| {
        !r.is_empty()
            && !KEYWORDS.contains(&r.to_ascii_lowercase().as_str())
            && (r.starts_with('"')
                || r.chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '$'))
    };
    if !roles.iter().all(plain) {
        return None;
    }
    let roles: Vec<String> = roles.iter().map(|r| format!("ROLE {r}")).collect();
    Some(format!("{verb} {}{tail}", roles.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_grants_are_rewritten_to_parse() {
        assert_eq!(
            rewrite_role_grant("grant analysts, \"Ops\" to bob;").as_deref(),
            Some("GRANT ROLE analysts, ROLE \"Ops\" to bob")
        );
        assert_eq!(
            rewrite_role_grant("REVOKE analysts FROM bob").as_deref(),
            Some("REVOKE ROLE analysts FROM bob")
        );
        assert_eq!(rewrite_role_grant("GRANT SELECT ON t TO bob"), None);
        assert_eq!(rewrite_role_grant("SELECT 1"), None);
    }

    #[test]
    fn names_are_qualified_against_the_session() {
        assert_eq!(qualify(&["t".into()], false, "c", "s").unwrap(), "c.s.t");
        assert_eq!(
            qualify(&["x".into(), "t".into()], false, "c", "s").unwrap(),
            "c.x.t"
        );
        assert_eq!(qualify(&["x".into()], true, "c", "s").unwrap(), "c.x.*");
    }
}
