//! [`QueryService`] and the per-connection [`QuerySession`].

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::CatalogProviderList;
use datafusion::common::ParamValues;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{LogicalPlan, Statement as PlanStatement};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{self, Expr as SqlExpr, Set, Value as SqlValue};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use datafusion::error::DataFusionError;
use datafusion::physical_plan::RecordBatchStream;
use futures::{stream, Stream};

use crate::access::{AccessGuard, PolicySource};
use crate::audit::{AuditLog, AuditRecord, Audited};
use crate::catalog_view::{SessionCatalog, SessionCatalogList};
use crate::pg_compat::{self, RoleDirectory};
use crate::plan_cache::PlanCache;
use crate::policy_admin::{PolicyAdmin, PolicyStatement};
use crate::settings::split_list;
use crate::{CatalogRegistry, QueryError, QueryResult, SessionSettings};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use meshgate_policy::Policy;
use std::time::Instant;

/// Who is asking. Front ends build it after authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    /// Groups asserted by the credential (a JWT's groups claim), in
    /// addition to those the policy gives the user.
    pub groups: std::collections::BTreeSet<String>,
    /// Attributes asserted by the credential; they override the policy's.
    pub attributes: std::collections::BTreeMap<String, String>,
    /// The signed-in user acting as `user`, when the policy lets them
    /// impersonate (recorded in every audit record).
    pub impersonator: Option<String>,
}

impl Identity {
    pub fn new(user: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            groups: Default::default(),
            attributes: Default::default(),
            impersonator: None,
        }
    }

    /// The policy principal for this identity under `policy`.
    pub fn principal(&self, policy: &Policy) -> meshgate_policy::Principal {
        let mut principal = policy.principal(&self.user);
        principal.groups.extend(self.groups.iter().cloned());
        principal.attributes.extend(self.attributes.clone());
        principal
    }
}

/// What a client asked for when it connected.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// The connection's database: picks the default catalog.
    pub database: Option<String>,
    /// Initial `search_path` (the first existing schema is the default one).
    pub search_path: Option<String>,
    pub application_name: Option<String>,
    /// Install `pg_catalog` and PostgreSQL's functions (pgwire sessions).
    pub postgres_catalog: bool,
    /// For the audit log: `pgwire`, `flight_sql`, `cli`.
    pub protocol: String,
    /// For the audit log: the client's address.
    pub client: Option<String>,
}

/// Plans and runs SQL for authenticated identities over the configured catalogs.
pub struct QueryService {
    registry: Arc<CatalogRegistry>,
    default_catalog: String,
    roles: RoleDirectory,
    parser: Arc<PostgresCompatibilityParser>,
    /// The access policy; `None` means every user reads every table.
    policy: PolicySource,
    admin: Arc<PolicyAdmin>,
    audit: Option<Arc<AuditLog>>,
    /// The longest any statement runs (`[limits] statement_timeout`).
    max_statement_time: Option<std::time::Duration>,
}

impl QueryService {
    /// `default_catalog` is used when a client names no database (or the
    /// conventional `postgres`); without it, the first catalog by name.
    pub fn new(registry: Arc<CatalogRegistry>, default_catalog: Option<String>) -> Self {
        let default_catalog = default_catalog
            .or_else(|| registry.catalog_names().next().map(str::to_owned))
            .unwrap_or_else(|| "meshgate".to_owned());
        let policy = PolicySource::default();
        let admin = Arc::new(PolicyAdmin::new(
            policy.clone(),
            registry.clone(),
            RoleDirectory::default(),
            None,
        ));
        Self {
            registry,
            default_catalog,
            roles: RoleDirectory::default(),
            parser: Arc::new(PostgresCompatibilityParser::new()),
            policy,
            admin,
            audit: None,
            max_statement_time: None,
        }
    }

    /// No statement runs longer than `limit`, whatever a session sets.
    pub fn with_statement_timeout(mut self, limit: Option<std::time::Duration>) -> Self {
        self.max_statement_time = limit;
        self
    }

    /// Record every statement in `log` (and offer it to admins as
    /// `system.audit.queries`).
    pub fn with_audit(mut self, log: AuditLog) -> Self {
        self.audit = Some(Arc::new(log));
        self
    }

    /// Enforce `policy` for sessions opened from now on.
    pub fn with_policy(self, policy: Policy) -> Self {
        self.set_policy(policy);
        self
    }

    /// Replace the policy atomically; sessions opened afterwards use it.
    pub fn set_policy(&self, policy: Policy) {
        *self.policy.write().expect("policy lock") = Some(Arc::new(policy));
    }

    /// Replace the policy unless `policy` is older (a lower `version`) than
    /// the one in force; returns the version in force when it refuses. A
    /// file watcher that read the file before an edit made through
    /// meshgate must never put the older text back in force.
    pub fn set_policy_unless_older(&self, policy: Policy) -> Result<(), u64> {
        let mut current = self.policy.write().expect("policy lock");
        if let Some(in_force) = current.as_ref() {
            let version = in_force.document().version;
            if policy.document().version < version {
                return Err(version);
            }
        }
        *current = Some(Arc::new(policy));
        Ok(())
    }

    /// Check `policy` against the live catalogs: every table pattern matches
    /// a table, every masked column exists, every filter and mask plans
    /// against the tables it applies to. Returns the problems found.
    pub async fn check_policy(&self, policy: &Policy) -> Vec<String> {
        self.admin.check(policy).await
    }

    /// The audit log, when one is configured.
    pub fn audit_log(&self) -> Option<Arc<AuditLog>> {
        self.audit.clone()
    }

    /// The policy administration shared by every session (SQL `GRANT`, the
    /// gRPC admin service).
    pub fn policy_admin(&self) -> Arc<PolicyAdmin> {
        self.admin.clone()
    }

    /// Persist policy changes made through meshgate (SQL, admin API) to
    /// `path`, the configured policy file.
    pub fn with_policy_file(mut self, path: std::path::PathBuf) -> Self {
        let token_users = self.admin.token_users();
        self.admin = Arc::new(
            PolicyAdmin::new(
                self.policy.clone(),
                self.registry.clone(),
                self.roles.clone(),
                Some(path),
            )
            .with_token_users(token_users),
        );
        self
    }

    /// Users may also sign in with tokens (JWT) and need no `[users]` entry:
    /// policy rules may name them.
    pub fn with_token_users(mut self, token_users: bool) -> Self {
        self.admin = Arc::new(self.admin.with_token_users(token_users));
        self
    }

