//! Keeping a result as it streams to its client.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::Result;
use datafusion::physical_plan::{RecordBatchStream, SendableRecordBatchStream};
use futures::{Stream, StreamExt};
use meshgate_policy::Policy;

use super::{Entry, Probe, ResultCache};

/// A run whose result is to be kept once it has streamed out whole.
pub(crate) struct Filling {
    cache: Arc<ResultCache>,
    probe: Probe,
    policy: Option<Arc<Policy>>,
    started: Instant,
}

impl Filling {
    /// Counts the miss; `probe`'s change marks were read before the run.
    pub(crate) fn new(cache: Arc<ResultCache>, probe: Probe, policy: Option<Arc<Policy>>) -> Self {
        cache.missed();
        Self {
            cache,
            probe,
            policy,
            started: Instant::now(),
        }
    }

    /// `stream`, unchanged; at its end (not on an error, not when the
    /// client stops early, not past `max_entry_bytes`) the result is kept.
    pub(crate) fn wrap(
        self,
        stream: SendableRecordBatchStream,
        columns: Vec<String>,
    ) -> SendableRecordBatchStream {
        Box::pin(FillStream {
            schema: stream.schema(),
            inner: stream,
            kept: Some(Vec::new()),
            bytes: 0,
            rows: 0,
            filling: Some((self, columns)),
        })
    }
}

struct FillStream {
    inner: SendableRecordBatchStream,
    schema: SchemaRef,
    /// The batches so far; `None` once the result cannot be kept.
    kept: Option<Vec<RecordBatch>>,
    bytes: usize,
    rows: usize,
    filling: Option<(Filling, Vec<String>)>,
}

impl FillStream {
    fn keep(&mut self) {
        let (Some(batches), Some((filling, columns))) = (self.kept.take(), self.filling.take())
        else {
            return;
        };
        let expires = filling.probe.ttl().map(|ttl| filling.started + ttl);
        let entry = Entry {
            schema: self.schema.clone(),
            batches,
            bytes: self.bytes,
            rows: self.rows,
            stamps: filling.probe.stamps().to_vec(),
            made: filling.started,
            expires,
            policy: filling.policy,
            columns,
        };
        let key = filling.probe.key().to_owned();
        filling.cache.store(key, entry);
    }
}

impl Stream for FillStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        match &polled {
            Poll::Ready(Some(Ok(batch))) => {
                let limit = self
                    .filling
                    .as_ref()
                    .map_or(0, |(f, _)| f.cache.settings().max_entry_bytes);
                self.bytes += batch.get_array_memory_size();
                self.rows += batch.num_rows();
                if self.bytes as u64 > limit {
                    self.kept = None;
                } else if let Some(kept) = &mut self.kept {
                    kept.push(batch.clone());
                }
            }
            Poll::Ready(Some(Err(_))) => self.kept = None,
            Poll::Ready(None) => self.keep(),
            Poll::Pending => {}
        }
        polled
    }
}

impl RecordBatchStream for FillStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}
