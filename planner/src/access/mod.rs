//! The access policy, enforced where a session resolves tables.
//!
//! Every table reference of every protocol is resolved through the
//! session's catalog view, so this is the one place policy is applied:
//! - a denied table is absent: missing from listings (`information_schema`,
//!   `pg_catalog`, Flight SQL GetTables), and naming it fails exactly as
//!   naming a table that does not exist (42P01), so a user cannot tell the
//!   two apart; the audit log still records the denial;
//! - a table with row filters or masks resolves to a [`PolicyTable`]:
//!   `Projection(masks) ← Filter(row filters) ← TableScan` behind a barrier
//!   that the user's query cannot reach below (see `barrier`).
//!   Masked values replace the column everywhere the query reads it — CTEs,
//!   subqueries, joins, windows and predicates included.
//! - filter and mask expressions are built from the policy's SQL as
//!   DataFusion expressions, with the identity's values (`current_user`,
//!   `current_user_attribute(...)`, `current_user_in_group(...)`) put in as
//!   literal values of the syntax tree: an identity value is never SQL text.
//!
//! The policy is evaluated once per table per statement snapshot and cached.
//!
//! Rooms: `catalog_view` (each session's catalogs, schemas and tables as
//! the policy lets it see them), `barrier` (the plan node that keeps
//! filters and masks below the user's query), `explain` (EXPLAIN as a user
//! may read it), `admin` and `admin_statements` (policy changes through SQL
//! and the admin API).

pub(crate) mod admin;
pub(crate) mod admin_statements;
pub(crate) mod barrier;
pub(crate) mod catalog_view;
pub(crate) mod explain;
pub mod policy_store;
pub(crate) mod product_admin;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::provider_as_source;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{cast, col, lit, Expr, LogicalPlanBuilder};
use datafusion::sql::sqlparser::ast::{self, visit_expressions_mut};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use meshgate_policy::{Policy, Principal, TableAccess, TableName};

use crate::access::barrier::PolicyTable;
use crate::products::live::LiveProducts;
use crate::{Identity, QueryError};

/// Whether `identity` administers `policy`: the one admin rule
/// ([`Policy::is_admin`] of the identity's principal, with the groups and
/// attributes its credential asserted). Sessions, the policy statements
/// and the admin API all ask here.
pub fn is_admin(policy: &Policy, identity: &Identity) -> bool {
    policy.is_admin(&identity.principal(policy))
}

/// The users meshgate knows (configured users). What a session shows of
/// them in `pg_roles`/`pg_user` is decided by `postgres::roles::SessionRoles`.
#[derive(Debug, Clone, Default)]
pub(crate) struct RoleDirectory {
    pub(crate) roles: Arc<Vec<String>>,
}

/// The DataFusion state policy expressions are planned with: DataFusion's
/// default functions and settings only, the same for every session, so it
/// is built once (building one registers every function anew; a Flight
/// SQL call or a pgwire connection would otherwise pay for it).
pub(crate) fn expression_state() -> Arc<SessionState> {
    static STATE: std::sync::OnceLock<Arc<SessionState>> = std::sync::OnceLock::new();
    STATE
        .get_or_init(|| {
            Arc::new(
                datafusion::execution::SessionStateBuilder::new()
                    .with_default_features()
                    .build(),
            )
        })
        .clone()
}

/// The policy in force, shared by the service and every session; replaced
/// whole on reload.
pub(crate) type PolicySource = Arc<std::sync::RwLock<Option<Arc<Policy>>>>;

/// One session's view of the policy.
#[derive(Debug)]
pub(crate) struct AccessGuard {
    source: PolicySource,
    identity: Identity,
    /// Parses filter and mask expressions (default functions only; shared
    /// by every session, see [`expression_state`]).
    state: Arc<SessionState>,
    /// The tags data product descriptors put on tables and columns.
    products: Arc<LiveProducts>,
    /// The policy version the current statement uses, and its decisions.
    current: Mutex<Snapshot>,
}