    /// The policy in force, if any.
    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.policy.read().expect("policy lock").clone()
    }

    /// The user names shown as roles in `pg_roles` / `pg_user`.
    pub fn with_roles(mut self, roles: Vec<String>) -> Self {
        self.roles = RoleDirectory {
            roles: Arc::new(roles),
        };
        self.admin = Arc::new(self.admin.with_roles(self.roles.clone()));
        self
    }

    pub fn registry(&self) -> &CatalogRegistry {
        &self.registry
    }

    pub fn default_catalog(&self) -> &str {
        &self.default_catalog
    }

    /// Resolve a client's database name to a catalog.
    pub fn resolve_database(
        &self,
        identity: &Identity,
        database: Option<&str>,
    ) -> QueryResult<String> {
        match database {
            None | Some("") | Some("postgres") => Ok(self.default_catalog.clone()),
            Some(db) if self.registry.contains(db) => Ok(db.to_owned()),
            Some(db) if db == identity.user => Ok(self.default_catalog.clone()),
            // The list of catalogs is not for everyone to read: the
            // message names only what the client asked for.
            Some(db) => Err(QueryError::UndefinedDatabase(format!(
                "database \"{db}\" does not exist"
            ))),
        }
    }

    /// The catalogs as one session sees them: shared providers behind
    /// per-session wrappers, so a session's own schemas stay its own.
    /// Catalogs and schemas the policy hides from the user are absent
    /// (see `catalog_view`); `current` is the session's own catalog.
    fn session_catalogs(
        &self,
        guard: Option<Arc<AccessGuard>>,
        current: &str,
    ) -> Arc<dyn CatalogProviderList> {
        let catalogs = self.registry.catalogs().iter().map(|(name, catalog)| {
            Arc::new(SessionCatalog::new(
                name.clone(),
                catalog.clone(),
                guard.clone(),
            ))
        });
        Arc::new(SessionCatalogList::new(catalogs, current))
    }

    /// A session for `identity`; fails if the requested database is unknown.
    pub fn open_session(
        &self,
        identity: Identity,
        options: SessionOptions,
    ) -> QueryResult<QuerySession> {
        let catalog = self.resolve_database(&identity, options.database.as_deref())?;
        let mut settings = SessionSettings::default();
        if let Some(path) = &options.search_path {
            settings.set("search_path", Some(path))?;
        }
        if let Some(app) = &options.application_name {
            settings.set("application_name", Some(app))?;
        }
        // pgwire sessions get PostgreSQL's information_schema (registered
        // below), others DataFusion's.
        let mut config = SessionConfig::new()
            .with_information_schema(!options.postgres_catalog)
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(&catalog, "public");
        // TIMESTAMP WITH TIME ZONE needs a session zone to carry one.
        config.options_mut().execution.time_zone = Some(settings.get("TimeZone")?.to_owned());
        let guard = self.policy().map(|policy| {
            let parse_state = SessionStateBuilder::new().with_default_features().build();
            Arc::new(AccessGuard::new(
                self.policy.clone(),
                policy,
                &identity,
                parse_state,
            ))
        });
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(self.registry.runtime())
            .with_catalog_list(self.session_catalogs(guard.clone(), &catalog))
            .with_default_features()
            .with_analyzer_rules(crate::pg_analyzer::analyzer_rules())
            // Federation: the largest sub-plan that touches one SQL source
            // runs there (see meshgate_connectors' `sql` module).
            .with_optimizer_rules(datafusion_federation::default_optimizer_rules())
            .with_query_planner(Arc::new(datafusion_federation::FederatedQueryPlanner::new()))
            .with_optimizer_rule(Arc::new(pg_compat::LikeEscapeRule))
            .build();
        let ctx = SessionContext::new_with_state(state);
        if let Some(log) = &self.audit {
            let is_admin = self
                .policy()
                .map(|p| p.is_admin(&identity.principal(&p)))
                .unwrap_or(true);
            if is_admin {
                ctx.register_catalog("system", crate::audit::audit_catalog(log)?);
            }
        }
        let settings = Arc::new(std::sync::RwLock::new(settings));
        if options.postgres_catalog {
            let catalogs = ctx.state().catalog_list().clone();
            let schema = Arc::new(crate::pg_information_schema::PgInformationSchema::new(
                catalogs.clone(),
            ));
            // The session's own catalog too, even when it shows the user nothing.
            for name in catalogs
                .catalog_names()
                .into_iter()
                .chain([catalog.clone()])
            {
                if let Some(catalog) = catalogs.catalog(&name) {
                    catalog
                        .register_schema(
                            crate::pg_information_schema::INFORMATION_SCHEMA,
                            schema.clone(),
                        )
                        .map_err(|e| {
                            QueryError::Internal(format!("cannot set up information_schema: {e}"))
                        })?;
                }
            }
            pg_compat::install(
                &ctx,
                &catalog,
                &identity.user,
                crate::pg_roles::SessionRoles::new(
                    self.roles.roles.clone(),
                    identity.clone(),
                    guard.clone(),
                ),
                settings.clone(),
                self.registry.object_descriptions(&catalog),
            )?;
        }
        let mut session = QuerySession {
            identity,
            ctx,
            catalog,
            settings,
            parser: self.parser.clone(),
            guard,
            audit: self.audit.clone(),
            protocol: if options.protocol.is_empty() {
                "unknown".into()
            } else {
                options.protocol.clone()
            },
            client: options.client.clone().unwrap_or_default(),
            cursors: Default::default(),
            registry: self.registry.clone(),
            admin: self.admin.clone(),
            pg_catalog: options.postgres_catalog,
            sql_prepared: Default::default(),
            max_statement_time: self.max_statement_time,
        };
        session.apply_search_path();
        Ok(session)
    }
}

/// A statement ready to run: planned once, executed any number of times.
#[derive(Debug, Clone)]
pub enum Prepared {
    Query {
        sql: String,
        plan: LogicalPlan,
        /// The optimised plan, shared by clones (see [`PlanCache`]).
        cache: PlanCache,
        /// The policy the plan was made under: an execution under another
        /// policy plans the statement again.
        policy: Option<Arc<Policy>>,
    },
    Command {
        sql: String,
        command: SessionCommand,
    },
    Empty,
}

/// Statements the session answers itself rather than DataFusion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCommand {
    Set {
        name: String,
        value: Option<String>,
    },
    ResetAll,
    Show(String),
    ShowAll,
    Begin,
    Commit,
    Rollback,
    DiscardAll,
    Savepoint(String),
    ReleaseSavepoint(String),
    RollbackToSavepoint(String),
    /// `DECLARE name CURSOR FOR query`
    Declare {
        name: String,
        query: Box<ast::Query>,
    },
    /// `FETCH [n | ALL | NEXT] FROM name`; `None` = all remaining rows.
    Fetch {
        name: String,
        count: Option<usize>,
    },
    /// `CLOSE name` / `CLOSE ALL`
    Close(Option<String>),
    /// Accepted with nothing to do; the command tag to answer.
    Noop(String),
    /// `CALL system.refresh_catalog('name')`: drop cached metadata of a catalog.
    RefreshCatalog(String),
    /// `CREATE ROLE`, `DROP ROLE`, `GRANT`, `REVOKE`: a policy change.
    Policy(PolicyStatement),
    /// `COPY (query) TO STDOUT` / `COPY table TO STDOUT`
    CopyOut {
        query: Box<ast::Query>,
        options: CopyOptions,
    },
}

/// How `COPY ... TO STDOUT` writes rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    pub format: CopyFormat,
    pub header: bool,
    pub delimiter: Option<char>,
    pub null: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
    Binary,
}

impl Prepared {
    pub fn sql(&self) -> &str {
        match self {
            Prepared::Query { sql, .. } | Prepared::Command { sql, .. } => sql,
            Prepared::Empty => "",
        }
    }

