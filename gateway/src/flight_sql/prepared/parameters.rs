//! Parameters of a prepared statement, as a DoPut uploads them: read
//! message by message and counted in bytes, stopping at
//! `max_parameter_bytes`, so an upload is never buffered whole; then the
//! one row they must hold, cast to the types the plan inferred.

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use futures::{Stream, StreamExt, TryStreamExt};
use meshgate_planner::datafusion::arrow::array::RecordBatch;
use meshgate_planner::datafusion::arrow::datatypes::DataType;
use meshgate_planner::datafusion::common::ScalarValue;
use prost::Message;
use tonic::Status;

/// Bytes of gRPC framing per message (length prefix and flags), so that a
/// stream of empty messages is not free either.
const MESSAGE_OVERHEAD: usize = 8;

/// Read the parameter batches of a DoPut, at most `limit` bytes of them,
/// and return the one row they must hold as positional values.
pub(crate) async fn read_parameters(
    data: impl Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static,
    limit: usize,
    types: &[Option<DataType>],
) -> Result<Vec<ScalarValue>, Status> {
    let mut received = 0usize;
    let bounded = data.map(move |message| {
        let message = message?;
        received = received.saturating_add(message.encoded_len() + MESSAGE_OVERHEAD);
        if received > limit {
            return Err(Status::resource_exhausted(format!(
                "[54000] parameters are over {limit} bytes, the most this server accepts \
                 (limits.max_parameter_bytes): bind one row of values"
            )));
        }
        Ok(message)
    });
    let batches: Vec<RecordBatch> =
        FlightRecordBatchStream::new_from_flight_data(bounded.map_err(FlightError::from))
            .try_collect()
            .await
            .map_err(|e| match e {
                FlightError::Tonic(status) => *status,
                other => Status::invalid_argument(format!("cannot read parameters: {other}")),
            })?;
    parameter_row(&batches, types)
}

/// The first row of a parameter batch, as positional values.
fn parameter_row(
    batches: &[RecordBatch],
    types: &[Option<DataType>],
) -> Result<Vec<ScalarValue>, Status> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows != 1 {
        return Err(Status::invalid_argument(format!(
            "bind exactly one row of parameters (got {rows})"
        )));
    }
    let batch = batches.iter().find(|b| b.num_rows() == 1).expect("one row");
    batch
        .columns()
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let value = ScalarValue::try_from_array(column, 0)
                .map_err(|e| Status::invalid_argument(format!("parameter ${}: {e}", i + 1)))?;
            match types.get(i).and_then(Option::as_ref) {
                Some(ty) if value.data_type() != *ty => value.cast_to(ty).map_err(|e| {
                    Status::invalid_argument(format!(
                        "parameter ${} cannot be used as {ty}: {e}",
                        i + 1
                    ))
                }),
                _ => Ok(value),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn parameter_uploads_stop_at_the_limit() {
        use arrow_flight::encode::FlightDataEncoderBuilder;
        use meshgate_planner::datafusion::arrow::array::{ArrayRef, StringArray};
        let big = RecordBatch::try_from_iter([(
            "$1",
            Arc::new(StringArray::from(vec!["y".repeat(4096)])) as ArrayRef,
        )])
        .unwrap();
        let encode = |n: usize| {
            let big = big.clone();
            let batches = futures::stream::iter((0..n).map(move |_| Ok(big.clone())));
            FlightDataEncoderBuilder::new()
                .build(batches)
                .map_err(|e| Status::internal(e.to_string()))
        };
        let one = read_parameters(encode(1), 64 << 10, &[None]).await.unwrap();
        assert_eq!(one.len(), 1);
        let err = read_parameters(encode(100), 64 << 10, &[None])
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(
            err.message().contains("limits.max_parameter_bytes"),
            "{err}"
        );
    }
}
