//! A shared audit store: where audit records go besides the JSON-lines
//! file, so that `system.audit.queries` answers for every replica of a
//! fleet (`[audit] store = "postgres://…"`, implemented by the gateway).
//!
//! The planner only hands each record over, as the JSON line the file
//! gets, and reads them back as a stream of lines: taking a record never
//! waits for the store (a store that falls behind buffers, then drops and
//! counts what does not fit), and reading never holds the whole log.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::ReaderBuilder;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::stream::BoxStream;
use futures::StreamExt;

/// A store of audit records shared by several gateways.
pub trait AuditStore: Send + Sync + std::fmt::Debug {
    /// Take one record, as its JSON line. Never waits.
    fn submit(&self, line: String);

    /// Every record kept, oldest first, as JSON lines in chunks.
    fn lines(&self) -> BoxStream<'static, Result<Vec<String>, String>>;
}

/// `system.audit.queries` over `store`, with `schema`'s columns.
pub(crate) fn store_table(
    store: Arc<dyn AuditStore>,
    schema: SchemaRef,
) -> datafusion::error::Result<StreamingTable> {
    let partition = StoreRecords {
        store,
        schema: schema.clone(),
    };
    StreamingTable::try_new(schema, vec![Arc::new(partition)])
}

#[derive(Debug)]
struct StoreRecords {
    store: Arc<dyn AuditStore>,
    schema: SchemaRef,
}

impl PartitionStream for StoreRecords {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let schema = self.schema.clone();
        let batches = self.store.lines().map(move |chunk| {
            let lines = chunk.map_err(|e| {
                DataFusionError::External(format!("cannot read the audit store: {e}").into())
            })?;
            let mut decoder = ReaderBuilder::new(schema.clone())
                .with_batch_size(lines.len().max(1))
                .build_decoder()?;
            for line in &lines {
                decoder.decode(line.as_bytes())?;
            }
            Ok(decoder.flush()?.unwrap_or_else(|| {
                datafusion::arrow::array::RecordBatch::new_empty(schema.clone())
            }))
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches))
    }
}