    /// The columns the statement returns (empty for commands without rows).
    pub fn output_schema(&self) -> SchemaRef {
        match self {
            Prepared::Query { plan, .. } if returns_rows(plan) => {
                Arc::new(plan.schema().as_arrow().clone())
            }
            Prepared::Command {
                command: SessionCommand::Show(name),
                ..
            } => show_schema(&[name.as_str()]),
            Prepared::Command {
                command: SessionCommand::ShowAll,
                ..
            } => show_schema(&["name", "setting", "description"]),
            _ => Arc::new(Schema::empty()),
        }
    }

    /// Types of `$1..$n`, in order; `None` where the planner could not infer one.
    pub fn parameter_types(&self) -> QueryResult<Vec<Option<DataType>>> {
        let Prepared::Query { plan, .. } = self else {
            return Ok(vec![]);
        };
        let types = plan.get_parameter_types()?;
        let mut indexed: Vec<(usize, Option<DataType>)> = types
            .into_iter()
            .filter_map(|(name, ty)| {
                name.trim_start_matches('$')
                    .parse::<usize>()
                    .ok()
                    .map(|i| (i, ty))
            })
            .collect();
        indexed.sort_by_key(|(i, _)| *i);
        let count = indexed.last().map(|(i, _)| *i).unwrap_or(0);
        let mut out = vec![None; count];
        for (i, ty) in indexed {
            if i >= 1 {
                out[i - 1] = ty;
            }
        }
        Ok(out)
    }

    /// COMMIT, ROLLBACK and friends: the statements a failed transaction block accepts.
    pub fn ends_transaction(&self) -> bool {
        matches!(
            self,
            Prepared::Command {
                command: SessionCommand::Commit
                    | SessionCommand::Rollback
                    | SessionCommand::RollbackToSavepoint(_),
                ..
            }
        )
    }

    /// True when executing the statement yields rows (even zero of them).
    pub fn returns_rows(&self) -> bool {
        match self {
            Prepared::Query { plan, .. } => returns_rows(plan),
            Prepared::Command { command, .. } => matches!(
                command,
                SessionCommand::Show(_) | SessionCommand::ShowAll | SessionCommand::Fetch { .. }
            ),
            Prepared::Empty => false,
        }
    }

    /// The PostgreSQL command tag for statements that return no rows.
    pub fn command_tag(&self) -> String {
        match self {
            Prepared::Query { plan, .. } => match plan {
                LogicalPlan::Statement(PlanStatement::Prepare(_)) => "PREPARE".into(),
                LogicalPlan::Statement(PlanStatement::Deallocate(_)) => "DEALLOCATE".into(),
                _ => "SELECT".into(),
            },
            Prepared::Command { command, .. } => match command {
                SessionCommand::Set { .. } => "SET".into(),
                SessionCommand::ResetAll => "RESET".into(),
                SessionCommand::Show(_) | SessionCommand::ShowAll => "SHOW".into(),
                SessionCommand::Begin => "BEGIN".into(),
                SessionCommand::Commit => "COMMIT".into(),
                SessionCommand::Rollback => "ROLLBACK".into(),
                SessionCommand::DiscardAll => "DISCARD ALL".into(),
                SessionCommand::Savepoint(_) => "SAVEPOINT".into(),
                SessionCommand::ReleaseSavepoint(_) => "RELEASE".into(),
                SessionCommand::RollbackToSavepoint(_) => "ROLLBACK".into(),
                SessionCommand::Declare { .. } => "DECLARE CURSOR".into(),
                SessionCommand::Fetch { .. } => "FETCH".into(),
                SessionCommand::Close(_) => "CLOSE CURSOR".into(),
                SessionCommand::CopyOut { .. } => "COPY".into(),
                SessionCommand::Noop(tag) => tag.clone(),
                SessionCommand::RefreshCatalog(_) => "CALL".into(),
                SessionCommand::Policy(p) => p.tag().into(),
            },
            Prepared::Empty => String::new(),
        }
    }
}

fn returns_rows(plan: &LogicalPlan) -> bool {
    !matches!(
        plan,
        LogicalPlan::Statement(PlanStatement::Prepare(_))
            | LogicalPlan::Statement(PlanStatement::Deallocate(_))
    )
}

fn show_schema(columns: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ))
}

/// How a statement changes the client's transaction state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxEffect {
    None,
    Begin,
    End,
    /// `ROLLBACK TO SAVEPOINT`: a failed block is usable again.
    Recover,
}

/// What executing a statement produced.
pub enum QueryOutput {
    /// Rows, streamed batch by batch as the plan produces them.
    Rows(SendableRecordBatchStream),
    /// A statement without rows: its PostgreSQL command tag.
    Command {
        tag: String,
        tx: TxEffect,
    },
    /// `COPY ... TO STDOUT`: rows to write in a COPY format.
    CopyOut {
        stream: SendableRecordBatchStream,
        options: CopyOptions,
    },
    Empty,
}

/// An open cursor: the rest of a result, read on demand.
struct Cursor {
    stream: SendableRecordBatchStream,
    /// Rows read from the stream but not fetched yet.
    pending: Option<RecordBatch>,
}

/// A table as metadata listings (Flight SQL GetTables, catalogs) show it.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub catalog: String,
    pub schema: String,
    pub table: String,
    /// `TABLE` or `VIEW`.
    pub table_type: &'static str,
    pub columns: SchemaRef,
}

/// One client's session: its identity, default catalog and schema, and settings.
pub struct QuerySession {
    identity: Identity,
    ctx: SessionContext,
    catalog: String,
    /// Shared with the session's `current_setting()` function.
    settings: Arc<std::sync::RwLock<SessionSettings>>,
    parser: Arc<PostgresCompatibilityParser>,
    guard: Option<Arc<AccessGuard>>,
    audit: Option<Arc<AuditLog>>,
    protocol: String,
    client: String,
    /// Behind a mutex only so the session is `Sync`; `&mut self` methods
    /// reach it without locking.
    cursors: std::sync::Mutex<HashMap<String, Cursor>>,
    registry: Arc<CatalogRegistry>,
    admin: Arc<PolicyAdmin>,
    /// pg_catalog is installed (pgwire sessions): description lookups are rewritten.
    pg_catalog: bool,
    /// SQL `PREPARE`d statements: their text and the policy they were
    /// planned under, so `EXECUTE` plans them again after a policy change.
    sql_prepared: std::sync::Mutex<HashMap<String, SqlPrepared>>,
    /// The server's limit on any statement; `statement_timeout` may only
    /// shorten it.
    max_statement_time: Option<std::time::Duration>,
}

impl QuerySession {
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Whether this session's user administers the policy; without a
    /// policy every user does (nothing is restricted).
    fn is_policy_admin(&self) -> bool {
        self.guard.as_ref().is_none_or(|guard| guard.is_admin())
    }

    /// A snapshot of the session's settings.
    pub fn settings(&self) -> SessionSettings {
        self.settings.read().expect("settings lock").clone()
    }

