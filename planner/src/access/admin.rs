//! Changing the access policy from inside meshgate.
//!
//! Admins (principals in the policy's `admins`) change the policy with SQL
//! (`CREATE ROLE`, `DROP ROLE`, `GRANT`, `REVOKE`) or through the gRPC admin
//! service. Every change is made on a copy of the document in force, gets
//! the next version number, is validated like a policy file (including
//! against the live catalogs), is saved to the policy store (the policy
//! file, or a store the replicas share: see [`super::policy_store`]), and
//! only then applies to statements that start afterwards. Changes are serialised; one that names a stale version is
//! refused, so two admins cannot overwrite each other unknowingly.
//!
//! Roles are policy groups: `GRANT role TO user` adds the user to the group.
//! Comments in a hand-written policy file do not survive a change made here.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SessionStateBuilder;

use meshgate_policy::{Policy, PolicyDocument};

use super::policy_store::PolicyStore;
use super::{PolicySource, RoleDirectory};
use crate::catalogs::CatalogRegistry;
use crate::{QueryError, QueryResult};

/// Validates, persists and applies policy changes.
#[derive(Debug)]
pub struct PolicyAdmin {
    policy: PolicySource,
    registry: Arc<CatalogRegistry>,
    roles: RoleDirectory,
    store: Option<Arc<dyn PolicyStore>>,
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
        store: Option<Arc<dyn PolicyStore>>,
    ) -> Self {
        Self {
            policy,
            registry,
            roles,
            store,
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
                self.store.clone(),
            )
        }
    }

    /// The same administration, with the user names known to the gateway.
    pub(crate) fn with_roles(&self, roles: RoleDirectory) -> Self {
        Self::new(
            self.policy.clone(),
            self.registry.clone(),
            roles,
            self.store.clone(),
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
            .is_some_and(|p| crate::access::is_admin(&p, identity))
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
        let store = self.store.as_ref().ok_or_else(|| {
            QueryError::FeatureNotSupported(
                "no policy file or store is configured ([policy] file = ... or store = ...), so the policy cannot be changed at run time".into(),
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
        store.save(doc.version, &text).await?;
        *self.policy.write().expect("policy lock") = Some(Arc::new(policy));
        tracing::info!(version = doc.version, store = %store.describe(), "policy changed");
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
        for (catalog_name, catalog) in self.registry.catalogs().iter() {
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
                if !m.column.is_empty() && schema.field_with_name(&m.column).is_err() {
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
