//! The rule on real Parquet files, planned and run by DataFusion.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::execution::SessionStateBuilder;
use datafusion::physical_plan::{collect, displayable, ExecutionPlan};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

use super::FilterProbeRows;

/// `big` (a Parquet file of 200000 rows in one row group: `k` 0..1000,
/// 200 rows each, and `v = k % 10`) and `small` (the given keys, in
/// memory), one partition so that nothing sits between a table's `WHERE`
/// and its scan.
async fn context(dir: &std::path::Path, small_keys: Vec<i64>) -> SessionContext {
    context_with(
        dir,
        small_keys,
        SessionConfig::new().with_target_partitions(1),
    )
    .await
}

async fn context_with(
    dir: &std::path::Path,
    small_keys: Vec<i64>,
    config: SessionConfig,
) -> SessionContext {
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(FilterProbeRows))
        .build();
    let ctx = SessionContext::new_with_state(state);
    let path = dir.join("big.parquet");
    let path = path.to_str().unwrap();
    ctx.sql("SELECT value % 1000 AS k, value % 10 AS v FROM range(0, 200000)")
        .await
        .unwrap()
        .write_parquet(
            path,
            DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await
        .unwrap();
    ctx.register_parquet("big", path, ParquetReadOptions::default())
        .await
        .unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
    let keys = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(small_keys))]).unwrap();
    ctx.register_batch("small", keys).unwrap();
    ctx
}

/// Counts per key of `big` where `v > 0`, joined to `small`: the
/// aggregate sits between the scan and the join.
const QUERY: &str = "SELECT t.k, t.c FROM small s \
    JOIN (SELECT k, count(*) AS c FROM big WHERE v > 0 GROUP BY k) t ON t.k = s.k";

async fn run(ctx: &SessionContext, sql: &str) -> (Arc<dyn ExecutionPlan>, usize) {
    let plan = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let batches = collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap();
    (plan, batches.iter().map(RecordBatch::num_rows).sum())
}

/// The plan's operators, each above its input.
fn operators(plan: &Arc<dyn ExecutionPlan>) -> Vec<Arc<dyn ExecutionPlan>> {
    let mut all = vec![Arc::clone(plan)];
    for child in plan.children() {
        all.extend(operators(child));
    }
    all
}

/// An operator's line in the plan, e.g. `FilterExec: v@1 > 0`.
fn line(node: &Arc<dyn ExecutionPlan>) -> String {
    displayable(node.as_ref()).one_line().to_string()
}

fn output_rows(node: &Arc<dyn ExecutionPlan>) -> usize {
    node.metrics()
        .and_then(|m| m.output_rows())
        .unwrap_or_default()
}

/// The filter's plan line says it let through unevaluated all of its
/// `rows` but its first sample (and the batch that completed it).
fn assert_not_evaluated_after_sample(line: &str, rows: u64) {
    let skipped: u64 = line
        .split("(not evaluated on ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        skipped >= rows - super::adaptive::SAMPLE_ROWS - 8192,
        "{line}"
    );
}

#[tokio::test]
async fn the_keys_filter_the_rows_that_pass_the_tables_where() {
    let dir = tempfile::tempdir().unwrap();
    // Keys 1..=5 have v > 0; 10 and 20 do not.
    let ctx = context(dir.path(), vec![1, 2, 3, 4, 5, 10, 20]).await;
    let (plan, rows) = run(&ctx, QUERY).await;
    assert_eq!(rows, 5);
    let ops = operators(&plan);
    let lines: Vec<String> = ops.iter().map(line).collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("FilterExec: v@1 > 0"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    // Above the WHERE, on the 180000 rows it keeps: the 200 rows of each
    // of the five keys pass.
    assert!(
        lines[at - 1].starts_with("FilterExec: DynamicFilter"),
        "{lines:#?}"
    );
    assert_eq!(output_rows(&ops[at - 1]), 1000, "{lines:#?}");
    assert_eq!(output_rows(&ops[at]), 180_000, "{lines:#?}");
    assert!(lines[at + 1].starts_with("DataSourceExec"), "{lines:#?}");
}

#[tokio::test]
async fn a_filter_that_keeps_nearly_every_row_stops_being_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    // Every key of `big` is built: the filter drops nothing.
    let ctx = context(dir.path(), (0..1000).collect()).await;
    let (plan, rows) = run(&ctx, QUERY).await;
    assert_eq!(rows, 900);
    let ops = operators(&plan);
    let filter = ops
        .iter()
        .find(|op| line(op).starts_with("FilterExec: DynamicFilter"))
        .unwrap_or_else(|| panic!("{:#?}", ops.iter().map(line).collect::<Vec<_>>()));
    let text = line(filter);
    // Sampled, then let through: most rows are not evaluated.
    assert_not_evaluated_after_sample(&text, 180_000);
    assert_eq!(output_rows(filter), 180_000, "{text}");
}

