//! The audit log: one JSON line per access, allowed or not.
//!
//! Statements are recorded by the planner for every protocol, written and
//! flushed as they finish (for a query: when its last row has been sent, so
//! `rows` and `duration_ms` are real). Accesses that are not statements — a
//! Flight SQL metadata listing, a prepared statement created, an admin API
//! call, a cancel request — are recorded by the front end that serves them,
//! through the same [`AuditRecord::access`] and [`AuditLog::write`], so every
//! record has the same fields and the same decision words. Admins read the
//! log back as the table `system.audit.queries`.
//!
//! A record names who (user, client, protocol), what (the statement or the
//! access, and the objects it concerns) and the decision; never a password,
//! token or key.
//!
//! Every record also goes to an optional [`AuditObserver`], even when no
//! file is configured ([`AuditLog::without_file`]): that is how the
//! gateway's metrics count statements without a second hook in the
//! pipeline.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_plan::{RecordBatchStream, SendableRecordBatchStream};
use futures::Stream;
use serde::Serialize;

use crate::audit_store::AuditStore;
use crate::QueryError;

/// One audited statement.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// RFC 3339, UTC.
    pub time: String,
    pub user: String,
    pub client: String,
    pub protocol: String,
    /// The statement; for another access, what was asked (`Flight SQL
    /// GetTables catalog=members`, `admin GetPolicy`, `cancel request`).
    pub sql: String,
    /// Tables the statement names, fully qualified.
    pub objects: Vec<String>,
    /// The data products those tables belong to (read lineage).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<String>,
    /// The columns the statement read, `catalog.schema.table.column`, as
    /// the plan that ran scanned them (after the policy's rewrite).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// `allowed`, `denied` or `error`.
    pub decision: String,
    /// The policy rules behind the decision (empty without a policy).
    pub rule: String,
    pub rows: u64,
    pub duration_ms: f64,
    pub error: Option<String>,
    /// The signed-in user who acted as `user` (impersonation), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonator: Option<String>,
    /// The statement's query id, as its client and `system.runtime.queries`
    /// know it; `None` for an access that is not a statement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_id: Option<String>,
}

impl AuditRecord {
    /// The access happened.
    pub const ALLOWED: &'static str = "allowed";
    /// The policy (or a missing privilege) refused it.
    pub const DENIED: &'static str = "denied";
    /// It failed for another reason.
    pub const ERROR: &'static str = "error";

    /// A record of one access that is not a statement the planner runs (a
    /// metadata listing, a prepared statement created, an admin call, a
    /// cancel request), by `user` from `client` over `protocol`; `what`
    /// says what was asked. It reads `allowed` until an outcome says
    /// otherwise.
    pub fn access(
        user: impl Into<String>,
        client: Option<String>,
        protocol: impl Into<String>,
        what: impl Into<String>,
    ) -> Self {
        Self {
            time: now(),
            user: user.into(),
            client: client.unwrap_or_default(),
            protocol: protocol.into(),
            sql: what.into(),
            objects: vec![],
            products: vec![],
            columns: vec![],
            decision: Self::ALLOWED.into(),
            rule: String::new(),
            rows: 0,
            duration_ms: 0.0,
            error: None,
            impersonator: None,
            query_id: None,
        }
    }

    /// The objects (catalogs, tables) the access concerned.
    pub fn with_objects(mut self, objects: Vec<String>) -> Self {
        self.objects = objects;
        self
    }

    /// How many rows (entries of a listing) were returned.
    pub fn with_rows(mut self, rows: u64) -> Self {
        self.rows = rows;
        self
    }

    /// How long the access took, from `started`.
    pub fn with_duration(mut self, started: Instant) -> Self {
        self.duration_ms = started.elapsed().as_secs_f64() * 1e3;
        self
    }

    /// The outcome: allowed without an error, else [`Self::decision_for`]
    /// the error, whose SQLSTATE and message are kept.
    pub fn with_outcome(mut self, error: Option<&QueryError>) -> Self {
        self.decision = Self::decision_for(error).into();
        self.error = error.map(|e| format!("[{}] {e}", e.sqlstate()));
        self
    }

    /// The tables a statement names (as `QuerySession::explain_access`
    /// returns them). When the statement failed and the policy hides some
    /// of them, the user was told they do not exist: the record says
    /// `denied`, with the rules that hide them.
    pub fn with_tables(
        mut self,
        tables: Vec<(String, Option<meshgate_policy::TableAccess>)>,
    ) -> Self {
        let hidden: Vec<String> = tables
            .iter()
            .filter_map(|(name, access)| match access {
                Some(a) if !a.allowed && a.explanation.is_empty() => {
                    Some(format!("no rule grants {} {name}", self.user))
                }
                Some(a) if !a.allowed => Some(a.explanation.join("; ")),
                _ => None,
            })
            .collect();
        if self.error.is_some() && !hidden.is_empty() {
            self.decision = Self::DENIED.into();
            self.rule = hidden.join("; ");
        }
        self.objects = tables.into_iter().map(|(name, _)| name).collect();
        self
    }

