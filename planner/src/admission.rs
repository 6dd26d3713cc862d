//! Admission control: how many queries may run at once, per user and per
//! policy group, and how many may wait for a slot.
//!
//! Each configured limit is a gate with `max_running` slots and a queue of
//! at most `max_queued` waiters. A query needs a slot in its user's limit
//! (a `[limits.users.NAME]` entry, else the `[limits]` default for every
//! user, if any) and in the limit of every group it belongs to (the
//! policy's groups for its identity, plus those its credential asserts)
//! that has a `[limits.groups.NAME]` entry. Decisions a newcomer must know:
//! - Slots are taken one limit after another in one fixed order (the
//!   user's, then groups by name), so two queries can never each hold a slot
//!   the other waits for. A query holds the slots it has while it waits for
//!   the next.
//! - Each queue is first in, first out (a tokio semaphore is fair): a slot
//!   freed goes to the query that has waited longest for that limit.
//! - A query that finds a queue full, or that has waited longer than a
//!   limit's `queue_timeout` (counted from when it asked to be admitted),
//!   fails with [`QueryError::TooManyQueries`] (53300) naming the limit.
//! - The slots are held by an [`Admitted`] ticket: the statement pipeline
//!   wraps a row stream with it ([`AdmittedStream`]), so they are released
//!   when the stream ends, fails or is dropped (cancel, disconnect).
//! - Waiting for a slot is not statement time: `statement_timeout` starts
//!   once a query is admitted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_plan::{RecordBatchStream, SendableRecordBatchStream};
use futures::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::{QueryError, QueryResult};

/// Per-user gates kept at most, beyond which idle ones are forgotten.
const IDLE_USER_GATES: usize = 1024;

/// One concurrency limit as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcurrencyLimit {
    /// Queries that may run at once.
    pub max_running: usize,
    /// Queries that may wait for a slot; more fail at once.
    pub max_queued: usize,
    /// The longest a query waits for a slot.
    pub queue_timeout: Duration,
}

/// Every concurrency limit, from `[limits]` in the configuration. The
/// default (no limit at all) admits every query at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// The limit of every user without an entry in `users`.
    pub per_user: Option<ConcurrencyLimit>,
    /// Limits of named users.
    pub users: BTreeMap<String, ConcurrencyLimit>,
    /// Limits of policy groups.
    pub groups: BTreeMap<String, ConcurrencyLimit>,
}

/// Which limit a gate enforces, for messages.
#[derive(Debug, Clone)]
enum LimitName {
    /// The `[limits]` default for every user.
    DefaultUser(String),
    User(String),
    Group(String),
}

impl LimitName {
    fn subject(&self) -> String {
        match self {
            LimitName::DefaultUser(user) | LimitName::User(user) => format!("user \"{user}\""),
            LimitName::Group(group) => format!("group \"{group}\""),
        }
    }

    /// The configuration keys that set the limit.
    fn keys(&self, key: &str) -> String {
        match self {
            LimitName::DefaultUser(_) => match key {
                "queue_timeout" => "[limits] queue_timeout".into(),
                _ => "[limits] max_running_per_user, max_queued_per_user".into(),
            },
            LimitName::User(user) => with_key(format!("[limits.users.{user}]"), key),
            LimitName::Group(group) => with_key(format!("[limits.groups.{group}]"), key),
        }
    }
}

fn with_key(table: String, key: &str) -> String {
    if key.is_empty() {
        table
    } else {
        format!("{table} {key}")
    }
}

/// One limit's slots and queue.
#[derive(Debug)]
struct Gate {
    name: LimitName,
    limit: ConcurrencyLimit,
    slots: Arc<Semaphore>,
    queued: AtomicUsize,
}

impl Gate {
    fn new(name: LimitName, limit: ConcurrencyLimit) -> Arc<Self> {
        Arc::new(Self {
            name,
            limit,
            slots: Arc::new(Semaphore::new(limit.max_running)),
            queued: AtomicUsize::new(0),
        })
    }

    fn idle(&self) -> bool {
        self.slots.available_permits() == self.limit.max_running
            && self.queued.load(Ordering::SeqCst) == 0
    }

    fn queue_full(&self) -> QueryError {
        QueryError::TooManyQueries(format!(
            "too many queries: {} allows {} running and {} queued ({})",
            self.name.subject(),
            self.limit.max_running,
            self.limit.max_queued,
            self.name.keys(""),
        ))
    }

    fn timed_out(&self) -> QueryError {
        QueryError::TooManyQueries(format!(
            "too many queries: waited longer than {:?} for one of the {} running slots of {} ({})",
            self.limit.queue_timeout,
            self.limit.max_running,
            self.name.subject(),
            self.name.keys("queue_timeout"),
        ))
    }

