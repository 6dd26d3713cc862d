//! The pgwire backends (connections) of the [`QueryRegistry`], as
//! `pg_stat_activity` lists them, and `pg_cancel_backend` /
//! `pg_terminate_backend`: the same permission rule as for statements.

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::registry::{QueryRegistry, STOP_CANCEL, STOP_TERMINATE};
use crate::QueryError;

/// A pgwire connection as `pg_stat_activity` shows it.
#[derive(Debug, Clone)]
pub struct BackendInfo {
    pub pid: i32,
    pub user: String,
    pub application_name: String,
    pub client: String,
    pub backend_start: DateTime<Utc>,
    /// `active` while a statement runs, else `idle`.
    pub state: &'static str,
    /// The running statement, or the last one.
    pub query: String,
    pub query_start: Option<DateTime<Utc>>,
}

pub(super) struct Backend {
    pub(super) info: BackendInfo,
    /// The query id of the statement running on the connection.
    pub(super) running: Option<String>,
    pub(super) terminated: CancellationToken,
}

impl QueryRegistry {
    /// List a pgwire connection under `pid` until the handle is dropped.
    pub fn register_backend(
        &self,
        pid: i32,
        user: &str,
        application_name: &str,
        client: &str,
    ) -> BackendHandle {
        let terminated = CancellationToken::new();
        self.inner.backends.lock().expect("backends lock").insert(
            pid,
            Backend {
                info: BackendInfo {
                    pid,
                    user: user.to_owned(),
                    application_name: application_name.to_owned(),
                    client: client.to_owned(),
                    backend_start: Utc::now(),
                    state: "idle",
                    query: String::new(),
                    query_start: None,
                },
                running: None,
                terminated: terminated.clone(),
            },
        );
        BackendHandle {
            registry: self.clone(),
            pid,
            terminated,
        }
    }

    /// The pgwire connections `viewer` may see (`None`: all), by pid.
    pub fn backends(&self, viewer: Option<&str>) -> Vec<BackendInfo> {
        let mut out: Vec<BackendInfo> = self
            .inner
            .backends
            .lock()
            .expect("backends lock")
            .values()
            .filter(|b| viewer.is_none_or(|v| v == b.info.user))
            .map(|b| b.info.clone())
            .collect();
        out.sort_by_key(|b| b.pid);
        out
    }

    /// `pg_cancel_backend` (`terminate` false) or `pg_terminate_backend`:
    /// stop the statement of connection `pid` (and, terminating, end the
    /// connection). `Ok(false)` when an admin names no connection (or, to
    /// cancel, an idle one), as PostgreSQL answers.
    pub fn signal_backend(
        &self,
        pid: i32,
        caller: &str,
        admin: bool,
        terminate: bool,
    ) -> Result<bool, QueryError> {
        let (running, terminated) = {
            let backends = self.inner.backends.lock().expect("backends lock");
            match backends.get(&pid) {
                Some(b) if admin || b.info.user == caller => {
                    (b.running.clone(), b.terminated.clone())
                }
                _ if !admin => {
                    let action = if terminate { "terminate" } else { "cancel" };
                    return Err(QueryError::PermissionDenied(format!(
                        "permission denied to {action} backend {pid}: \
                         it is not a connection of {caller}"
                    )));
                }
                _ => return Ok(false),
            }
        };
        if terminate {
            terminated.cancel();
        }
        let entry = running.and_then(|id| {
            self.inner
                .running
                .lock()
                .expect("running lock")
                .get(&id)
                .cloned()
        });
        match entry {
            Some(entry) => {
                entry.stop(if terminate {
                    STOP_TERMINATE
                } else {
                    STOP_CANCEL
                });
                Ok(true)
            }
            None => Ok(terminate),
        }
    }
}

/// A pgwire connection's listing in `pg_stat_activity`, removed on drop.
pub struct BackendHandle {
    registry: QueryRegistry,
    pid: i32,
    terminated: CancellationToken,
}

impl BackendHandle {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// `pg_terminate_backend` named this connection.
    pub fn is_terminated(&self) -> bool {
        self.terminated.is_cancelled()
    }
}

impl Drop for BackendHandle {
    fn drop(&mut self) {
        self.registry
            .inner
            .backends
            .lock()
            .expect("backends lock")
            .remove(&self.pid);
    }
}

#[cfg(test)]
mod tests {
    use crate::runtime::registry::QueryStart;
    use crate::runtime::QueryRegistry;
    use crate::QueryError;

    #[test]
    fn backends_are_signalled_by_pid() {
        let registry = QueryRegistry::default();
        let backend = registry.register_backend(7, "alice", "psql", "127.0.0.1:1");
        assert_eq!(registry.backends(Some("bob")).len(), 0);
        assert_eq!(registry.backends(None)[0].state, "idle");
        let query = registry.register(QueryStart {
            user: "alice".into(),
            protocol: "pgwire".into(),
            backend_pid: Some(7),
            ..QueryStart::default()
        });
        assert_eq!(registry.backends(None)[0].state, "active");
        assert!(registry.signal_backend(7, "bob", false, false).is_err());
        assert!(registry.signal_backend(7, "alice", false, false).unwrap());
        assert!(query.stop_token().is_cancelled());
        query.finish(Some(&QueryError::Cancelled));
        assert_eq!(registry.backends(None)[0].state, "idle");
        assert!(!registry.signal_backend(8, "admin", true, false).unwrap());
        assert!(registry.signal_backend(7, "admin", true, true).unwrap());
        assert!(backend.is_terminated());
        drop(backend);
        assert!(registry.backends(None).is_empty());
    }
}
