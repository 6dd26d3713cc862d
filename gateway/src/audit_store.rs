//! The PostgreSQL audit store (`[audit] store = "postgres://…"`): the audit
//! records of every gateway of a fleet in one table, `meshgate_audit`
//! (`id`, `recorded_at`, `record` as jsonb), which `system.audit.queries`
//! reads on any of them.
//!
//! A record is taken without waiting: it joins a local buffer of at most
//! [`BUFFER`] records, which one task writes to the table in batches (one
//! `INSERT` of up to [`BATCH`] records). While the store is slow or away the
//! task retries the same batch and the buffer fills; a record that finds it
//! full is dropped and counted. Both show in the metrics
//! (`meshgate_audit_backlog`, `meshgate_audit_dropped_total`) and in the
//! log, so a backed-up store is seen before records are lost. On a clean
//! shutdown the task writes what is buffered before the process ends.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use meshgate_planner::AuditStore;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Records held locally while the store is slow or away.
pub const BUFFER: usize = 10_000;
/// Records written in one `INSERT`.
pub const BATCH: usize = 500;
/// Records read back per chunk of `system.audit.queries`.
const READ_CHUNK: usize = 4096;
/// How long a clean shutdown waits for the buffer to reach the store.
const DRAIN: Duration = Duration::from_secs(10);

const WHAT: &str = "the audit store";

const CREATE: &str = "CREATE TABLE IF NOT EXISTS meshgate_audit (
    id bigserial PRIMARY KEY,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    record jsonb NOT NULL)";

/// The counts the metrics show: records buffered and not yet written, and
/// records dropped because the buffer was full.
#[derive(Debug, Default, Clone)]
pub struct AuditStoreCounts {
    pub backlog: Gauge<i64, std::sync::atomic::AtomicI64>,
    pub dropped: Counter,
}

/// The records of one gateway on their way to the store, and the store
/// read back.
#[derive(Debug)]
pub struct PgAuditStore {
    url: String,
    buffer: mpsc::Sender<String>,
    counts: AuditStoreCounts,
}

/// What writes the buffered records: run it with [`Writer::run`].
pub struct Writer {
    url: String,
    records: mpsc::Receiver<String>,
    counts: AuditStoreCounts,
}

impl PgAuditStore {
    /// Connect to the store at `url` and create its table if it has none.
    pub async fn open(url: &str, counts: AuditStoreCounts) -> Result<(Arc<Self>, Writer), String> {
        let client = crate::pg_store::client(url, WHAT).await?;
        client
            .batch_execute(CREATE)
            .await
            .map_err(|e| format!("cannot create the audit table: {e}"))?;
        let (buffer, records) = mpsc::channel(BUFFER);
        let store = Arc::new(Self {
            url: url.to_owned(),
            buffer,
            counts: counts.clone(),
        });
        let writer = Writer {
            url: url.to_owned(),
            records,
            counts,
        };
        Ok((store, writer))
    }
}

impl AuditStore for PgAuditStore {
    fn submit(&self, line: String) {
        match self.buffer.try_send(line) {
            Ok(()) => {
                self.counts.backlog.inc();
            }
            Err(_) => {
                let dropped = self.counts.dropped.inc() + 1;
                // Said once, then every thousandth record, not per record.
                if dropped == 1 || dropped.is_multiple_of(1000) {
                    tracing::error!(
                        dropped,
                        "audit store buffer full ({BUFFER} records): audit records dropped"
                    );
                }
            }
        }
    }

    fn lines(&self) -> BoxStream<'static, Result<Vec<String>, String>> {
        let url = self.url.clone();
        let rows = futures::stream::once(async move {
            let client = crate::pg_store::client(&url, WHAT).await?;
            let rows = client
                .query_raw(
                    "SELECT record::text FROM meshgate_audit ORDER BY id",
                    Vec::<String>::new(),
                )
                .await
                .map_err(|e| format!("cannot read the audit store: {e}"))?;
            // The client lives as long as its rows are read.
            Ok::<_, String>(rows.map(move |row| {
                let _client = &client;
                row.and_then(|r| r.try_get::<_, String>(0))
                    .map_err(|e| format!("cannot read the audit store: {e}"))
            }))
        })
        .try_flatten();
        rows.try_chunks(READ_CHUNK).map_err(|e| e.1).boxed()
    }
}

impl Writer {
    /// Write buffered records until `stop`, then what is left (for at most
    /// [`DRAIN`]).
    pub async fn run(mut self, stop: CancellationToken) {
        let mut client = None;
        loop {
            let first = tokio::select! {
                line = self.records.recv() => line,
                () = stop.cancelled() => break,
            };
            let Some(first) = first else { return };
            let batch = self.batch(first);
            self.write(&mut client, batch, Some(&stop)).await;
        }
        let deadline = tokio::time::Instant::now() + DRAIN;
        // Records of statements that end while the listeners close still
        // arrive for a moment: wait for a short quiet spell.
        while let Ok(Some(first)) = tokio::time::timeout_at(
            deadline.min(tokio::time::Instant::now() + Duration::from_millis(300)),
            self.records.recv(),
        )
        .await
        {
            let batch = self.batch(first);
            self.write(&mut client, batch, None).await;
            if tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        let left = self.counts.backlog.get();
        if left > 0 {
            tracing::error!(
                left,
                "shutting down with audit records not yet in the audit store"
            );
        }
    }

    /// `first` and whatever else is buffered, up to [`BATCH`] records.
    fn batch(&mut self, first: String) -> Vec<String> {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match self.records.try_recv() {
                Ok(line) => batch.push(line),
                Err(_) => break,
            }
        }
        batch
    }

    /// Insert `batch`, retrying while the store is away (until `stop`; once
    /// more when draining).
    async fn write(
        &self,
        client: &mut Option<tokio_postgres::Client>,
        batch: Vec<String>,
        stop: Option<&CancellationToken>,
    ) {
        let mut wait = Duration::from_millis(200);
        loop {
            match insert(&self.url, client, &batch).await {
                Ok(()) => {
                    self.counts.backlog.dec_by(batch.len() as i64);
                    return;
                }
                Err(e) => {
                    *client = None;
                    tracing::warn!(error = %e, records = batch.len(), "audit store write failed; retrying");
                    let Some(stop) = stop else {
                        return;
                    };
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = stop.cancelled() => return,
                    }
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

async fn insert(
    url: &str,
    client: &mut Option<tokio_postgres::Client>,
    batch: &[String],
) -> Result<(), String> {
    if client.as_ref().is_none_or(|c| c.is_closed()) {
        *client = Some(crate::pg_store::client(url, WHAT).await?);
    }
    let client = client.as_ref().expect("connected");
    client
        .execute(
            "INSERT INTO meshgate_audit (record) SELECT unnest($1::text[])::jsonb",
            &[&batch],
        )
        .await
        .map(drop)
        .map_err(|e| format!("cannot write to the audit store: {e}"))
}
