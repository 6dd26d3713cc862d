//! [`QueryRegistry`]: every statement that runs, from registration to its
//! end, and the last finished ones. The pgwire backends it also holds are
//! in `backends`.
//!
//! A statement's entry is held by a [`QueryHandle`] that travels with the
//! statement (through planning, then inside its result stream). The handle
//! counts rows and bytes as batches flow and moves the entry to the bounded
//! history when the statement ends; a handle dropped before the end (the
//! client went away, a pgwire CancelRequest) records the query as
//! `cancelled`. Stopping a query fires its [`CancellationToken`]; the
//! pipeline turns that into [`QueryError::Cancelled`] (or
//! [`QueryError::Terminated`] when its whole connection is ended).
//!
//! Permission is decided here, by the caller's user name and whether the
//! caller is an admin: anyone stops their own queries, an admin any. A
//! non-admin asking about an id or pid that is not theirs is refused with
//! the same words whether it exists or not, so guessing learns nothing.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::backends::Backend;
use crate::QueryError;

/// How many finished statements [`QueryRegistry::default`] keeps.
const DEFAULT_HISTORY: usize = 1000;

/// Where a statement is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryState {
    /// Waiting for admission (set by the admission call site).
    Queued,
    Running,
    Finished,
    Failed,
    Cancelled,
}

impl QueryState {
    pub fn as_str(self) -> &'static str {
        match self {
            QueryState::Queued => "queued",
            QueryState::Running => "running",
            QueryState::Finished => "finished",
            QueryState::Failed => "failed",
            QueryState::Cancelled => "cancelled",
        }
    }

    fn is_done(self) -> bool {
        matches!(
            self,
            QueryState::Finished | QueryState::Failed | QueryState::Cancelled
        )
    }
}

/// What a statement is registered with.
#[derive(Debug, Clone, Default)]
pub struct QueryStart {
    pub user: String,
    pub protocol: String,
    pub client: String,
    /// The text as `system.runtime.queries` shows it (already redacted).
    pub sql: String,
    /// The catalogs the statement reads.
    pub catalogs: Vec<String>,
    /// The pgwire backend running it, if any.
    pub backend_pid: Option<i32>,
}

/// One statement as `system.runtime.queries` shows it.
#[derive(Debug, Clone)]
pub struct QueryInfo {
    pub id: String,
    pub user: String,
    pub protocol: String,
    pub client: String,
    pub state: QueryState,
    pub sql: String,
    pub started: DateTime<Utc>,
    pub elapsed: Duration,
    pub rows: u64,
    /// Bytes of the Arrow batches handed to the front end.
    pub bytes: u64,
    /// The most bytes the statement held in the query memory pool at once
    /// (`None` until it runs).
    pub peak_memory: Option<u64>,
    pub catalogs: Vec<String>,
    pub backend_pid: Option<i32>,
}

/// Why a query was stopped.
const STOP_NONE: u8 = 0;
pub(super) const STOP_CANCEL: u8 = 1;
pub(super) const STOP_TERMINATE: u8 = 2;

pub(super) struct Entry {
    info: Mutex<QueryInfo>,
    begun: Instant,
    rows: AtomicU64,
    bytes: AtomicU64,
    stop: CancellationToken,
    reason: AtomicU8,
    /// The statement's peak memory, kept up by its memory pool.
    peak_memory: Mutex<Option<Arc<AtomicUsize>>>,
}

impl Entry {
    fn snapshot(&self) -> QueryInfo {
        let mut info = self.info.lock().expect("query lock").clone();
        if !info.state.is_done() {
            info.elapsed = self.begun.elapsed();
        }
        info.rows = self.rows.load(Ordering::Relaxed);
        info.bytes = self.bytes.load(Ordering::Relaxed);
        if let Some(peak) = &*self.peak_memory.lock().expect("peak lock") {
            info.peak_memory = Some(peak.load(Ordering::Relaxed) as u64);
        }
        info
    }

    pub(super) fn stop(&self, reason: u8) {
        let _ = self
            .reason
            .compare_exchange(STOP_NONE, reason, Ordering::SeqCst, Ordering::SeqCst);
        self.stop.cancel();
    }
}

#[derive(Default)]
pub(super) struct Inner {
    pub(super) running: Mutex<HashMap<String, Arc<Entry>>>,
    history: Mutex<VecDeque<QueryInfo>>,
    capacity: usize,
    pub(super) backends: Mutex<HashMap<i32, Backend>>,
    /// Bytes of result batches handed to front ends since start.
    bytes_sent: AtomicU64,
}

/// The running statements and recent history of one server, shared by
/// every session (cheap to clone).
#[derive(Clone)]
pub struct QueryRegistry {
    pub(super) inner: Arc<Inner>,
}

impl Default for QueryRegistry {
    fn default() -> Self {
        Self::new(DEFAULT_HISTORY)
    }
}

impl std::fmt::Debug for QueryRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryRegistry")
            .field("capacity", &self.inner.capacity)
            .finish()
    }
}

