//! One query's memory: its peak (for `system.runtime.queries`) and
//! `[limits] query_memory`, the most one query may hold inside the budget
//! all running queries share (`[limits] memory`).
//!
//! DataFusion has one memory pool per runtime, and every session shares the
//! runtime. Each query therefore runs with a runtime of its own
//! ([`query_runtime`]) that shares everything with the common one (disk
//! manager, object stores, caches) except its pool: a [`QueryMemoryPool`]
//! that counts this query's reservations (and its peak) against its cap,
//! if any, and passes each on to the shared pool, so both limits hold.
//! Operators that can spill do so when either refuses; the others fail
//! with 53200, and the message says which limit refused:
//! `[limits] query_memory` or `[limits] memory`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    human_readable_size, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};

/// A runtime like `shared` whose memory pool holds one query to `cap`
/// bytes (`None`: only the shared budget), and the query's peak memory.
pub(crate) fn query_runtime(
    shared: &RuntimeEnv,
    cap: Option<usize>,
) -> Result<(Arc<RuntimeEnv>, Arc<AtomicUsize>)> {
    let pool = QueryMemoryPool::new(shared.memory_pool.clone(), cap);
    let peak = pool.peak.clone();
    let runtime = RuntimeEnvBuilder::from_runtime_env(shared)
        .with_memory_pool(Arc::new(pool))
        .build_arc()?;
    Ok((runtime, peak))
}

/// One query's view of the shared pool, maybe capped.
#[derive(Debug)]
pub(crate) struct QueryMemoryPool {
    shared: Arc<dyn MemoryPool>,
    cap: Option<usize>,
    used: AtomicUsize,
    peak: Arc<AtomicUsize>,
}

impl QueryMemoryPool {
    pub(crate) fn new(shared: Arc<dyn MemoryPool>, cap: Option<usize>) -> Self {
        Self {
            shared,
            cap,
            used: AtomicUsize::new(0),
            peak: Arc::default(),
        }
    }

    /// Count `additional` bytes as held (already granted).
    fn held(&self, additional: usize) {
        let now = self.used.fetch_add(additional, Ordering::SeqCst) + additional;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }
}

impl std::fmt::Display for QueryMemoryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cap {
            Some(cap) => write!(
                f,
                "query_memory({} of {} used, within {})",
                human_readable_size(self.reserved()),
                human_readable_size(cap),
                self.shared
            ),
            None => write!(
                f,
                "query({} used, within {})",
                human_readable_size(self.reserved()),
                self.shared
            ),
        }
    }
}

impl MemoryPool for QueryMemoryPool {
    fn name(&self) -> &str {
        "query_memory"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.shared.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.shared.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.shared.grow(reservation, additional);
        self.held(additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.shared.shrink(reservation, shrink);
        self.used.fetch_sub(shrink, Ordering::SeqCst);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let Some(cap) = self.cap else {
            self.shared
                .try_grow(reservation, additional)
                .map_err(|err| match err {
                    DataFusionError::ResourcesExhausted(msg) => {
                        DataFusionError::ResourcesExhausted(format!("[limits] memory: {msg}"))
                    }
                    other => other,
                })?;
            self.held(additional);
            return Ok(());
        };
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(additional).filter(|total| *total <= cap)
            })
            .map_err(|used| {
                DataFusionError::ResourcesExhausted(format!(
                    "[limits] query_memory: failed to allocate additional {} for {} with {} \
                     already allocated for this reservation - {} of the query's {} remain",
                    human_readable_size(additional),
                    reservation.consumer().name(),
                    human_readable_size(reservation.size()),
                    human_readable_size(cap.saturating_sub(used)),
                    human_readable_size(cap),
                ))
            })?;
        self.shared
            .try_grow(reservation, additional)
            .map_err(|err| {
                self.used.fetch_sub(additional, Ordering::SeqCst);
                match err {
                    DataFusionError::ResourcesExhausted(msg) => {
                        DataFusionError::ResourcesExhausted(format!("[limits] memory: {msg}"))
                    }
                    other => other,
                }
            })?;
        self.peak
            .fetch_max(self.used.load(Ordering::SeqCst), Ordering::Relaxed);
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    fn memory_limit(&self) -> MemoryLimit {
        match self.cap {
            Some(cap) => MemoryLimit::Finite(cap),
            None => self.shared.memory_limit(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::FairSpillPool;

    #[test]
    fn both_the_cap_and_the_shared_pool_hold() {
        let shared: Arc<dyn MemoryPool> = Arc::new(FairSpillPool::new(1000));
        let query: Arc<dyn MemoryPool> = Arc::new(QueryMemoryPool::new(shared.clone(), Some(300)));
        let a = MemoryConsumer::new("SortExec").register(&query);
        a.try_grow(200).unwrap();
        assert_eq!(shared.reserved(), 200);
        let err = a.try_grow(200).unwrap_err().to_string();
        assert!(err.contains("[limits] query_memory"), "{err}");
        assert!(err.contains("SortExec"), "{err}");
        // A refused request reserves nothing.
        assert_eq!(shared.reserved(), 200);
        assert_eq!(query.reserved(), 200);

        // Another query (or the shared pool) takes most of the budget.
        let other = MemoryConsumer::new("HashJoinInput").register(&shared);
        other.try_grow(750).unwrap();
        let err = a.try_grow(100).unwrap_err().to_string();
        assert!(err.contains("[limits] memory"), "{err}");
        assert_eq!(query.reserved(), 200);

        drop(other);
        a.try_grow(100).unwrap();
        drop(a);
        assert_eq!(query.reserved(), 0);
        assert_eq!(shared.reserved(), 0);
    }

    #[test]
    fn a_query_runtime_shares_all_but_its_pool() {
        let shared = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(1 << 20)))
            .build()
            .unwrap();
        let (runtime, peak) = query_runtime(&shared, Some(1024)).unwrap();
        assert!(Arc::ptr_eq(&runtime.disk_manager, &shared.disk_manager));
        assert!(matches!(
            runtime.memory_pool.memory_limit(),
            MemoryLimit::Finite(1024)
        ));
        let a = MemoryConsumer::new("SortExec").register(&runtime.memory_pool);
        a.try_grow(600).unwrap();
        a.shrink(500);
        a.try_grow(100).unwrap();
        assert_eq!(peak.load(Ordering::Relaxed), 600);
    }

    #[test]
    fn without_a_cap_only_the_shared_budget_holds() {
        let shared: Arc<dyn MemoryPool> = Arc::new(FairSpillPool::new(1000));
        let query: Arc<dyn MemoryPool> = Arc::new(QueryMemoryPool::new(shared.clone(), None));
        assert!(matches!(query.memory_limit(), MemoryLimit::Finite(1000)));
        let a = MemoryConsumer::new("SortExec").register(&query);
        a.try_grow(900).unwrap();
        let err = a.try_grow(200).unwrap_err().to_string();
        assert!(err.contains("[limits] memory"), "{err}");
        assert_eq!(query.reserved(), 900);
    }
}
