//! `system.freshness`: each product table the session may read, how fresh
//! it is (measured from the source when the table is read) and whether
//! that is within its product's SLO.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::freshness::{Freshness, Measurement};
use super::tables::Visible;
use crate::runtime::table::timestamp;

fn schema() -> SchemaRef {
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        text("product", false),
        text("table_name", false),
        timestamp("last_modified", true),
        Field::new("age_seconds", DataType::Float64, true),
        text("freshness_slo", true),
        Field::new("within_slo", DataType::Boolean, true),
        text("measured_by", false),
        timestamp("measured_at", false),
        text("error", true),
    ]))
}

/// `system.freshness` for one session.
pub(crate) struct FreshnessTable {
    freshness: Arc<Freshness>,
    visible: Visible,
}

impl FreshnessTable {
    pub(crate) fn new(freshness: Arc<Freshness>, visible: Visible) -> Self {
        Self { freshness, visible }
    }
}

impl std::fmt::Debug for FreshnessTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FreshnessTable")
    }
}

fn batch(rows: &[Arc<Measurement>]) -> Result<RecordBatch> {
    let text = |f: &dyn Fn(&Measurement) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(
            rows.iter().map(|m| f(m)).collect::<Vec<_>>(),
        ))
    };
    let time = |f: &dyn Fn(&Measurement) -> Option<i64>| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from(rows.iter().map(|m| f(m)).collect::<Vec<_>>())
                .with_timezone("UTC"),
        )
    };
    let columns = vec![
        text(&|m| Some(m.product.clone())),
        text(&|m| Some(m.table.to_string())),
        time(&|m| m.last_modified.map(|t| t.timestamp_micros())),
        Arc::new(Float64Array::from(
            rows.iter()
                .map(|m| m.age().map(|a| a.as_secs_f64()))
                .collect::<Vec<_>>(),
        )) as ArrayRef,
        text(&|m| m.slo_text.clone()),
        Arc::new(BooleanArray::from(
            rows.iter().map(|m| m.within_slo()).collect::<Vec<_>>(),
        )),
        text(&|m| Some(m.measured_by.clone())),
        time(&|m| Some(m.measured_at.timestamp_micros())),
        text(&|m| m.error.clone()),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

#[async_trait]
impl TableProvider for FreshnessTable {
    fn schema(&self) -> SchemaRef {
        schema()
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
        let visible = self.visible.clone();
        let rows = self.freshness.measure_all(|t| visible(t)).await;
        MemorySourceConfig::try_new_exec(&[vec![batch(&rows)?]], schema(), projection.cloned())
            .map(|e| e as Arc<dyn ExecutionPlan>)
    }
}
