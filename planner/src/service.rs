//! [`QueryService`]: the catalogs, the policy and the audit log shared by
//! every session, and [`QueryService::open_session`], which builds one
//! client's [`QuerySession`] for an [`Identity`].
//!
//! PostgreSQL meaning (pg_catalog, PostgreSQL's information_schema and
//! functions, the PostgreSQL rewrites) is installed only into sessions that
//! ask for it ([`SessionOptions::postgres_catalog`], the pgwire front end).

use std::sync::Arc;

use datafusion::catalog::CatalogProviderList;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use meshgate_policy::{Policy, TableAccess, TableName};

use crate::access::admin::PolicyAdmin;
use crate::access::catalog_view::{SessionCatalog, SessionCatalogList};
use crate::access::product_admin::ProductAdmin;
use crate::access::{AccessGuard, PolicySource, RoleDirectory};
use crate::audit::AuditLog;
use crate::catalogs::CatalogRegistry;
use crate::session::settings::SessionSettings;
use crate::session::QuerySession;
use crate::{ExecutionOptions, Identity, QueryError, QueryResult};

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
    /// Settings to start from (a Flight SQL session's options, kept
    /// between calls); `search_path` and `application_name` above apply
    /// on top of them.
    pub settings: Option<SessionSettings>,
}

/// Plans and runs SQL for authenticated identities over the configured catalogs.
pub struct QueryService {
    registry: Arc<CatalogRegistry>,
    /// Descriptor edits (shares the policy and the catalogs).
    product_admin: Arc<ProductAdmin>,
    default_catalog: String,
    roles: RoleDirectory,
    parser: Arc<PostgresCompatibilityParser>,
    /// The access policy; `None` means every user reads every table.
    policy: PolicySource,
    admin: Arc<PolicyAdmin>,
    audit: Option<Arc<AuditLog>>,
    /// The longest any statement runs (`[limits] statement_timeout`).
    max_statement_time: Option<std::time::Duration>,
    /// How DataFusion runs queries (`[execution]`).
    execution: ExecutionOptions,
    /// Sends qualifying plans to the Ballista cluster (`execution.ballista`).
    offload: Option<Arc<crate::distributed::Offload>>,
    /// How many queries may run at once, per user and per group.
    admission: Arc<crate::admission::Admission>,
    /// Every running statement and the last finished ones.
    runtime: crate::runtime::QueryRegistry,
    /// Results kept for the next run of the same query (`[result_cache]`).
    result_cache: Arc<crate::ResultCache>,
}

impl QueryService {
    /// `default_catalog` is used when a client names no database (or the
    /// conventional `postgres`); without it, the first catalog by name.
    pub fn new(registry: Arc<CatalogRegistry>, default_catalog: Option<String>) -> Self {
        let default_catalog = default_catalog
            .or_else(|| registry.catalog_names().into_iter().next())
            .unwrap_or_else(|| "meshgate".to_owned());
        let policy = PolicySource::default();
        let admin = Arc::new(PolicyAdmin::new(
            policy.clone(),
            registry.clone(),
            RoleDirectory::default(),
            None,
        ));
        let product_admin = Arc::new(ProductAdmin::new(policy.clone(), registry.clone()));
        Self {
            product_admin,
            registry,
            default_catalog,
            roles: RoleDirectory::default(),
            parser: Arc::new(PostgresCompatibilityParser::new()),
            policy,
            admin,
            audit: None,
            max_statement_time: None,
            execution: ExecutionOptions::default(),
            offload: None,
            admission: Default::default(),
            runtime: Default::default(),
            result_cache: Default::default(),
        }
    }

    /// Keep results as `settings` say (`[result_cache]`).
    pub fn with_result_cache(mut self, settings: crate::ResultCacheSettings) -> Self {
        self.result_cache = Arc::new(crate::ResultCache::new(settings));
        self
    }

    /// The kept results (their counts for the metrics; clearing them).
    pub fn result_cache(&self) -> &crate::ResultCache {
        &self.result_cache
    }

