//! Rows of the common column types written straight into `DataRow`s.
//!
//! The general encoder (`arrow-pg`) looks up each value's Arrow type and
//! downcasts its array for every value. For a batch whose every column is one
//! of the types below, in the format the client asked for, each column is
//! downcast once per batch and each value written as PostgreSQL does:
//! binary integers, floats, booleans and dates in network byte order; in
//! text, integers as decimal digits, floats in PostgreSQL's shortest form
//! (`floats.rs`), booleans as `t`/`f`, dates as `YYYY-MM-DD` under the ISO
//! `DateStyle` (pgwire's own text otherwise); `text`/`varchar` as their
//! UTF-8 bytes in either format. Any other batch goes through the general
//! encoder.

use std::ops::RangeInclusive;
use std::sync::LazyLock;

use bytes::{BufMut, BytesMut};
use chrono::Datelike;
use meshgate_planner::datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, GenericStringArray, PrimitiveArray, RecordBatch,
    StringViewArray,
};
use meshgate_planner::datafusion::arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
};
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::api::Type;
use pgwire::messages::data::DataRow;
use pgwire::types::format::date_style::DateStyle;
use pgwire::types::ToSqlText;

/// Days from 1970-01-01 (Arrow's dates) to 2000-01-01 (PostgreSQL's).
const PG_EPOCH_DAYS: i32 = 10_957;
/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01, plus one.
const UNIX_EPOCH_FROM_CE: i32 = 719_163;

/// How a column's values are written: binary, or text under the session's
/// options (`iso`: `DateStyle` prints dates as `YYYY-MM-DD`).
#[derive(Clone, Copy)]
enum Encoding<'a> {
    Binary,
    Text { field: &'a FieldInfo, iso: bool },
}

