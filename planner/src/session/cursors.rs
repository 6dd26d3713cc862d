//! Cursors (`DECLARE` / `FETCH` / `CLOSE`): the rest of a result, read on demand.

use datafusion::arrow::array::RecordBatch;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast;

use super::QuerySession;
use crate::{QueryError, QueryResult};

/// An open cursor: the rest of a result, read on demand.
pub(crate) struct Cursor {
    pub(super) stream: SendableRecordBatchStream,
    /// Rows read from the stream but not fetched yet.
    pub(super) pending: Option<RecordBatch>,
}

impl QuerySession {
    /// Plan and start a query statement, returning its row stream, which
    /// holds the query's admission slots (see `admission`) until it ends.
    pub(super) async fn start(&self, query: &ast::Query) -> QueryResult<SendableRecordBatchStream> {
        let statement =
            DfStatement::Statement(Box::new(ast::Statement::Query(Box::new(query.clone()))));
        let plan = self.read_only_plan(statement).await?;
        let admitted = self.admit().await?;
        let stream = self
            .ctx
            .execute_logical_plan(plan)
            .await?
            .execute_stream()
            .await?;
        Ok(Box::pin(crate::admission::AdmittedStream::new(
            stream, admitted,
        )))
    }

    /// Up to `count` rows (all when `None`) from the cursor `name`.
    pub(super) async fn fetch(
        &mut self,
        name: &str,
        count: Option<usize>,
    ) -> QueryResult<Vec<RecordBatch>> {
        use futures::StreamExt;
        let cursor = self
            .cursors
            .get_mut()
            .expect("cursor lock")
            .get_mut(name)
            .ok_or_else(|| {
                QueryError::UndefinedCursor(format!("cursor \"{name}\" does not exist"))
            })?;
        let mut wanted = count.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        while wanted > 0 {
            let batch = match cursor.pending.take() {
                Some(batch) => batch,
                None => match cursor.stream.next().await {
                    Some(batch) => batch?,
                    None => break,
                },
            };
            if batch.num_rows() > wanted {
                cursor.pending = Some(batch.slice(wanted, batch.num_rows() - wanted));
                out.push(batch.slice(0, wanted));
                wanted = 0;
            } else {
                wanted -= batch.num_rows();
                out.push(batch);
            }
        }
        Ok(out)
    }
}
