//! Audit records for the Flight SQL calls the planner does not run as
//! statements: metadata listings (see [`super::metadata`]), prepared
//! statements created, and requests refused for their size before any
//! planning. Statements the planner runs are audited by the planner.
//!
//! A listing never fails for lack of privilege: it shows what the policy
//! lets the caller see, and a catalog or table the policy hides reads as
//! absent. The record says what the user was not told: a listing scoped to
//! a catalog the policy hides entirely, or a key listing for a table it
//! hides, is recorded as `denied`, with the rule.

use std::net::SocketAddr;

use meshgate_planner::policy::TableName;
use meshgate_planner::{AuditRecord, Identity, QuerySession};

use super::FlightSqlFrontend;

/// The longest SQL text a record keeps (a refused statement can be long).
const KEEP_SQL: usize = 4096;

impl FlightSqlFrontend {
    /// A record of `what`, asked by `identity` from `client` (and by the
    /// user acting as them, if any).
    pub(super) fn access(
        &self,
        identity: &Identity,
        client: Option<SocketAddr>,
        what: impl Into<String>,
    ) -> AuditRecord {
        let mut record = AuditRecord::access(
            identity.user.clone(),
            client.map(|a| a.to_string()),
            "flight_sql",
            what,
        );
        record.impersonator = identity.impersonator.clone();
        record
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
        let provider = self.service.registry().catalogs().get(catalog)?.clone();
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
        let access = self.service.table_access(identity, table)?;
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
