//! CancelRequest: stop the running query of the connection a backend key
//! names, and record the request in the audit log.
//!
//! A cancel request arrives on a connection of its own, before (and
//! without) any sign-in: the backend key is its only credential. So the
//! record names the user of the connection the key belongs to when the key
//! matched (`allowed`), and no user when it did not (`denied`). The key
//! itself is never recorded.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use meshgate_planner::{AuditRecord, QueryService};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::ConnectionManager;
use pgwire::messages::cancel::CancelRequest;

/// Who signed in on each connection that has a session, by backend pid.
#[derive(Debug, Default)]
pub(crate) struct ConnectionOwners {
    users: Mutex<HashMap<i32, String>>,
}

impl ConnectionOwners {
    pub(crate) fn insert(&self, pid: i32, user: &str) {
        self.users
            .lock()
            .expect("owners lock")
            .insert(pid, user.to_owned());
    }

    pub(crate) fn remove(&self, pid: i32) {
        self.users.lock().expect("owners lock").remove(&pid);
    }

    fn user(&self, pid: i32) -> Option<String> {
        self.users.lock().expect("owners lock").get(&pid).cloned()
    }
}

/// The cancel handler of one (cancel) connection from `peer`.
pub(crate) struct AuditedCancel {
    pub(crate) manager: Arc<ConnectionManager>,
    pub(crate) owners: Arc<ConnectionOwners>,
    pub(crate) service: Arc<QueryService>,
    pub(crate) peer: SocketAddr,
}

#[async_trait]
impl CancelHandler for AuditedCancel {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let matched = self.manager.cancel(request.pid, &request.secret_key).await;
        let Some(log) = self.service.audit_log() else {
            return;
        };
        let what = format!("pgwire CancelRequest for backend {}", request.pid);
        let client = Some(self.peer.to_string());
        let record = if matched {
            let user = self.owners.user(request.pid).unwrap_or_default();
            AuditRecord::access(user, client, "pgwire", what)
        } else {
            AuditRecord::access("", client, "pgwire", what)
                .denied("the backend key matches no connection")
        };
        log.write(&record);
    }
}
