//! Changing the access policy from inside meshgate.
//!
//! Admins (principals in the policy's `admins`) change the policy with SQL
//! (`CREATE ROLE`, `DROP ROLE`, `GRANT`, `REVOKE`) or through the gRPC admin
//! service. Every change is made on a copy of the document in force, gets
//! the next version number, is validated like a policy file (including
//! against the live catalogs), is written to the policy file atomically (a
//! temporary file renamed over it; each version is also kept in
//! `<file>.history/`), and only then applies to statements that start
//! afterwards. Changes are serialised; one that names a stale version is
//! refused, so two admins cannot overwrite each other unknowingly.
//!
//! Roles are policy groups: `GRANT role TO user` adds the user to the group.
//! Comments in a hand-written policy file do not survive a change made here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SessionStateBuilder;
use datafusion::sql::sqlparser::ast;
use meshgate_policy::{EditError, Policy, PolicyDocument};

use crate::access::PolicySource;
use crate::pg_compat::RoleDirectory;
use crate::{CatalogRegistry, QueryError, QueryResult};

/// Validates, persists and applies policy changes.
#[derive(Debug)]
pub struct PolicyAdmin {
    policy: PolicySource,
    registry: Arc<CatalogRegistry>,
    roles: RoleDirectory,
    file: Option<PathBuf>,
    /// Users may also come from tokens (JWT): a rule naming a user meshgate
    /// has no password for is not an error.
    token_users: bool,
    lock: tokio::sync::Mutex<()>,
}

