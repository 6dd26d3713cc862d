//! Arrow record batches to PostgreSQL rows, batch by batch.
//!
//! Type mapping and value encoding (text and binary) come from `arrow-pg`.
//! Rows are encoded lazily as pgwire pulls them, so a result streams with the
//! socket's back-pressure: at most one batch is held in memory per connection.

use std::sync::Arc;

use arrow_pg::datatypes::arrow_schema_to_pg_fields;
use arrow_pg::encoder::{encode_value, Encoder};
use bytes::Bytes;
use futures::{stream, StreamExt};
use meshgate_planner::datafusion::arrow::array::RecordBatch;
use meshgate_planner::datafusion::arrow::datatypes::Schema;
use meshgate_planner::datafusion::physical_plan::SendableRecordBatchStream;
use meshgate_planner::QueryError;
use meshgate_planner::{ColumnOrigin, CopyFormat, CopyOptions};
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyCsvOptions, CopyEncoder, CopyResponse, CopyTextOptions};
use pgwire::api::results::{DataRowEncoder, FieldInfo, QueryResponse};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::CopyData;
use pgwire::messages::data::DataRow;
use pgwire::types::format::FormatOptions;

use super::errors::to_pg_error;

/// The RowDescription of `schema`; each column with an origin carries its
/// table's OID and column number, as PostgreSQL sends them.
pub(crate) fn fields(
    schema: &Schema,
    format: &Format,
    options: Option<Arc<FormatOptions>>,
    origins: &[Option<ColumnOrigin>],
) -> PgWireResult<Vec<FieldInfo>> {
    let fields = arrow_schema_to_pg_fields(schema, format, options).map_err(|e| {
        to_pg_error(&QueryError::FeatureNotSupported(format!(
            "a result column has a type the PostgreSQL protocol cannot carry: {e}"
        )))
    })?;
    Ok(fields
        .into_iter()
        .enumerate()
        .map(|(i, field)| match origins.get(i).copied().flatten() {
            Some(origin) => FieldInfo::new(
                field.name().to_owned(),
                Some(origin.table_oid),
                Some(origin.column_number),
                field.datatype().clone(),
                field.format(),
            )
            .with_format_options(field.format_options().clone())
            .with_type_size(field.type_size())
            .with_type_modifier(field.type_modifier()),
            None => field,
        })
        .collect())
}

pub(crate) fn query_response(
    stream: SendableRecordBatchStream,
    format: &Format,
    options: Option<Arc<FormatOptions>>,
) -> PgWireResult<QueryResponse> {
    let fields = Arc::new(fields(&stream.schema(), format, options, &[])?);
    let row_fields = fields.clone();
    let rows = stream
        .map(move |batch| {
            let rows: Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync> = match batch {
                Ok(batch) => {
                    let batch = pg_text_times(batch, |i| {
                        row_fields[i].format() != pgwire::api::results::FieldFormat::Binary
                    });
                    match super::fast_rows::fast_rows(&row_fields, &batch) {
                        Some(rows) => Box::new(rows.into_iter().map(Ok)),
                        None => Box::new(encode_rows(row_fields.clone(), batch)),
                    }
                }
                Err(e) => Box::new(std::iter::once(Err::<DataRow, PgWireError>(to_pg_error(
                    &QueryError::from(e),
                )))),
            };
            stream::iter(rows)
        })
        .flatten();
    Ok(QueryResponse::new(fields, rows))
}

