//! Arrow record batches to PostgreSQL rows, batch by batch.
//!
//! Type mapping and value encoding (text and binary) come from `arrow-pg`.
//! Rows are encoded lazily as pgwire pulls them, so a result streams with the
//! socket's back-pressure: at most one batch is held in memory per connection.

use std::sync::Arc;

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use arrow_pg::encoder::encode_value;
use bytes::Bytes;
use futures::{stream, StreamExt};
use meshgate_planner::datafusion::arrow::array::RecordBatch;
use meshgate_planner::datafusion::arrow::datatypes::Schema;
use meshgate_planner::datafusion::physical_plan::SendableRecordBatchStream;
use meshgate_planner::QueryError;
use meshgate_planner::{CopyFormat, CopyOptions};
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyCsvOptions, CopyEncoder, CopyResponse, CopyTextOptions};
use pgwire::api::results::{FieldInfo, QueryResponse};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::CopyData;
use pgwire::messages::data::DataRow;
use pgwire::types::format::FormatOptions;

use super::errors::to_pg_error;

pub(crate) fn fields(
    schema: &Schema,
    format: &Format,
    options: Option<Arc<FormatOptions>>,
) -> PgWireResult<Vec<FieldInfo>> {
    arrow_schema_to_pg_fields(schema, format, options).map_err(|e| {
        to_pg_error(&QueryError::FeatureNotSupported(format!(
            "a result column has a type the PostgreSQL protocol cannot carry: {e}"
        )))
    })
}

pub(crate) fn query_response(
    stream: SendableRecordBatchStream,
    format: &Format,
    options: Option<Arc<FormatOptions>>,
) -> PgWireResult<QueryResponse> {
    let fields = Arc::new(fields(&stream.schema(), format, options)?);
    let row_fields = fields.clone();
    let rows = stream
        .map(move |batch| {
            let rows: Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync> = match batch {
                Ok(batch) => encode_recordbatch(row_fields.clone(), batch),
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
    let fields = Arc::new(self::fields(&schema, &format, None)?);
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
                Ok(batch) => encode_copy_rows(&mut encoder, &batch, &fields),
                Err(e) => vec![Err(to_pg_error(&QueryError::from(e)))],
            };
            stream::iter(out)
        })
        .flatten();
    let data = stream::iter(header).chain(rows);
    Ok(CopyResponse::new(if binary { 1 } else { 0 }, columns, data))
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
            if let Err(e) = encode_value(encoder, array, row, schema.field(col), &fields[col]) {
                out.push(Err(e));
                return out;
            }
        }
        out.push(Ok(encoder.take_copy()));
    }
    out
}
