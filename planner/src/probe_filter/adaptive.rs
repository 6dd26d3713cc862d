//! A run-time filter that stops evaluating itself when it drops too little.
//!
//! A join's key filter pays for itself only when it drops rows: evaluating
//! it costs about what the join's own probe costs, so one that keeps nearly
//! every row (TPC-H q09: every supplier is built, 100 % of 6M `lineitem`
//! rows pass) only adds that cost. How many rows it keeps is known only
//! while the query runs, so [`AdaptiveFilter`] measures it: it evaluates
//! the filter on the first [`SAMPLE_ROWS`] rows after each change of the
//! filter (the join filling it in), and when more than [`KEEP_LIMIT`] of
//! them pass it lets the next [`RECHECK_ROWS`] through unevaluated, then
//! samples again (the rows of a file may be ordered so that the first
//! ones are not like the rest).
//!
//! Letting a row through is always correct: the filter only ever holds
//! conditions the join applies again, so it may keep a row the join drops,
//! never the other way round.
//!
//! At a scan a join reads directly, that join's own keys (the *direct*
//! part) drop nothing the join would not drop itself as it probes, usually
//! more cheaply (a dense key's array map against the filter's hash
//! lookup: TPC-H q09, 51 against 234 ms on 6M rows). There the filter is
//! [`AdaptiveFilter::split`]: the sample evaluates both parts on every
//! row, and the filter is let through when the other joins' keys (the
//! *rest*) keep more than [`KEEP_LIMIT`] of the rows the direct part
//! keeps; otherwise the more selective part goes first, so that `AND`
//! evaluates the other only on the rows it keeps.
//!
//! A partitioned join fills its filter in as `CASE hash_repartition(k) % n
//! WHEN 0 THEN f_0 WHEN 1 THEN f_1 ... ELSE false END`: each row's routing
//! hash, then each branch on its share of the rows (TPC-H q17: 197 ms of
//! compute on 6M rows). Partition i's keys are only keys routed to i, so a
//! key routed elsewhere fails `f_i` anyway: the filter evaluates the same
//! condition as `f_0 OR f_1 OR ...`, without the hash (58 ms there; see
//! [`unrouted`]).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray};
use datafusion::arrow::compute::{and, prep_null_mask_filter};
use datafusion::arrow::datatypes::{DataType, FieldRef, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::expressions::{BinaryExpr, CaseExpr, Literal};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr_common::physical_expr::{
    snapshot_generation, snapshot_physical_expr,
};
use datafusion::physical_plan::joins::HashExpr;

/// Rows evaluated after each change of the filter before it is judged.
pub(crate) const SAMPLE_ROWS: u64 = 64 * 1024;
/// Rows let through unevaluated before the filter is sampled again.
pub(crate) const RECHECK_ROWS: u64 = 4 * 1024 * 1024;
/// The share of sampled rows (in tenths) above which evaluating the
/// filter costs more than the rows it drops save: 8 of 10 kept.
const KEEP_LIMIT: u64 = 8;

/// A run-time filter evaluated only while it drops enough rows (see the
/// module docs). It shows in plans as the filter it wraps, followed by the
/// rows it let through unevaluated once there are any.
#[derive(Debug)]
pub(crate) struct AdaptiveFilter {
    /// The filter (`direct AND rest` when split).
    inner: Arc<dyn PhysicalExpr>,
    split: Option<Split>,
    state: Arc<Selectivity>,
    /// The form last evaluated and the filter generation it is for.
    current: std::sync::Mutex<Option<(u64, Arc<dyn PhysicalExpr>)>>,
}

/// The two parts of a filter at a scan a join reads directly.
#[derive(Debug)]
struct Split {
    /// The keys of the join reading the scan.
    direct: Arc<dyn PhysicalExpr>,
    /// The keys of joins further up.
    rest: Arc<dyn PhysicalExpr>,
    /// `rest AND direct`, evaluated when the rest keeps fewer rows.
    rest_first: Arc<dyn PhysicalExpr>,
}

/// What the filter has seen, shared by the partitions that evaluate it.
/// Updated without locks: two partitions judging at once may each reset
/// or decide, which only moves when sampling ends by a batch or two.
#[derive(Debug, Default)]
struct Selectivity {
    /// The wrapped filter's generation the counts below are for.
    generation: AtomicU64,
    evaluated: AtomicU64,
    kept: AtomicU64,
    /// Of the rows evaluated, those a split filter's direct part keeps,
    /// and those its rest keeps.
    direct_kept: AtomicU64,
    rest_kept: AtomicU64,
    /// A split filter evaluates its rest first.
    rest_first: AtomicBool,
    /// Rows let through unevaluated since the filter was last judged.
    passed: AtomicU64,
    /// Rows let through unevaluated in all.
    passed_total: AtomicU64,
    passing: AtomicBool,
}

impl AdaptiveFilter {
    pub(crate) fn new(inner: Arc<dyn PhysicalExpr>) -> Self {
        Self {
            inner,
            split: None,
            state: Arc::default(),
            current: Default::default(),
        }
    }

    /// `direct AND rest`, judged by what `rest` adds to `direct` (see the
    /// module docs).
    pub(crate) fn split(direct: Arc<dyn PhysicalExpr>, rest: Arc<dyn PhysicalExpr>) -> Self {
        let both =
            |l: &Arc<dyn PhysicalExpr>, r: &Arc<dyn PhysicalExpr>| -> Arc<dyn PhysicalExpr> {
                Arc::new(BinaryExpr::new(Arc::clone(l), Operator::And, Arc::clone(r)))
            };
        Self {
            inner: both(&direct, &rest),
            split: Some(Split {
                rest_first: both(&rest, &direct),
                direct,
                rest,
            }),
            state: Arc::default(),
            current: Default::default(),
        }
    }

    /// Rows let through without evaluating the filter, so far.
    pub(crate) fn rows_not_evaluated(&self) -> u64 {
        self.state.passed_total.load(Ordering::Relaxed)
    }

    /// Whether a split filter now evaluates its rest before its direct part.
    #[cfg(test)]
    pub(crate) fn rest_first(&self) -> bool {
        self.state.rest_first.load(Ordering::Relaxed)
    }

    /// `filter` as the join has filled it in now, partitions unrouted;
    /// made again when the join changes it. (`filter` is the wrapped filter
    /// or, split, its parts in the other order: the same condition.)
    fn current_form(&self, filter: &Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
        let generation = snapshot_generation(filter);
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((made_for, form)) = current.as_ref() {
            if *made_for == generation {
                return Ok(Arc::clone(form));
            }
        }
        let form = unrouted(snapshot_physical_expr(Arc::clone(filter))?)?;
        *current = Some((generation, Arc::clone(&form)));
        Ok(form)
    }

    /// Evaluates a split filter's parts apart, counting what each keeps.
    fn sample_split(&self, split: &Split, batch: &RecordBatch) -> Result<ColumnarValue> {
        let rows = batch.num_rows();
        let kept = |e: &Arc<dyn PhysicalExpr>| -> Result<BooleanArray> {
            let array = e.evaluate(batch)?.into_array(rows)?;
            let array = array.as_boolean();
            // NULL drops a row, as `false` does.
            Ok(match array.null_count() {
                0 => array.clone(),
                _ => prep_null_mask_filter(array),
            })
        };
        let (direct, rest) = (kept(&split.direct)?, kept(&split.rest)?);
        let both = and(&direct, &rest)?;
        let counts = Counts {
            rows: rows as u64,
            kept: both.true_count() as u64,
            direct: direct.true_count() as u64,
            rest: rest.true_count() as u64,
        };
        self.state.record_split(counts);
        Ok(ColumnarValue::Array(Arc::new(both)))
    }
}

/// What a split filter's parts kept of a sampled batch.
struct Counts {
    rows: u64,
    kept: u64,
    direct: u64,
    rest: u64,
}

impl Selectivity {
    /// Starts measuring again when the filter has changed since the last
    /// batch (a join has filled it in, a top-k has tightened it).
    fn follow(&self, generation: u64) {
        if self.generation.swap(generation, Ordering::Relaxed) != generation {
            self.restart();
        }
    }

    /// Starts a new sample.
    fn restart(&self) {
        for count in [
            &self.evaluated,
            &self.kept,
            &self.direct_kept,
            &self.rest_kept,
        ] {
            count.store(0, Ordering::Relaxed);
        }
        self.passing.store(false, Ordering::Relaxed);
    }

    /// Whether the current sample is still being taken.
    fn sampling(&self) -> bool {
        self.evaluated.load(Ordering::Relaxed) < SAMPLE_ROWS
    }

    /// Whether a batch of `rows` goes through unevaluated.
    fn pass(&self, rows: u64) -> bool {
        if !self.passing.load(Ordering::Relaxed) {
            return false;
        }
        self.passed_total.fetch_add(rows, Ordering::Relaxed);
        if self.passed.fetch_add(rows, Ordering::Relaxed) + rows >= RECHECK_ROWS {
            self.restart();
        }
        true
    }

    /// Counts a split filter's sampled batch; once the sample is complete,
    /// stops evaluating if the rest adds too little to the direct part,
    /// else puts the more selective part first.
    fn record_split(&self, counts: Counts) {
        let direct = self.direct_kept.fetch_add(counts.direct, Ordering::Relaxed) + counts.direct;
        let rest = self.rest_kept.fetch_add(counts.rest, Ordering::Relaxed) + counts.rest;
        let kept = self.kept.load(Ordering::Relaxed) + counts.kept;
        if self.evaluated.load(Ordering::Relaxed) + counts.rows >= SAMPLE_ROWS {
            self.rest_first.store(rest < direct, Ordering::Relaxed);
            if kept * 10 > direct * KEEP_LIMIT {
                self.passed.store(0, Ordering::Relaxed);
                self.passing.store(true, Ordering::Relaxed);
            }
        }
        self.record(counts.rows, counts.kept);
    }

    /// Counts an evaluated batch; once the sample is complete, stops
    /// evaluating if it kept too many rows.
    fn record(&self, rows: u64, kept: u64) {
        let evaluated = self.evaluated.fetch_add(rows, Ordering::Relaxed) + rows;
        let kept = self.kept.fetch_add(kept, Ordering::Relaxed) + kept;
        if evaluated >= SAMPLE_ROWS && kept * 10 > evaluated * KEEP_LIMIT {
            self.passed.store(0, Ordering::Relaxed);
            self.passing.store(true, Ordering::Relaxed);
        }
    }
}

/// `filter` with each partitioned join's `CASE hash_repartition(k) % n
/// WHEN i THEN f_i ... ELSE false END` written as `f_0 OR f_1 OR ...`
/// (see the module docs). A `CASE` whose `ELSE` is not `false` (a
/// partition the join could not report keeps every row) is left as it is.
fn unrouted(filter: Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
    filter
        .transform_up(|e| {
            let Some(case) = e.downcast_ref::<CaseExpr>() else {
                return Ok(Transformed::no(e));
            };
            let routed = case
                .expr()
                .and_then(|x| x.downcast_ref::<BinaryExpr>())
                .is_some_and(|b| {
                    *b.op() == Operator::Modulo
                        && b.left()
                            .downcast_ref::<HashExpr>()
                            .is_some_and(|h| h.description() == "hash_repartition")
                });
            let else_false = case.else_expr().is_some_and(|x| {
                x.downcast_ref::<Literal>()
                    .is_some_and(|l| l.value() == &ScalarValue::Boolean(Some(false)))
            });
            let mut branches = case
                .when_then_expr()
                .iter()
                .map(|(_, then)| Arc::clone(then));
            match (routed && else_false, branches.next()) {
                (true, Some(first)) => Ok(Transformed::yes(branches.fold(first, |any, then| {
                    Arc::new(BinaryExpr::new(any, Operator::Or, then)) as Arc<dyn PhysicalExpr>
                }))),
                _ => Ok(Transformed::no(e)),
            }
        })
        .map(|t| t.data)
}

/// How many of `rows` a filter's result keeps (NULL drops a row).
fn kept_rows(result: &ColumnarValue, rows: usize) -> usize {
    match result {
        ColumnarValue::Array(array) => array
            .as_any()
            .downcast_ref::<BooleanArray>()
            .map_or(rows, |b| b.true_count()),
        ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))) => rows,
        ColumnarValue::Scalar(_) => 0,
    }
}

