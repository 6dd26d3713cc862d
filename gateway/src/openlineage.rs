//! Read lineage as OpenLineage run events, for catalogs that already
//! collect them (Marquez, DataHub, OpenMetadata, Unity Catalog...).
//!
//! Each statement that read tables becomes one `RunEvent` (spec 2-0-2):
//! `COMPLETE` when it was allowed and ran, `FAIL` when it failed; a
//! statement the policy refused read nothing and sends no event. The
//! event's inputs are the tables read (`catalog.schema.table` in the
//! configured namespace) with a schema facet listing the columns the plan
//! read after the policy's rewrite; the job is the reading user, the SQL
//! travels in the job's `sql` facet, the query id and protocol in a
//! `meshgate` run facet.
//!
//! Events are built from the audit records the planner writes (so every
//! protocol is covered once) and sent from a background task: appended to
//! a JSON-lines file or POSTed to an HTTP endpoint. A slow collector never
//! slows a query: when the queue is full an event is dropped and counted
//! in the log.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use meshgate_planner::{AuditObserver, AuditRecord};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Where events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One JSON event per line, appended.
    File(PathBuf),
    /// POSTed one by one as `application/json` (e.g. Marquez's
    /// `/api/v1/lineage`).
    Http(url::Url),
}

/// The OpenLineage producer meshgate names in its events.
const PRODUCER: &str = "https://github.com/meshgate/meshgate";
const RUN_EVENT: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const SCHEMA_FACET: &str = "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json";
const SQL_FACET: &str = "https://openlineage.io/spec/facets/1-1-0/SQLJobFacet.json";
const JOB_TYPE_FACET: &str = "https://openlineage.io/spec/facets/2-0-3/JobTypeJobFacet.json";
/// Events waiting to be sent; beyond that, new ones are dropped.
const QUEUE: usize = 4096;

/// Start sending events to `target`; the returned observer queues one per
/// audited read (attach it to the audit log).
pub fn start(target: Target, namespace: String) -> AuditObserver {
    let (sender, receiver) = mpsc::channel::<Value>(QUEUE);
    tokio::spawn(send_all(target, receiver));
    let dropped = Arc::new(AtomicU64::new(0));
    Arc::new(move |record: &AuditRecord| {
        let Some(event) = run_event(record, &namespace) else {
            return;
        };
        if sender.try_send(event).is_err() {
            let n = dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(dropped = n, "OpenLineage queue full: event dropped");
        }
    })
}

/// The run event for one audit record, if it records a read.
pub fn run_event(record: &AuditRecord, namespace: &str) -> Option<Value> {
    let query_id = record.query_id.as_deref()?;
    let event_type = match record.decision.as_str() {
        AuditRecord::ALLOWED => "COMPLETE",
        AuditRecord::ERROR => "FAIL",
        _ => return None,
    };
    if record.objects.is_empty() {
        return None;
    }
    let inputs: Vec<Value> = record
        .objects
        .iter()
        .map(|table| {
            let prefix = format!("{table}.");
            let fields: Vec<Value> = record
                .columns
                .iter()
                .filter_map(|c| c.strip_prefix(&prefix))
                .map(|name| json!({ "name": name }))
                .collect();
            json!({
                "namespace": namespace,
                "name": table,
                "facets": {
                    "schema": {
                        "_producer": PRODUCER,
                        "_schemaURL": SCHEMA_FACET,
                        "fields": fields,
                    }
                }
            })
        })
        .collect();
    Some(json!({
        "eventType": event_type,
        "eventTime": record.time,
        "producer": PRODUCER,
        "schemaURL": RUN_EVENT,
        "run": {
            "runId": uuid::Uuid::new_v4().to_string(),
            "facets": {
                "meshgate": {
                    "_producer": PRODUCER,
                    "_schemaURL": format!("{PRODUCER}#meshgate-run-facet"),
                    "query_id": query_id,
                    "protocol": record.protocol,
                    "products": record.products,
                    "rows": record.rows,
                    "duration_ms": record.duration_ms,
                }
            }
        },
        "job": {
            "namespace": namespace,
            "name": record.user,
            "facets": {
                "jobType": {
                    "_producer": PRODUCER,
                    "_schemaURL": JOB_TYPE_FACET,
                    "processingType": "BATCH",
                    "integration": "MESHGATE",
                    "jobType": "QUERY",
                },
                "sql": {
                    "_producer": PRODUCER,
                    "_schemaURL": SQL_FACET,
                    "query": record.sql,
                }
            }
        },
        "inputs": inputs,
        "outputs": [],
    }))
}

/// Send queued events until every sender is gone.
async fn send_all(target: Target, mut events: mpsc::Receiver<Value>) {
    match target {
        Target::File(path) => {
            let file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .await;
            let mut file = match file {
                Ok(file) => file,
                Err(e) => {
                    return tracing::error!(path = %path.display(), error = %e, "cannot open the OpenLineage file")
                }
            };
            while let Some(event) = events.recv().await {
                let mut line = event.to_string();
                line.push('\n');
                let written = file.write_all(line.as_bytes()).await;
                if let Err(e) = written.and(file.flush().await) {
                    tracing::error!(path = %path.display(), error = %e, "cannot write an OpenLineage event");
                }
            }
        }
        Target::Http(url) => {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client without custom TLS builds");
            while let Some(event) = events.recv().await {
                let sent = client
                    .post(url.clone())
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(event.to_string())
                    .send()
                    .await
                    .and_then(|r| r.error_for_status());
                if let Err(e) = sent {
                    tracing::warn!(url = %url, error = %e, "OpenLineage endpoint refused an event");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(decision: &str) -> AuditRecord {
        let mut record = AuditRecord::access("ann", None, "pgwire", "SELECT a FROM c.s.t")
            .with_objects(vec!["c.s.t".into()]);
        record.decision = decision.into();
        record.query_id = Some("q1".into());
        record.columns = vec!["c.s.t.a".into(), "c.s.u.b".into()];
        record
    }

    #[test]
    fn a_read_becomes_a_run_event_with_the_columns_of_each_input() {
        let event = run_event(&record(AuditRecord::ALLOWED), "mesh").unwrap();
        assert_eq!(event["eventType"], "COMPLETE");
        assert_eq!(event["job"]["name"], "ann");
        assert_eq!(event["inputs"][0]["name"], "c.s.t");
        assert_eq!(
            event["inputs"][0]["facets"]["schema"]["fields"],
            json!([{ "name": "a" }])
        );
        assert!(uuid::Uuid::parse_str(event["run"]["runId"].as_str().unwrap()).is_ok());
        assert_eq!(
            run_event(&record(AuditRecord::ERROR), "mesh").unwrap()["eventType"],
            "FAIL"
        );
    }

    #[test]
    fn refusals_and_other_accesses_send_nothing() {
        assert!(run_event(&record(AuditRecord::DENIED), "mesh").is_none());
        let mut listing = record(AuditRecord::ALLOWED);
        listing.query_id = None;
        assert!(run_event(&listing, "mesh").is_none());
    }
}