    /// A slot, waiting in this gate's queue until `deadline` if none is free.
    async fn enter(
        self: &Arc<Self>,
        deadline: Instant,
        on_queued: &mut Option<impl FnOnce()>,
    ) -> QueryResult<OwnedSemaphorePermit> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let max = self.limit.max_queued;
        self.queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| self.queue_full())?;
        let _waiting = Waiting(&self.queued);
        if let Some(hook) = on_queued.take() {
            hook();
        }
        match tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(QueryError::Internal("admission gate closed".into())),
            Err(_) => Err(self.timed_out()),
        }
    }
}

/// Counts a waiter out of its queue however the wait ends (admitted, timed
/// out, or the waiting statement dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The admission controller shared by every session.
#[derive(Debug, Default)]
pub struct Admission {
    limits: AdmissionLimits,
    groups: BTreeMap<String, Arc<Gate>>,
    /// Per-user gates, made on a user's first query.
    users: Mutex<HashMap<String, Arc<Gate>>>,
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Self {
        let groups = limits
            .groups
            .iter()
            .map(|(name, limit)| {
                (
                    name.clone(),
                    Gate::new(LimitName::Group(name.clone()), *limit),
                )
            })
            .collect();
        Self {
            limits,
            groups,
            users: Mutex::new(HashMap::new()),
        }
    }

    /// Whether any limit is configured.
    pub fn is_limited(&self) -> bool {
        self.limits != AdmissionLimits::default()
    }

    fn user_gate(&self, user: &str) -> Option<Arc<Gate>> {
        let (name, limit) = match self.limits.users.get(user) {
            Some(limit) => (LimitName::User(user.to_owned()), *limit),
            None => (
                LimitName::DefaultUser(user.to_owned()),
                self.limits.per_user?,
            ),
        };
        let mut users = self.users.lock().expect("admission lock");
        if users.len() >= IDLE_USER_GATES && !users.contains_key(user) {
            // Only this map holds an idle gate: no query can be using it.
            users.retain(|_, gate| Arc::strong_count(gate) > 1 || !gate.idle());
        }
        Some(
            users
                .entry(user.to_owned())
                .or_insert_with(|| Gate::new(name, limit))
                .clone(),
        )
    }

    /// Wait for a slot in every limit `user` (a member of `groups`) is
    /// under. `on_queued` runs once if the query has to wait.
    pub async fn admit(
        &self,
        user: &str,
        groups: &BTreeSet<String>,
        on_queued: impl FnOnce(),
    ) -> QueryResult<Admitted> {
        let gates: Vec<Arc<Gate>> = self
            .user_gate(user)
            .into_iter()
            .chain(groups.iter().filter_map(|g| self.groups.get(g).cloned()))
            .collect();
        let started = Instant::now();
        let mut on_queued = Some(on_queued);
        let mut slots = Vec::with_capacity(gates.len());
        for gate in gates {
            let permit = gate
                .enter(started + gate.limit.queue_timeout, &mut on_queued)
                .await?;
            slots.push((gate, permit));
        }
        Ok(Admitted { _slots: slots })
    }
}

/// The slots one admitted query holds; dropping it frees them.
#[derive(Debug)]
pub struct Admitted {
    _slots: Vec<(Arc<Gate>, OwnedSemaphorePermit)>,
}

/// A result stream that holds its query's [`Admitted`] slots until it ends
/// (rows done or an error) or is dropped.
pub(crate) struct AdmittedStream {
    inner: SendableRecordBatchStream,
    admitted: Option<Admitted>,
}

impl AdmittedStream {
    pub(crate) fn new(inner: SendableRecordBatchStream, admitted: Admitted) -> Self {
        Self {
            inner,
            admitted: Some(admitted),
        }
    }
}

impl Stream for AdmittedStream {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        if matches!(next, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.admitted = None;
        }
        next
    }
}

