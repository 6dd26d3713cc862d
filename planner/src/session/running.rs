//! A statement's entry in the server's [`crate::runtime::QueryRegistry`]:
//! registered when the pipeline starts it (its query id), stopped when it
//! is killed, ended with its result stream; and the pgwire backend a
//! session is listed under in `pg_stat_activity`.

use crate::runtime::sql_text::shown_sql;
use crate::runtime::tracked::Tracked;
use crate::runtime::{QueryHandle, QueryStart};
use crate::{QueryError, QueryResult};

use super::prepared::{Prepared, QueryOutput, TxEffect};
use super::QuerySession;

impl QuerySession {
    /// List this session in `pg_stat_activity` as pgwire backend `pid`, so
    /// `pg_cancel_backend(pid)` and `pg_terminate_backend(pid)` reach it.
    pub fn attach_backend(&mut self, pid: i32) {
        let _ = self.own_pid.set(pid);
        let application_name = self
            .settings
            .read()
            .expect("settings lock")
            .get("application_name")
            .map(str::to_owned)
            .unwrap_or_default();
        self.backend = Some(self.runtime.register_backend(
            pid,
            &self.identity.user,
            &application_name,
            &self.client,
        ));
    }

    /// The query id of the statement running, or of the last one run.
    pub fn last_query_id(&self) -> Option<&str> {
        self.query_id.as_deref()
    }

    /// `pg_terminate_backend` ended this session's connection: no
    /// statement runs any more.
    pub(super) fn check_terminated(&self) -> QueryResult<()> {
        match &self.backend {
            Some(backend) if backend.is_terminated() => Err(QueryError::Terminated),
            _ => Ok(()),
        }
    }

    /// Register `prepared` as a running statement (none for an empty one).
    pub(super) fn track(&mut self, prepared: &Prepared) -> Option<QueryHandle> {
        if matches!(prepared, Prepared::Empty) {
            return None;
        }
        let tables = prepared.tables();
        let mut catalogs: Vec<String> = tables
            .iter()
            .filter_map(|t| t.split('.').next().map(str::to_owned))
            .collect();
        catalogs.sort();
        catalogs.dedup();
        let handle = self.runtime.register(QueryStart {
            user: self.identity.user.clone(),
            protocol: self.protocol.clone(),
            client: self.client.clone(),
            sql: self.shown_sql(prepared),
            catalogs,
            backend_pid: self.backend.as_ref().map(|b| b.pid()),
        });
        self.query_id = Some(handle.id().to_owned());
        Some(handle)
    }

    /// `prepared`'s text as the running-query tables show it, worked out
    /// once per statement text and policy decision.
    fn shown_sql(&self, prepared: &Prepared) -> String {
        let (sql, hide) = (prepared.sql(), self.reads_masked_columns(prepared.tables()));
        match prepared.memo() {
            Some(memo) => memo.shown_sql(sql, hide, || shown_sql(sql, hide)),
            None => shown_sql(sql, hide),
        }
    }

    /// Whether the policy masks (or hides columns of) any of `tables`
    /// (fully qualified names) for this session's user.
    fn reads_masked_columns(&self, tables: &[String]) -> bool {
        let Some(guard) = &self.guard else {
            return false;
        };
        tables.iter().any(|name| {
            let mut parts = name.splitn(3, '.');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(c), Some(s), Some(t)) => {
                    let access = guard.access(&meshgate_policy::TableName::new(c, s, t));
                    !access.masks.is_empty() || access.columns.is_some()
                }
                _ => false,
            }
        })
    }
}

/// Tie a statement's result to its registry entry: a row stream carries
/// the entry until it ends; any other result ends it now.
pub(super) fn tracked(
    query: Option<QueryHandle>,
    result: QueryResult<(QueryOutput, TxEffect)>,
) -> QueryResult<(QueryOutput, TxEffect)> {
    let Some(query) = query else {
        return result;
    };
    match result {
        Err(e) => {
            query.finish(Some(&e));
            Err(e)
        }
        Ok((QueryOutput::Rows(stream), effect)) => Ok((
            QueryOutput::Rows(Box::pin(Tracked::new(stream, query))),
            effect,
        )),
        Ok((QueryOutput::CopyOut { stream, options }, effect)) => Ok((
            QueryOutput::CopyOut {
                stream: Box::pin(Tracked::new(stream, query)),
                options,
            },
            effect,
        )),
        Ok(other) => {
            query.finish(None);
            Ok(other)
        }
    }
}
