//! The audit record of a statement: who ran what, the tables it named, the
//! policy's decision on each and the outcome.

use std::time::Instant;

use datafusion::sql::parser::Statement as DfStatement;

use super::QuerySession;
use crate::audit::AuditRecord;
use crate::QueryError;

impl QuerySession {
    /// The tables SQL text names, fully qualified; empty when it does not
    /// parse or no audit log is kept.
    pub(super) fn tables_named(&self, sql: &str) -> Vec<String> {
        let Ok(statements) = self.parse(sql) else {
            return vec![];
        };
        let mut out: Vec<String> = statements.iter().flat_map(|s| self.objects(s)).collect();
        out.sort();
        out.dedup();
        out
    }

    /// Tables a statement names, fully qualified (for the audit log and
    /// the freshness of the data products it reads).
    pub(super) fn objects(&self, statement: &DfStatement) -> Vec<String> {
        let schema = self.current_schema();
        // Read under the state's lock: a copy of the session state costs
        // more than the rest of a point lookup's planning.
        let references = self
            .ctx
            .state_ref()
            .read()
            .resolve_table_references(statement);
        let mut out: Vec<String> = references
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

    pub(super) fn audit_record(
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
        let products = self.registry.products();
        let mut read: Vec<String> = objects
            .iter()
            .filter_map(|o| {
                let mut parts = o.splitn(3, '.');
                let name =
                    meshgate_policy::TableName::new(parts.next()?, parts.next()?, parts.next()?);
                products.product_of(&name).map(|p| p.name().to_owned())
            })
            .collect();
        read.sort();
        read.dedup();
        AuditRecord {
            time: chrono_now(),
            user: self.identity.user.clone(),
            client: self.client.clone(),
            protocol: self.protocol.clone(),
            sql: sql.to_owned(),
            objects,
            products: read,
            columns: vec![],
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
            query_id: None,
        }
    }

    pub(super) fn audit_now(
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
}

impl QuerySession {
    /// Write the record of a statement that ran (or failed to) now, under
    /// its query id.
    pub(super) fn audit_statement(
        &self,
        sql: &str,
        objects: Vec<String>,
        started: Instant,
        error: Option<&QueryError>,
        query_id: Option<String>,
    ) {
        if let Some(log) = &self.audit {
            let mut record = self.audit_record(sql, objects, error);
            record.duration_ms = started.elapsed().as_secs_f64() * 1e3;
            record.query_id = query_id;
            log.write(&record);
        }
    }
}

/// Now, as RFC 3339 UTC with milliseconds.
fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
