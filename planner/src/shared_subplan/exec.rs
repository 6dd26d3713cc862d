//! Running a shared sub-plan once per query and replaying it to each place
//! that reads it.
//!
//! Every `SharedSubplanExec` of one id holds the same [`Shared`]. Within
//! one execution of the plan (one `TaskContext`; a kept physical plan may
//! run again, or twice at once), the first reader to poll runs all the
//! input's partitions and keeps their batches; the others wait and replay
//! them (readers may run one after the other: DataFusion runs a scalar
//! sub-query to its end before the query that uses it). The batches are
//! dropped when every partition of every reader planned has been read, or
//! at the latest when the plan runs again or is dropped after its
//! execution ended.
//!
//! What is kept is charged to the query's memory pool and bounded by
//! [`KEEP_LIMIT`]; a result that does not fit is not kept and every reader
//! runs its own copy of the sub-plan, streaming as without sharing.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::OnceCell;

/// The most bytes one shared sub-plan keeps; above it each reader computes
/// its own copy (see the module docs).
pub(crate) const KEEP_LIMIT: usize = 128 * 1024 * 1024;

/// What the readers of one id share: the kept result of each execution
/// that is still being read.
#[derive(Debug)]
pub(crate) struct Shared {
    runs: Mutex<Vec<Run>>,
    /// Bytes kept at most ([`KEEP_LIMIT`] but in tests).
    limit: usize,
    /// How many places read it (counted as they are planned).
    readers: AtomicUsize,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            runs: Mutex::default(),
            limit: KEEP_LIMIT,
            readers: AtomicUsize::new(0),
        }
    }
}

#[derive(Debug)]
struct Run {
    task: Weak<TaskContext>,
    result: Arc<OnceCell<Outcome>>,
    /// Reader partitions of this execution not read to their end yet.
    unread: usize,
}

/// The result of computing the sub-plan for one execution.
#[derive(Debug)]
enum Outcome {
    Kept {
        partitioning: Partitioning,
        batches: Vec<Vec<RecordBatch>>,
        _reservation: MemoryReservation,
    },
    /// Too large to keep: each reader runs its own input.
    TooLarge,
    Failed(Arc<DataFusionError>),
}

impl Shared {
    /// A place that reads it was planned.
    pub(crate) fn add_reader(&self) {
        self.readers.fetch_add(1, Ordering::Relaxed);
    }

    /// The result cell of the execution `task` belongs to, made when this
    /// is its first reader (or when every reader has read it already).
    fn cell_for(&self, task: &Arc<TaskContext>, partitions: usize) -> Arc<OnceCell<Outcome>> {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.retain(|run| run.task.strong_count() > 0);
        let this = Arc::downgrade(task);
        if let Some(run) = runs.iter().find(|run| Weak::ptr_eq(&run.task, &this)) {
            return run.result.clone();
        }
        let result = Arc::new(OnceCell::new());
        let readers = self.readers.load(Ordering::Relaxed).max(1);
        runs.push(Run {
            task: this,
            result: result.clone(),
            unread: readers * partitions,
        });
        result
    }

    /// One reader partition of the execution `task` belongs to ended.
    fn read(&self, task: &Weak<TaskContext>) {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = runs.iter().position(|run| Weak::ptr_eq(&run.task, task)) {
            runs[at].unread = runs[at].unread.saturating_sub(1);
            if runs[at].unread == 0 {
                runs.swap_remove(at);
            }
        }
    }
}

/// Tells [`Shared`] a reader partition ended when its stream is dropped.
struct Reading {
    shared: Arc<Shared>,
    task: Weak<TaskContext>,
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.shared.read(&self.task);
    }
}

