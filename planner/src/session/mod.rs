//! One client's [`QuerySession`]: its identity, its DataFusion context
//! (default catalog and schema, settings), its cursors and prepared SQL, and
//! the statement pipeline every front end drives.
//!
//! Rooms: `pipeline` plans and runs statements (the one path for pgwire
//! simple and extended queries and Flight SQL statements and prepared
//! statements); `statements` recognises the session commands meshgate
//! answers itself and `commands` runs them; `transaction` is the
//! transaction-block state machine; `audit` builds each statement's audit
//! record; `running` registers each statement with the server's running
//! queries (its query id, kill); `sql_prepared` keeps SQL `PREPARE`d
//! statements and plans each `EXECUTE`; `parts` splits a result into
//! independent streams (one Flight SQL endpoint each); `shapes` plans a
//! text by its shape (`literals` finds it); `parse`, `cursors`,
//! `deadline` and `settings` are what they say.

mod audit;
mod column_names;
mod columns_read;
mod commands;
mod cursors;
mod deadline;
mod keys;
pub(crate) mod literals;
mod parse;
mod parts;
mod pipeline;
mod placeholders;
mod plan;
mod prepared;
mod products;
mod result_reuse;
mod run_memo;
mod running;
pub(crate) mod settings;
mod shapes;
mod sql_prepared;
mod statements;
#[cfg(test)]
mod tests;
mod transaction;

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use meshgate_connectors::Description;

use crate::access::admin::PolicyAdmin;
use crate::access::AccessGuard;
use crate::audit::AuditLog;
use crate::catalogs::CatalogRegistry;
use crate::{Identity, QueryResult};

use cursors::Cursor;
pub use parts::{ResultPart, ResultParts};
pub use pipeline::{Script, StatementResult};
pub use prepared::{CopyFormat, CopyOptions, Prepared, QueryOutput, SessionCommand};
use settings::SessionSettings;
pub use shapes::ClientStatement;
pub use transaction::{Notice, TransactionState};

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

/// The Flight SQL column metadata key for a description (`REMARKS` in
/// JDBC's `getColumns`).
pub const REMARKS_KEY: &str = "ARROW:FLIGHT:SQL:REMARKS";

/// `schema` with the descriptions of `schema_name.table_name` attached as
/// Flight SQL remarks: a column's on its field, the table's on the schema.
fn with_remarks(
    schema: SchemaRef,
    descriptions: &[Description],
    schema_name: &str,
    table_name: &str,
) -> SchemaRef {
    let mine: Vec<&Description> = descriptions
        .iter()
        .filter(|d| d.schema == schema_name && d.table == table_name)
        .collect();
    if mine.is_empty() {
        return schema;
    }
    let remark = |column: Option<&str>| {
        mine.iter()
            .find(|d| d.column.as_deref() == column)
            .map(|d| d.text.clone())
    };
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match remark(Some(f.name())) {
            Some(text) => {
                let mut metadata = f.metadata().clone();
                metadata.insert(REMARKS_KEY.to_owned(), text);
                f.as_ref().clone().with_metadata(metadata)
            }
            None => f.as_ref().clone(),
        })
        .collect();
    let mut metadata = schema.metadata().clone();
    if let Some(text) = remark(None) {
        metadata.insert(REMARKS_KEY.to_owned(), text);
    }
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