    /// The catalog unqualified names resolve in (the connection's database).
    pub fn current_catalog(&self) -> &str {
        &self.catalog
    }

    /// The schema unqualified names resolve in (first existing schema of `search_path`).
    pub fn current_schema(&self) -> String {
        self.ctx
            .state()
            .config()
            .options()
            .catalog
            .default_schema
            .clone()
    }

    /// For each table `sql` names: its full name and, when a policy is in
    /// force, the decision and the rules behind it (`meshgate policy explain`).
    pub fn explain_access(
        &self,
        sql: &str,
    ) -> QueryResult<Vec<(String, Option<meshgate_policy::TableAccess>)>> {
        let mut out = Vec::new();
        for statement in self.parse(sql)? {
            for reference in self.ctx.state().resolve_table_references(&statement)? {
                let resolved = reference.resolve(&self.catalog, &self.current_schema());
                let name = meshgate_policy::TableName::new(
                    resolved.catalog.as_ref(),
                    resolved.schema.as_ref(),
                    resolved.table.as_ref(),
                );
                let access = self
                    .guard
                    .as_ref()
                    .map(|g| g.access(&name).as_ref().clone());
                if !out.iter().any(|(n, _)| *n == name.to_string()) {
                    out.push((name.to_string(), access));
                }
            }
        }
        Ok(out)
    }

    /// The catalogs this session can see, by name.
    pub fn catalog_names(&self) -> Vec<String> {
        let mut names = self.ctx.catalog_names();
        names.sort();
        names
    }

