//! `system.runtime.queries`, and [`SnapshotTable`]: a read-only table whose
//! rows are computed when a query scans it (also used for pgwire's
//! `pg_stat_activity`).
//!
//! The table filters its own rows: a session sees its user's statements,
//! an admin every statement. Whether the session is an admin is asked at
//! each scan, so a policy change applies at once.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::registry::{QueryInfo, QueryRegistry};

/// Computes a table's rows at scan time.
pub type RowSource = Arc<dyn Fn() -> Result<RecordBatch> + Send + Sync>;

/// Whether the session reading a table is an admin, asked at each scan.
pub type AdminCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// A read-only table of rows computed at scan time.
pub struct SnapshotTable {
    schema: SchemaRef,
    rows: RowSource,
}

impl SnapshotTable {
    pub fn new(schema: SchemaRef, rows: RowSource) -> Self {
        Self { schema, rows }
    }
}

impl fmt::Debug for SnapshotTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotTable")
            .field("schema", &self.schema)
            .finish()
    }
}

#[async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = (self.rows)()?;
        MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema.clone(), projection.cloned())
            .map(|e| e as Arc<dyn ExecutionPlan>)
    }
}

/// A UTC timestamp column (microseconds).
pub(crate) fn timestamp(name: &str, nullable: bool) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
        nullable,
    )
}

/// The columns of `system.runtime.queries`.
pub fn queries_schema() -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        text("id"),
        text("user"),
        text("protocol"),
        text("client_address"),
        text("state"),
        text("sql"),
        timestamp("start", false),
        Field::new("elapsed_ms", DataType::Float64, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("peak_memory_bytes", DataType::Int64, true),
        Field::new(
            "catalogs",
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            false,
        ),
        Field::new("backend_pid", DataType::Int32, true),
    ]))
}

/// `system.runtime.queries` for one session: its user's statements, or
/// every statement when `admin` says the session is an admin's.
pub fn queries_table(registry: QueryRegistry, user: String, admin: AdminCheck) -> SnapshotTable {
    let rows: RowSource = Arc::new(move || {
        let viewer = (!admin()).then_some(user.as_str());
        queries_batch(&registry.queries(viewer))
    });
    SnapshotTable::new(queries_schema(), rows)
}

fn queries_batch(queries: &[QueryInfo]) -> Result<RecordBatch> {
    let mut text: Vec<StringBuilder> = (0..6).map(|_| StringBuilder::new()).collect();
    let mut start = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut elapsed = Float64Builder::new();
    let (mut rows, mut bytes, mut peak) = (
        Int64Builder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
    );
    let mut catalogs = ListBuilder::new(StringBuilder::new());
    let mut pid = Int32Builder::new();
    for q in queries {
        for (builder, value) in text.iter_mut().zip([
            q.id.as_str(),
            q.user.as_str(),
            q.protocol.as_str(),
            q.client.as_str(),
            q.state.as_str(),
            q.sql.as_str(),
        ]) {
            builder.append_value(value);
        }
        start.append_value(q.started.timestamp_micros());
        elapsed.append_value(q.elapsed.as_secs_f64() * 1e3);
        rows.append_value(q.rows as i64);
        bytes.append_value(q.bytes as i64);
        peak.append_option(q.peak_memory.map(|b| b as i64));
        for catalog in &q.catalogs {
            catalogs.values().append_value(catalog);
        }
        catalogs.append(true);
        pid.append_option(q.backend_pid);
    }
    let mut columns: Vec<ArrayRef> = text
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    columns.push(Arc::new(start.finish()));
    columns.push(Arc::new(elapsed.finish()));
    columns.push(Arc::new(rows.finish()));
    columns.push(Arc::new(bytes.finish()));
    columns.push(Arc::new(peak.finish()));
    columns.push(Arc::new(catalogs.finish()));
    columns.push(Arc::new(pid.finish()));
    Ok(RecordBatch::try_new(queries_schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::registry::QueryStart;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn a_user_reads_only_their_own_queries() {
        let registry = QueryRegistry::default();
        let _a = registry.register(QueryStart {
            user: "alice".into(),
            sql: "SELECT 1".into(),
            catalogs: vec!["members".into()],
            ..QueryStart::default()
        });
        let _b = registry.register(QueryStart {
            user: "bob".into(),
            ..QueryStart::default()
        });
        let ctx = SessionContext::new();
        let as_alice = queries_table(registry.clone(), "alice".into(), Arc::new(|| false));
        ctx.register_table("mine", Arc::new(as_alice)).unwrap();
        let as_admin = queries_table(registry, "root".into(), Arc::new(|| true));
        ctx.register_table("all", Arc::new(as_admin)).unwrap();
        let count = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
                batches.iter().map(|b| b.num_rows()).sum::<usize>()
            }
        };
        assert_eq!(count("SELECT * FROM mine").await, 1);
        assert_eq!(count("SELECT * FROM mine WHERE state = 'running'").await, 1);
        assert_eq!(count("SELECT id, catalogs FROM \"all\"").await, 2);
    }
}
