//! The audit log: one JSON line per statement, allowed or not.
//!
//! Records are written and flushed as statements finish (for a query: when
//! its last row has been sent, so `rows` and `duration_ms` are real), by the
//! planner for every protocol. Admins read the log back as the table
//! `system.audit.queries`.

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

/// One audited statement.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// RFC 3339, UTC.
    pub time: String,
    pub user: String,
    pub client: String,
    pub protocol: String,
    pub sql: String,
    /// Tables the statement names, fully qualified.
    pub objects: Vec<String>,
    /// `allowed`, `denied` or `error`.
    pub decision: String,
    /// The policy rules behind the decision (empty without a policy).
    pub rule: String,
    pub rows: u64,
    pub duration_ms: f64,
    pub error: Option<String>,
}

/// An append-only JSON-lines file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<BufWriter<File>>,
}

impl AuditLog {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(BufWriter::new(file)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append and flush one record. A failure to write is logged, never
    /// turned into a query error.
    pub fn write(&self, record: &AuditRecord) {
        let line = match serde_json::to_string(record) {
            Ok(line) => line,
            Err(e) => return tracing::error!(error = %e, "cannot encode audit record"),
        };
        let mut file = self.file.lock().expect("audit lock");
        if let Err(e) = writeln!(file, "{line}").and_then(|_| file.flush()) {
            tracing::error!(error = %e, path = %self.path.display(), "cannot write audit record");
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
    Arc::new(Schema::new(vec![
        text("time", false),
        text("user", false),
        text("client", false),
        text("protocol", false),
        text("sql", false),
        Field::new(
            "objects",
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            true,
        ),
        text("decision", false),
        text("rule", false),
        Field::new("rows", DataType::Int64, false),
        Field::new("duration_ms", DataType::Float64, false),
        text("error", true),
    ]))
}

/// `system.audit.queries` over the log file.
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
    let url = ListingTableUrl::parse(log.path().to_string_lossy())?;
    let options = ListingOptions::new(Arc::new(JsonFormat::default())).with_file_extension("");
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(audit_schema());
    let schema = MemorySchemaProvider::new();
    schema.register_table("queries".into(), Arc::new(ListingTable::try_new(config)?))?;
    let catalog = MemoryCatalogProvider::new();
    catalog.register_schema("audit", Arc::new(schema))?;
    Ok(Arc::new(catalog))
}