    /// The schemas of `catalog` this session can see (empty if the catalog is unknown).
    pub fn schema_names(&self, catalog: &str) -> Vec<String> {
        let mut names = self
            .ctx
            .catalog(catalog)
            .map(|c| c.schema_names())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Every table this session can see, optionally only in one catalog.
    pub async fn tables(&self, catalog: Option<&str>) -> QueryResult<Vec<TableInfo>> {
        let catalogs = match catalog {
            Some(c) => vec![c.to_owned()],
            None => self.catalog_names(),
        };
        let mut out = Vec::new();
        for catalog_name in catalogs {
            let Some(catalog) = self.ctx.catalog(&catalog_name) else {
                continue;
            };
            for schema_name in self.schema_names(&catalog_name) {
                let Some(schema) = catalog.schema(&schema_name) else {
                    continue;
                };
                let mut tables = schema.table_names();
                tables.sort();
                for table_name in tables {
                    if let Some(table) = schema.table(&table_name).await? {
                        let table_type = match table.table_type() {
                            datafusion::datasource::TableType::View => "VIEW",
                            _ => "TABLE",
                        };
                        out.push(TableInfo {
                            catalog: catalog_name.clone(),
                            schema: schema_name.clone(),
                            table: table_name,
                            table_type,
                            columns: table.schema(),
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// The columns `prepared` returns when run in this session (a FETCH
    /// returns its cursor's columns).
    pub fn describe(&self, prepared: &Prepared) -> SchemaRef {
        if let Prepared::Command {
            command: SessionCommand::Fetch { name, .. },
            ..
        } = prepared
        {
            if let Some(cursor) = self.cursors.lock().expect("cursor lock").get(name) {
                return cursor.stream.schema();
            }
        }
        prepared.output_schema()
    }

    /// Plan and start a query statement, returning its row stream.
    async fn start(&self, query: &ast::Query) -> QueryResult<SendableRecordBatchStream> {
        let statement =
            DfStatement::Statement(Box::new(ast::Statement::Query(Box::new(query.clone()))));
        let plan = self.ctx.state().statement_to_plan(statement).await?;
        crate::read_only::check_plan(&plan)?;
        Ok(self
            .ctx
            .execute_logical_plan(plan)
            .await?
            .execute_stream()
            .await?)
    }

    /// Up to `count` rows (all when `None`) from the cursor `name`.
    async fn fetch(&mut self, name: &str, count: Option<usize>) -> QueryResult<Vec<RecordBatch>> {
        use futures::StreamExt;
        let cursor = self
            .cursors
            .get_mut()
            .expect("cursor lock")
            .get_mut(name)
            .ok_or_else(|| {
                QueryError::UndefinedCursor(format!("cursor \"{name}\" does not exist"))
            })?;
        let mut wanted = count.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        while wanted > 0 {
            let batch = match cursor.pending.take() {
                Some(batch) => batch,
                None => match cursor.stream.next().await {
                    Some(batch) => batch?,
                    None => break,
                },
            };
            if batch.num_rows() > wanted {
                cursor.pending = Some(batch.slice(wanted, batch.num_rows() - wanted));
                out.push(batch.slice(0, wanted));
                wanted = 0;
            } else {
                wanted -= batch.num_rows();
                out.push(batch);
            }
        }
        Ok(out)
    }

    /// Split SQL text into statements (PostgreSQL dialect, with the
    /// compatibility rewrites for PostgreSQL-only syntax). DataFusion's own
    /// statement forms (e.g. `RESET`) are tried when that parser refuses.
    pub fn parse(&self, sql: &str) -> QueryResult<Vec<DfStatement>> {
        let (parser, pg_catalog) = (&*self.parser, self.pg_catalog);
        crate::limits::parse_guarded(sql, || parse_sql(parser, pg_catalog, sql))
    }

    /// Parse and plan SQL that must hold at most one statement (extended query,
    /// Flight SQL); empty text yields [`Prepared::Empty`].
    pub async fn prepare(&self, sql: &str) -> QueryResult<Prepared> {
        let mut statements = self.parse(sql)?;
        match statements.len() {
            0 => Ok(Prepared::Empty),
            1 => self.prepare_statement(statements.remove(0)).await,
            n => Err(QueryError::Syntax(format!(
                "cannot insert multiple commands into a prepared statement (got {n})"
            ))),
        }
    }

    /// Plan one parsed statement. A statement refused here (denied, bad
    /// SQL) is audited here; others when they have run.
    pub async fn prepare_statement(&self, statement: DfStatement) -> QueryResult<Prepared> {
        let started = Instant::now();
        let sql = statement.to_string();
        let objects = self.objects(&statement);
        let result = self.plan_statement(statement).await;
        if let Err(e) = &result {
            self.audit_now(&sql, objects, 0, started, Some(e));
        }
        result
    }

    /// Tables a statement names, fully qualified (for the audit log).
    fn objects(&self, statement: &DfStatement) -> Vec<String> {
        if self.audit.is_none() {
            return vec![];
        }
        let schema = self.current_schema();
        let mut out: Vec<String> = self
            .ctx
            .state()
            .resolve_table_references(statement)
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                let r = r.resolve(&self.catalog, &schema);
                format!("{}.{}.{}", r.catalog, r.schema, r.table)
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn audit_record(
        &self,
        sql: &str,
        objects: Vec<String>,
        error: Option<&QueryError>,
    ) -> AuditRecord {
        let decisions: Vec<_> = match &self.guard {
            Some(guard) => objects
                .iter()
                .filter_map(|o| {
                    let mut parts = o.splitn(3, '.');
                    match (parts.next(), parts.next(), parts.next()) {
                        (Some(c), Some(s), Some(t)) => {
                            Some(guard.access(&meshgate_policy::TableName::new(c, s, t)))
                        }
                        _ => None,
                    }
                })
                .collect(),
            None => vec![],
        };
        let rule = decisions
            .iter()
            .flat_map(|d| d.explanation.clone())
            .collect::<Vec<_>>()
            .join("; ");
        // A denied table reads as absent to the user; the log says why.
        let denied = decisions.iter().any(|d| !d.allowed);
        AuditRecord {
            time: chrono_now(),
            user: self.identity.user.clone(),
            client: self.client.clone(),
            protocol: self.protocol.clone(),
            sql: sql.to_owned(),
            objects,
            decision: match error {
                None => "allowed".into(),
                Some(QueryError::PermissionDenied(_)) => "denied".into(),
                Some(QueryError::UndefinedTable(_)) if denied => "denied".into(),
                Some(_) => "error".into(),
            },
            rule,
            rows: 0,
            duration_ms: 0.0,
            error: error.map(|e| format!("[{}] {e}", e.sqlstate())),
            impersonator: self.identity.impersonator.clone(),
        }
    }

    fn audit_now(
        &self,
        sql: &str,
        objects: Vec<String>,
        rows: u64,
        started: Instant,
        error: Option<&QueryError>,
    ) {
        if let Some(log) = &self.audit {
            let mut record = self.audit_record(sql, objects, error);
            record.rows = rows;
            record.duration_ms = started.elapsed().as_secs_f64() * 1e3;
            log.write(&record);
        }
    }

    async fn plan_statement(&self, statement: DfStatement) -> QueryResult<Prepared> {
        if let Some(guard) = &self.guard {
            guard.begin_statement();
        }
        let policy = self.guard.as_ref().map(|g| g.policy());
        let sql = statement.to_string();
        if let Some(command) = session_command(&statement)? {
            return Ok(Prepared::Command { sql, command });
        }
        let plan = self
            .ctx
            .state()
            .statement_to_plan(statement.clone())
            .await?;
        crate::read_only::check_plan(&plan)?;
        match &plan {
            LogicalPlan::Statement(PlanStatement::Prepare(p)) => {
                self.sql_prepared
                    .lock()
                    .expect("prepared lock")
                    .insert(p.name.clone(), (statement, policy.clone()));
            }
            LogicalPlan::Statement(PlanStatement::Execute(e)) => {
                self.replan_sql_prepared(&e.name, policy.as_ref()).await?;
            }
            _ => {}
        }
        Ok(Prepared::Query {
            sql,
            plan,
            cache: PlanCache::default(),
            policy,
        })
    }

    /// Before `EXECUTE name`: a statement `PREPARE`d under another policy
    /// is planned (and stored) again under `policy`.
    async fn replan_sql_prepared(
        &self,
        name: &str,
        policy: Option<&Arc<Policy>>,
    ) -> QueryResult<()> {
        let stale = {
            let prepared = self.sql_prepared.lock().expect("prepared lock");
            match prepared.get(name) {
                Some((statement, planned_under))
                    if !same_policy(planned_under.as_ref(), policy) =>
                {
                    Some(statement.clone())
                }
                _ => None,
            }
        };
        if let Some(statement) = stale {
            let plan = self
                .ctx
                .state()
                .statement_to_plan(statement.clone())
                .await?;
            crate::read_only::check_plan(&plan)?;
            self.ctx.execute_logical_plan(plan).await?;
            self.sql_prepared
                .lock()
                .expect("prepared lock")
                .insert(name.to_owned(), (statement, policy.cloned()));
        }
        Ok(())
    }

    /// `prepared` planned again when the policy changed since it was
    /// planned; `None` when its plan still holds.
    async fn replan_if_stale(&self, prepared: &Prepared) -> QueryResult<Option<Prepared>> {
        let (Some(guard), Prepared::Query { sql, policy, .. }) = (&self.guard, prepared) else {
            return Ok(None);
        };
        guard.begin_statement();
        if same_policy(policy.as_ref(), Some(&guard.policy())) {
            return Ok(None);
        }
        let mut statements = self.parse(sql)?;
        if statements.len() != 1 {
            return Err(QueryError::Internal(format!(
                "cannot plan `{sql}` again under the new policy"
            )));
        }
        self.plan_statement(statements.remove(0)).await.map(Some)
    }

    /// Run a prepared statement with `$n` parameter values.
    pub async fn execute(
        &mut self,
        prepared: &Prepared,
        params: Option<ParamValues>,
    ) -> QueryResult<QueryOutput> {
        let started = Instant::now();
        let result = self.execute_inner(prepared, params).await;
        let Some(log) = self.audit.clone() else {
            return result;
        };
        if matches!(prepared, Prepared::Empty) {
            return result;
        }
        let objects = self
            .parse(prepared.sql())
            .ok()
            .and_then(|mut s| s.pop())
            .map(|s| self.objects(&s))
            .unwrap_or_default();
        match result {
            Err(e) => {
                self.audit_now(prepared.sql(), objects, 0, started, Some(&e));
                Err(e)
            }
            Ok(QueryOutput::Rows(stream)) => {
                let record = self.audit_record(prepared.sql(), objects, None);
                Ok(QueryOutput::Rows(Box::pin(Audited::new(
                    stream, log, record, started,
                ))))
            }
            Ok(QueryOutput::CopyOut { stream, options }) => {
                let record = self.audit_record(prepared.sql(), objects, None);
                Ok(QueryOutput::CopyOut {
                    stream: Box::pin(Audited::new(stream, log, record, started)),
                    options,
                })
            }
            Ok(other) => {
                self.audit_now(prepared.sql(), objects, 0, started, None);
                Ok(other)
            }
        }
    }

    async fn execute_inner(
        &mut self,
        prepared: &Prepared,
        params: Option<ParamValues>,
    ) -> QueryResult<QueryOutput> {
        // A plan made under an older policy never runs: plan it again.
        let replanned = self.replan_if_stale(prepared).await?;
        let prepared = replanned.as_ref().unwrap_or(prepared);
        match prepared {
            Prepared::Empty => Ok(QueryOutput::Empty),
            Prepared::Command { command, .. } => self.run_command(command, prepared).await,
            Prepared::Query { plan, cache, .. } => {
                let returns_rows = returns_rows(plan);
                let session_timeout = self
                    .settings
                    .read()
                    .expect("settings lock")
                    .statement_timeout();
                let timeout = match (session_timeout, self.max_statement_time) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let started = tokio::time::Instant::now();
                let run = async {
                    if returns_rows {
                        let state = self.ctx.state();
                        if let Some(physical) =
                            cache.physical_plan(&state, plan, params.as_ref()).await?
                        {
                            let stream = datafusion::physical_plan::execute_stream(
                                physical,
                                state.task_ctx(),
                            )?;
                            return Ok::<_, QueryError>(Some(stream));
                        }
                    }
                    let plan = match params {
                        Some(params) => plan.clone().with_param_values(params)?,
                        None => plan.clone(),
                    };
                    let df = self.ctx.execute_logical_plan(plan).await?;
                    if returns_rows {
                        Ok::<_, QueryError>(Some(df.execute_stream().await?))
                    } else {
                        Ok(None)
                    }
                };
                let stream = match timeout {
                    Some(limit) => tokio::time::timeout(limit, run)
                        .await
                        .map_err(|_| QueryError::Timeout)??,
                    None => run.await?,
                };
                if let Some(stream) = stream {
                    // EXPLAIN output as this user may read it (see `explain`).
                    let stream = if crate::explain::is_explain_output(&stream.schema()) {
                        crate::explain::redact_stream(stream, self.is_policy_admin())
                    } else {
                        stream
                    };
                    Ok(QueryOutput::Rows(match timeout {
                        Some(limit) => Box::pin(Deadline::new(stream, started + limit)),
                        None => stream,
                    }))
                } else {
                    Ok(QueryOutput::Command {
                        tag: prepared.command_tag(),
                        tx: TxEffect::None,
                    })
                }
            }
        }
    }

    /// Plan and run SQL text holding any number of statements, stopping at the
    /// first error (as PostgreSQL's simple query protocol does).
    pub async fn run(&mut self, sql: &str) -> QueryResult<Vec<QueryOutput>> {
        let mut outputs = Vec::new();
        for statement in self.parse(sql)? {
            let prepared = self.prepare_statement(statement).await?;
            outputs.push(self.execute(&prepared, None).await?);
        }
        Ok(outputs)
    }

    async fn run_command(
        &mut self,
        command: &SessionCommand,
        prepared: &Prepared,
    ) -> QueryResult<QueryOutput> {
        let tag = prepared.command_tag();
        let tx = match command {
            SessionCommand::Set { name, value } => {
                self.settings
                    .write()
                    .expect("settings lock")
                    .set(name, value.as_deref())?;
                if name.eq_ignore_ascii_case("search_path") {
                    self.apply_search_path();
                }
                if name.eq_ignore_ascii_case("timezone") {
                    let tz = self
                        .settings
                        .read()
                        .expect("settings lock")
                        .get("TimeZone")?
                        .to_owned();
                    self.ctx
                        .state_ref()
                        .write()
                        .config_mut()
                        .options_mut()
                        .execution
                        .time_zone = Some(tz);
                }
                TxEffect::None
            }
            SessionCommand::ResetAll | SessionCommand::DiscardAll => {
                if matches!(command, SessionCommand::DiscardAll) {
                    self.cursors.get_mut().expect("cursor lock").clear();
                }
                self.settings.write().expect("settings lock").reset_all();
                self.apply_search_path();
                TxEffect::None
            }
            SessionCommand::Show(name) => {
                let value = self
                    .settings
                    .read()
                    .expect("settings lock")
                    .get(name)?
                    .to_owned();
                return Ok(rows(prepared.output_schema(), vec![vec![value]]));
            }
            SessionCommand::ShowAll => {
                let all = self
                    .settings
                    .read()
                    .expect("settings lock")
                    .all()
                    .into_iter()
                    .map(|(n, v, d)| vec![n, v, d])
                    .collect();
                return Ok(rows(prepared.output_schema(), all));
            }
            SessionCommand::Begin => TxEffect::Begin,
            SessionCommand::Commit | SessionCommand::Rollback => {
                // Cursors without HOLD end with their transaction; meshgate
                // keeps them all until CLOSE or the session ends.
                TxEffect::End
            }
            SessionCommand::Savepoint(_)
            | SessionCommand::ReleaseSavepoint(_)
            | SessionCommand::Noop(_) => TxEffect::None,
            SessionCommand::RollbackToSavepoint(_) => TxEffect::Recover,
            SessionCommand::Policy(statement) => {
                if !self.admin.is_admin(&self.identity) {
                    return Err(QueryError::PermissionDenied(format!(
                        "permission denied to {}: only policy admins change the access policy",
                        statement.tag()
                    )));
                }
                let (catalog, schema) = (self.catalog.clone(), self.current_schema());
                self.admin
                    .update(None, |doc| statement.apply(doc, &catalog, &schema))
                    .await?;
                TxEffect::None
            }
            SessionCommand::RefreshCatalog(name) => {
                if !self.is_policy_admin() {
                    return Err(QueryError::PermissionDenied(
                        "permission denied for procedure system.refresh_catalog: \
                         only policy admins call it"
                            .into(),
                    ));
                }
                // Only catalogs the caller's session contains can be refreshed.
                let catalog = self
                    .ctx
                    .catalog(name)
                    .and_then(|_| self.registry.catalogs().get(name).cloned())
                    .ok_or_else(|| {
                        QueryError::UndefinedObject(format!("catalog \"{name}\" does not exist"))
                    })?;
                if let Some(Err(err)) = meshgate_connectors::refresh_catalog(&catalog).await {
                    return Err(QueryError::Source(err.to_string()));
                }
                TxEffect::None
            }
            SessionCommand::Declare { name, query } => {
                let cursors = self.cursors.get_mut().expect("cursor lock");
                if cursors.contains_key(name) {
                    return Err(QueryError::DuplicateCursor(format!(
                        "cursor \"{name}\" already exists"
                    )));
                }
                let stream = self.start(query).await?;
                self.cursors.get_mut().expect("cursor lock").insert(
                    name.clone(),
                    Cursor {
                        stream,
                        pending: None,
                    },
                );
                TxEffect::None
            }
            SessionCommand::Fetch { name, count } => {
                let schema = self.describe(prepared);
                let batches = self.fetch(name, *count).await?;
                let stream = stream::iter(batches.into_iter().map(Ok));
                return Ok(QueryOutput::Rows(Box::pin(RecordBatchStreamAdapter::new(
                    schema, stream,
                ))));
            }
            SessionCommand::Close(name) => {
                match name {
                    Some(name) => {
                        let cursors = self.cursors.get_mut().expect("cursor lock");
                        cursors.remove(name).ok_or_else(|| {
                            QueryError::UndefinedCursor(format!("cursor \"{name}\" does not exist"))
                        })?;
                    }
                    None => self.cursors.get_mut().expect("cursor lock").clear(),
                }
                TxEffect::None
            }
            SessionCommand::CopyOut { query, options } => {
                let stream = self.start(query).await?;
                return Ok(QueryOutput::CopyOut {
                    stream,
                    options: options.clone(),
                });
            }
        };
        Ok(QueryOutput::Command { tag, tx })
    }

    /// Point DataFusion's default schema at the first `search_path` entry that
    /// exists in the current catalog.
    fn apply_search_path(&mut self) {
        let catalog = self.ctx.catalog(&self.catalog);
        let chosen = self
            .settings
            .read()
            .expect("settings lock")
            .search_path()
            .into_iter()
            .map(|s| {
                if s == "$user" {
                    self.identity.user.clone()
                } else {
                    s
                }
            })
            .find(|s| {
                catalog
                    .as_ref()
                    .map(|c| c.schema(s).is_some())
                    .unwrap_or(false)
            })
            .unwrap_or_else(|| "public".to_owned());
        self.ctx
            .state_ref()
            .write()
            .config_mut()
            .options_mut()
            .catalog
            .default_schema = chosen;
    }
}

/// Ends a result stream with [`QueryError::Timeout`] once `statement_timeout`
/// has passed, however the consumer paces its reads.
struct Deadline {
    inner: SendableRecordBatchStream,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: bool,
}

impl Deadline {
    fn new(inner: SendableRecordBatchStream, at: tokio::time::Instant) -> Self {
        Self {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(at)),
            expired: false,
        }
    }
}

impl Stream for Deadline {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired = true;
            return Poll::Ready(Some(Err(DataFusionError::External(Box::new(
                QueryError::Timeout,
            )))));
        }
        self.inner.as_mut().poll_next(cx)
    }
}

impl RecordBatchStream for Deadline {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

/// A one-shot stream of string rows (SHOW).
fn rows(schema: SchemaRef, rows: Vec<Vec<String>>) -> QueryOutput {
    let columns = (0..schema.fields().len())
        .map(|i| {
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r[i].as_str()),
            )) as datafusion::arrow::array::ArrayRef
        })
        .collect::<Vec<_>>();
    let batch = RecordBatch::try_new(schema.clone(), columns);
    let stream = stream::iter(vec![batch.map_err(Into::into)]);
    QueryOutput::Rows(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
}

/// A SQL `PREPARE`: the statement, and the policy it was planned under.
type SqlPrepared = (DfStatement, Option<Arc<Policy>>);

/// True when two plans' policies are the same version in force.
fn same_policy(a: Option<&Arc<Policy>>, b: Option<&Arc<Policy>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// Parse `sql` (see [`QuerySession::parse`]); each statement is checked
/// against the complexity limits before anything else walks it.
fn parse_sql(
    parser: &PostgresCompatibilityParser,
    pg_catalog: bool,
    sql: &str,
) -> QueryResult<Vec<DfStatement>> {
    let sql = match crate::policy_admin::rewrite_role_grant(sql) {
        Some(rewritten) => std::borrow::Cow::Owned(rewritten),
        None => pg_compat::rewrite_known_probes(sql),
    };
    let sql = sql.as_ref();
    match parser.parse(sql) {
        Ok(mut statements) => {
            for s in statements.iter_mut() {
                crate::limits::check_statement(s)?;
            }
            crate::pg_role_registers::rewrite_role_references(sql, &mut statements);
            statements
                .into_iter()
                .map(|mut s| {
                    pg_compat::name_duplicate_columns(&mut s);
                    if pg_catalog {
                        crate::pg_descriptions::rewrite_lookups(&mut s);
                        crate::pg_arrays::rewrite_set_functions(&mut s);
                    }
                    Ok(DfStatement::Statement(Box::new(s)))
                })
                .collect()
        }
        Err(pg_err) => {
            let dialect = PostgreSqlDialect {};
            let parsed = DFParserBuilder::new(sql)
                .with_dialect(&dialect)
                .build()
                .and_then(|mut p| p.parse_statements());
            match parsed {
                Ok(statements) => statements
                    .into_iter()
                    .map(|mut statement| {
                        if let DfStatement::Statement(s) = &mut statement {
                            crate::limits::check_statement(s)?;
                        }
                        Ok(statement)
                    })
                    .collect(),
                Err(_) => Err(pg_err.into()),
            }
        }
    }
}

/// Recognise the PostgreSQL session statements meshgate answers itself.
fn session_command(statement: &DfStatement) -> QueryResult<Option<SessionCommand>> {
    let DfStatement::Statement(stmt) = statement else {
        if let DfStatement::Reset(datafusion::sql::parser::ResetStatement::Variable(name)) =
            statement
        {
            let name = name.to_string();
            if name.eq_ignore_ascii_case("all") {
                return Ok(Some(SessionCommand::ResetAll));
            }
            return Ok(Some(SessionCommand::Set { name, value: None }));
        }
        return Ok(None);
    };
    let command = match stmt.as_ref() {
        ast::Statement::Set(set) => match set {
            Set::SingleAssignment {
                variable, values, ..
            } => {
                let name = variable.to_string();
                if name.to_ascii_lowercase().starts_with("datafusion.") {
                    return Err(QueryError::PermissionDenied(format!(
                        "parameter \"{name}\" is managed by the gateway"
                    )));
                }
                SessionCommand::Set {
                    value: setting_value(values),
                    name,
                }
            }
            Set::SetTimeZone { value, .. } => SessionCommand::Set {
                name: "TimeZone".into(),
                value: setting_value(std::slice::from_ref(value)),
            },
            Set::SetNames { charset_name, .. } => SessionCommand::Set {
                name: "client_encoding".into(),
                value: Some(charset_name.value.clone()),
            },
            // Every transaction here is a read-only snapshot per statement;
            // the requested characteristics are accepted as they are met.
            Set::SetTransaction { .. } => SessionCommand::Noop("SET".into()),
            other => {
                return Err(QueryError::FeatureNotSupported(format!(
                    "{other} is not supported"
                )))
            }
        },
        ast::Statement::ShowVariable { variable } => {
            let name = variable
                .iter()
                .map(|i| i.value.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let lower = name.to_ascii_lowercase();
            if lower == "all" {
                SessionCommand::ShowAll
            } else if lower == "transaction isolation level" {
                SessionCommand::Show("transaction_isolation".into())
            } else if lower == "time zone" {
                SessionCommand::Show("TimeZone".into())
            } else if lower.starts_with("datafusion.") {
                return Ok(None);
            } else {
                SessionCommand::Show(name)
            }
        }
        ast::Statement::Reset(reset) => match &reset.reset {
            ast::Reset::ALL => SessionCommand::ResetAll,
            ast::Reset::ConfigurationParameter(name) => SessionCommand::Set {
                name: name.to_string(),
                value: None,
            },
        },
        ast::Statement::StartTransaction { .. } => SessionCommand::Begin,
        ast::Statement::Deallocate { name, .. } if name.value.eq_ignore_ascii_case("all") => {
            SessionCommand::Noop("DEALLOCATE ALL".into())
        }
        ast::Statement::UNLISTEN { .. } => SessionCommand::Noop("UNLISTEN".into()),
        ast::Statement::Call(function) => refresh_call(function)?,
        ast::Statement::CreateRole(_)
        | ast::Statement::Grant(_)
        | ast::Statement::Revoke(_)
        | ast::Statement::Drop {
            object_type: ast::ObjectType::Role,
            ..
        } => match PolicyStatement::from_ast(stmt)? {
            Some(p) => SessionCommand::Policy(p),
            None => return Ok(None),
        },
        ast::Statement::Commit { .. } => SessionCommand::Commit,
        ast::Statement::Rollback {
            savepoint: None, ..
        } => SessionCommand::Rollback,
        ast::Statement::Rollback {
            savepoint: Some(name),
            ..
        } => SessionCommand::RollbackToSavepoint(name.value.clone()),
        ast::Statement::Savepoint { name } => SessionCommand::Savepoint(name.value.clone()),
        ast::Statement::ReleaseSavepoint { name } => {
            SessionCommand::ReleaseSavepoint(name.value.clone())
        }
        ast::Statement::Declare { stmts } => {
            let [declare] = stmts.as_slice() else {
                return Err(QueryError::FeatureNotSupported(
                    "declare one cursor at a time".into(),
                ));
            };
            let (Some(name), Some(query)) = (declare.names.first(), declare.for_query.as_ref())
            else {
                return Err(QueryError::FeatureNotSupported(format!(
                    "{stmt} is not supported"
                )));
            };
            if declare.scroll == Some(true) {
                return Err(QueryError::FeatureNotSupported(
                    "SCROLL cursors are not supported".into(),
                ));
            }
            SessionCommand::Declare {
                name: name.value.clone(),
                query: query.clone(),
            }
        }
        ast::Statement::Fetch {
            name, direction, ..
        } => SessionCommand::Fetch {
            name: name.value.clone(),
            count: fetch_count(direction)?,
        },
        ast::Statement::Close { cursor } => match cursor {
            ast::CloseCursor::All => SessionCommand::Close(None),
            ast::CloseCursor::Specific { name } => SessionCommand::Close(Some(name.value.clone())),
        },
        ast::Statement::Copy {
            source,
            to: true,
            target: ast::CopyTarget::Stdout,
            options,
            legacy_options,
            ..
        } => SessionCommand::CopyOut {
            query: copy_query(source)?,
            options: copy_options(options, legacy_options)?,
        },
        ast::Statement::Copy { .. } => {
            return Err(QueryError::ReadOnly(
                "only COPY ... TO STDOUT is supported: meshgate is a read-only gateway".into(),
            ))
        }
        ast::Statement::Discard { object_type } => {
            if object_type.to_string().eq_ignore_ascii_case("all") {
                SessionCommand::DiscardAll
            } else {
                return Err(QueryError::FeatureNotSupported(format!(
                    "DISCARD {object_type} is not supported"
                )));
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(command))
}

/// `CALL system.refresh_catalog('name')`, the one procedure meshgate has.
fn refresh_call(function: &ast::Function) -> QueryResult<SessionCommand> {
    let name = function.name.to_string().to_ascii_lowercase();
    if name != "system.refresh_catalog" && name != "refresh_catalog" {
        return Err(QueryError::UndefinedFunction(format!(
            "procedure {} does not exist (meshgate has system.refresh_catalog('catalog'))",
            function.name
        )));
    }
    let usage = || {
        QueryError::InvalidParameter(
            "system.refresh_catalog takes one argument: the catalog name as a string".into(),
        )
    };
    let ast::FunctionArguments::List(list) = &function.args else {
        return Err(usage());
    };
    match list.args.as_slice() {
        [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(ast::Expr::Value(v)))] => {
            match &v.value {
                ast::Value::SingleQuotedString(s) => Ok(SessionCommand::RefreshCatalog(s.clone())),
                _ => Err(usage()),
            }
        }
        _ => Err(usage()),
    }
}

fn fetch_count(direction: &ast::FetchDirection) -> QueryResult<Option<usize>> {
    use ast::FetchDirection as D;
    let number = |v: &ast::ValueWithSpan| -> QueryResult<usize> {
        v.to_string()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| n as usize)
            .ok_or_else(|| QueryError::FeatureNotSupported("cursor can only scan forward".into()))
    };
    match direction {
        D::Next | D::First => Ok(Some(1)),
        D::All | D::ForwardAll => Ok(None),
        D::Count { limit } => number(limit).map(Some),
        D::Forward { limit } => limit
            .as_ref()
            .map(number)
            .transpose()
            .map(|n| Some(n.unwrap_or(1))),
        other => Err(QueryError::FeatureNotSupported(format!(
            "FETCH {other} is not supported: cursors scan forward only"
        ))),
    }
}

fn copy_query(source: &ast::CopySource) -> QueryResult<Box<ast::Query>> {
    use datafusion::sql::sqlparser::parser::Parser;
    let sql = match source {
        ast::CopySource::Query(query) => return Ok(query.clone()),
        ast::CopySource::Table {
            table_name,
            columns,
        } if columns.is_empty() => {
            format!("SELECT * FROM {table_name}")
        }
        ast::CopySource::Table {
            table_name,
            columns,
        } => format!(
            "SELECT {} FROM {table_name}",
            columns
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let statement = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&sql)
        .and_then(|mut p| p.parse_statement())?;
    match statement {
        ast::Statement::Query(query) => Ok(query),
        _ => Err(QueryError::Internal(
            "COPY source did not parse as a query".into(),
        )),
    }
}

fn copy_options(
    options: &[ast::CopyOption],
    legacy: &[ast::CopyLegacyOption],
) -> QueryResult<CopyOptions> {
    let mut out = CopyOptions {
        format: CopyFormat::Text,
        header: false,
        delimiter: None,
        null: None,
    };
    for option in options {
        match option {
            ast::CopyOption::Format(f) => {
                out.format = match f.value.to_ascii_lowercase().as_str() {
                    "text" => CopyFormat::Text,
                    "csv" => CopyFormat::Csv,
                    "binary" => CopyFormat::Binary,
                    other => {
                        return Err(QueryError::InvalidParameter(format!(
                            "COPY format \"{other}\" not recognized"
                        )))
                    }
                }
            }
            ast::CopyOption::Header(h) => out.header = *h,
            ast::CopyOption::Delimiter(d) => out.delimiter = Some(*d),
            ast::CopyOption::Null(n) => out.null = Some(n.clone()),
            other => {
                return Err(QueryError::FeatureNotSupported(format!(
                    "COPY option {other} is not supported"
                )))
            }
        }
    }
    for option in legacy {
        match option {
            ast::CopyLegacyOption::Binary => out.format = CopyFormat::Binary,
            ast::CopyLegacyOption::Csv(csv) => {
                out.format = CopyFormat::Csv;
                for option in csv {
                    match option {
                        ast::CopyLegacyCsvOption::Header => out.header = true,
                        other => {
                            return Err(QueryError::FeatureNotSupported(format!(
                                "COPY option {other} is not supported"
                            )))
                        }
                    }
                }
            }
            ast::CopyLegacyOption::Delimiter(d) => out.delimiter = Some(*d),
            ast::CopyLegacyOption::Null(n) => out.null = Some(n.clone()),
            ast::CopyLegacyOption::Header => out.header = true,
            other => {
                return Err(QueryError::FeatureNotSupported(format!(
                    "COPY option {other} is not supported"
                )))
            }
        }
    }
    Ok(out)
}

/// The textual value of `SET x = v1, v2`; `None` for `DEFAULT`.
fn setting_value(values: &[SqlExpr]) -> Option<String> {
    let parts: Vec<String> = values
        .iter()
        .map(|v| match v {
            SqlExpr::Value(v) => match &v.value {
                SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => s.clone(),
                other => other.to_string(),
            },
            SqlExpr::Identifier(ident) => ident.value.clone(),
            other => other.to_string(),
        })
        .collect();
    if parts.len() == 1 && parts[0].eq_ignore_ascii_case("default") {
        return None;
    }
    // search_path items keep their own quoting rules; join the rest as given.
    Some(split_list(&parts.join(", ")).join(", "))
}

/// Now, as RFC 3339 UTC with milliseconds.
fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
