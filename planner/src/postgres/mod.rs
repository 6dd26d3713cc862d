//! PostgreSQL compatibility for sessions opened by the pgwire front end.
//!
//! psql, drivers and BI tools probe the server through `pg_catalog`,
//! `information_schema` and functions such as `version()`, `format_type` or
//! `pg_table_is_visible`. Those come from `datafusion-pg-catalog`, installed
//! into the session itself: `pg_class` and friends are computed from the
//! session's own catalog list, so they show exactly what the session can see.
//! Its SQL parser also rewrites PostgreSQL-only syntax (`'t'::regclass`,
//! `OPERATOR(pg_catalog.~)`, bare `current_user`) into what DataFusion plans.
//!
//! Everything here is installed only into sessions that speak the
//! PostgreSQL dialect (pgwire); Flight SQL sessions plan plain DataFusion SQL.
//! `rewrites` changes SQL text and statements before planning, `analyzer`
//! changes plans, `activity` is `pg_stat_activity` and the functions that
//! cancel and terminate backends, the other modules are pg_catalog tables
//! and functions.

pub(crate) mod activity;
pub(crate) mod analyzer;
mod arrays;
mod catalog_functions;
mod catalog_oids;
mod class_owner;
pub(crate) mod column_origins;
mod constraint_defs;
mod constraints;
mod descriptions;
mod functions;
pub(crate) mod information_schema;
mod key_indexes;
mod keyed_rows;
mod pg_constraint;
mod pg_settings;
pub(crate) mod rewrites;
pub(crate) mod role_registers;
pub(crate) mod roles;
mod static_tables;
mod system_columns;
mod table_sizes;
mod type_info;

use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, CatalogProviderList, MemoryCatalogProvider};
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::PgCatalogSchemaProvider;

use crate::session::settings::SessionSettings;
use crate::{QueryError, QueryResult};
use static_tables::static_tables;

/// Install PostgreSQL's information_schema, pg_catalog and functions into
/// a pgwire session's `ctx`.
///
/// Like PostgreSQL, `pg_catalog` describes the connection's database (here:
/// catalog) only; other catalogs stay reachable by three-part names.
/// What the sources declare about their tables, for the PostgreSQL views.
pub(crate) struct SourceMetadata {
    /// Table and column descriptions of the session's catalog.
    pub(crate) descriptions: Arc<Vec<meshgate_connectors::Description>>,
    /// The catalogs as built, for the keys their sources declare.
    pub(crate) sources: constraints::KeySources,
}