/// One column, downcast once, with how its values are written.
enum Column<'a> {
    I16(&'a PrimitiveArray<Int16Type>, Encoding<'a>),
    I32(&'a PrimitiveArray<Int32Type>, Encoding<'a>),
    I64(&'a PrimitiveArray<Int64Type>, Encoding<'a>),
    F32(&'a PrimitiveArray<Float32Type>, Encoding<'a>),
    F64(&'a PrimitiveArray<Float64Type>, Encoding<'a>),
    Bool(&'a BooleanArray, Encoding<'a>),
    Date(&'a PrimitiveArray<Date32Type>, Encoding<'a>),
    Str(&'a GenericStringArray<i32>),
    LargeStr(&'a GenericStringArray<i64>),
    StrView(&'a StringViewArray),
}

impl<'a> Column<'a> {
    /// The fast writer of `array` sent as `field`, if there is one.
    fn of(array: &'a ArrayRef, field: &'a FieldInfo) -> Option<Self> {
        let encoding = if field.format() == FieldFormat::Binary {
            Encoding::Binary
        } else {
            let style = DateStyle::new(&field.format_options().date_style);
            Encoding::Text {
                field,
                iso: style.date_format_str() == "%Y-%m-%d",
            }
        };
        let pg = field.datatype();
        Some(match array.data_type() {
            DataType::Int16 if *pg == Type::INT2 => Column::I16(array.as_primitive(), encoding),
            DataType::Int32 if *pg == Type::INT4 => Column::I32(array.as_primitive(), encoding),
            DataType::Int64 if *pg == Type::INT8 => Column::I64(array.as_primitive(), encoding),
            DataType::Float32 if *pg == Type::FLOAT4 => Column::F32(array.as_primitive(), encoding),
            DataType::Float64 if *pg == Type::FLOAT8 => Column::F64(array.as_primitive(), encoding),
            DataType::Boolean if *pg == Type::BOOL => Column::Bool(array.as_boolean(), encoding),
            DataType::Date32 if *pg == Type::DATE => Column::Date(array.as_primitive(), encoding),
            DataType::Utf8 if text_type(pg) => Column::Str(array.as_string()),
            DataType::LargeUtf8 if text_type(pg) => Column::LargeStr(array.as_string()),
            DataType::Utf8View if text_type(pg) => Column::StrView(array.as_string_view()),
            _ => return None,
        })
    }

    fn array(&self) -> &dyn Array {
        match self {
            Column::I16(a, _) => *a,
            Column::I32(a, _) => *a,
            Column::I64(a, _) => *a,
            Column::F32(a, _) => *a,
            Column::F64(a, _) => *a,
            Column::Bool(a, _) => *a,
            Column::Date(a, _) => *a,
            Column::Str(a) => *a,
            Column::LargeStr(a) => *a,
            Column::StrView(a) => *a,
        }
    }

    /// Writes the value at `row` (length word, then the bytes).
    fn write(&self, row: usize, buf: &mut BytesMut) {
        if self.array().is_null(row) {
            buf.put_i32(-1);
            return;
        }
        match self {
            Column::I16(a, Encoding::Binary) => fixed(buf, &a.value(row).to_be_bytes()),
            Column::I32(a, Encoding::Binary) => fixed(buf, &a.value(row).to_be_bytes()),
            Column::I64(a, Encoding::Binary) => fixed(buf, &a.value(row).to_be_bytes()),
            Column::I16(a, Encoding::Text { .. }) => digits(buf, a.value(row)),
            Column::I32(a, Encoding::Text { .. }) => digits(buf, a.value(row)),
            Column::I64(a, Encoding::Text { .. }) => digits(buf, a.value(row)),
            Column::F32(a, Encoding::Binary) => fixed(buf, &a.value(row).to_bits().to_be_bytes()),
            Column::F64(a, Encoding::Binary) => fixed(buf, &a.value(row).to_bits().to_be_bytes()),
            Column::F32(a, Encoding::Text { field, .. }) => {
                float(buf, a.value(row), super::floats::float4, field)
            }
            Column::F64(a, Encoding::Text { field, .. }) => {
                float(buf, a.value(row), super::floats::float8, field)
            }
            Column::Bool(a, Encoding::Binary) => fixed(buf, &[u8::from(a.value(row))]),
            Column::Bool(a, Encoding::Text { .. }) => {
                fixed(buf, if a.value(row) { b"t" } else { b"f" })
            }
            Column::Date(a, Encoding::Binary) => {
                let days = a.value(row);
                if DATE_RANGE.contains(&days) {
                    fixed(buf, &(days - PG_EPOCH_DAYS).to_be_bytes())
                } else {
                    // As the general encoder: a date chrono cannot hold is NULL.
                    buf.put_i32(-1)
                }
            }
            Column::Date(a, Encoding::Text { field, iso }) => {
                match a.value_as_date(row) {
                    Some(date) if *iso && (1..=9999).contains(&date.year()) => {
                        let mut text = [0u8; 10];
                        put_digits(&mut text[0..4], date.year() as u32);
                        text[4] = b'-';
                        put_digits(&mut text[5..7], date.month());
                        text[7] = b'-';
                        put_digits(&mut text[8..10], date.day());
                        fixed(buf, &text);
                    }
                    Some(date) => as_text(buf, &date, field),
                    // As the general encoder: a date chrono cannot hold is NULL.
                    None => buf.put_i32(-1),
                }
            }
            Column::Str(a) => fixed(buf, a.value(row).as_bytes()),
            Column::LargeStr(a) => fixed(buf, a.value(row).as_bytes()),
            Column::StrView(a) => fixed(buf, a.value(row).as_bytes()),
        }
    }
}

/// `text` and `varchar`, whose text and binary forms are both the UTF-8
/// bytes (not `"char"`, `name` or `bpchar`, which the general encoder pads
/// or truncates).
fn text_type(pg: &Type) -> bool {
    *pg == Type::TEXT || *pg == Type::VARCHAR
}

/// Whether floats in text take PostgreSQL's shortest form (as the general
/// path does, `encode::encode_one`).
fn float_text(field: &FieldInfo) -> bool {
    field.format_options().extra_float_digits >= 1
}

/// A float in text: PostgreSQL's shortest form where `shortest` gives one
/// and the session asks for it, pgwire's text otherwise.
fn float<F: ToSqlText + Copy>(
    buf: &mut BytesMut,
    value: F,
    shortest: fn(F) -> Option<String>,
    field: &FieldInfo,
) {
    match float_text(field).then(|| shortest(value)).flatten() {
        Some(text) => fixed(buf, text.as_bytes()),
        None => as_text(buf, &value, field),
    }
}

/// `value` in text as pgwire writes it for `field`.
fn as_text<T: ToSqlText>(buf: &mut BytesMut, value: &T, field: &FieldInfo) {
    let at = buf.len();
    buf.put_i32(0);
    match value.to_sql_text(field.datatype(), buf, field.format_options()) {
        Ok(_) => {
            let len = (buf.len() - at - 4) as i32;
            buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        // Unreachable for the types above; NULL rather than a torn row.
        Err(_) => {
            buf.truncate(at);
            buf.put_i32(-1);
        }
    }
}

/// The Arrow dates (days from 1970-01-01) chrono can hold.
static DATE_RANGE: LazyLock<RangeInclusive<i32>> = LazyLock::new(|| {
    let days = |d: chrono::NaiveDate| d.num_days_from_ce() - UNIX_EPOCH_FROM_CE;
    days(chrono::NaiveDate::MIN)..=days(chrono::NaiveDate::MAX)
});

/// `value` as `out.len()` zero-padded decimal digits.
fn put_digits(out: &mut [u8], mut value: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn fixed(buf: &mut BytesMut, bytes: &[u8]) {
    buf.put_i32(bytes.len() as i32);
    buf.put_slice(bytes);
}

fn digits(buf: &mut BytesMut, value: impl itoa::Integer) {
    let mut text = itoa::Buffer::new();
    fixed(buf, text.format(value).as_bytes());
}

/// The rows of `batch` as `DataRow`s, when every column has a fast writer.
/// The whole batch is written at once, its rows sharing one allocation (the
/// batch is held until its rows are sent either way).
pub(super) fn fast_rows(fields: &[FieldInfo], batch: &RecordBatch) -> Option<Vec<DataRow>> {
    if batch.num_columns() != fields.len() {
        return None;
    }
    let columns = batch
        .columns()
        .iter()
        .zip(fields)
        .map(|(array, field)| Column::of(array, field))
        .collect::<Option<Vec<_>>>()?;
    let count = fields.len() as i16;
    let mut buf = BytesMut::with_capacity(batch.num_rows() * 12 * columns.len());
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        for column in &columns {
            column.write(row, &mut buf);
        }
        // The row's bytes; the rest of the buffer's capacity stays for the next.
        rows.push(DataRow::new(buf.split(), count));
    }
    Some(rows)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use meshgate_planner::datafusion::arrow::array::{
        BooleanArray, Date32Array, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array,
        LargeStringArray, StringArray, StringViewArray,
    };
    use pgwire::api::portal::Format;
    use pgwire::types::format::FormatOptions;

    use super::*;

    fn batch() -> RecordBatch {
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "i2",
                Arc::new(Int16Array::from(vec![Some(-7), None, Some(i16::MAX)])),
            ),
            (
                "i4",
                Arc::new(Int32Array::from(vec![Some(i32::MIN), Some(0), None])),
            ),
            (
                "i8",
                Arc::new(Int64Array::from(vec![None, Some(42), Some(i64::MIN)])),
            ),
            (
                "f4",
                Arc::new(Float32Array::from(vec![Some(1.5), None, Some(f32::NAN)])),
            ),
            (
                "f8",
                Arc::new(Float64Array::from(vec![Some(-0.25), Some(1e300), None])),
            ),
            (
                "b",
                Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
            ),
            (
                "d",
                Arc::new(Date32Array::from(vec![Some(0), Some(-800_000), None])),
            ),
            (
                "s",
                Arc::new(StringArray::from(vec![Some("ä"), None, Some("")])),
            ),
            (
                "ls",
                Arc::new(LargeStringArray::from(vec![None, Some("x"), Some("yz")])),
            ),
            (
                "sv",
                Arc::new(StringViewArray::from(vec![
                    Some("a long view string"),
                    None,
                    Some("v"),
                ])),
            ),
        ];
        RecordBatch::try_from_iter(columns).unwrap()
    }

    /// The rows the general encoder writes for `batch` in `format`.
    fn general(
        batch: &RecordBatch,
        format: &Format,
        options: Option<FormatOptions>,
    ) -> (Vec<FieldInfo>, Vec<DataRow>) {
        let fields =
            super::super::encode::fields(&batch.schema(), format, options.map(Arc::new), &[])
                .unwrap();
        let rows = super::super::encode::encode_rows(Arc::new(fields.clone()), batch.clone())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        (fields, rows)
    }

    #[test]
    fn binary_rows_are_the_general_encoders_bytes() {
        let batch = batch();
        let (fields, expected) = general(&batch, &Format::UnifiedBinary, None);
        assert_eq!(
            fast_rows(&fields, &batch).expect("every column is fast"),
            expected
        );
    }

    #[test]
    fn text_rows_are_the_general_encoders_bytes_under_each_setting() {
        let batch = batch();
        let mut sql_dmy = FormatOptions::default();
        sql_dmy.date_style = "SQL, DMY".into();
        let mut few_digits = FormatOptions::default();
        few_digits.extra_float_digits = 0;
        for options in [None, Some(sql_dmy), Some(few_digits)] {
            let (fields, expected) = general(&batch, &Format::UnifiedText, options.clone());
            let got = fast_rows(&fields, &batch).expect("every column is fast");
            assert_eq!(got, expected, "{options:?}");
        }
    }
}