impl RecordBatchStream for AdmittedStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(running: usize, queued: usize, timeout_ms: u64) -> ConcurrencyLimit {
        ConcurrencyLimit {
            max_running: running,
            max_queued: queued,
            queue_timeout: Duration::from_millis(timeout_ms),
        }
    }

    fn groups(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn group_limit(group: &str, l: ConcurrencyLimit) -> Admission {
        Admission::new(AdmissionLimits {
            groups: [(group.to_owned(), l)].into(),
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn no_limits_admit_everyone_at_once() {
        let admission = Admission::default();
        assert!(!admission.is_limited());
        let none = groups(&[]);
        let tickets: Vec<_> =
            futures::future::join_all((0..100).map(|_| admission.admit("u", &none, || {}))).await;
        assert!(tickets.iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn a_full_queue_fails_at_once_naming_the_limit() {
        let admission = group_limit("analysts", limit(1, 0, 60_000));
        let member = groups(&["analysts"]);
        let _running = admission.admit("a", &member, || {}).await.unwrap();
        let err = admission.admit("b", &member, || {}).await.unwrap_err();
        assert_eq!(err.sqlstate(), "53300");
        assert_eq!(
            err.to_string(),
            "too many queries: group \"analysts\" allows 1 running and 0 queued \
             ([limits.groups.analysts])"
        );
        // Not a member: not under the limit.
        admission
            .admit("c", &groups(&["others"]), || {})
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_wait_longer_than_queue_timeout_fails() {
        let admission = Admission::new(AdmissionLimits {
            per_user: Some(limit(1, 5, 200)),
            ..Default::default()
        });
        let _running = admission.admit("bob", &groups(&[]), || {}).await.unwrap();
        let mut queued = false;
        let err = admission
            .admit("bob", &groups(&[]), || queued = true)
            .await
            .unwrap_err();
        assert!(queued);
        assert_eq!(err.sqlstate(), "53300");
        assert!(err.to_string().contains("[limits] queue_timeout"), "{err}");
        assert!(err.to_string().contains("user \"bob\""), "{err}");
        // Another user has a limit of their own.
        admission.admit("carol", &groups(&[]), || {}).await.unwrap();
    }

    #[tokio::test]
    async fn slots_are_handed_out_first_in_first_out() {
        let admission = Arc::new(group_limit("g", limit(1, 10, 60_000)));
        let first = admission.admit("u0", &groups(&["g"]), || {}).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 1..=5 {
            let (admission, order) = (admission.clone(), order.clone());
            let (queued_tx, queued_rx) = tokio::sync::oneshot::channel();
            tasks.push(tokio::spawn(async move {
                let ticket = admission
                    .admit(&format!("u{i}"), &groups(&["g"]), || {
                        queued_tx.send(()).unwrap()
                    })
                    .await
                    .unwrap();
                order.lock().unwrap().push(i);
                drop(ticket);
            }));
            // Each waiter joins the queue before the next one starts.
            queued_rx.await.unwrap();
        }
        drop(first);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![1, 2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn a_query_needs_a_slot_in_its_user_limit_and_each_group_limit() {
        let admission = Admission::new(AdmissionLimits {
            users: [("alice".to_owned(), limit(2, 0, 1_000))].into(),
            groups: [("g".to_owned(), limit(1, 0, 1_000))].into(),
            ..Default::default()
        });
        let _g = admission
            .admit("alice", &groups(&["g"]), || {})
            .await
            .unwrap();
        // alice has a user slot left but the group has none.
        let err = admission
            .admit("alice", &groups(&["g"]), || {})
            .await
            .unwrap_err();
        assert!(err.to_string().contains("group \"g\""), "{err}");
        // Outside the group, alice's second user slot is free.
        let _second = admission.admit("alice", &groups(&[]), || {}).await.unwrap();
        let err = admission
            .admit("alice", &groups(&[]), || {})
            .await
            .unwrap_err();
        assert!(err.to_string().contains("[limits.users.alice]"), "{err}");
    }

    #[tokio::test]
    async fn dropping_the_stream_or_a_waiter_releases_its_place() {
        use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
        let admission = group_limit("g", limit(1, 1, 60_000));
        let member = groups(&["g"]);
        let ticket = admission.admit("a", &member, || {}).await.unwrap();
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::empty());
        let stream = AdmittedStream::new(
            Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::pending(),
            )),
            ticket,
        );
        // A waiter that gives up leaves the queue.
        let waiter = admission.admit("b", &member, || {});
        assert!(
            tokio::time::timeout(Duration::from_millis(20), waiter)
                .await
                .is_err(),
            "no slot is free"
        );
        let gate = &admission.groups["g"];
        assert_eq!(gate.queued.load(Ordering::SeqCst), 0);
        drop(stream);
        admission.admit("c", &member, || {}).await.unwrap();
    }

    #[tokio::test]
    async fn a_stream_frees_its_slots_when_it_ends() {
        use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
        use futures::StreamExt;
        let admission = group_limit("g", limit(1, 0, 60_000));
        let member = groups(&["g"]);
        let ticket = admission.admit("a", &member, || {}).await.unwrap();
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::empty());
        let mut stream = AdmittedStream::new(
            Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::empty(),
            )),
            ticket,
        );
        assert!(stream.next().await.is_none());
        // The stream is still alive, its slot is free.
        admission.admit("b", &member, || {}).await.unwrap();
        drop(stream);
    }
}