pub(crate) fn install(
    ctx: &SessionContext,
    catalog: &str,
    user: &str,
    roles: roles::SessionRoles,
    settings: Arc<std::sync::RwLock<SessionSettings>>,
    metadata: SourceMetadata,
    activity: activity::Activity,
) -> QueryResult<()> {
    let SourceMetadata {
        descriptions,
        sources,
    } = metadata;
    let catalogs = ctx.state().catalog_list().clone();
    let schema = Arc::new(information_schema::PgInformationSchema::new(
        catalogs.clone(),
        sources.clone(),
    ));
    // The session's own catalog too, even when it shows the user nothing.
    for name in catalogs
        .catalog_names()
        .into_iter()
        .chain([catalog.to_owned()])
    {
        if let Some(catalog) = catalogs.catalog(&name) {
            catalog
                .register_schema(information_schema::INFORMATION_SCHEMA, schema.clone())
                .map_err(|e| {
                    QueryError::Internal(format!("cannot set up information_schema: {e}"))
                })?;
        }
    }
    let internal =
        |e: &dyn std::fmt::Display| QueryError::Internal(format!("cannot set up pg_catalog: {e}"));
    let static_tables = static_tables().map_err(|e| internal(&e))?;
    catalog_functions::register(ctx, catalog, &static_tables);
    let current = ctx
        .catalog(catalog)
        .ok_or_else(|| internal(&format!("catalog {catalog} is missing")))?;
    let scoped = DatabaseScope {
        current: catalog.to_owned(),
        current_catalog: current.clone(),
        all: ctx.catalog_names(),
    };
    let provider = PgCatalogSchemaProvider::try_new(
        Arc::new(scoped) as Arc<dyn CatalogProviderList>,
        static_tables,
        roles.clone(),
    )
    .map_err(|e| internal(&e))?;
    let provider: Arc<dyn datafusion::catalog::SchemaProvider> = Arc::new(provider);
    let descriptions = Arc::new(descriptions::DescriptionTable::new(
        descriptions,
        provider.clone(),
    ));
    // The built-in tables with integer key lists; pg_constraint also with
    // the keys the sources declare (and their definitions).
    let defs = constraint_defs::ConstraintDefs::default();
    // pg_class and pg_index also with the unique index behind each
    // primary key (what pgJDBC's key calls and psql's `\d` look for).
    let index_defs = (
        constraint_defs::ConstraintDefs::default(),
        constraint_defs::ConstraintDefs::default(),
    );
    let scope = keyed_rows::KeyScope {
        current: catalog.to_owned(),
        catalogs: catalogs.clone(),
        sources: sources.clone(),
        pg_catalog: provider.clone(),
    };
    let with_indexes = |kind, table| -> Arc<dyn datafusion::catalog::TableProvider> {
        Arc::new(key_indexes::WithKeyIndexes::new(
            kind,
            table,
            scope.clone(),
            index_defs.clone(),
        ))
    };
    // Building a pg_catalog table awaits nothing: it is ready at once.
    let pg_class = futures::executor::block_on(provider.table("pg_class"))
        .map_err(|e| internal(&e))?
        .ok_or_else(|| internal(&"pg_class is missing"))?;
    let pg_attribute = futures::executor::block_on(provider.table("pg_attribute"))
        .map_err(|e| internal(&e))?
        .ok_or_else(|| internal(&"pg_attribute is missing"))?;
    let array_tables = arrays::array_tables()
        .iter()
        .cloned()
        .map(|(name, table)| {
            let table: Arc<dyn datafusion::catalog::TableProvider> = match name {
                "pg_constraint" => Arc::new(pg_constraint::ConstraintTable::new(
                    table,
                    scope.clone(),
                    defs.clone(),
                )),
                "pg_index" => with_indexes(key_indexes::IndexTable::PgIndex, table),
                _ => table,
            };
            (name, table)
        })
        .chain([(
            "pg_attribute",
            Arc::new(class_owner::WithOwner::attributes(pg_attribute, user))
                as Arc<dyn datafusion::catalog::TableProvider>,
        )])
        .chain([(
            "pg_class",
            Arc::new(class_owner::WithOwner::new(
                with_indexes(key_indexes::IndexTable::PgClass, pg_class),
                user,
                roles::role_oid(true, user).into(),
            )) as Arc<dyn datafusion::catalog::TableProvider>,
        )])
        .collect::<Vec<_>>();
    current
        .register_schema(
            "pg_catalog",
            Arc::new(
                array_tables
                    .into_iter()
                    .chain(roles::role_tables(&roles))
                    .fold(
                        system_columns::WithSystemColumns::new(provider.clone())
                            .replace("pg_description", descriptions)
                            .replace(
                                "pg_settings",
                                Arc::new(
                                    pg_settings::pg_settings(settings.clone())
                                        .map_err(|e| internal(&e))?,
                                ),
                            )
                            .replace(
                                "pg_stat_activity",
                                Arc::new(activity::stat_activity(
                                    activity.clone(),
                                    catalog.to_owned(),
                                )),
                            ),
                        |catalog, (name, table)| catalog.replace(name, table),
                    ),
            ),
        )
        .map_err(|e| internal(&e))?;
    functions::register(ctx, user, settings);
    for udf in table_sizes::udfs(table_sizes::SizeScope {
        pg_catalog: provider.clone(),
        catalog: sources.get(catalog).cloned(),
        runtime: ctx.runtime_env(),
    }) {
        ctx.register_udf(udf);
    }
    ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
        constraint_defs::ConstraintDef::new(defs),
    ));
    ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
        constraint_defs::ConstraintDef::index(index_defs.0, index_defs.1),
    ));
    ctx.register_udf(activity::backend_pid_udf(&activity));
    ctx.register_udf(activity::signal_udf(activity.clone(), false));
    ctx.register_udf(activity::signal_udf(activity, true));
    Ok(())
}

/// What `pg_catalog` sees: every catalog as a database (for `pg_database`,
/// psql's `\l`), but the schemas and tables of the current one only.
#[derive(Debug)]
struct DatabaseScope {
    current: String,
    current_catalog: Arc<dyn CatalogProvider>,
    all: Vec<String>,
}

impl CatalogProviderList for DatabaseScope {
    fn register_catalog(
        &self,
        _name: String,
        _catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        self.all.clone()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        if name == self.current {
            Some(self.current_catalog.clone())
        } else if self.all.iter().any(|n| n == name) {
            Some(Arc::new(MemoryCatalogProvider::new()))
        } else {
            None
        }
    }
}

/// The rewrites of parsed PostgreSQL statements: role name registers
/// (`'alice'::regrole`), description lookups and array set functions.
pub(crate) fn rewrite_statements(
    sql: &str,
    statements: &mut [datafusion::sql::sqlparser::ast::Statement],
) {
    role_registers::rewrite_role_references(sql, statements);
    for statement in statements.iter_mut() {
        descriptions::rewrite_lookups(statement);
        arrays::rewrite_set_functions(statement);
    }
}