impl PhysicalExpr for AdaptiveFilter {
    fn data_type(&self, input_schema: &Schema) -> Result<DataType> {
        self.inner.data_type(input_schema)
    }

    fn nullable(&self, input_schema: &Schema) -> Result<bool> {
        self.inner.nullable(input_schema)
    }

    fn return_field(&self, input_schema: &Schema) -> Result<FieldRef> {
        self.inner.return_field(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let rows = batch.num_rows();
        self.state.follow(snapshot_generation(&self.inner));
        if self.state.pass(rows as u64) {
            return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))));
        }
        let inner = match &self.split {
            Some(split) if self.state.sampling() => return self.sample_split(split, batch),
            Some(split) if self.state.rest_first.load(Ordering::Relaxed) => &split.rest_first,
            _ => &self.inner,
        };
        let result = self.current_form(inner)?.evaluate(batch)?;
        self.state
            .record(rows as u64, kept_rows(&result, rows) as u64);
        Ok(result)
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.inner]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let (Some(inner), true) = (children.pop(), children.is_empty()) else {
            return datafusion::common::internal_err!("AdaptiveFilter takes one child");
        };
        // A split filter stays split while its new form is still `AND`.
        let parts = inner
            .downcast_ref::<BinaryExpr>()
            .filter(|b| self.split.is_some() && *b.op() == Operator::And)
            .map(|b| (Arc::clone(b.left()), Arc::clone(b.right())));
        Ok(Arc::new(match parts {
            Some((direct, rest)) => Self::split(direct, rest),
            None => Self::new(inner),
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt_sql(f)
    }
}

impl fmt::Display for AdaptiveFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)?;
        match self.rows_not_evaluated() {
            0 => Ok(()),
            n => write!(f, " (not evaluated on {n} rows)"),
        }
    }
}

