//! Quality rules' results: each run of a product's SQL assertions
//! (`CALL system.check_product('name')`) is kept here, the latest per rule,
//! and shown in `system.quality_results` to the sessions that may read the
//! product.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::Result;

use super::live::LiveProducts;
use super::tables::Visible;
use crate::runtime::table::{timestamp, RowSource, SnapshotTable};

/// One run of one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityResult {
    pub product: String,
    pub rule: String,
    /// What the query returned (`None` when it failed or returned nothing).
    pub value: Option<i64>,
    pub must_be: i64,
    pub checked_at: DateTime<Utc>,
    /// Who ran the check (its result is what their view of the data shows).
    pub checked_by: String,
    pub error: Option<String>,
}

impl QualityResult {
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.value == Some(self.must_be)
    }
}

/// The latest result of every rule that has run.
#[derive(Debug, Default)]
pub struct QualityResults {
    latest: RwLock<BTreeMap<(String, String), QualityResult>>,
}

impl QualityResults {
    pub fn record(&self, result: QualityResult) {
        self.latest
            .write()
            .expect("quality results lock")
            .insert((result.product.clone(), result.rule.clone()), result);
    }

    pub fn all(&self) -> Vec<QualityResult> {
        self.latest
            .read()
            .expect("quality results lock")
            .values()
            .cloned()
            .collect()
    }
}

fn schema() -> SchemaRef {
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        text("product", false),
        text("rule", false),
        Field::new("value", DataType::Int64, true),
        Field::new("must_be", DataType::Int64, false),
        Field::new("passed", DataType::Boolean, false),
        timestamp("checked_at", false),
        text("checked_by", false),
        text("error", true),
    ]))
}

fn batch(rows: &[QualityResult]) -> Result<RecordBatch> {
    let text = |f: &dyn Fn(&QualityResult) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let columns = vec![
        text(&|r| Some(r.product.clone())),
        text(&|r| Some(r.rule.clone())),
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.value).collect::<Vec<_>>(),
        )) as ArrayRef,
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.must_be).collect::<Vec<_>>(),
        )),
        Arc::new(BooleanArray::from(
            rows.iter().map(QualityResult::passed).collect::<Vec<_>>(),
        )),
        Arc::new(
            TimestampMicrosecondArray::from(
                rows.iter()
                    .map(|r| r.checked_at.timestamp_micros())
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ),
        text(&|r| Some(r.checked_by.clone())),
        text(&|r| r.error.clone()),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// `system.quality_results` for one session: the results of the products
/// it may discover.
pub(crate) fn quality_table(
    results: Arc<QualityResults>,
    products: Arc<LiveProducts>,
    visible: Visible,
) -> SnapshotTable {
    let rows: RowSource = Arc::new(move || {
        let shown: Vec<String> = products
            .current()
            .visible(visible.as_ref())
            .iter()
            .map(|p| p.product.name().to_owned())
            .collect();
        let rows: Vec<QualityResult> = results
            .all()
            .into_iter()
            .filter(|r| shown.contains(&r.product))
            .collect();
        batch(&rows)
    });
    SnapshotTable::new(schema(), rows)
}
