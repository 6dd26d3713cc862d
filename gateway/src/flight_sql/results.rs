//! What a Flight SQL DoGet streams back: the output of a planned statement,
//! or the one batch of a metadata listing, encoded as Flight data.
//!
//! A statement's rows are streamed as the plan produces them; an error while
//! streaming reaches the client as a gRPC status carrying the SQLSTATE (see
//! [`crate::status`]), like an error before the first row. The response
//! names the statement's query id in the `x-meshgate-query-id` header, and
//! each warning about its data (a product past its freshness SLO) in an
//! `x-meshgate-warning` header.

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::FlightData;
use futures::{stream, Stream, TryStreamExt};
use meshgate_planner::datafusion::arrow::array::RecordBatch;
use meshgate_planner::datafusion::arrow::compute::cast;
use meshgate_planner::datafusion::arrow::datatypes::{Schema, SchemaRef};
use meshgate_planner::datafusion::arrow::error::ArrowError;
use meshgate_planner::datafusion::common::ParamValues;
use meshgate_planner::{Prepared, QueryError, QueryOutput, QuerySession, ResultPart, ResultParts};
use tonic::Status;

use crate::status::to_status;

/// The stream a DoGet answers with.
pub(crate) type DoGetStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send>>;

type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch, FlightError>> + Send>>;

/// Run `prepared` in `session` with `params` bound, the whole result or
/// part `part` of it (with the plan `kept` when this replica counted its
/// parts from these values), streaming its output as Flight data. The
/// session audits the execution (one record per run).
pub(super) async fn execute(
    session: &mut QuerySession,
    prepared: &Prepared,
    params: Option<ParamValues>,
    part: Option<ResultPart>,
    kept: Option<&ResultParts>,
) -> Result<DoGetStream, Status> {
    let output = session
        .execute_part(prepared, params, part, kept)
        .await
        .map_err(|e| to_status(&e))?;
    encode(output)
}

/// An empty answer (no columns, no rows), as a command's.
pub(super) fn nothing() -> Result<DoGetStream, Status> {
    encode(QueryOutput::Empty)
}

fn encode(output: QueryOutput) -> Result<DoGetStream, Status> {
    let (schema, batches): (SchemaRef, BatchStream) = match output {
        QueryOutput::Rows(rows) => (
            rows.schema(),
            Box::pin(
                rows.map_err(|e| FlightError::Tonic(Box::new(to_status(&QueryError::from(e))))),
            ),
        ),
        QueryOutput::CopyOut { .. } => return Err(to_status(&QueryError::FeatureNotSupported(
            "COPY TO STDOUT is a PostgreSQL protocol feature; Flight SQL streams results directly"
                .into(),
        ))),
        QueryOutput::Command { .. } | QueryOutput::Empty => {
            (Arc::new(Schema::empty()), Box::pin(stream::empty()))
        }
    };
    // Sent as announced (see `as_sent`): views as plain strings.
    let sent = Arc::new(super::as_sent(&schema));
    let batches: BatchStream = if sent == schema {
        batches
    } else {
        let target = sent.clone();
        Box::pin(batches.and_then(move |batch| {
            let converted = as_sent_batch(&batch, &target).map_err(FlightError::Arrow);
            async move { converted }
        }))
    };
    let data = FlightDataEncoderBuilder::new()
        .with_schema(sent)
        .build(batches)
        .map_err(Status::from);
    Ok(Box::pin(data))
}

/// `batch` with the columns `schema` (its [`super::as_sent`] schema)
/// announces: string views cast to strings, dictionaries to their values.
pub(crate) fn as_sent_batch(
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> Result<RecordBatch, ArrowError> {
    if batch.schema_ref() == schema {
        return Ok(batch.clone());
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(column.clone())
            } else {
                cast(column, field.data_type())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

/// The response header naming the query id of the statement a DoGet ran
/// (the id `system.runtime.queries` and the audit record know it by).
pub const QUERY_ID_HEADER: &str = "x-meshgate-query-id";

/// A response header per warning about the statement's data (a data
/// product read past its freshness SLO), as pgwire sends a NOTICE.
pub const WARNING_HEADER: &str = "x-meshgate-warning";

/// The DoGet response for `stream`, the output of the statement `session`
/// just ran, with its query id in [`QUERY_ID_HEADER`].
pub(super) fn response(
    stream: DoGetStream,
    session: &QuerySession,
) -> tonic::Response<DoGetStream> {
    let mut response = tonic::Response::new(stream);
    if let Some(id) = session.last_query_id().and_then(|id| id.parse().ok()) {
        response.metadata_mut().insert(QUERY_ID_HEADER, id);
    }
    for notice in session.last_notices() {
        // Header values are visible ASCII: anything else becomes `?`.
        let text: String = notice
            .message
            .chars()
            .map(|c| {
                if c == ' ' || c.is_ascii_graphic() {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if let Ok(value) = text.parse() {
            response.metadata_mut().append(WARNING_HEADER, value);
        }
    }
    response
}

/// One batch (a listing) as Flight data of `schema`.
pub(super) fn one_batch(schema: SchemaRef, batch: RecordBatch) -> DoGetStream {
    let data = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(stream::once(async move { Ok::<_, FlightError>(batch) }))
        .map_err(Status::from);
    Box::pin(data)
}