    /// Refused (or, for a listing, emptied) by the policy; `rule` says why.
    /// What the user was told stays in `error`, if anything.
    pub fn denied(mut self, rule: impl Into<String>) -> Self {
        self.decision = Self::DENIED.into();
        self.rule = rule.into();
        self
    }

    /// The decision word for an outcome: `denied` for a missing privilege
    /// (42501), `error` for any other failure, `allowed` for none.
    pub fn decision_for(error: Option<&QueryError>) -> &'static str {
        match error {
            None => Self::ALLOWED,
            Some(QueryError::PermissionDenied(_)) => Self::DENIED,
            Some(_) => Self::ERROR,
        }
    }
}

/// The time of a record: RFC 3339, UTC, milliseconds.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Called with every record [`AuditLog::write`] gets, whether or not a file
/// is kept (the gateway's metrics count statements from it).
pub type AuditObserver = Arc<dyn Fn(&AuditRecord) + Send + Sync>;

/// Where audit records go: an append-only JSON-lines file (when the audit
/// log is configured) and an observer (when one is attached).
pub struct AuditLog {
    file: Option<(PathBuf, Mutex<BufWriter<File>>)>,
    /// The store several gateways share (`[audit] store`).
    store: Option<Arc<dyn AuditStore>>,
    observers: Vec<AuditObserver>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path())
            .field("store", &self.store)
            .field("observers", &self.observers.len())
            .finish()
    }
}

impl AuditLog {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            file: Some((path.to_path_buf(), Mutex::new(BufWriter::new(file)))),
            store: None,
            observers: Vec::new(),
        })
    }

    /// Records that reach only the observer: no file, and no
    /// `system.audit.queries`.
    pub fn without_file() -> Self {
        Self {
            file: None,
            store: None,
            observers: Vec::new(),
        }
    }

    /// Also send every record to `store`, which `system.audit.queries`
    /// then reads (the records of every gateway that shares it).
    pub fn with_store(mut self, store: Arc<dyn AuditStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Also hand every record to `observer` (before it is written).
    pub fn with_observer(mut self, observer: AuditObserver) -> Self {
        self.observers.push(observer);
        self
    }

    /// Whether records are kept anywhere `system.audit.queries` can read
    /// them (a file or a store).
    pub fn is_kept(&self) -> bool {
        self.file.is_some() || self.store.is_some()
    }

    /// The file records are appended to, if one is kept.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|(path, _)| path.as_path())
    }

    /// Hand one record to the observer, then append and flush it to the
    /// file and hand it to the store. A failure to write is logged, never
    /// turned into a query error.
    pub fn write(&self, record: &AuditRecord) {
        for observer in &self.observers {
            observer(record);
        }
        if self.file.is_none() && self.store.is_none() {
            return;
        }
        let line = match serde_json::to_string(record) {
            Ok(line) => line,
            Err(e) => return tracing::error!(error = %e, "cannot encode audit record"),
        };
        // No source secret is recorded, whatever the statement or error held.
        let line = meshgate_connectors::secrets::redact(&line);
        if let Some(store) = &self.store {
            store.submit(line.clone().into_owned());
        }
        let Some((path, file)) = &self.file else {
            return;
        };
        let mut file = file.lock().expect("audit lock");
        if let Err(e) = writeln!(file, "{line}").and_then(|_| file.flush()) {
            tracing::error!(error = %e, path = %path.display(), "cannot write audit record");
        }
    }
}

/// A result stream that writes its audit record when it ends (or is dropped).
pub(crate) struct Audited {
    inner: SendableRecordBatchStream,
    pending: Option<(Arc<AuditLog>, AuditRecord)>,
    started: Instant,
}

impl Audited {
    pub(crate) fn new(
        inner: SendableRecordBatchStream,
        log: Arc<AuditLog>,
        record: AuditRecord,
        started: Instant,
    ) -> Self {
        Self {
            inner,
            pending: Some((log, record)),
            started,
        }
    }

    fn finish(&mut self, error: Option<String>) {
        if let Some((log, mut record)) = self.pending.take() {
            record.duration_ms = self.started.elapsed().as_secs_f64() * 1e3;
            if error.is_some() {
                record.decision = "error".into();
                record.error = error;
            }
            log.write(&record);
        }
    }
}

