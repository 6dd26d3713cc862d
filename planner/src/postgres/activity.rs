//! `pg_stat_activity` over meshgate's pgwire backends, and the functions
//! that act on them: `pg_cancel_backend(pid)` stops the backend's running
//! statement (its client gets 57014 and keeps its connection),
//! `pg_terminate_backend(pid)` also ends the connection (57P01, then the
//! connection closes).
//!
//! Unlike PostgreSQL, a user who is not an admin sees only their own
//! backends: other users' connections, queries and addresses are none of
//! their business. Signalling another user's backend (or a pid that does
//! not exist) is refused with 42501 and the same words either way; an admin
//! signals any, and gets `false` for a pid that names no backend.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    ArrayRef, AsArray, BooleanArray, Int32Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarUDF, Volatility};

use crate::runtime::table::{timestamp, AdminCheck, RowSource, SnapshotTable};
use crate::runtime::{BackendInfo, QueryRegistry};

/// What a pgwire session needs to show and signal backends.
#[derive(Clone)]
pub(crate) struct Activity {
    pub(crate) registry: QueryRegistry,
    pub(crate) user: String,
    pub(crate) admin: AdminCheck,
    /// This session's own backend pid, once the pgwire front end attached it.
    pub(crate) own_pid: Arc<OnceLock<i32>>,
}

impl Activity {
    fn viewer(&self) -> Option<&str> {
        (!(self.admin)()).then_some(self.user.as_str())
    }
}

/// The columns of `pg_stat_activity` (PostgreSQL's, those meshgate knows
/// filled in, the others NULL).
fn schema() -> SchemaRef {
    let int = |name: &str| Field::new(name, DataType::Int32, true);
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        int("datid"),
        text("datname"),
        int("pid"),
        int("leader_pid"),
        int("usesysid"),
        text("usename"),
        text("application_name"),
        text("client_addr"),
        text("client_hostname"),
        int("client_port"),
        timestamp("backend_start", true),
        timestamp("xact_start", true),
        timestamp("query_start", true),
        timestamp("state_change", true),
        text("wait_event_type"),
        text("wait_event"),
        text("state"),
        text("backend_xid"),
        text("backend_xmin"),
        text("query"),
        text("backend_type"),
    ]))
}

/// `pg_stat_activity` for one session.
pub(crate) fn stat_activity(activity: Activity, database: String) -> SnapshotTable {
    let rows: RowSource =
        Arc::new(move || batch(&activity.registry.backends(activity.viewer()), &database));
    SnapshotTable::new(schema(), rows)
}

fn batch(backends: &[BackendInfo], database: &str) -> datafusion::error::Result<RecordBatch> {
    let schema = schema();
    let columns = schema
        .fields()
        .iter()
        .map(|field| -> ArrayRef {
            let name = field.name().as_str();
            match field.data_type() {
                DataType::Int32 => {
                    let mut b = Int32Builder::new();
                    for backend in backends {
                        b.append_option(match name {
                            "pid" => Some(backend.pid),
                            "client_port" => backend
                                .client
                                .rsplit_once(':')
                                .and_then(|(_, port)| port.parse().ok()),
                            _ => None,
                        });
                    }
                    Arc::new(b.finish())
                }
                DataType::Utf8 => {
                    let mut b = StringBuilder::new();
                    for backend in backends {
                        let host = backend
                            .client
                            .rsplit_once(':')
                            .map(|(host, _)| host.trim_matches(['[', ']']))
                            .unwrap_or(&backend.client);
                        b.append_option(match name {
                            "datname" => Some(database),
                            "usename" => Some(backend.user.as_str()),
                            "application_name" => Some(backend.application_name.as_str()),
                            "client_addr" => Some(host),
                            "state" => Some(backend.state),
                            "query" => Some(backend.query.as_str()),
                            "backend_type" => Some("client backend"),
                            _ => None,
                        });
                    }
                    Arc::new(b.finish())
                }
                _ => {
                    let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
                    for backend in backends {
                        b.append_option(match name {
                            "backend_start" => Some(backend.backend_start.timestamp_micros()),
                            "query_start" | "state_change" => {
                                backend.query_start.map(|t| t.timestamp_micros())
                            }
                            _ => None,
                        });
                    }
                    Arc::new(b.finish())
                }
            }
        })
        .collect();
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// `pg_cancel_backend(pid)` (`terminate` false) or `pg_terminate_backend(pid)`.
pub(crate) fn signal_udf(activity: Activity, terminate: bool) -> ScalarUDF {
    let name = if terminate {
        "pg_terminate_backend"
    } else {
        "pg_cancel_backend"
    };
    create_udf(
        name,
        vec![DataType::Int64],
        DataType::Boolean,
        Volatility::Volatile,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let pids = arrays[0].as_primitive::<Int64Type>();
            let admin = (activity.admin)();
            let signalled = pids
                .iter()
                .map(|pid| match pid.and_then(|p| i32::try_from(p).ok()) {
                    Some(pid) => activity
                        .registry
                        .signal_backend(pid, &activity.user, admin, terminate)
                        .map(Some)
                        .map_err(|e| DataFusionError::External(Box::new(e))),
                    None => Ok(None),
                })
                .collect::<datafusion::error::Result<BooleanArray>>()?;
            Ok(ColumnarValue::Array(Arc::new(signalled)))
        }),
    )
}

/// `pg_backend_pid()`: the pid this session is listed under in
/// `pg_stat_activity` (NULL for a session without a pgwire backend).
pub(crate) fn backend_pid_udf(activity: &Activity) -> ScalarUDF {
    let own = activity.own_pid.clone();
    create_udf(
        "pg_backend_pid",
        vec![],
        DataType::Int32,
        Volatility::Stable,
        Arc::new(move |_: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Int32(
                own.get().copied(),
            )))
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn users_see_and_signal_only_their_own_backends() {
        let registry = QueryRegistry::default();
        let _mine = registry.register_backend(11, "alice", "psql", "127.0.0.1:5000");
        let _theirs = registry.register_backend(12, "bob", "app", "127.0.0.1:5001");
        let activity = Activity {
            registry: registry.clone(),
            user: "alice".into(),
            admin: Arc::new(|| false),
            own_pid: Arc::new(OnceLock::from(11)),
        };
        let ctx = SessionContext::new();
        ctx.register_table(
            "pg_stat_activity",
            Arc::new(stat_activity(activity.clone(), "members".into())),
        )
        .unwrap();
        ctx.register_udf(signal_udf(activity.clone(), false));
        ctx.register_udf(backend_pid_udf(&activity));
        let own = ctx.sql("SELECT pg_backend_pid()").await.unwrap();
        let own = own.collect().await.unwrap();
        assert_eq!(
            own[0]
                .column(0)
                .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
                .value(0),
            11
        );
        let batches = ctx
            .sql("SELECT pid, usename, client_addr, client_port, state FROM pg_stat_activity")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(
            text.contains("| 11  | alice   | 127.0.0.1   | 5000        | idle  |"),
            "{text}"
        );
        assert!(!text.contains("bob"), "{text}");
        let own = ctx.sql("SELECT pg_cancel_backend(11)").await.unwrap();
        assert_eq!(own.collect().await.unwrap()[0].num_rows(), 1);
        let other = ctx.sql("SELECT pg_cancel_backend(12)").await.unwrap();
        let err = other.collect().await.unwrap_err();
        assert_eq!(crate::QueryError::from(err).sqlstate(), "42501");
    }
}