impl QueryRegistry {
    /// A registry keeping the last `capacity` finished statements.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                capacity,
                ..Inner::default()
            }),
        }
    }

    /// Register a statement about to run; it reads `running` until
    /// [`Self::set_state`] or its handle says otherwise.
    pub fn register(&self, start: QueryStart) -> QueryHandle {
        let id = new_query_id();
        let now = Utc::now();
        let entry = Arc::new(Entry {
            info: Mutex::new(QueryInfo {
                id: id.clone(),
                user: start.user,
                protocol: start.protocol,
                client: start.client,
                state: QueryState::Running,
                sql: start.sql,
                started: now,
                elapsed: Duration::ZERO,
                rows: 0,
                bytes: 0,
                peak_memory: None,
                catalogs: start.catalogs,
                backend_pid: start.backend_pid,
            }),
            begun: Instant::now(),
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            stop: CancellationToken::new(),
            reason: AtomicU8::new(STOP_NONE),
            peak_memory: Mutex::new(None),
        });
        if let Some(pid) = start.backend_pid {
            let mut backends = self.inner.backends.lock().expect("backends lock");
            if let Some(backend) = backends.get_mut(&pid) {
                // Ended while it was being registered: stop at once.
                if backend.terminated.is_cancelled() {
                    entry.stop(STOP_TERMINATE);
                }
                backend.running = Some(id.clone());
                backend.info.state = "active";
                backend.info.query = entry.info.lock().expect("query lock").sql.clone();
                backend.info.query_start = Some(now);
            }
        }
        self.inner
            .running
            .lock()
            .expect("running lock")
            .insert(id.clone(), entry.clone());
        QueryHandle {
            registry: self.clone(),
            entry,
            id,
            done: false,
        }
    }

    /// Mark a running statement `queued` or `running` (admission control).
    /// Ignored for an id that is not running.
    pub fn set_state(&self, id: &str, state: QueryState) {
        if let Some(entry) = self.inner.running.lock().expect("running lock").get(id) {
            entry.info.lock().expect("query lock").state = state;
        }
    }

    /// The statements `viewer` may see, running first (oldest first), then
    /// the history (newest first). `viewer` `None`: every statement.
    pub fn queries(&self, viewer: Option<&str>) -> Vec<QueryInfo> {
        let visible = |user: &str| viewer.is_none_or(|v| v == user);
        let mut running: Vec<QueryInfo> = self
            .inner
            .running
            .lock()
            .expect("running lock")
            .values()
            .map(|e| e.snapshot())
            .filter(|i| visible(&i.user))
            .collect();
        running.sort_by_key(|i| i.started);
        let history = self.inner.history.lock().expect("history lock");
        running.extend(history.iter().rev().filter(|i| visible(&i.user)).cloned());
        running
    }

    /// Stop the running statement `id` for `caller` (an admin stops any).
    pub fn cancel(&self, id: &str, caller: &str, admin: bool) -> Result<(), QueryError> {
        let entry = self
            .inner
            .running
            .lock()
            .expect("running lock")
            .get(id)
            .cloned();
        let mine = entry
            .as_ref()
            .is_some_and(|e| e.info.lock().expect("query lock").user == caller);
        match entry {
            Some(entry) if admin || mine => {
                entry.stop(STOP_CANCEL);
                Ok(())
            }
            _ if !admin => Err(QueryError::PermissionDenied(format!(
                "permission denied to cancel query \"{id}\": it is not a running query of {caller}"
            ))),
            _ => Err(QueryError::UndefinedObject(format!(
                "query \"{id}\" is not running"
            ))),
        }
    }

    /// Read running statement `id`'s peak memory from `peak` (kept up by
    /// the memory pool it runs with).
    pub fn watch_memory(&self, id: &str, peak: Arc<AtomicUsize>) {
        if let Some(entry) = self.inner.running.lock().expect("running lock").get(id) {
            *entry.peak_memory.lock().expect("peak lock") = Some(peak);
        }
    }

    /// How many statements are queued and running now, by protocol:
    /// `(protocol, queued, running)`, sorted by protocol.
    pub fn active_counts(&self) -> Vec<(String, u64, u64)> {
        let mut counts: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
        for entry in self.inner.running.lock().expect("running lock").values() {
            let info = entry.info.lock().expect("query lock");
            let count = counts.entry(info.protocol.clone()).or_default();
            match info.state {
                QueryState::Queued => count.0 += 1,
                QueryState::Running => count.1 += 1,
                _ => {}
            }
        }
        counts
            .into_iter()
            .map(|(protocol, (queued, running))| (protocol, queued, running))
            .collect()
    }

    /// Bytes of result batches handed to front ends since the server
    /// started.
    pub fn bytes_sent(&self) -> u64 {
        self.inner.bytes_sent.load(Ordering::Relaxed)
    }

    fn finish(&self, entry: &Entry, id: &str, state: QueryState) {
        let info = {
            let mut info = entry.info.lock().expect("query lock");
            info.state = state;
            info.elapsed = entry.begun.elapsed();
            drop(info);
            entry.snapshot()
        };
        self.inner.running.lock().expect("running lock").remove(id);
        if let Some(pid) = info.backend_pid {
            let mut backends = self.inner.backends.lock().expect("backends lock");
            if let Some(backend) = backends.get_mut(&pid) {
                if backend.running.as_deref() == Some(id) {
                    backend.running = None;
                    backend.info.state = "idle";
                }
            }
        }
        let mut history = self.inner.history.lock().expect("history lock");
        history.push_back(info);
        while history.len() > self.inner.capacity {
            history.pop_front();
        }
    }
}