impl Stream for Audited {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(batch))) => {
                let rows = batch.num_rows() as u64;
                if let Some((_, record)) = self.pending.as_mut() {
                    record.rows += rows;
                }
            }
            Poll::Ready(Some(Err(e))) => {
                let message = e.to_string();
                self.finish(Some(message));
            }
            Poll::Ready(None) => self.finish(None),
            Poll::Pending => {}
        }
        polled
    }
}

impl RecordBatchStream for Audited {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

impl Drop for Audited {
    fn drop(&mut self) {
        if self.pending.is_some() {
            self.finish(Some(
                "result not read to the end (cancelled or closed)".into(),
            ));
        }
    }
}

/// The columns of `system.audit.queries`.
pub(crate) fn audit_schema() -> SchemaRef {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let list = |name: &str| {
        Field::new(
            name,
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            true,
        )
    };
    Arc::new(Schema::new(vec![
        text("time", false),
        text("user", false),
        text("client", false),
        text("protocol", false),
        text("sql", false),
        list("objects"),
        list("products"),
        list("columns"),
        text("decision", false),
        text("rule", false),
        Field::new("rows", DataType::Int64, false),
        Field::new("duration_ms", DataType::Float64, false),
        text("error", true),
        text("impersonator", true),
        text("query_id", true),
    ]))
}

/// `system.audit.queries` over the shared store when there is one, else
/// over the log file.
pub(crate) fn audit_catalog(
    log: &AuditLog,
) -> datafusion::error::Result<Arc<dyn datafusion::catalog::CatalogProvider>> {
    use datafusion::catalog::{
        CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
    };
    use datafusion::datasource::file_format::json::JsonFormat;
    use datafusion::datasource::listing::{
        ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
    };
    let table: Arc<dyn datafusion::catalog::TableProvider> = match &log.store {
        Some(store) => Arc::new(crate::audit_store::store_table(
            store.clone(),
            audit_schema(),
        )?),
        None => {
            let path = log.path().ok_or_else(|| {
                datafusion::error::DataFusionError::Plan("no audit log file is configured".into())
            })?;
            let url = ListingTableUrl::parse(path.to_string_lossy())?;
            let options =
                ListingOptions::new(Arc::new(JsonFormat::default())).with_file_extension("");
            let config = ListingTableConfig::new(url)
                .with_listing_options(options)
                .with_schema(audit_schema());
            Arc::new(ListingTable::try_new(config)?)
        }
    };
    let schema = MemorySchemaProvider::new();
    schema.register_table("queries".into(), table)?;
    let catalog = MemoryCatalogProvider::new();
    catalog.register_schema("audit", Arc::new(schema))?;
    Ok(Arc::new(catalog))
}

/// SQL as an audit record keeps it: a text longer than 4 KiB is cut (the
/// record says how long it was).
pub fn audit_text(sql: &str) -> String {
    const KEEP: usize = 4096;
    if sql.len() <= KEEP {
        return sql.to_owned();
    }
    let mut end = KEEP;
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &sql[..end], sql.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_records_carry_who_what_and_the_decision() {
        let record = AuditRecord::access(
            "analyst",
            Some("127.0.0.1:5000".into()),
            "flight_sql",
            "Flight SQL GetTables",
        )
        .with_objects(vec!["members".into()])
        .with_rows(3);
        assert_eq!(record.decision, "allowed");
        assert_eq!(record.client, "127.0.0.1:5000");
        assert_eq!(record.rows, 3);
        let denied = record
            .clone()
            .with_outcome(Some(&QueryError::PermissionDenied("no".into())));
        assert_eq!(denied.decision, "denied");
        assert_eq!(denied.error.as_deref(), Some("[42501] no"));
        let failed = record.with_outcome(Some(&QueryError::Syntax("bad".into())));
        assert_eq!(failed.decision, "error");
        let hidden =
            AuditRecord::access("intruder", None, "flight_sql", "GetTables").denied("no grant");
        assert_eq!(
            (hidden.decision.as_str(), hidden.rule.as_str()),
            ("denied", "no grant")
        );
        assert_eq!(hidden.error, None);
    }

    #[test]
    fn records_are_appended_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
        log.write(&AuditRecord::access("a", None, "pgwire", "cancel request"));
        log.write(&AuditRecord::access("b", None, "pgwire", "cancel request"));
        let text = std::fs::read_to_string(log.path().unwrap()).unwrap();
        let users: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["user"].to_string())
            .collect();
        assert_eq!(users, ["\"a\"", "\"b\""]);
    }
}