impl PolicyAdmin {
    pub(crate) fn new(
        policy: PolicySource,
        registry: Arc<CatalogRegistry>,
        roles: RoleDirectory,
        file: Option<PathBuf>,
    ) -> Self {
        Self {
            policy,
            registry,
            roles,
            file,
            token_users: false,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The same administration, accepting users known only from tokens.
    pub(crate) fn with_token_users(&self, token_users: bool) -> Self {
        Self {
            token_users,
            ..Self::new(
                self.policy.clone(),
                self.registry.clone(),
                self.roles.clone(),
                self.file.clone(),
            )
        }
    }

    /// The same administration, with the user names known to the gateway.
    pub(crate) fn with_roles(&self, roles: RoleDirectory) -> Self {
        Self::new(
            self.policy.clone(),
            self.registry.clone(),
            roles,
            self.file.clone(),
        )
    }

    pub(crate) fn token_users(&self) -> bool {
        self.token_users
    }

    fn current(&self) -> Option<Arc<Policy>> {
        self.policy.read().expect("policy lock").clone()
    }

    /// The policy in force as TOML, and its version.
    pub fn current_text(&self) -> QueryResult<(String, u64)> {
        let doc = self
            .current()
            .map(|p| p.document().clone())
            .unwrap_or_default();
        Ok((to_toml(&doc)?, doc.version))
    }

    /// Whether `identity` may change the policy.
    pub fn is_admin(&self, identity: &crate::Identity) -> bool {
        self.current()
            .is_some_and(|p| p.is_admin(&identity.principal(&p)))
    }

    /// Apply `edit` to the document in force and make the result the new
    /// policy. `expected_version`, when given, must be the version in force.
    /// Returns the new version.
    pub async fn update(
        &self,
        expected_version: Option<u64>,
        edit: impl FnOnce(&mut PolicyDocument) -> QueryResult<()>,
    ) -> QueryResult<u64> {
        let _serial = self.lock.lock().await;
        let file = self.file.as_ref().ok_or_else(|| {
            QueryError::FeatureNotSupported(
                "no policy file is configured ([policy] file = ...), so the policy cannot be changed at run time".into(),
            )
        })?;
        let mut doc = self
            .current()
            .map(|p| p.document().clone())
            .unwrap_or_default();
        let previous = doc.version;
        if let Some(expected) = expected_version {
            if expected != previous {
                return Err(QueryError::Conflict(format!(
                    "the policy is at version {previous}, not {expected}: fetch it again and reapply your change"
                )));
            }
        }
        edit(&mut doc)?;
        doc.version = previous + 1;
        let policy = Policy::new(doc.clone()).map_err(|e| {
            QueryError::InvalidParameter(format!("the changed policy is invalid: {e}"))
        })?;
        let problems = self.check(&policy).await;
        if !problems.is_empty() {
            return Err(QueryError::InvalidParameter(format!(
                "the changed policy does not fit the catalogs: {}",
                problems.join("; ")
            )));
        }
        let text = to_toml(&doc)?;
        persist(file, &text, doc.version)
            .map_err(|e| QueryError::Internal(format!("writing {}: {e}", file.display())))?;
        *self.policy.write().expect("policy lock") = Some(Arc::new(policy));
        tracing::info!(version = doc.version, file = %file.display(), "policy changed");
        Ok(doc.version)
    }

    /// Replace the whole policy with `text` (a policy document).
    pub async fn replace(&self, text: &str, expected_version: Option<u64>) -> QueryResult<u64> {
        let new = Policy::from_toml(text)
            .map_err(|e| QueryError::InvalidParameter(format!("policy: {e}")))?;
        let doc = new.document().clone();
        self.update(expected_version, move |current| {
            *current = PolicyDocument {
                version: current.version,
                ..doc
            };
            Ok(())
        })
        .await
    }

    /// Check `policy` against the live catalogs: every table pattern matches
    /// a table, every masked column exists, every filter and mask plans
    /// against the tables it applies to. Returns the problems found.
    pub async fn check(&self, policy: &Policy) -> Vec<String> {
        let doc = policy.document();
        let state = SessionStateBuilder::new().with_default_features().build();
        let mut tables = Vec::new();
        for (catalog_name, catalog) in self.registry.catalogs() {
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else {
                    continue;
                };
                for table_name in schema.table_names() {
                    if let Ok(Some(provider)) = schema.table(&table_name).await {
                        let name = meshgate_policy::TableName::new(
                            catalog_name,
                            &schema_name,
                            &table_name,
                        );
                        tables.push((name, provider.schema()));
                    }
                }
            }
        }
        let mut problems = Vec::new();
        let matching = |patterns: &[String]| -> Vec<&(meshgate_policy::TableName, SchemaRef)> {
            tables
                .iter()
                .filter(|(n, _)| {
                    patterns
                        .iter()
                        .any(|p| meshgate_policy::glob_match(p, &n.to_string()))
                })
                .collect()
        };
        let check_patterns = |key: String, patterns: &[String], problems: &mut Vec<String>| {
            for (i, p) in patterns.iter().enumerate() {
                if matching(std::slice::from_ref(p)).is_empty() {
                    problems.push(format!("{key}.tables[{i}]: `{p}` matches no table"));
                }
            }
        };
        let check_expr =
            |key: String, sql: &str, patterns: &[String], problems: &mut Vec<String>| {
                // Identity functions are bound per session; check with placeholders.
                let probe = sql
                    .replace("current_user_attribute(", "concat(")
                    .replace("current_user_in_group(", "starts_with('', ");
                for (name, schema) in matching(patterns) {
                    let parsed = datafusion::common::DFSchema::try_from_qualified_schema(
                        name.table.as_str(),
                        schema,
                    )
                    .and_then(|df| state.create_logical_expr(&probe, &df));
                    if let Err(e) = parsed {
                        problems.push(format!(
                            "{key}: `{sql}` does not plan against {name}: {}",
                            QueryError::from(e)
                        ));
                    }
                }
            };
        for (i, g) in doc.grants.iter().enumerate() {
            check_patterns(format!("grants[{i}]"), &g.tables, &mut problems);
        }
        for (i, f) in doc.row_filters.iter().enumerate() {
            check_patterns(format!("row_filters[{i}]"), &f.tables, &mut problems);
            check_expr(
                format!("row_filters[{i}].filter"),
                &f.filter,
                &f.tables,
                &mut problems,
            );
        }
        for (i, m) in doc.masks.iter().enumerate() {
            check_patterns(format!("masks[{i}]"), &m.tables, &mut problems);
            for (name, schema) in matching(&m.tables) {
                if schema.field_with_name(&m.column).is_err() {
                    problems.push(format!(
                        "masks[{i}].column: {name} has no column `{}`",
                        m.column
                    ));
                }
            }
            check_expr(
                format!("masks[{i}].mask"),
                &m.mask,
                &m.tables,
                &mut problems,
            );
        }
        let users: std::collections::BTreeSet<&str> =
            self.roles.roles.iter().map(String::as_str).collect();
        let mut principal_lists: Vec<(String, &Vec<String>)> = Vec::new();
        for (i, g) in doc.grants.iter().enumerate() {
            principal_lists.push((format!("grants[{i}]"), &g.principals));
        }
        for (i, f) in doc.row_filters.iter().enumerate() {
            principal_lists.push((format!("row_filters[{i}]"), &f.principals));
        }
        for (i, m) in doc.masks.iter().enumerate() {
            principal_lists.push((format!("masks[{i}]"), &m.principals));
        }
        if !users.is_empty() && !self.token_users {
            for (key, list) in principal_lists {
                for (j, p) in list.iter().enumerate() {
                    if let Some(user) = p.strip_prefix("user:") {
                        if !users.contains(user) {
                            problems.push(format!("{key}.principals[{j}]: unknown user `{user}`"));
                        }
                    }
                }
            }
        }
        problems
    }
}

fn to_toml(doc: &PolicyDocument) -> QueryResult<String> {
    toml::to_string_pretty(doc).map_err(|e| QueryError::Internal(format!("policy to TOML: {e}")))
}

/// Write `text` to `file` atomically and keep a copy as version `version`.
fn persist(file: &Path, text: &str, version: u64) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "policy.toml".into());
    let history = dir.join(format!("{name}.history"));
    std::fs::create_dir_all(&history)?;
    std::fs::write(history.join(format!("{version:06}.toml")), text)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, file)
}

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