/// Rows of `stream` as `COPY ... TO STDOUT` data in the requested format.
pub(crate) fn copy_response(
    stream: SendableRecordBatchStream,
    options: &CopyOptions,
) -> PgWireResult<CopyResponse> {
    let binary = options.format == CopyFormat::Binary;
    let format = if binary {
        Format::UnifiedBinary
    } else {
        Format::UnifiedText
    };
    let schema = stream.schema();
    let fields = Arc::new(self::fields(&schema, &format, None, &[])?);
    let mut encoder = match options.format {
        CopyFormat::Binary => CopyEncoder::new_binary(fields.clone()),
        CopyFormat::Text => CopyEncoder::new_text(
            fields.clone(),
            CopyTextOptions {
                delimiter: options
                    .delimiter
                    .unwrap_or('\t')
                    .to_string()
                    .as_str()
                    .into(),
                null_string: options.null.as_deref().unwrap_or("\\N").into(),
            },
        ),
        CopyFormat::Csv => CopyEncoder::new_csv(
            fields.clone(),
            CopyCsvOptions {
                delimiter: options.delimiter.unwrap_or(',').to_string().as_str().into(),
                null_string: options.null.as_deref().unwrap_or("").into(),
                ..CopyCsvOptions::default()
            },
        ),
    };
    let header = (options.header && !binary).then(|| {
        let delimiter = options
            .delimiter
            .unwrap_or(if options.format == CopyFormat::Csv {
                ','
            } else {
                '\t'
            })
            .to_string();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        Ok(CopyData::new(Bytes::from(format!(
            "{}\n",
            names.join(&delimiter)
        ))))
    });
    let columns = fields.len();
    let rows = stream
        .map(move |batch| {
            let out: Vec<PgWireResult<CopyData>> = match batch {
                Ok(batch) if binary => encode_copy_rows(&mut encoder, &batch, &fields),
                Ok(batch) => {
                    encode_copy_rows(&mut encoder, &pg_text_times(batch, |_| true), &fields)
                }
                Err(e) => vec![Err(to_pg_error(&QueryError::from(e)))],
            };
            stream::iter(out)
        })
        .flatten();
    let data = stream::iter(header).chain(rows);
    Ok(CopyResponse::new(if binary { 1 } else { 0 }, columns, data))
}

/// One value; NULLs are written here because arrow-pg's encoder does not
/// check every type for them (NULL intervals would come out as zero), and
/// floats in text as PostgreSQL prints them (`84`, not `84.0`).
fn encode_one<E: Encoder>(
    encoder: &mut E,
    array: &meshgate_planner::datafusion::arrow::array::ArrayRef,
    row: usize,
    field: &meshgate_planner::datafusion::arrow::datatypes::Field,
    pg_field: &FieldInfo,
) -> PgWireResult<()> {
    use meshgate_planner::datafusion::arrow::array::{Array, AsArray};
    use meshgate_planner::datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
    if array.is_null(row) {
        return encoder.encode_field(&None::<&str>, pg_field);
    }
    let text = pg_field.format() == pgwire::api::results::FieldFormat::Text
        && pg_field.format_options().extra_float_digits >= 1;
    let float = match array.data_type() {
        DataType::Float64 if text => {
            super::floats::float8(array.as_primitive::<Float64Type>().value(row))
        }
        DataType::Float32 if text => {
            super::floats::float4(array.as_primitive::<Float32Type>().value(row))
        }
        _ => None,
    };
    match float {
        Some(text) => encoder.encode_field(&text, pg_field),
        None => encode_value(encoder, array, row, field, pg_field),
    }
}

/// The rows of one batch, encoded as pgwire pulls them.
pub(super) fn encode_rows(
    fields: Arc<Vec<FieldInfo>>,
    batch: RecordBatch,
) -> impl Iterator<Item = PgWireResult<DataRow>> + Send + Sync {
    let mut encoder = DataRowEncoder::new(fields.clone());
    let mut row = 0;
    std::iter::from_fn(move || {
        if row >= batch.num_rows() {
            return None;
        }
        let schema = batch.schema();
        for (col, array) in batch.columns().iter().enumerate() {
            if let Err(e) = encode_one(&mut encoder, array, row, schema.field(col), &fields[col]) {
                row = batch.num_rows();
                return Some(Err(e));
            }
        }
        row += 1;
        Some(Ok(Encoder::take_row(&mut encoder)))
    })
}

fn encode_copy_rows(
    encoder: &mut CopyEncoder,
    batch: &RecordBatch,
    fields: &[FieldInfo],
) -> Vec<PgWireResult<CopyData>> {
    let schema = batch.schema();
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        for (col, array) in batch.columns().iter().enumerate() {
            if let Err(e) = encode_one(encoder, array, row, schema.field(col), &fields[col]) {
                out.push(Err(e));
                return out;
            }
        }
        out.push(Ok(encoder.take_copy()));
    }
    out
}

