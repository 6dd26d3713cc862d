//! Arrow record batches to PostgreSQL rows, batch by batch.
//!
//! Type mapping and value encoding (text and binary) come from `arrow-pg`.
//! Rows are encoded lazily as pgwire pulls them, so a result streams with the
//! socket's back-pressure: at most one batch is held in memory per connection.

use std::sync::Arc;

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use futures::{stream, StreamExt};
use meshgate_planner::datafusion::arrow::datatypes::Schema;
use meshgate_planner::datafusion::physical_plan::SendableRecordBatchStream;
use meshgate_planner::QueryError;
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldInfo, QueryResponse};
use pgwire::error::{PgWireError, PgWireResult};
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