/// One place that reads a shared sub-plan; its input is that place's own
/// copy of the sub-plan (equal to the others', used when the result is not
/// kept).
#[derive(Debug)]
pub(crate) struct SharedSubplanExec {
    id: usize,
    input: Arc<dyn ExecutionPlan>,
    shared: Arc<Shared>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl SharedSubplanExec {
    pub(crate) fn new(id: usize, input: Arc<dyn ExecutionPlan>, shared: Arc<Shared>) -> Self {
        let from = input.properties();
        // No ordering is promised: a sort pushed into one reader's copy
        // would not be in the batches another reader's copy kept.
        let properties = PlanProperties::new(
            EquivalenceProperties::new(input.schema()),
            from.partitioning.clone(),
            from.emission_type,
            from.boundedness,
        );
        Self {
            id,
            input,
            shared,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for SharedSubplanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedSubplanExec: id={}", self.id)
    }
}

impl ExecutionPlan for SharedSubplanExec {
    fn name(&self) -> &str {
        "SharedSubplanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [input] = <[_; 1]>::try_from(children)
            .map_err(|_| DataFusionError::Internal("SharedSubplanExec takes one input".into()))?;
        Ok(Arc::new(Self::new(self.id, input, self.shared.clone())))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let partitions = self.properties.partitioning.partition_count();
        let cell = self.shared.cell_for(&context, partitions);
        let reading = Reading {
            shared: self.shared.clone(),
            task: Arc::downgrade(&context),
        };
        let input = self.input.clone();
        let id = self.id;
        let limit = self.shared.limit;
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let schema = self.schema();
        let replay = async move {
            let outcome = cell
                .get_or_init(|| compute(id, input.clone(), context.clone(), limit))
                .await;
            let stream = match outcome {
                Outcome::Kept {
                    partitioning,
                    batches,
                    ..
                } if same_split(partitioning, &input.properties().partitioning) => {
                    let batches = batches.get(partition).cloned().unwrap_or_default();
                    futures::stream::iter(batches)
                        .map(move |batch| {
                            baseline.record_output(batch.num_rows());
                            Ok(batch)
                        })
                        .boxed()
                }
                Outcome::Failed(error) => {
                    return Err(DataFusionError::Shared(error.clone()));
                }
                // Too large, or this copy is partitioned otherwise than the
                // one that ran: read this copy.
                _ => input.execute(partition, context)?.boxed(),
            };
            Ok::<_, DataFusionError>(stream)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::once(replay)
                .try_flatten()
                .map(move |batch| {
                    let _reading = &reading;
                    batch
                }),
        )))
    }
}

/// Whether partition `i` of a copy split as `b` may be read from the
/// batches of a copy split as `a`: same count, and the same keys when
/// either promises where rows go (hash or range).
fn same_split(a: &Partitioning, b: &Partitioning) -> bool {
    let promises = |p: &Partitioning| matches!(p, Partitioning::Hash(..) | Partitioning::Range(..));
    a.partition_count() == b.partition_count() && (a == b || (!promises(a) && !promises(b)))
}

/// Runs every partition of `input` at once and keeps the batches, unless
/// they outgrow `limit` or the query's memory pool.
async fn compute(
    id: usize,
    input: Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
    limit: usize,
) -> Outcome {
    let reservation =
        MemoryConsumer::new(format!("SharedSubplanExec[{id}]")).register(context.memory_pool());
    let reservation = Arc::new(reservation);
    let count = input.properties().partitioning.partition_count();
    let mut tasks = tokio::task::JoinSet::new();
    for partition in 0..count {
        let stream = match input.execute(partition, context.clone()) {
            Ok(stream) => stream,
            Err(error) => return Outcome::Failed(Arc::new(error)),
        };
        let reservation = reservation.clone();
        tasks.spawn(async move { keep(partition, stream, &reservation, limit).await });
    }
    let mut batches = vec![Vec::new(); count];
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(Some((partition, kept)))) => batches[partition] = kept,
            // Dropping `tasks` stops the other partitions.
            Ok(Ok(None)) => return Outcome::TooLarge,
            Ok(Err(error)) => return Outcome::Failed(Arc::new(error)),
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(join) => {
                return Outcome::Failed(Arc::new(DataFusionError::External(Box::new(join))));
            }
        }
    }
    let reservation = Arc::try_unwrap(reservation).unwrap_or_else(|shared| shared.new_empty());
    Outcome::Kept {
        partitioning: input.properties().partitioning.clone(),
        batches,
        _reservation: reservation,
    }
}