#[derive(Debug)]
struct Snapshot {
    policy: Arc<Policy>,
    principal: Principal,
    decisions: HashMap<TableName, Arc<TableAccess>>,
}

impl AccessGuard {
    pub(crate) fn new(
        source: PolicySource,
        policy: Arc<Policy>,
        identity: &Identity,
        state: Arc<SessionState>,
        products: Arc<LiveProducts>,
    ) -> Self {
        Self {
            source,
            identity: identity.clone(),
            state,
            products,
            current: Mutex::new(Snapshot {
                principal: identity.principal(&policy),
                policy,
                decisions: HashMap::new(),
            }),
        }
    }

    /// Take the policy in force for the statement about to be planned, so a
    /// statement never mixes two versions of a reloaded policy.
    pub(crate) fn begin_statement(&self) {
        let latest = self.source.read().expect("policy lock").clone();
        let mut current = self.current.lock().expect("policy snapshot");
        if let Some(latest) = latest {
            if !Arc::ptr_eq(&latest, &current.policy) {
                *current = Snapshot {
                    principal: self.identity.principal(&latest),
                    policy: latest,
                    decisions: HashMap::new(),
                };
            }
        }
    }

    /// The policy the current statement is planned under.
    pub(crate) fn policy(&self) -> Arc<Policy> {
        self.current.lock().expect("policy snapshot").policy.clone()
    }

    pub(crate) fn access(&self, table: &TableName) -> Arc<TableAccess> {
        let mut current = self.current.lock().expect("policy snapshot");
        let Snapshot {
            policy,
            principal,
            decisions,
        } = &mut *current;
        decisions
            .entry(table.clone())
            .or_insert_with(|| {
                let tags = self.products.current().tags(table);
                Arc::new(policy.evaluate_tagged(principal, table, &tags))
            })
            .clone()
    }

    fn principal(&self) -> Principal {
        self.current
            .lock()
            .expect("policy snapshot")
            .principal
            .clone()
    }

    /// A policy expression as a DataFusion expression over `schema`, with
    /// the session's identity bound as literal values.
    fn policy_expr(&self, sql: &str, schema: &DFSchema) -> Result<Expr> {
        let expr = self.bind_identity(sql)?;
        let expr = ast::ExprWithAlias { expr, alias: None };
        self.state.create_logical_expr_from_sql_expr(expr, schema)
    }