    /// Admit queries under `limits`: how many may run and wait at once,
    /// per user and per policy group (see `admission`).
    pub fn with_admission(mut self, limits: crate::AdmissionLimits) -> Self {
        self.admission = Arc::new(crate::Admission::new(limits));
        self
    }

    /// No statement runs longer than `limit`, whatever a session sets.
    /// How queries run: partitions and batch size (`[execution]`).
    pub fn with_execution(mut self, execution: ExecutionOptions) -> Self {
        self.offload = execution
            .ballista
            .clone()
            .map(|options| Arc::new(crate::distributed::Offload::new(Arc::new(options))));
        self.execution = execution;
        self
    }

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
        self.result_cache.clear();
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
        self.result_cache.clear();
        Ok(())
    }

    /// Check `policy` against the live catalogs: every table pattern matches
    /// a table, every masked column exists, every filter and mask plans
    /// against the tables it applies to. Returns the problems found.
    pub async fn check_policy(&self, policy: &Policy) -> Vec<String> {
        self.admin.check(policy).await
    }

    /// Every running statement and the last finished ones (what
    /// `system.runtime.queries` shows, and what kill reaches).
    pub fn query_registry(&self) -> crate::runtime::QueryRegistry {
        self.runtime.clone()
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

    /// Descriptor edits by the products' owners (the gRPC admin service).
    pub fn product_admin(&self) -> Arc<ProductAdmin> {
        self.product_admin.clone()
    }

    /// Persist policy changes made through meshgate (SQL, admin API) to
    /// `path`, the configured policy file.
    pub fn with_policy_file(self, path: std::path::PathBuf) -> Self {
        self.with_policy_store(Arc::new(crate::PolicyFile(path)))
    }

    /// Persist policy changes made through meshgate to `store`.
    pub fn with_policy_store(mut self, store: Arc<dyn crate::PolicyStore>) -> Self {
        let token_users = self.admin.token_users();
        self.admin = Arc::new(
            PolicyAdmin::new(
                self.policy.clone(),
                self.registry.clone(),
                self.roles.clone(),
                Some(store),
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
        identity: &Identity,
        guard: Option<Arc<AccessGuard>>,
        current: &str,
    ) -> Arc<dyn CatalogProviderList> {
        let served = self.registry.served_catalogs_for(&identity.end_user());
        let catalogs = served.iter().map(|(name, catalog)| {
            Arc::new(SessionCatalog::new(
                name.clone(),
                catalog.clone(),
                guard.clone(),
            ))
        });
        Arc::new(SessionCatalogList::new(catalogs, current))
    }

    /// Put the catalogs of `specs` in force (see [`CatalogRegistry::reload`]):
    /// nothing changes unless every added or changed catalog builds. Kept
    /// results are retired, prepared statements plan again at their next
    /// execution and open sessions take the new catalogs at their next
    /// statement ([`Self::refresh_session`]).
    pub async fn reload_catalogs(
        &self,
        specs: &[crate::CatalogSpec],
        connectors: &meshgate_connectors::ConnectorRegistry,
    ) -> Result<crate::CatalogChanges, crate::RegistryError> {
        let changes = self.registry.reload(specs, connectors).await?;
        if !changes.is_empty() {
            self.result_cache.clear();
        }
        Ok(changes)
    }

    /// Rebuild `session` over the catalogs in force if they were reloaded
    /// since it was opened or last refreshed; its settings, cursors, SQL
    /// prepared statements and backend listing stay. Fails (3D000) when the
    /// session's own catalog was removed.
    pub fn refresh_session(&self, session: &mut QuerySession) -> QueryResult<()> {
        if session.catalog_generation == self.registry.generation() {
            return Ok(());
        }
        let options = SessionOptions {
            database: Some(session.catalog.clone()),
            search_path: None,
            application_name: None,
            postgres_catalog: session.postgres.is_some(),
            protocol: session.protocol.clone(),
            client: Some(session.client.clone()),
            settings: Some(session.settings()),
        };
        let mut fresh = self.open_session(session.identity.clone(), options)?;
        let cursors = std::mem::take(session.cursors.get_mut().expect("cursor lock"));
        *fresh.cursors.get_mut().expect("cursor lock") = cursors;
        let prepared = std::mem::take(session.sql_prepared.get_mut().expect("prepared lock"));
        *fresh.sql_prepared.get_mut().expect("prepared lock") = prepared;
        if let Some(pid) = session.own_pid.get() {
            let _ = fresh.own_pid.set(*pid);
        }
        fresh.backend = session.backend.take();
        fresh.last_notices = std::mem::take(&mut session.last_notices);
        fresh.columns_read = std::mem::take(&mut session.columns_read);
        fresh.query_id = session.query_id.take();
        *session = fresh;
        Ok(())
    }

    /// The policy's decision on one table, with the tags data product
    /// descriptors put on it (`None` without a policy: everything is
    /// readable). For front ends that explain a hidden object.
    pub fn table_access(&self, identity: &Identity, table: &TableName) -> Option<TableAccess> {
        let policy = self.policy()?;
        let tags = self.registry.products().tags(table);
        Some(policy.evaluate_tagged(&identity.principal(&policy), table, &tags))
    }

    /// `catalogs` with the `system` catalog in front: `system.runtime.queries`
    /// for everyone (rows filtered by `admin`), `system.audit.queries` for
    /// admins when an audit file or store is kept (see `runtime::catalog`).
    fn with_system_catalog(
        &self,
        catalogs: Arc<dyn CatalogProviderList>,
        identity: &Identity,
        admin: crate::runtime::table::AdminCheck,
        discovery: SystemSchema,
    ) -> QueryResult<Arc<dyn CatalogProviderList>> {
        let audit = match self.audit.as_ref().filter(|log| log.is_kept()) {
            Some(log) if admin() => Some(crate::audit::audit_catalog(log)?),
            _ => None,
        };
        let listed = audit.is_some();
        let system = crate::runtime::catalog::system_catalog(
            audit,
            self.runtime.clone(),
            identity.user.clone(),
            admin,
        )?;
        let products = crate::products::tables::discovery_schema(
            crate::products::tables::DiscoverySources {
                products: self.registry.live_products(),
                freshness: self.registry.freshness(),
                quality: self.registry.quality(),
                lineage: self.registry.lineage(),
            },
            crate::products::tables::Reader {
                visible: discovery.visible,
                user: identity.user.clone(),
                admin: discovery.admin,
            },
        )?;
        Ok(Arc::new(crate::runtime::catalog::WithSystemCatalog::new(
            catalogs,
            system,
            listed,
            (discovery.catalog, products),
        )))
    }

    /// A session for `identity`; fails if the requested database is unknown.
    pub fn open_session(
        &self,
        identity: Identity,
        options: SessionOptions,
    ) -> QueryResult<QuerySession> {
        // Read before the catalogs are: a reload in between makes the
        // session refresh once more, never miss the change.
        let catalog_generation = self.registry.generation();
        let catalog = self.resolve_database(&identity, options.database.as_deref())?;
        let mut settings = options.settings.clone().unwrap_or_default();
        if let Some(path) = &options.search_path {
            settings.set("search_path", Some(path))?;
        }
        if let Some(app) = &options.application_name {
            settings.set("application_name", Some(app))?;
        }
        // pgwire sessions get PostgreSQL's information_schema (registered
        // below), others DataFusion's.
        let config = SessionConfig::new()
            .with_information_schema(!options.postgres_catalog)
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(&catalog, "public");
        // Checked when the configuration was loaded.
        let config = self
            .execution
            .apply(config)
            .map_err(|(key, problem)| QueryError::Internal(format!("{key}: {problem}")))?;
        let mut config = config;
        // TIMESTAMP WITH TIME ZONE needs a session zone to carry one.
        config.options_mut().execution.time_zone = Some(settings.get("TimeZone")?.to_owned());
        let guard = self.policy().map(|policy| {
            Arc::new(AccessGuard::new(
                self.policy.clone(),
                policy,
                &identity,
                crate::access::expression_state(),
                self.registry.live_products(),
            ))
        });
        // The one admin rule, asked when a system table is read.
        let admin_check: crate::runtime::table::AdminCheck = {
            let guard = guard.clone();
            Arc::new(move || guard.as_ref().is_none_or(|g| g.is_admin()))
        };
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(self.registry.runtime())
            .with_catalog_list(self.with_system_catalog(
                self.session_catalogs(&identity, guard.clone(), &catalog),
                &identity,
                admin_check.clone(),
                SystemSchema {
                    catalog: catalog.clone(),
                    admin: admin_check.clone(),
                    visible: {
                        let guard = guard.clone();
                        Arc::new(move |table: &TableName| {
                            guard.as_ref().is_none_or(|g| g.access(table).allowed)
                        })
                    },
                },
            )?)
            .with_default_features()
            // Federation: the largest sub-plan that touches one SQL source
            // runs there (see meshgate_connectors' `sql` module); a repeated
            // sub-plan runs once (`shared_subplan`).
            .with_optimizer_rules(datafusion_federation::default_optimizer_rules())
            .with_query_planner(Arc::new(crate::shared_subplan::SharingQueryPlanner))
            // EXPLAIN shows the join keys each SQL source is sent.
            .with_physical_optimizer_rule(Arc::new(meshgate_connectors::ShowSourceKeys))
            .with_optimizer_rule(Arc::new(crate::like_escape::LikeEscapeRule))
            // After DataFusion's filter pushdown and column pruning: a filter
            // or column list left on a federated sub-plan goes into its SQL.
            .with_optimizer_rule(Arc::new(meshgate_connectors::AbsorbIntoFederated));
        // Then: a plan that qualifies runs on the Ballista cluster.
        let state = match &self.offload {
            Some(offload) => state.with_physical_optimizer_rule(offload.clone()),
            None => state,
        };
        // Last (a plan sent to Ballista has no scans left in it): a join's
        // built keys filter the rows of its large side's Parquet scan.
        let state = if self.execution.filter_probe_rows {
            state.with_physical_optimizer_rule(Arc::new(crate::probe_filter::FilterProbeRows))
        } else {
            state
        };
        let state = if options.postgres_catalog {
            state.with_analyzer_rules(crate::postgres::analyzer::analyzer_rules())
        } else {
            state
        }
        .build();
        let ctx = SessionContext::new_with_state(state);
        let settings = Arc::new(std::sync::RwLock::new(settings));
        let own_pid = Arc::new(std::sync::OnceLock::new());
        if options.postgres_catalog {
            crate::postgres::install(
                &ctx,
                &catalog,
                &identity.user,
                crate::postgres::roles::SessionRoles::new(
                    self.roles.roles.clone(),
                    identity.clone(),
                    guard.clone(),
                ),
                settings.clone(),
                crate::postgres::SourceMetadata {
                    descriptions: self.registry.object_descriptions(&catalog),
                    sources: self.registry.catalogs(),
                },
                crate::postgres::activity::Activity {
                    registry: self.runtime.clone(),
                    user: identity.user.clone(),
                    admin: admin_check.clone(),
                    own_pid: own_pid.clone(),
                },
            )?;
        }
        let mut session = QuerySession {
            identity,
            ctx,
            catalog,
            settings,
            postgres: options.postgres_catalog.then(|| self.parser.clone()),
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
            sql_prepared: Default::default(),
            literal_plans: Default::default(),
            max_statement_time: self.max_statement_time,
            admission: self.admission.clone(),
            runtime: self.runtime.clone(),
            result_cache: self.result_cache.clone(),
            origins: Default::default(),
            catalog_generation,
            backend: None,
            own_pid,
            last_notices: Vec::new(),
            columns_read: Vec::new(),
            query_id: None,
        };
        session.apply_search_path();
        Ok(session)
    }
}

/// Where a session finds the data product discovery tables: the `system`
/// schema of its default catalog (`system.data_products`), showing what
/// `visible` lets it read.
struct SystemSchema {
    catalog: String,
    visible: crate::products::tables::Visible,
    admin: crate::runtime::table::AdminCheck,
}
