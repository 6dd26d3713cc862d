//! Audit records for the Flight SQL calls the planner does not run as
//! statements: metadata listings (GetCatalogs, GetDbSchemas, GetTables,
//! GetSqlInfo, key listings, ...), prepared statements created, and
//! requests refused for their size before any planning.
//!
//! A listing never fails for lack of privilege: it shows what the policy
//! lets the caller see, and a catalog or table the policy hides reads as
//! absent. The record says what the user was not told: a listing scoped to
//! a catalog the policy hides entirely, or a key listing for a table it
//! hides, is recorded as `denied`.

use std::net::SocketAddr;

use arrow_flight::sql::{
    CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys,
    CommandGetPrimaryKeys, CommandGetTables,
};
use meshgate_planner::policy::TableName;
use meshgate_planner::{AuditRecord, Identity, QuerySession};

use super::FlightSqlFrontend;

/// The longest SQL text a record keeps (a refused statement can be long).
const KEEP_SQL: usize = 4096;

impl FlightSqlFrontend {
    /// A record of `what`, asked by `identity` from `client`.
    pub(super) fn access(
        &self,
        identity: &Identity,
        client: Option<SocketAddr>,
        what: impl Into<String>,
    ) -> AuditRecord {
        AuditRecord::access(
            identity.user.clone(),
            client.map(|a| a.to_string()),
            "flight_sql",
            what,
        )
    }

    /// Write `record`, when an audit log is configured.
    pub(super) fn audit(&self, record: AuditRecord) {
        if let Some(log) = self.service.audit_log() {
            log.write(&record);
        }
    }

    /// Why a listing scoped to `catalog` shows this session nothing of it:
    /// the catalog exists and has tables, but the policy grants none. `None`
    /// when nothing is hidden (or the catalog does not exist).
    pub(super) async fn hidden_catalog(
        &self,
        session: &QuerySession,
        catalog: Option<&str>,
    ) -> Option<String> {
        let catalog = catalog.filter(|c| !c.is_empty())?;
        let provider = self.service.registry().catalogs().get(catalog)?;
        let has_tables = provider.schema_names().iter().any(|schema| {
            provider
                .schema(schema)
                .is_some_and(|s| !s.table_names().is_empty())
        });
        if !has_tables {
            return None;
        }
        match session.tables(Some(catalog)).await {
            Ok(visible) if visible.is_empty() => Some(format!(
                "the policy grants {} no table of catalog {catalog}",
                session.identity().user
            )),
            _ => None,
        }
    }

    /// Why the policy hides `table` from `identity`, if it does.
    pub(super) fn hidden_table(&self, identity: &Identity, table: &TableName) -> Option<String> {
        let policy = self.service.policy()?;
        let access = policy.evaluate(&identity.principal(&policy), table);
        if access.allowed {
            None
        } else if access.explanation.is_empty() {
            Some(format!("no rule grants {} {table}", identity.user))
        } else {
            Some(access.explanation.join("; "))
        }
    }
}

/// `sql` as a record keeps it: cut when long (the record says how long).
pub(super) fn statement_text(sql: &str) -> String {
    if sql.len() <= KEEP_SQL {
        return sql.to_owned();
    }
    let mut end = KEEP_SQL;
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &sql[..end], sql.len())
}

/// A filter of a listing command, for the record.
fn filter(name: &str, value: &Option<String>) -> String {
    match value {
        Some(v) => format!(" {name}={v:?}"),
        None => String::new(),
    }
}

pub(super) fn describe_schemas(cmd: &CommandGetDbSchemas) -> String {
    format!(
        "Flight SQL GetDbSchemas{}{}",
        filter("catalog", &cmd.catalog),
        filter("db_schema_filter_pattern", &cmd.db_schema_filter_pattern)
    )
}

pub(super) fn describe_tables(cmd: &CommandGetTables) -> String {
    format!(
        "Flight SQL GetTables{}{}{}{}",
        filter("catalog", &cmd.catalog),
        filter("db_schema_filter_pattern", &cmd.db_schema_filter_pattern),
        filter("table_name_filter_pattern", &cmd.table_name_filter_pattern),
        if cmd.include_schema {
            " include_schema"
        } else {
            ""
        }
    )
}

/// The table a key listing names, resolved against the session's defaults.
fn key_table(
    session: &QuerySession,
    catalog: &Option<String>,
    schema: &Option<String>,
    table: &str,
) -> TableName {
    let pick = |given: &Option<String>, default: String| {
        given.clone().filter(|c| !c.is_empty()).unwrap_or(default)
    };
    TableName::new(
        pick(catalog, session.current_catalog().to_owned()),
        pick(schema, session.current_schema()),
        table,
    )
}

/// The command name and the tables a key listing concerns.
pub(super) trait KeyListing {
    fn describe(&self, session: &QuerySession) -> (&'static str, Vec<TableName>);
}

impl KeyListing for CommandGetPrimaryKeys {
    fn describe(&self, session: &QuerySession) -> (&'static str, Vec<TableName>) {
        let table = key_table(session, &self.catalog, &self.db_schema, &self.table);
        ("GetPrimaryKeys", vec![table])
    }
}

impl KeyListing for CommandGetExportedKeys {
    fn describe(&self, session: &QuerySession) -> (&'static str, Vec<TableName>) {
        let table = key_table(session, &self.catalog, &self.db_schema, &self.table);
        ("GetExportedKeys", vec![table])
    }
}

impl KeyListing for CommandGetImportedKeys {
    fn describe(&self, session: &QuerySession) -> (&'static str, Vec<TableName>) {
        let table = key_table(session, &self.catalog, &self.db_schema, &self.table);
        ("GetImportedKeys", vec![table])
    }
}

impl KeyListing for CommandGetCrossReference {
    fn describe(&self, session: &QuerySession) -> (&'static str, Vec<TableName>) {
        let pk = key_table(
            session,
            &self.pk_catalog,
            &self.pk_db_schema,
            &self.pk_table,
        );
        let fk = key_table(
            session,
            &self.fk_catalog,
            &self.fk_db_schema,
            &self.fk_table,
        );
        ("GetCrossReference", vec![pk, fk])
    }
}