impl PartialEq for AdaptiveFilter {
    fn eq(&self, other: &Self) -> bool {
        self.inner.as_ref() == other.inner.as_ref()
    }
}

impl Eq for AdaptiveFilter {}

impl Hash for AdaptiveFilter {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int32Array;
    use datafusion::arrow::datatypes::Field;
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{binary, col, lit, DynamicFilterPhysicalExpr};

    fn batch(values: impl IntoIterator<Item = i32>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int32, false)]));
        let values: Int32Array = values.into_iter().collect();
        RecordBatch::try_new(schema, vec![Arc::new(values)]).unwrap()
    }

    fn kept(filter: &AdaptiveFilter, b: &RecordBatch) -> usize {
        kept_rows(&filter.evaluate(b).unwrap(), b.num_rows())
    }

    /// `k < limit` as a dynamic filter, first `true` as a join leaves it
    /// until it has built.
    fn dynamic(schema: &Schema) -> Arc<DynamicFilterPhysicalExpr> {
        Arc::new(DynamicFilterPhysicalExpr::new(
            vec![col("k", schema).unwrap()],
            lit(true),
        ))
    }

    fn less_than(schema: &Schema, limit: i32) -> Arc<dyn PhysicalExpr> {
        binary(col("k", schema).unwrap(), Operator::Lt, lit(limit), schema).unwrap()
    }

    #[test]
    fn a_filter_that_keeps_most_rows_stops_being_evaluated_until_it_changes() {
        let b = batch(0..8192);
        let schema = b.schema();
        let join = dynamic(&schema);
        let filter = AdaptiveFilter::new(join.clone());
        // Built: keeps 8000 of every 8192 rows, 98 %.
        join.update(less_than(&schema, 8000)).unwrap();
        let sampled = (SAMPLE_ROWS / 8192) as usize;
        for _ in 0..sampled {
            assert_eq!(kept(&filter, &b), 8000);
        }
        assert_eq!(filter.rows_not_evaluated(), 0);
        // Judged: the next batches go through whole.
        assert_eq!(kept(&filter, &b), 8192);
        assert_eq!(filter.rows_not_evaluated(), 8192);
        assert!(filter.to_string().ends_with("(not evaluated on 8192 rows)"));
        // The filter changes (now drops most rows): evaluated again.
        join.update(less_than(&schema, 10)).unwrap();
        for _ in 0..2 * sampled {
            assert_eq!(kept(&filter, &b), 10);
        }
        assert_eq!(filter.rows_not_evaluated(), 8192);
    }

    #[test]
    fn a_filter_left_passing_is_sampled_again() {
        let b = batch(0..8192);
        let schema = b.schema();
        let filter = AdaptiveFilter::new(less_than(&schema, 8192));
        let batches = ((SAMPLE_ROWS + RECHECK_ROWS) / 8192) as usize;
        for _ in 0..batches {
            assert_eq!(kept(&filter, &b), 8192);
        }
        assert_eq!(filter.rows_not_evaluated(), RECHECK_ROWS);
        // The recheck samples (and counts nothing as passed) again.
        kept(&filter, &b);
        assert_eq!(filter.rows_not_evaluated(), RECHECK_ROWS);
    }

    fn evaluate_sample(filter: &AdaptiveFilter, b: &RecordBatch, expect: usize) {
        for _ in 0..(SAMPLE_ROWS / 8192) {
            assert_eq!(kept(filter, b), expect);
        }
    }

    #[test]
    fn a_split_filter_puts_its_more_selective_part_first() {
        let b = batch(0..8192);
        let schema = b.schema();
        // The direct join keeps 98 % of the rows, the rest 1 %.
        let filter = AdaptiveFilter::split(less_than(&schema, 8000), less_than(&schema, 100));
        evaluate_sample(&filter, &b, 100);
        assert!(filter.rest_first());
        assert_eq!(kept(&filter, &b), 100);
        assert_eq!(filter.rows_not_evaluated(), 0);
        // The other way round (the rest keeps 8142 rows, half of those the
        // direct part keeps): the direct part stays first.
        let at_least_50 =
            binary(col("k", &schema).unwrap(), Operator::GtEq, lit(50), &schema).unwrap();
        let filter = AdaptiveFilter::split(less_than(&schema, 100), at_least_50);
        evaluate_sample(&filter, &b, 50);
        assert!(!filter.rest_first());
        assert_eq!(kept(&filter, &b), 50);
    }

    #[test]
    fn a_split_filter_whose_rest_adds_little_stops_being_evaluated() {
        let b = batch(0..8192);
        let schema = b.schema();
        // The direct join keeps 100 rows, the rest keeps every one of them.
        let filter = AdaptiveFilter::split(less_than(&schema, 100), less_than(&schema, 8000));
        evaluate_sample(&filter, &b, 100);
        assert_eq!(kept(&filter, &b), 8192);
        assert_eq!(filter.rows_not_evaluated(), 8192);
        // Its parts survive a rewrite of its children.
        let filter = Arc::new(filter);
        let rewritten = Arc::clone(&filter)
            .with_new_children(vec![Arc::clone(&filter.inner)])
            .unwrap();
        let rewritten = rewritten.downcast_ref::<AdaptiveFilter>().unwrap();
        assert!(rewritten.split.is_some());
    }

    #[test]
    fn nulls_count_as_dropped() {
        let values = BooleanArray::from(vec![Some(true), None, Some(false)]);
        assert_eq!(kept_rows(&ColumnarValue::Array(Arc::new(values)), 3), 1);
        let null = ColumnarValue::Scalar(ScalarValue::Boolean(None));
        assert_eq!(kept_rows(&null, 3), 0);
    }

    /// `CASE hash_repartition(k) % 2 WHEN 0 THEN k < 3 WHEN 1 THEN k > 7
    /// ELSE <otherwise> END`, as a partitioned join fills its filter in.
    fn routed(schema: &Schema, otherwise: bool) -> Arc<dyn PhysicalExpr> {
        use datafusion::physical_plan::joins::SeededRandomState;
        let k = col("k", schema).unwrap();
        let hash: Arc<dyn PhysicalExpr> = Arc::new(HashExpr::new(
            vec![Arc::clone(&k)],
            SeededRandomState::with_seed(7),
            "hash_repartition".to_owned(),
        ));
        let modulo = binary(hash, Operator::Modulo, lit(2u64), schema).unwrap();
        let branch = |op, v: i32| binary(Arc::clone(&k), op, lit(v), schema).unwrap();
        Arc::new(
            CaseExpr::try_new(
                Some(modulo),
                vec![
                    (lit(0u64), branch(Operator::Lt, 3)),
                    (lit(1u64), branch(Operator::Gt, 7)),
                ],
                Some(lit(otherwise)),
            )
            .unwrap(),
        )
    }

    #[test]
    fn a_partitioned_joins_filter_is_evaluated_without_routing() {
        let b = batch(0..10);
        let filter = routed(&b.schema(), false);
        let unrouted = unrouted(Arc::clone(&filter)).unwrap();
        assert_eq!(unrouted.to_string(), "k@0 < 3 OR k@0 > 7");
        // Each key here satisfies at most one branch, and a key's routing
        // decides which branch it is asked: the CASE keeps the keys whose
        // branch is their own partition's, never one the OR drops.
        let by_case = filter.evaluate(&b).unwrap().into_array(10).unwrap();
        let by_or = unrouted.evaluate(&b).unwrap().into_array(10).unwrap();
        let (by_case, by_or) = (by_case.as_boolean(), by_or.as_boolean());
        for i in 0..10 {
            assert!(!by_case.value(i) || by_or.value(i), "row {i}");
        }
        assert_eq!(by_or.true_count(), 5);
    }

    #[test]
    fn a_filter_that_keeps_an_unreported_partitions_rows_is_left_routed() {
        let b = batch(0..10);
        let filter = routed(&b.schema(), true);
        let unrouted = unrouted(Arc::clone(&filter)).unwrap();
        assert_eq!(unrouted.to_string(), filter.to_string());
    }
}