/// Times and timestamps in PostgreSQL's text form: microsecond precision,
/// fractional seconds only when present and without trailing zeros
/// (`13:45:10`, `13:45:10.5`), time zones as `+00` or `+05:30`. Columns for
/// which `text` is false (binary format) are left as they are.
fn pg_text_times(batch: RecordBatch, text: impl Fn(usize) -> bool) -> RecordBatch {
    use meshgate_planner::datafusion::arrow::array::{
        Array, ArrayRef, AsArray, StringArray, Time64MicrosecondArray,
    };
    use meshgate_planner::datafusion::arrow::compute::cast;
    use meshgate_planner::datafusion::arrow::datatypes::{
        DataType, Field, TimeUnit, TimestampMicrosecondType,
    };

    let is_time = |t: &DataType| {
        matches!(
            t,
            DataType::Timestamp(..) | DataType::Time32(_) | DataType::Time64(_)
        )
    };
    if !batch
        .schema()
        .fields()
        .iter()
        .enumerate()
        .any(|(i, f)| is_time(f.data_type()) && text(i))
    {
        return batch;
    }
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (i, (field, array)) in schema.fields().iter().zip(batch.columns()).enumerate() {
        if !(is_time(field.data_type()) && text(i)) {
            fields.push(field.as_ref().clone());
            columns.push(array.clone());
            continue;
        }
        let strings: StringArray = match field.data_type() {
            DataType::Timestamp(_, tz) => {
                let Ok(micros) = cast(
                    array,
                    &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
                ) else {
                    fields.push(field.as_ref().clone());
                    columns.push(array.clone());
                    continue;
                };
                let micros = micros.as_primitive::<TimestampMicrosecondType>();
                let zone = tz.as_deref().and_then(|z| {
                    z.parse::<meshgate_planner::datafusion::arrow::array::timezone::Tz>()
                        .ok()
                });
                (0..micros.len())
                    .map(|r| {
                        if micros.is_null(r) {
                            return None;
                        }
                        match &zone {
                            Some(zone) => micros.value_as_datetime_with_tz(r, *zone).map(|d| {
                                use chrono::Offset;
                                let fixed = d.offset().fix().local_minus_utc();
                                let local = d.naive_local();
                                format!("{}{}", naive_text(&local), offset_text(fixed))
                            }),
                            None => micros.value_as_datetime(r).map(|d| naive_text(&d)),
                        }
                    })
                    .collect()
            }
            _ => {
                let Ok(micros) = cast(array, &DataType::Time64(TimeUnit::Microsecond)) else {
                    fields.push(field.as_ref().clone());
                    columns.push(array.clone());
                    continue;
                };
                let micros: &Time64MicrosecondArray = micros.as_primitive();
                (0..micros.len())
                    .map(|r| {
                        if micros.is_null(r) {
                            None
                        } else {
                            micros.value_as_time(r).map(|t| time_text(&t))
                        }
                    })
                    .collect()
            }
        };
        fields.push(Field::new(
            field.name(),
            DataType::Utf8,
            field.is_nullable(),
        ));
        columns.push(std::sync::Arc::new(strings));
    }
    RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns).unwrap_or(batch)
}

fn time_text(t: &chrono::NaiveTime) -> String {
    use chrono::Timelike;
    let micros = t.nanosecond() / 1000;
    let base = t.format("%H:%M:%S").to_string();
    if micros == 0 {
        base
    } else {
        let frac = format!("{micros:06}");
        format!("{base}.{}", frac.trim_end_matches('0'))
    }
}

fn naive_text(d: &chrono::NaiveDateTime) -> String {
    format!("{} {}", d.format("%Y-%m-%d"), time_text(&d.time()))
}

fn offset_text(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let abs = seconds.unsigned_abs();
    let (h, m) = (abs / 3600, (abs % 3600) / 60);
    if m == 0 {
        format!("{sign}{h:02}")
    } else {
        format!("{sign}{h:02}:{m:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_like_postgres() {
        let t = chrono::NaiveTime::from_hms_micro_opt(13, 45, 10, 0).unwrap();
        assert_eq!(time_text(&t), "13:45:10");
        let t = chrono::NaiveTime::from_hms_micro_opt(13, 45, 10, 500_000).unwrap();
        assert_eq!(time_text(&t), "13:45:10.5");
        let t = chrono::NaiveTime::from_hms_micro_opt(0, 0, 0, 123).unwrap();
        assert_eq!(time_text(&t), "00:00:00.000123");
        assert_eq!(offset_text(0), "+00");
        assert_eq!(offset_text(19_800), "+05:30");
        assert_eq!(offset_text(-7_200), "-02");
    }
}