    /// Parse a policy expression and substitute the session's identity
    /// into its syntax tree as literal values.
    fn bind_identity(&self, sql: &str) -> Result<ast::Expr> {
        let mut expr = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| DataFusionError::Plan(format!("policy expression `{sql}`: {e}")))?;
        let principal = self.principal();
        let user = principal.user.clone();
        let literal = |s: Option<&String>| match s {
            Some(s) => ast::Expr::value(ast::Value::SingleQuotedString(s.clone())),
            None => ast::Expr::value(ast::Value::Null),
        };
        let _ = visit_expressions_mut(&mut expr, |e| {
            let replacement = match e {
                ast::Expr::Identifier(id) if id.value.eq_ignore_ascii_case("current_user") => {
                    Some(literal(Some(&user)))
                }
                ast::Expr::Function(f) => {
                    let name = f.name.to_string().to_ascii_lowercase();
                    let first_arg = match &f.args {
                        ast::FunctionArguments::List(list) => {
                            list.args.first().and_then(|a| match a {
                                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(
                                    ast::Expr::Value(v),
                                )) => match &v.value {
                                    ast::Value::SingleQuotedString(s) => Some(s.clone()),
                                    _ => None,
                                },
                                _ => None,
                            })
                        }
                        _ => None,
                    };
                    match name.as_str() {
                        "current_user" | "session_user" => Some(literal(Some(&user))),
                        "current_user_attribute" => Some(literal(
                            first_arg.and_then(|k| principal.attributes.get(&k)),
                        )),
                        "current_user_in_group" => Some(ast::Expr::value(ast::Value::Boolean(
                            first_arg.is_some_and(|g| principal.groups.contains(&g)),
                        ))),
                        _ => None,
                    }
                }
                _ => None,
            };
            if let Some(r) = replacement {
                *e = r;
            }
            ControlFlow::<()>::Continue(())
        });
        Ok(expr)
    }

    /// The provider the session sees for `table`: the raw table, a view
    /// applying filters and masks, or a permission error.
    pub(crate) fn protect(
        &self,
        table: &TableName,
        provider: Arc<dyn TableProvider>,
    ) -> Result<Arc<dyn TableProvider>> {
        let access = self.access(table);
        if !access.allowed {
            return Err(DataFusionError::External(Box::new(
                QueryError::PermissionDenied(format!("permission denied for table {table}")),
            )));
        }
        if access.is_unrestricted() {
            return Ok(provider);
        }
        let schema = provider.schema();
        let table_type = provider.table_type();
        let df_schema = DFSchema::try_from_qualified_schema(table.table.as_str(), &schema)?;
        let mut plan =
            LogicalPlanBuilder::scan(table.table.as_str(), provider_as_source(provider), None)?;
        for filter in &access.row_filters {
            plan = plan.filter(self.policy_expr(filter, &df_schema)?)?;
        }
        let mut projection: Vec<Expr> = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let column = col(datafusion::common::Column::new(
                Some(table.table.as_str()),
                field.name(),
            ));
            let granted = access
                .columns
                .as_ref()
                .is_none_or(|c| c.contains(field.name()));
            match access.masks.get(field.name()) {
                _ if !granted => {
                    projection.push(cast(lit(ScalarValue::Null), field.data_type().clone()))
                }
                Some(mask) => {
                    let expr = self.policy_expr(mask, &df_schema)?;
                    projection.push(cast(expr, field.data_type().clone()));
                }
                None => projection.push(column),
            }
        }
        for column in access.masks.keys() {
            if schema.field_with_name(column).is_err() {
                return Err(DataFusionError::Plan(format!(
                    "policy masks column `{column}`, which {table} does not have"
                )));
            }
        }
        let columns = schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .zip(projection)
            .collect();
        Ok(Arc::new(PolicyTable::try_new(
            table.to_string(),
            table_type,
            plan.build()?,
            columns,
        )?))
    }

    /// Whether the session's user administers the policy the current
    /// statement uses ([`Policy::is_admin`], the one admin decision).
    pub(crate) fn is_admin(&self) -> bool {
        let current = self.current.lock().expect("policy snapshot");
        current.policy.is_admin(&current.principal)
    }
}

/// A schema as one session may see it under the policy.
#[derive(Debug)]
pub(crate) struct GuardedSchema {
    pub(crate) inner: Arc<dyn SchemaProvider>,
    pub(crate) catalog: String,
    pub(crate) schema: String,
    pub(crate) guard: Arc<AccessGuard>,
}

impl GuardedSchema {
    fn name(&self, table: &str) -> TableName {
        TableName::new(&self.catalog, &self.schema, table)
    }
}

#[async_trait::async_trait]
impl SchemaProvider for GuardedSchema {
    fn table_names(&self) -> Vec<String> {
        self.inner
            .table_names()
            .into_iter()
            .filter(|t| self.guard.access(&self.name(t)).allowed)
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let table = self.name(name);
        // A denied table does not exist for this user (see the module docs).
        if !self.guard.access(&table).allowed {
            return Ok(None);
        }
        match self.inner.table(name).await? {
            Some(provider) => self.guard.protect(&table, provider).map(Some),
            None => Ok(None),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.guard.access(&self.name(name)).allowed && self.inner.table_exist(name)
    }
}
