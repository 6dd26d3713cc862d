//! [`Tracked`]: a result stream that counts what it hands over into its
//! statement's registry entry, ends the entry when the stream ends, and
//! stops with [`QueryError::Cancelled`] (or [`QueryError::Terminated`]) as
//! soon as the statement is killed, however the consumer paces its reads.
//! [`run_until_stopped`] does the same for the work before the first row
//! (planning, starting the plan).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::{RecordBatchStream, SendableRecordBatchStream};
use futures::Stream;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::registry::QueryHandle;
use crate::{QueryError, QueryResult};

/// Run `work` unless the statement of `handle` is stopped first.
pub async fn run_until_stopped<T>(
    handle: &QueryHandle,
    work: impl Future<Output = QueryResult<T>>,
) -> QueryResult<T> {
    let token = handle.stop_token();
    tokio::select! {
        biased;
        _ = token.cancelled() => Err(handle.stop_error().unwrap_or(QueryError::Cancelled)),
        result = work => result,
    }
}

/// A result stream tied to its statement's registry entry.
pub struct Tracked {
    inner: SendableRecordBatchStream,
    handle: Option<QueryHandle>,
    stopped: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Tracked {
    pub fn new(inner: SendableRecordBatchStream, handle: QueryHandle) -> Self {
        let stopped = Box::pin(handle.stop_token().cancelled_owned());
        Self {
            inner,
            handle: Some(handle),
            stopped,
        }
    }
}

impl Stream for Tracked {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(handle) = this.handle.as_ref() else {
            return Poll::Ready(None);
        };
        if this.stopped.as_mut().poll(cx).is_ready() {
            let error = handle.stop_error().unwrap_or(QueryError::Cancelled);
            if let Some(handle) = this.handle.take() {
                handle.finish(Some(&error));
            }
            return Poll::Ready(Some(Err(DataFusionError::External(Box::new(error)))));
        }
        let polled = this.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(batch))) => handle.add_batch(
                batch.num_rows() as u64,
                batch.get_array_memory_size() as u64,
            ),
            Poll::Ready(Some(Err(e))) => {
                let error = QueryError::from(clone_error(e));
                if let Some(handle) = this.handle.take() {
                    handle.finish(Some(&error));
                }
            }
            Poll::Ready(None) => {
                if let Some(handle) = this.handle.take() {
                    handle.finish(None);
                }
            }
            Poll::Pending => {}
        }
        polled
    }
}

/// The error as its class needs it (DataFusion errors do not clone).
fn clone_error(e: &DataFusionError) -> DataFusionError {
    match e {
        DataFusionError::External(inner) => match inner.downcast_ref::<QueryError>() {
            Some(q) => DataFusionError::External(Box::new(q.clone())),
            None => DataFusionError::Execution(e.to_string()),
        },
        other => DataFusionError::Execution(other.to_string()),
    }
}

impl RecordBatchStream for Tracked {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use futures::StreamExt;

    use super::*;
    use crate::runtime::registry::{QueryRegistry, QueryStart, QueryState};

    fn endless() -> SendableRecordBatchStream {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])
                .unwrap();
        let rows = futures::stream::repeat_with(move || Ok(batch.clone()));
        Box::pin(RecordBatchStreamAdapter::new(schema, rows))
    }

    #[tokio::test]
    async fn a_killed_stream_ends_with_57014_and_is_recorded() {
        let registry = QueryRegistry::default();
        let handle = registry.register(QueryStart {
            user: "a".into(),
            ..QueryStart::default()
        });
        let id = handle.id().to_owned();
        let mut stream = Tracked::new(endless(), handle);
        assert!(stream.next().await.unwrap().is_ok());
        registry.cancel(&id, "a", false).unwrap();
        let error = stream.next().await.unwrap().unwrap_err();
        assert_eq!(QueryError::from(error).sqlstate(), "57014");
        assert!(stream.next().await.is_none());
        let info = &registry.queries(None)[0];
        assert_eq!((info.state, info.rows), (QueryState::Cancelled, 2));
    }

    #[tokio::test]
    async fn work_before_the_first_row_stops_too() {
        let registry = QueryRegistry::default();
        let handle = registry.register(QueryStart::default());
        registry.cancel(handle.id(), "", true).unwrap();
        let result = run_until_stopped(&handle, std::future::pending::<QueryResult<()>>()).await;
        assert_eq!(result.unwrap_err().sqlstate(), "57014");
    }
}
