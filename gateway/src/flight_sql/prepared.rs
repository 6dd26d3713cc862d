//! Flight SQL prepared statements: what the server keeps between calls, and
//! how much of it.
//!
//! A prepared statement is its SQL, its owner, the parameter types the plan
//! inferred and the last parameters bound with DoPut. Entries are weighed in
//! bytes and counted against two budgets, one per user and one for all
//! users (`[limits] prepared_statement_memory_per_user` and
//! `prepared_statement_memory`); a prepare or bind that would pass either is
//! refused with 53400 instead of evicting another user's statements.
//! Entries idle longer than the token lifetime expire, and their bytes
//! return to the budgets.
//!
//! Parameters arrive as a DoPut stream; [`read_parameters`] counts its bytes
//! message by message and stops at `max_parameter_bytes`, so an upload is
//! never buffered whole.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use futures::{Stream, StreamExt, TryStreamExt};
use meshgate_planner::datafusion::arrow::array::RecordBatch;
use meshgate_planner::datafusion::arrow::datatypes::DataType;
use meshgate_planner::datafusion::common::ScalarValue;
use moka::notification::RemovalCause;
use prost::Message;
use tonic::Status;

use crate::request_limits::RequestLimits;

/// What every entry costs beyond its text and values (ids, the entry, the
/// cache's own bookkeeping); keeps empty statements from being free.
const ENTRY_OVERHEAD: u64 = 512;

/// A prepared statement: its SQL, its owner and the last bound parameters.
#[derive(Debug)]
pub(crate) struct PreparedEntry {
    pub(crate) user: String,
    pub(crate) sql: String,
    pub(crate) param_types: Vec<Option<DataType>>,
    pub(crate) params: Option<Vec<ScalarValue>>,
    /// Fixed at creation: the budgets are charged and refunded by it.
    bytes: u64,
}

impl PreparedEntry {
    pub(crate) fn new(
        user: String,
        sql: String,
        param_types: Vec<Option<DataType>>,
        params: Option<Vec<ScalarValue>>,
    ) -> Self {
        let values: usize = params
            .iter()
            .flatten()
            .map(ScalarValue::size)
            .sum::<usize>();
        let bytes = ENTRY_OVERHEAD
            + (user.len() + sql.len() + values) as u64
            + (param_types.len() * std::mem::size_of::<Option<DataType>>()) as u64;
        Self {
            user,
            sql,
            param_types,
            params,
            bytes,
        }
    }

    /// The same statement with `params` bound.
    pub(crate) fn with_params(&self, params: Vec<ScalarValue>) -> Self {
        Self::new(
            self.user.clone(),
            self.sql.clone(),
            self.param_types.clone(),
            Some(params),
        )
    }
}

/// Bytes held per user and in total.
#[derive(Debug, Default)]
struct Usage {
    total: u64,
    per_user: HashMap<String, u64>,
}

impl Usage {
    fn release(&mut self, user: &str, bytes: u64) {
        self.total = self.total.saturating_sub(bytes);
        if let Some(held) = self.per_user.get_mut(user) {
            *held = held.saturating_sub(bytes);
            if *held == 0 {
                self.per_user.remove(user);
            }
        }
    }
}

/// The prepared statements of one Flight SQL listener.
pub(crate) struct PreparedStatements {
    cache: moka::future::Cache<String, Arc<PreparedEntry>>,
    usage: Arc<Mutex<Usage>>,
    limits: RequestLimits,
}

impl PreparedStatements {
    pub(crate) fn new(limits: RequestLimits, idle: Duration) -> Self {
        let usage = Arc::new(Mutex::new(Usage::default()));
        let refund = usage.clone();
        let cache = moka::future::Cache::builder()
            // A backstop only: the budgets below refuse before it is reached.
            .max_capacity(limits.prepared_statement_memory.saturating_mul(2))
            .weigher(|_, entry: &Arc<PreparedEntry>| u32::try_from(entry.bytes).unwrap_or(u32::MAX))
            .time_to_idle(idle)
            .eviction_listener(
                move |_id, entry: Arc<PreparedEntry>, _cause: RemovalCause| {
                    refund
                        .lock()
                        .expect("usage lock")
                        .release(&entry.user, entry.bytes);
                },
            )
            .build();
        Self {
            cache,
            usage,
            limits,
        }
    }

