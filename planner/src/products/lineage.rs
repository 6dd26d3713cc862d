//! Read lineage: who read each data product, how often and through which
//! protocol, counted by this gateway process since it started (the audit
//! log keeps every read for good). `system.lineage` shows an admin every
//! row and anyone else their own reads of the products they may discover.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::live::LiveProducts;
use super::tables::Visible;
use crate::runtime::table::{timestamp, AdminCheck, RowSource, SnapshotTable};

#[derive(Debug, Clone)]
struct Reads {
    count: u64,
    last: DateTime<Utc>,
}

/// Reads per (product, user, protocol).
#[derive(Debug, Default)]
pub struct Lineage {
    reads: RwLock<BTreeMap<(String, String, String), Reads>>,
}

impl Lineage {
    /// `user` read `product` over `protocol` once more.
    pub fn record(&self, product: &str, user: &str, protocol: &str) {
        let mut reads = self.reads.write().expect("lineage lock");
        let entry = reads
            .entry((product.to_owned(), user.to_owned(), protocol.to_owned()))
            .or_insert(Reads {
                count: 0,
                last: Utc::now(),
            });
        entry.count += 1;
        entry.last = Utc::now();
    }

    fn rows(&self) -> Vec<((String, String, String), Reads)> {
        self.reads
            .read()
            .expect("lineage lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

fn schema() -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        text("product"),
        text("user"),
        text("protocol"),
        Field::new("reads", DataType::Int64, false),
        timestamp("last_read", false),
    ]))
}

/// `system.lineage` for a session of `user`.
pub(crate) fn lineage_table(
    lineage: Arc<Lineage>,
    products: Arc<LiveProducts>,
    visible: Visible,
    user: String,
    admin: AdminCheck,
) -> SnapshotTable {
    let rows: RowSource = Arc::new(move || {
        let all = admin();
        let shown: Vec<String> = products
            .current()
            .visible(visible.as_ref())
            .iter()
            .map(|p| p.product.name().to_owned())
            .collect();
        let rows: Vec<_> = lineage
            .rows()
            .into_iter()
            .filter(|((product, reader, _), _)| all || (reader == &user && shown.contains(product)))
            .collect();
        let text = |f: &dyn Fn(&(String, String, String)) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(k, _)| f(k)),
            ))
        };
        let columns = vec![
            text(&|k| &k.0),
            text(&|k| &k.1),
            text(&|k| &k.2),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|(_, r)| r.count as i64),
            )) as ArrayRef,
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    rows.iter().map(|(_, r)| r.last.timestamp_micros()),
                )
                .with_timezone("UTC"),
            ),
        ];
        Ok(RecordBatch::try_new(schema(), columns)?)
    });
    SnapshotTable::new(schema(), rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_counted_per_product_user_and_protocol() {
        let lineage = Lineage::default();
        lineage.record("members", "ann", "pgwire");
        lineage.record("members", "ann", "pgwire");
        lineage.record("members", "bob", "flight_sql");
        let rows = lineage.rows();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].1.count, 2);
    }
}