/// A statement's entry, held while it runs. Dropped before
/// [`QueryHandle::finish`], the statement is recorded as `cancelled`.
pub struct QueryHandle {
    registry: QueryRegistry,
    entry: Arc<Entry>,
    id: String,
    done: bool,
}

impl QueryHandle {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Fires when the statement is to stop.
    pub fn stop_token(&self) -> CancellationToken {
        self.entry.stop.clone()
    }

    /// Why the statement was stopped, as the error its client gets; `None`
    /// while it is not.
    pub fn stop_error(&self) -> Option<QueryError> {
        match self.entry.reason.load(Ordering::SeqCst) {
            STOP_CANCEL => Some(QueryError::Cancelled),
            STOP_TERMINATE => Some(QueryError::Terminated),
            _ => None,
        }
    }

    /// Count a batch handed to the front end.
    pub fn add_batch(&self, rows: u64, bytes: u64) {
        self.entry.rows.fetch_add(rows, Ordering::Relaxed);
        self.entry.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.registry
            .inner
            .bytes_sent
            .fetch_add(bytes, Ordering::Relaxed);
    }

    /// The statement ended: `finished` without an error, `cancelled` for
    /// a cancellation, else `failed`.
    pub fn finish(mut self, error: Option<&QueryError>) {
        self.done = true;
        let state = match error {
            None => QueryState::Finished,
            Some(QueryError::Cancelled | QueryError::Terminated) => QueryState::Cancelled,
            Some(_) => QueryState::Failed,
        };
        self.registry.finish(&self.entry, &self.id, state);
    }
}

impl Drop for QueryHandle {
    fn drop(&mut self) {
        if !self.done {
            self.registry
                .finish(&self.entry, &self.id, QueryState::Cancelled);
        }
    }
}

/// A fresh query id: 12 hex digits of milliseconds since the epoch, then 8
/// of a per-process random sequence (sortable by start, hard to guess).
fn new_query_id() -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let millis = Utc::now().timestamp_millis() as u64 & 0xffff_ffff_ffff;
    let mut hasher = SEED.get_or_init(Default::default).build_hasher();
    hasher.write_u64(SEQUENCE.fetch_add(1, Ordering::Relaxed));
    format!("{millis:012x}{:08x}", hasher.finish() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(user: &str, pid: Option<i32>) -> QueryStart {
        QueryStart {
            user: user.into(),
            protocol: "pgwire".into(),
            sql: "SELECT 1".into(),
            backend_pid: pid,
            ..QueryStart::default()
        }
    }

    #[test]
    fn ids_are_unique_and_short() {
        let a = new_query_id();
        let b = new_query_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 20);
    }

    #[test]
    fn queries_move_to_a_bounded_history() {
        let registry = QueryRegistry::new(2);
        let handles: Vec<_> = (0..3)
            .map(|_| registry.register(start("a", None)))
            .collect();
        assert_eq!(registry.queries(None).len(), 3);
        assert!(registry
            .queries(None)
            .iter()
            .all(|q| q.state == QueryState::Running));
        for h in handles {
            h.add_batch(2, 10);
            h.finish(None);
        }
        let all = registry.queries(None);
        assert_eq!(all.len(), 2);
        assert!(all
            .iter()
            .all(|q| q.state == QueryState::Finished && q.rows == 2 && q.bytes == 10));
        let dropped = registry.register(start("a", None));
        registry.set_state(dropped.id(), QueryState::Queued);
        assert_eq!(registry.queries(None)[0].state, QueryState::Queued);
        drop(dropped);
        assert_eq!(registry.queries(None)[0].state, QueryState::Cancelled);
    }

    #[test]
    fn users_see_and_stop_only_their_own_queries() {
        let registry = QueryRegistry::default();
        let mine = registry.register(start("alice", None));
        let theirs = registry.register(start("bob", None));
        let seen: Vec<_> = registry.queries(Some("alice"));
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].id, mine.id());
        let denied = registry.cancel(theirs.id(), "alice", false).unwrap_err();
        let unknown = registry.cancel("nope", "alice", false).unwrap_err();
        assert_eq!(denied.sqlstate(), "42501");
        assert_eq!(unknown.sqlstate(), "42501");
        assert!(!theirs.stop_token().is_cancelled());
        registry.cancel(mine.id(), "alice", false).unwrap();
        assert!(mine.stop_token().is_cancelled());
        assert!(matches!(mine.stop_error(), Some(QueryError::Cancelled)));
        registry.cancel(theirs.id(), "admin", true).unwrap();
        assert!(theirs.stop_token().is_cancelled());
        assert_eq!(
            registry
                .cancel("nope", "admin", true)
                .unwrap_err()
                .sqlstate(),
            "42704"
        );
    }
}
