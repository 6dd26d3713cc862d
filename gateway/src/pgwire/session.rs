//! The [`QuerySession`] of one pgwire connection, opened lazily on first
//! use from the start-up parameters (user, database, `options=-c
//! search_path=...`, application_name) once authentication has succeeded,
//! and the audit record of requests refused before the planner sees them.

use std::sync::Arc;

use meshgate_planner::{AuditRecord, Identity, QueryService, QuerySession, SessionOptions};
use pgwire::api::ClientInfo;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use super::cancel::ConnectionOwners;
use super::errors::to_pg_error;
use crate::request_limits::RequestLimits;

/// The session of one connection, opened lazily.
pub(super) struct SessionSlot {
    pub(super) service: Arc<QueryService>,
    pub(super) session: Mutex<Option<QuerySession>>,
    pub(super) limits: RequestLimits,
    pub(super) owners: Arc<ConnectionOwners>,
    /// The backend pid this connection is listed under in `owners`.
    pub(super) pid: std::sync::Mutex<Option<i32>>,
}

impl SessionSlot {
    /// Refuse SQL text over `max_statement_bytes` before anything parses it.
    pub(super) fn check_length(&self, sql: &str) -> PgWireResult<()> {
        self.limits.check_statement(sql).map_err(|e| {
            PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".to_owned(),
                crate::request_limits::StatementTooLong::SQLSTATE.to_owned(),
                e.to_string(),
            )))
        })
    }

    /// Record a request refused before the planner saw it (SQL over the
    /// length limit, a connection that is not signed in): who, what and why.
    pub(super) fn audit<C: ClientInfo>(&self, client: &C, what: String, error: &PgWireError) {
        let Some(log) = self.service.audit_log() else {
            return;
        };
        let user = client
            .session_extensions()
            .get::<Identity>()
            .map(|i| i.user.clone())
            .or_else(|| client.metadata().get("user").cloned())
            .unwrap_or_default();
        let mut record =
            AuditRecord::access(user, Some(client.socket_addr().to_string()), "pgwire", what);
        let (code, message) = match error {
            PgWireError::UserError(info) => (info.code.clone(), info.message.clone()),
            other => ("XX000".to_owned(), other.to_string()),
        };
        record.decision = if code == "42501" {
            AuditRecord::DENIED
        } else {
            AuditRecord::ERROR
        }
        .into();
        record.error = Some(format!("[{code}] {message}"));
        log.write(&record);
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        if let Some(pid) = *self.pid.get_mut().expect("pid lock") {
            self.owners.remove(pid);
        }
    }
}

impl SessionSlot {
    pub(super) async fn lock<C: ClientInfo>(
        &self,
        client: &C,
    ) -> PgWireResult<MappedMutexGuard<'_, QuerySession>> {
        let mut guard = self.session.lock().await;
        if guard.is_none() {
            let meta = client.metadata();
            let options = SessionOptions {
                database: meta.get("database").cloned(),
                search_path: startup_option(meta.get("options").map(String::as_str), "search_path"),
                application_name: meta.get("application_name").cloned(),
                postgres_catalog: true,
                protocol: "pgwire".into(),
                client: Some(client.socket_addr().to_string()),
                settings: None,
            };
            let identity = client
                .session_extensions()
                .get::<Identity>()
                .map(|i| i.as_ref().clone())
                // Start-up stores the identity it signed in; without one the
                // connection never authenticated: fail closed.
                .ok_or_else(|| {
                    PgWireError::UserError(Box::new(ErrorInfo::new(
                        "FATAL".into(),
                        "28000".into(),
                        "the connection is not signed in".into(),
                    )))
                })?;
            let user = identity.user.clone();
            let mut session = self
                .service
                .open_session(identity, options)
                .map_err(|e| to_pg_error(&e))?;
            let (pid, _) = client.pid_and_secret_key();
            // Listed in pg_stat_activity, for pg_cancel_backend(pid).
            session.attach_backend(pid);
            *guard = Some(session);
            // Cancel requests for this connection are audited under its user.
            self.owners.insert(pid, &user);
            *self.pid.lock().expect("pid lock") = Some(pid);
        } else if let Some(session) = guard.as_mut() {
            // Catalogs reloaded since the last statement: take the new set.
            self.service
                .refresh_session(session)
                .map_err(|e| to_pg_error(&e))?;
        }
        Ok(MutexGuard::map(guard, |s| {
            s.as_mut().expect("session opened above")
        }))
    }
}

/// Find `-c name=value` / `--name=value` in the start-up `options` string.
fn startup_option(options: Option<&str>, name: &str) -> Option<String> {
    let options = options?;
    let mut tokens = options.split_whitespace().peekable();
    while let Some(token) = tokens.next() {
        let setting = if token == "-c" {
            tokens.next()
        } else if let Some(rest) = token.strip_prefix("-c") {
            Some(rest)
        } else {
            token.strip_prefix("--")
        };
        if let Some((key, value)) = setting.and_then(|s| s.split_once('=')) {
            if key.replace('-', "_").eq_ignore_ascii_case(name) {
                return Some(value.to_owned());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::startup_option;

    #[test]
    fn search_path_is_read_from_startup_options() {
        assert_eq!(
            startup_option(Some("-c search_path=claims,public"), "search_path").as_deref(),
            Some("claims,public")
        );
        assert_eq!(
            startup_option(
                Some("--search-path=x -c statement_timeout=5"),
                "search_path"
            )
            .as_deref(),
            Some("x")
        );
        assert_eq!(startup_option(Some("-c a=b"), "search_path"), None);
        assert_eq!(startup_option(None, "search_path"), None);
    }
}
