//! What a prepared-statement handle carries, so that any replica sharing
//! the signing keys can run it: the kept entry's id (the fast path, on the
//! replica that prepared it), the statement and what it was planned under
//! (to prepare it again elsewhere), and, once bound with DoPut, the
//! parameter row (DoPut answers with the updated handle, as Flight SQL
//! allows). The handle is a signed token, so none of it can be altered;
//! parameter rows over [`MAX_EMBEDDED_PARAMETER_BYTES`] stay on the
//! replica that received them.

use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine as _;
use meshgate_planner::datafusion::arrow::array::{ArrayRef, RecordBatch};
use meshgate_planner::datafusion::arrow::ipc::reader::StreamReader;
use meshgate_planner::datafusion::arrow::ipc::writer::StreamWriter;
use meshgate_planner::datafusion::common::ScalarValue;

use crate::flight_sql::sessions::Planned;

/// The largest parameter row (as Arrow IPC) a handle carries.
pub(super) const MAX_EMBEDDED_PARAMETER_BYTES: usize = 16 << 10;

/// A handle's signed payload.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct HandleData {
    /// The entry kept by the replica that prepared (or last bound) it.
    pub(super) id: String,
    /// The statement as the client sent it.
    pub(super) sql: String,
    /// The catalog and settings it was prepared under.
    #[serde(default)]
    pub(super) planned: Planned,
    /// The bound parameter row, Arrow IPC in base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    params: Option<String>,
}

impl HandleData {
    pub(super) fn new(id: String, sql: String, planned: Planned) -> Self {
        Self {
            id,
            sql,
            planned,
            params: None,
        }
    }

    /// The same handle with `row` bound, when it is small enough to carry.
    pub(super) fn with_params(mut self, row: &[ScalarValue]) -> Self {
        self.params = encode_row(row)
            .filter(|bytes| bytes.len() <= MAX_EMBEDDED_PARAMETER_BYTES)
            .map(|bytes| B64.encode(bytes));
        self
    }

    /// The bound parameter row, if the handle carries one.
    pub(super) fn params(&self) -> Option<Vec<ScalarValue>> {
        decode_row(&B64.decode(self.params.as_deref()?).ok()?)
    }
}

fn encode_row(row: &[ScalarValue]) -> Option<Vec<u8>> {
    let columns = row
        .iter()
        .enumerate()
        .map(|(i, v)| Some((format!("${}", i + 1), v.to_array().ok()?)))
        .collect::<Option<Vec<(String, ArrayRef)>>>()?;
    let batch = if columns.is_empty() {
        RecordBatch::new_empty(std::sync::Arc::new(
            meshgate_planner::datafusion::arrow::datatypes::Schema::empty(),
        ))
    } else {
        RecordBatch::try_from_iter(columns).ok()?
    };
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, &batch.schema()).ok()?;
    writer.write(&batch).ok()?;
    writer.finish().ok()?;
    drop(writer);
    Some(out)
}

fn decode_row(bytes: &[u8]) -> Option<Vec<ScalarValue>> {
    let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None).ok()?;
    let schema = reader.schema();
    let batch = reader.into_iter().next()?.ok()?;
    if schema.fields().is_empty() {
        return Some(Vec::new());
    }
    batch
        .columns()
        .iter()
        .map(|c| ScalarValue::try_from_array(c, 0).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_row_travels_in_the_handle() {
        let row = vec![
            ScalarValue::Int64(Some(42)),
            ScalarValue::Utf8(Some("north".into())),
            ScalarValue::Utf8(None),
        ];
        let data =
            HandleData::new("id".into(), "SELECT ?".into(), Planned::default()).with_params(&row);
        let json = serde_json::to_string(&data).unwrap();
        let back: HandleData = serde_json::from_str(&json).unwrap();
        assert_eq!(back.params(), Some(row));
        // A row too large to carry stays with the replica that got it.
        let big = vec![ScalarValue::Utf8(Some(
            "x".repeat(MAX_EMBEDDED_PARAMETER_BYTES),
        ))];
        assert_eq!(data.with_params(&big).params(), None);
    }
}
