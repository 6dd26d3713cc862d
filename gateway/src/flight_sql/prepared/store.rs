//! The prepared statements a Flight SQL listener keeps between calls, and
//! how much of them.
//!
//! A prepared statement is its SQL, the identity it was prepared by, its
//! plan, the parameter types the plan inferred and the last parameters
//! bound with DoPut. Entries are weighed in bytes (the plan counted as
//! [`crate::flight_sql::plans::plan_bytes`]) and counted against two budgets, one
//! per user and one for all users (`[limits]
//! prepared_statement_memory_per_user` and `prepared_statement_memory`); a
//! prepare or bind that would pass either is refused with 53400 instead of
//! evicting another user's statements. Entries idle longer than the token
//! lifetime expire, and their bytes return to the budgets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshgate_planner::datafusion::arrow::datatypes::DataType;
use meshgate_planner::datafusion::common::ScalarValue;
use meshgate_planner::{Identity, Prepared, ResultParts};
use moka::notification::RemovalCause;
use tonic::Status;

use crate::flight_sql::plans::{identity_bytes, plan_bytes};
use crate::request_limits::RequestLimits;

/// What every entry costs beyond its text and values (ids, the entry, the
/// cache's own bookkeeping); keeps empty statements from being free.
const ENTRY_OVERHEAD: u64 = 512;

/// A prepared statement: its SQL and plan, who prepared it, and the last
/// bound parameters.
#[derive(Debug)]
pub(crate) struct PreparedEntry {
    /// Who prepared it: the handle is their user's, and the plan was made
    /// for exactly this identity.
    pub(crate) identity: Identity,
    /// The statement as the client sent it, to plan again for another
    /// identity of the same user.
    pub(crate) sql: String,
    /// The plan every execution runs; replaced when it is made again
    /// under a newer policy (the entry stays counted as it was made).
    plan: Mutex<Prepared>,
    pub(crate) param_types: Vec<Option<DataType>>,
    pub(crate) params: Option<Vec<ScalarValue>>,
    /// A whole result counted by the last GetFlightInfo, with the physical
    /// plan made then, for the DoGet that follows it.
    counted: Mutex<Option<Arc<ResultParts>>>,
    /// Fixed when the entry is made: the budgets are charged and refunded
    /// by it.
    bytes: u64,
}

impl PreparedEntry {
    pub(crate) fn new(
        identity: Identity,
        sql: String,
        prepared: Prepared,
        param_types: Vec<Option<DataType>>,
        params: Option<Vec<ScalarValue>>,
    ) -> Self {
        let values: usize = params
            .iter()
            .flatten()
            .map(ScalarValue::size)
            .sum::<usize>();
        let bytes = ENTRY_OVERHEAD
            + identity_bytes(&identity)
            + plan_bytes(&prepared)
            + (sql.len() + values) as u64
            + (param_types.len() * std::mem::size_of::<Option<DataType>>()) as u64;
        Self {
            identity,
            sql,
            plan: Mutex::new(prepared),
            param_types,
            params,
            counted: Mutex::new(None),
            bytes,
        }
    }

    /// The user whose budget the entry is charged to.
    pub(crate) fn user(&self) -> &str {
        &self.identity.user
    }

    /// The plan an execution runs.
    pub(crate) fn plan(&self) -> Prepared {
        self.plan.lock().expect("plan lock").clone()
    }

    /// Run `prepared` from now on: the statement planned again.
    pub(crate) fn replace_plan(&self, prepared: Prepared) {
        *self.plan.lock().expect("plan lock") = prepared;
        self.counted.lock().expect("counted lock").take();
    }

    /// Keep `parts`, a whole result GetFlightInfo counted with the entry's
    /// own values, for the next DoGet.
    pub(crate) fn keep_counted(&self, parts: Arc<ResultParts>) {
        *self.counted.lock().expect("counted lock") = Some(parts);
    }

    /// The whole result the last GetFlightInfo counted, if not taken yet.
    pub(crate) fn take_counted(&self) -> Option<Arc<ResultParts>> {
        self.counted.lock().expect("counted lock").take()
    }

    /// The same statement with `params` bound.
    pub(crate) fn with_params(&self, params: Vec<ScalarValue>) -> Self {
        Self::new(
            self.identity.clone(),
            self.sql.clone(),
            self.plan(),
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
    /// Ids closed here, remembered for as long as their handles live, so a
    /// closed handle is not prepared again from what it carries.
    closed: moka::future::Cache<String, ()>,
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
                        .release(entry.user(), entry.bytes);
                },
            )
            .build();
        Self {
            cache,
            closed: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(idle)
                .build(),
            usage,
            limits,
        }
    }

    pub(crate) async fn get(&self, id: &str) -> Option<Arc<PreparedEntry>> {
        self.cache.get(id).await
    }

    pub(crate) async fn close(&self, id: &str) {
        self.closed.insert(id.to_owned(), ()).await;
        self.cache.invalidate(id).await;
    }

    /// Whether the statement `id` was closed on this gateway.
    pub(crate) fn is_closed(&self, id: &str) -> bool {
        self.closed.contains_key(id)
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
        let user_held = usage.per_user.get(entry.user()).copied().unwrap_or(0);
        let user_after = (user_held + entry.bytes).saturating_sub(credit);
        let total_after = (usage.total + entry.bytes).saturating_sub(credit);
        if user_after > self.limits.prepared_statement_memory_per_user {
            return Err(Status::resource_exhausted(format!(
                "[53400] prepared statements of {} would hold {user_after} bytes; at most {} \
                 are kept per user (limits.prepared_statement_memory_per_user): close \
                 prepared statements you no longer need",
                entry.user(),
                self.limits.prepared_statement_memory_per_user
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
        *usage.per_user.entry(entry.user().to_owned()).or_default() += entry.bytes;
        Ok(())
    }
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
        PreparedEntry::new(
            Identity::new(user),
            "x".repeat(sql_bytes),
            Prepared::Empty,
            vec![],
            None,
        )
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
}