/// One client's session: its identity, default catalog and schema, and settings.
pub struct QuerySession {
    pub(crate) identity: Identity,
    pub(crate) ctx: SessionContext,
    pub(crate) catalog: String,
    /// Shared with the session's `current_setting()` function.
    pub(crate) settings: Arc<std::sync::RwLock<SessionSettings>>,
    /// The PostgreSQL parser, for sessions that speak PostgreSQL (pgwire);
    /// `None` for Flight SQL sessions.
    pub(crate) postgres: Option<Arc<PostgresCompatibilityParser>>,
    pub(crate) guard: Option<Arc<AccessGuard>>,
    pub(crate) audit: Option<Arc<AuditLog>>,
    pub(crate) protocol: String,
    pub(crate) client: String,
    /// Behind a mutex only so the session is `Sync`; `&mut self` methods
    /// reach it without locking.
    pub(crate) cursors: std::sync::Mutex<HashMap<String, Cursor>>,
    pub(crate) registry: Arc<CatalogRegistry>,
    pub(crate) admin: Arc<PolicyAdmin>,
    /// SQL `PREPARE`d statements by name: their text, planned at each
    /// `EXECUTE` (see `sql_prepared`).
    pub(crate) sql_prepared: std::sync::Mutex<HashMap<String, String>>,
    /// The server's limit on any statement; `statement_timeout` may only
    /// shorten it.
    pub(crate) max_statement_time: Option<std::time::Duration>,
    /// The server's running statements (`system.runtime.queries`, kill).
    pub(crate) runtime: crate::runtime::QueryRegistry,
    /// This session's listing in `pg_stat_activity` (pgwire sessions).
    pub(crate) backend: Option<crate::runtime::BackendHandle>,
    /// What `pg_backend_pid()` answers: set with [`Self::attach_backend`].
    pub(crate) own_pid: Arc<std::sync::OnceLock<i32>>,
    /// The columns the statement run last read (`catalog.schema.table.column`).
    pub(crate) columns_read: Vec<String>,
    /// The notices of the statement run last.
    pub(crate) last_notices: Vec<transaction::Notice>,
    /// The query id of the statement running, or of the last one run.
    pub(crate) query_id: Option<String>,
    /// How many queries may run at once (`[limits]` concurrency limits).
    pub(crate) admission: Arc<crate::admission::Admission>,
    /// Results kept for the next run of the same query.
    pub(crate) result_cache: Arc<crate::ResultCache>,
    /// pg_catalog's OIDs, for the table and column of each result column
    /// (pgwire sessions).
    pub(crate) origins: crate::postgres::column_origins::OriginCache,
    /// The catalog set the session's context was built over (see
    /// `QueryService::refresh_session`).
    pub(crate) catalog_generation: u64,
    /// Plans of simple-protocol statements by shape (see `literals`).
    pub(crate) literal_plans: literals::LiteralPlans,
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

    /// Whether the session's settings are exactly `settings`.
    pub fn has_settings(&self, settings: &SessionSettings) -> bool {
        *self.settings.read().expect("settings lock") == *settings
    }

    /// Whether the session holds nothing a later statement could see
    /// beyond its settings: no open cursor and no SQL `PREPARE`d statement.
    /// Only such a session may serve another call of the same client (a
    /// Flight SQL session's next call), which would otherwise see them now
    /// and then.
    pub fn holds_only_settings(&mut self) -> bool {
        self.cursors.get_mut().expect("cursor lock").is_empty()
            && self
                .sql_prepared
                .get_mut()
                .expect("prepared lock")
                .is_empty()
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
            let descriptions = self.registry.object_descriptions(&catalog_name);
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
                            table_type,
                            columns: with_remarks(
                                table.schema(),
                                &descriptions,
                                &schema_name,
                                &table_name,
                            ),
                            table: table_name,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// For each column `prepared` returns, the table column it is, as this
    /// session's pg_catalog numbers them (pgwire sessions; `None` for a
    /// computed column, another catalog's table, or a Flight SQL session).
    pub async fn column_origins(&self, prepared: &Prepared) -> Vec<Option<crate::ColumnOrigin>> {
        let columns = prepared.output_schema().fields().len();
        match prepared {
            Prepared::Query { plan, .. } if self.postgres.is_some() && columns > 0 => {
                self.origins
                    .origins(&self.ctx, &self.catalog, &self.current_schema(), plan)
                    .await
            }
            _ => vec![None; columns],
        }
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
}