/// The batches of one partition, or `None` when the result does not fit.
async fn keep(
    partition: usize,
    mut stream: SendableRecordBatchStream,
    reservation: &MemoryReservation,
    limit: usize,
) -> Result<Option<(usize, Vec<RecordBatch>)>> {
    let mut kept = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let bytes = batch.get_array_memory_size();
        if reservation.size() + bytes > limit || reservation.try_grow(bytes).is_err() {
            return Ok(None);
        }
        kept.push(batch);
    }
    Ok(Some((partition, kept)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::physical_plan::collect;

    /// Its input, counting how often a partition is run.
    #[derive(Debug)]
    struct Counted {
        input: Arc<dyn ExecutionPlan>,
        runs: Arc<AtomicUsize>,
    }

    impl DisplayAs for Counted {
        fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "Counted")
        }
    }

    impl ExecutionPlan for Counted {
        fn name(&self) -> &str {
            "Counted"
        }
        fn properties(&self) -> &Arc<PlanProperties> {
            self.input.properties()
        }
        fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
            vec![]
        }
        fn apply_expressions(
            &self,
            _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
        ) -> Result<TreeNodeRecursion> {
            Ok(TreeNodeRecursion::Continue)
        }
        fn with_new_children(
            self: Arc<Self>,
            _children: Vec<Arc<dyn ExecutionPlan>>,
        ) -> Result<Arc<dyn ExecutionPlan>> {
            Ok(self)
        }
        fn execute(&self, p: usize, ctx: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            self.input.execute(p, ctx)
        }
    }

    /// Two readers of one shared input of two partitions (3 + 2 rows).
    fn readers(limit: usize) -> (Vec<Arc<dyn ExecutionPlan>>, Arc<AtomicUsize>) {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch = |values: Vec<i64>| {
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(values))]).unwrap()
        };
        let input = MemorySourceConfig::try_new_exec(
            &[vec![batch(vec![1, 2, 3])], vec![batch(vec![4, 5])]],
            schema.clone(),
            None,
        )
        .unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            limit,
            ..Shared::default()
        });
        shared.add_reader();
        shared.add_reader();
        let reader = |shared: &Arc<Shared>| -> Arc<dyn ExecutionPlan> {
            let counted = Arc::new(Counted {
                input: input.clone(),
                runs: runs.clone(),
            });
            Arc::new(SharedSubplanExec::new(7, counted, shared.clone()))
        };
        (vec![reader(&shared), reader(&shared)], runs)
    }

    async fn rows_read(readers: &[Arc<dyn ExecutionPlan>], task: &Arc<TaskContext>) -> Vec<usize> {
        let mut rows = Vec::new();
        for reader in readers {
            let batches = collect(reader.clone(), task.clone()).await.unwrap();
            rows.push(batches.iter().map(|b| b.num_rows()).sum());
        }
        rows
    }

    #[tokio::test]
    async fn two_readers_of_one_execution_run_the_input_once() {
        let (readers, runs) = readers(KEEP_LIMIT);
        let task = Arc::new(TaskContext::default());
        // Both readers' streams are open at once, as in one plan.
        let both =
            futures::future::join_all(readers.iter().map(|r| collect(r.clone(), task.clone())))
                .await;
        for batches in both {
            assert_eq!(
                batches.unwrap().iter().map(|b| b.num_rows()).sum::<usize>(),
                5
            );
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2, "two partitions, run once");
        // Another execution of the same plan computes it again.
        let again = Arc::new(TaskContext::default());
        assert_eq!(rows_read(&readers[..1], &again).await, [5]);
        assert_eq!(runs.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_result_over_the_limit_is_read_from_each_copy() {
        let (readers, runs) = readers(0);
        let task = Arc::new(TaskContext::default());
        assert_eq!(rows_read(&readers, &task).await, [5, 5]);
        // The attempt to keep it, then each reader's own two partitions.
        assert!(runs.load(Ordering::SeqCst) >= 4);
    }
}