/// `small` (keys 1..=5, 10, 20) joins `big` directly (on k), and `tiny`
/// (the given `v` values) joins the result (on v): both joins' keys reach
/// big's scan.
async fn two_joins(dir: &std::path::Path, tiny_v: Vec<i64>) -> (Arc<dyn ExecutionPlan>, usize) {
    let ctx = context(dir, vec![1, 2, 3, 4, 5, 10, 20]).await;
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
    let tiny = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(tiny_v))]).unwrap();
    ctx.register_batch("tiny", tiny).unwrap();
    let sql = "SELECT b.k FROM tiny t JOIN \
               (SELECT b.k, b.v FROM small s JOIN big b ON b.k = s.k) b ON b.v = t.v";
    run(&ctx, sql).await
}

#[tokio::test]
async fn a_join_reading_the_scan_directly_filters_first() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, rows) = two_joins(dir.path(), vec![1]).await;
    // k = 1 (v = 1): 200 rows.
    assert_eq!(rows, 200);
    let ops = operators(&plan);
    let lines: Vec<String> = ops.iter().map(line).collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("FilterExec: DynamicFilter"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(lines[at + 1].starts_with("DataSourceExec"), "{lines:#?}");
    // The direct join's keys (k) first, then those from above (v).
    let (k, v) = (lines[at].find("k@"), lines[at].find("v@"));
    assert!(matches!((k, v), (Some(k), Some(v)) if k < v), "{lines:#?}");
    assert_eq!(output_rows(&ops[at]), 200, "{lines:#?}");
}

#[tokio::test]
async fn keys_from_above_that_add_nothing_to_the_direct_join_are_not_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    // Every `v`: the upper join's keys keep every row the direct join keeps.
    let (plan, rows) = two_joins(dir.path(), (0..10).collect()).await;
    // Seven keys of 200 rows, each `v` matched once.
    assert_eq!(rows, 1400);
    let ops = operators(&plan);
    let lines: Vec<String> = ops.iter().map(line).collect();
    let filter = lines
        .iter()
        .find(|l| l.starts_with("FilterExec: DynamicFilter"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    // Sampled, then let through: the direct join drops the rows itself.
    assert_not_evaluated_after_sample(filter, 200_000);
}

#[tokio::test]
async fn a_partitioned_joins_keys_filter_keeps_every_row_it_matches() {
    let dir = tempfile::tempdir().unwrap();
    // Two partitions and no single-partition shortcut: each partition of
    // the join builds its own keys, and the filter routes rows to them.
    let mut config = SessionConfig::new().with_target_partitions(2);
    let options = config.options_mut();
    options.optimizer.hash_join_single_partition_threshold = 0;
    options.optimizer.hash_join_single_partition_threshold_rows = 0;
    let ctx = context_with(dir.path(), vec![1, 2, 3, 4, 5, 10, 20, 999], config).await;
    let sql = format!("SELECT count(*), sum(c) FROM ({QUERY})");
    let (plan, _) = run(&ctx, &sql).await;
    let lines: Vec<String> = operators(&plan).iter().map(line).collect();
    assert!(
        lines.iter().any(|l| l.contains("mode=Partitioned")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("FilterExec: DynamicFilter") && l.contains("hash_repartition")),
        "{lines:#?}"
    );
    // Keys 1..=5 and 999 have v > 0: 6 groups of 200 rows.
    let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(text.contains("| 6        | 1200     |"), "{text}");
}