    pub(crate) async fn get(&self, id: &str) -> Option<Arc<PreparedEntry>> {
        self.cache.get(id).await
    }

    pub(crate) async fn close(&self, id: &str) {
        self.cache.invalidate(id).await;
    }

    /// Keep `entry` under `id`, replacing `replaces` (the entry it updates,
    /// whose bytes are about to be refunded); refused when a budget would
    /// be passed.
    pub(crate) async fn insert(
        &self,
        id: String,
        entry: PreparedEntry,
        replaces: Option<&PreparedEntry>,
    ) -> Result<(), Status> {
        if let Err(first) = self.charge(&entry, replaces) {
            // Expired and closed entries are refunded when the cache does
            // its housekeeping; do it now before refusing.
            self.cache.run_pending_tasks().await;
            if self.charge(&entry, replaces).is_err() {
                return Err(first);
            }
        }
        self.cache.insert(id, Arc::new(entry)).await;
        Ok(())
    }

    /// Charge `entry` to the budgets, crediting the entry it replaces.
    fn charge(
        &self,
        entry: &PreparedEntry,
        replaces: Option<&PreparedEntry>,
    ) -> Result<(), Status> {
        let credit = replaces.map_or(0, |old| old.bytes);
        let mut usage = self.usage.lock().expect("usage lock");
        let user_held = usage.per_user.get(&entry.user).copied().unwrap_or(0);
        let user_after = (user_held + entry.bytes).saturating_sub(credit);
        let total_after = (usage.total + entry.bytes).saturating_sub(credit);
        if user_after > self.limits.prepared_statement_memory_per_user {
            return Err(Status::resource_exhausted(format!(
                "[53400] prepared statements of {} would hold {user_after} bytes; at most {} \
                 are kept per user (limits.prepared_statement_memory_per_user): close \
                 prepared statements you no longer need",
                entry.user, self.limits.prepared_statement_memory_per_user
            )));
        }
        if total_after > self.limits.prepared_statement_memory {
            return Err(Status::resource_exhausted(format!(
                "[53400] prepared statements would hold {total_after} bytes; the server keeps \
                 at most {} (limits.prepared_statement_memory): try again later",
                self.limits.prepared_statement_memory
            )));
        }
        usage.total += entry.bytes;
        *usage.per_user.entry(entry.user.clone()).or_default() += entry.bytes;
        Ok(())
    }
}

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
    use super::*;

    fn limits(per_user: u64, total: u64) -> RequestLimits {
        RequestLimits {
            prepared_statement_memory: total,
            prepared_statement_memory_per_user: per_user,
            ..Default::default()
        }
    }

    fn entry(user: &str, sql_bytes: usize) -> PreparedEntry {
        PreparedEntry::new(user.into(), "x".repeat(sql_bytes), vec![], None)
    }

    #[tokio::test]
    async fn budgets_per_user_and_in_total_refuse_and_refund() {
        let store = PreparedStatements::new(limits(10_000, 25_000), Duration::from_secs(60));
        for i in 0..3 {
            store
                .insert(format!("a{i}"), entry("a", 2_500), None)
                .await
                .unwrap();
        }
        let err = store
            .insert("a3".into(), entry("a", 2_500), None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.message().contains("prepared_statement_memory_per_user"));
        // Another user has a budget of their own ...
        for i in 0..3 {
            store
                .insert(format!("b{i}"), entry("b", 2_500), None)
                .await
                .unwrap();
        }
        // ... up to the total (each entry weighs 3,013 bytes: 7 fit in 25,000).
        for i in 0..2 {
            store
                .insert(format!("c{i}"), entry("c", 2_500), None)
                .await
                .unwrap();
        }
        let err = store
            .insert("d0".into(), entry("d", 2_500), None)
            .await
            .unwrap_err();
        assert!(
            err.message().contains("(limits.prepared_statement_memory)"),
            "{err:?}"
        );
        // Closing refunds: `a` may prepare again.
        store.close("a0").await;
        store
            .insert("a3".into(), entry("a", 2_500), None)
            .await
            .unwrap();
        // Replacing an entry is charged only the difference.
        let old = store.get("a3").await.unwrap();
        let bound = old.with_params(vec![ScalarValue::Int64(Some(1))]);
        store.insert("a3".into(), bound, Some(&old)).await.unwrap();
    }

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
