//! Results kept for the next run of the same query under the same
//! effective policy (`[result_cache]`).
//!
//! A BI dashboard runs the same queries over and over; when their data has
//! not changed, the answer has not either. A result is kept when the query
//! is deterministic (every function immutable) and every table it reads
//! can tell whether it changed:
//! - a file table (its files' paths, sizes and modification times) or a
//!   Delta table (its newest version): checked at every run, so a kept
//!   result is never staler than a fresh run would be;
//! - a database table only where its catalog sets a freshness bound
//!   (`result_cache_ttl`): a kept result is served for at most that long.
//!
//! The key is the analysed plan with its parameter values, the session
//! settings analysis reads, and, for each table the policy restricts, what
//! the policy lets this identity see of it (row filters and the expression
//! of every column, with the identity's values put in: see
//! [`PolicyTable::fingerprint`]). Two users under the same effective
//! policy share a result; a user with other filters or masks never sees
//! it. When the query reads a catalog that runs its queries as the end
//! user (the source applies its own policy per person), the key also holds
//! the user, their groups and attributes. A result is also only served under the policy it was made under:
//! any policy reload retires every kept result.
//!
//! Kept results are bounded in bytes (moka, weighed by Arrow memory size);
//! a result larger than `max_entry_bytes` is streamed and not kept. Hits
//! show in EXPLAIN ANALYZE (a `ResultCacheExec` line instead of the plan
//! that would have run) and in the metrics.
//!
//! [`PolicyTable::fingerprint`]: crate::access::barrier::PolicyTable

mod fill;
mod key;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::SendableRecordBatchStream;
use meshgate_policy::Policy;

pub(crate) use fill::Filling;
pub(crate) use key::{Probe, ProbeContext};

/// `[result_cache]`: how much is kept, and for which catalogs' database
/// tables for how long.
#[derive(Debug, Clone)]
pub struct ResultCacheSettings {
    /// Bytes of results kept in all (0: nothing is kept).
    pub max_bytes: u64,
    /// The largest result kept.
    pub max_entry_bytes: u64,
    /// Catalogs whose database tables' results may be kept, and for how
    /// long (their freshness bound).
    pub catalog_ttl: HashMap<String, Duration>,
}

impl Default for ResultCacheSettings {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            max_entry_bytes: 8 << 20,
            catalog_ttl: HashMap::new(),
        }
    }
}

/// What the cache has done since start, for the metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResultCacheStats {
    /// Runs served from a kept result.
    pub hits: u64,
    /// Runs of a query that could be kept but was not (or no longer) at hand.
    pub misses: u64,
    /// Results kept.
    pub stores: u64,
    /// Bytes kept now.
    pub bytes: u64,
    /// Results kept now.
    pub entries: u64,
}

/// A kept result.
#[derive(Debug)]
pub(crate) struct Entry {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    bytes: usize,
    rows: usize,
    /// The tables' change marks when the query that made it started.
    stamps: Vec<u64>,
    made: Instant,
    /// Served until then (the tightest freshness bound of its catalogs).
    expires: Option<Instant>,
    /// The policy it was made under.
    policy: Option<Arc<Policy>>,
    /// The columns the query read (for the audit record of a hit).
    columns: Vec<String>,
}

impl Entry {
    /// The kept rows as a stream.
    pub(crate) fn stream(&self) -> datafusion::error::Result<SendableRecordBatchStream> {
        Ok(Box::pin(MemoryStream::try_new(
            self.batches.clone(),
            self.schema.clone(),
            None,
        )?))
    }

    pub(crate) fn columns(&self) -> &[String] {
        &self.columns
    }

    /// EXPLAIN ANALYZE output for a run served from this entry, in
    /// `schema` (`plan_type`, `plan`).
    pub(crate) fn explain_analyze(
        &self,
        schema: SchemaRef,
        elapsed: Duration,
    ) -> datafusion::error::Result<SendableRecordBatchStream> {
        let line = format!(
            "ResultCacheExec: hit, rows={}, bytes={}, age={}ms, metrics=[output_rows={}, elapsed_compute={}us]",
            self.rows,
            self.bytes,
            self.made.elapsed().as_millis(),
            self.rows,
            elapsed.as_micros(),
        );
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["Plan with Metrics"])),
                Arc::new(StringArray::from(vec![line])),
            ],
        )?;
        Ok(Box::pin(MemoryStream::try_new(vec![batch], schema, None)?))
    }
}

/// The kept results of one gateway (shared by its sessions).
pub struct ResultCache {
    cache: moka::sync::Cache<String, Arc<Entry>>,
    settings: ResultCacheSettings,
    hits: AtomicU64,
    misses: AtomicU64,
    stores: AtomicU64,
}

impl std::fmt::Debug for ResultCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultCache")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Default for ResultCache {
    fn default() -> Self {
        Self::new(ResultCacheSettings::default())
    }
}

impl ResultCache {
    pub fn new(settings: ResultCacheSettings) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(settings.max_bytes)
            .weigher(|key: &String, entry: &Arc<Entry>| {
                u32::try_from(key.len() + entry.bytes).unwrap_or(u32::MAX)
            })
            .build();
        Self {
            cache,
            settings,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stores: AtomicU64::new(0),
        }
    }

    /// Whether anything is kept at all.
    pub(crate) fn enabled(&self) -> bool {
        self.settings.max_bytes > 0 && self.settings.max_entry_bytes > 0
    }

    pub(crate) fn settings(&self) -> &ResultCacheSettings {
        &self.settings
    }

    /// The result kept for `probe`, if it still answers it: made under
    /// `policy`, over tables that have not changed since, within its
    /// freshness bound. A kept result that no longer answers is dropped.
    pub(crate) fn get(&self, probe: &Probe, policy: &Option<Arc<Policy>>) -> Option<Arc<Entry>> {
        let entry = self.cache.get(probe.key())?;
        let same_policy = match (&entry.policy, policy) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        let fresh = entry.expires.is_none_or(|at| Instant::now() < at);
        if same_policy && fresh && entry.stamps == probe.stamps() {
            self.hits.fetch_add(1, Ordering::Relaxed);
            Some(entry)
        } else {
            self.cache.invalidate(probe.key());
            None
        }
    }

    /// Count a run of a query that could be kept and was not at hand.
    pub(crate) fn missed(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    fn store(&self, key: String, entry: Entry) {
        self.stores.fetch_add(1, Ordering::Relaxed);
        self.cache.insert(key, Arc::new(entry));
    }

    /// Forget every kept result (a policy or catalog change).
    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    pub fn stats(&self) -> ResultCacheStats {
        self.cache.run_pending_tasks();
        ResultCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stores: self.stores.load(Ordering::Relaxed),
            bytes: self.cache.weighted_size(),
            entries: self.cache.entry_count(),
        }
    }
}
