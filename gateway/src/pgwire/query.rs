//! Simple and extended query handling for one connection.
//!
//! The connection's [`QuerySession`] is opened on first use from the start-up
//! parameters (user, database, `options=-c search_path=...`,
//! application_name); authentication has already succeeded by then. Parse
//! plans the statement once; Bind decodes parameters with the types the plan
//! inferred (or the client declared); Execute streams the result, and pgwire
//! suspends and resumes the stream when the client asks for `max_rows` at a
//! time.
//!
//! SQL text longer than `[limits] max_statement_bytes` is refused (54000)
//! before it is parsed, and every Parse — a prepared statement created — is
//! recorded in the audit log whatever its outcome.

use std::fmt::Debug;
use std::sync::Arc;

use arrow_pg::datatypes::df::deserialize_parameters;
use arrow_pg::datatypes::into_pg_type;
use async_trait::async_trait;
use futures::channel::oneshot;
use futures::Sink;
use futures::SinkExt;
use meshgate_planner::datafusion::arrow::datatypes::{DataType, SchemaRef};
use meshgate_planner::{
    AuditRecord, Identity, Prepared, QueryError, QueryOutput, QueryService, QuerySession,
    SessionOptions, TxEffect,
};
use pgwire::api::copy::send_copy_out_response;
use pgwire::api::portal::{Format, Portal, PortalExecutionState};
use pgwire::api::query::{
    send_execution_response, send_query_response, send_ready_for_query, ExtendedQueryHandler,
    SimpleQueryHandler,
};
use pgwire::api::results::{FieldInfo, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionHandle, PgWireConnectionState, Type, DEFAULT_NAME,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::extendedquery::Execute;
use pgwire::messages::response::{EmptyQueryResponse, TransactionStatus};
use pgwire::messages::simplequery::Query;
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use super::cancel::ConnectionOwners;
use super::encode;
use super::errors::to_pg_error;
use crate::request_limits::RequestLimits;

/// A statement after Parse: the plan and the types of its parameters.
#[derive(Debug, Clone)]
pub(crate) struct PgStatement {
    prepared: Prepared,
    param_types: Vec<Option<DataType>>,
    /// The result columns, as the session described them at Parse.
    columns: SchemaRef,
}

/// The session of one connection, opened lazily.
struct SessionSlot {
    service: Arc<QueryService>,
    session: Mutex<Option<QuerySession>>,
    limits: RequestLimits,
    owners: Arc<ConnectionOwners>,
    /// The backend pid this connection is listed under in `owners`.
    pid: std::sync::Mutex<Option<i32>>,
}

impl SessionSlot {
    /// Refuse SQL text over `max_statement_bytes` before anything parses it.
    fn check_length(&self, sql: &str) -> PgWireResult<()> {
        self.limits.check_statement(sql).map_err(|e| {
            PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".to_owned(),
                crate::request_limits::StatementTooLong::SQLSTATE.to_owned(),
                e.to_string(),
            )))
        })
    }

    /// Record an access the planner does not see run (a Parse, a statement
    /// refused for its length): who, what, the tables it names and the
    /// outcome.
    fn audit<C: ClientInfo>(
        &self,
        client: &C,
        what: String,
        outcome: Result<(), &PgWireError>,
        tables: Vec<(String, Option<meshgate_planner::policy::TableAccess>)>,
    ) {
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
        if let Err(error) = outcome {
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
        }
        log.write(&record.with_tables(tables));
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        if let Some(pid) = *self.pid.get_mut().expect("pid lock") {
            self.owners.remove(pid);
        }
    }
}

/// SQL as an audit record keeps it: a statement refused for its length is
/// cut (the record says how long it was).
fn audit_text(sql: &str) -> String {
    const KEEP: usize = 4096;
    if sql.len() <= KEEP {
        return sql.to_owned();
    }
    let mut end = KEEP;
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &sql[..end], sql.len())
}

impl SessionSlot {
    async fn lock<C: ClientInfo>(
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
            let session = self
                .service
                .open_session(identity, options)
                .map_err(|e| to_pg_error(&e))?;
            *guard = Some(session);
            // Cancel requests for this connection are audited under its user.
            let (pid, _) = client.pid_and_secret_key();
            self.owners.insert(pid, &user);
            *self.pid.lock().expect("pid lock") = Some(pid);
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

pub(crate) struct PgConnection {
    slot: Arc<SessionSlot>,
    parser: Arc<PgParser>,
}

impl PgConnection {
    pub(crate) fn new(
        service: Arc<QueryService>,
        max_statement_bytes: usize,
        owners: Arc<ConnectionOwners>,
    ) -> Self {
        let slot = Arc::new(SessionSlot {
            service,
            session: Mutex::new(None),
            limits: RequestLimits {
                max_statement_bytes,
                ..RequestLimits::default()
            },
            owners,
            pid: std::sync::Mutex::new(None),
        });
        Self {
            parser: Arc::new(PgParser { slot: slot.clone() }),
            slot,
        }
    }
}

fn format_options<C: ClientInfo>(client: &C) -> Option<Arc<FormatOptions>> {
    Some(Arc::new(FormatOptions::from_client_metadata(
        client.metadata(),
    )))
}

fn to_response(
    output: QueryOutput,
    prepared: &Prepared,
    format: &Format,
    options: Option<Arc<FormatOptions>>,
) -> PgWireResult<Response> {
    Ok(match output {
        QueryOutput::Rows(stream) => {
            let mut response = encode::query_response(stream, format, options)?;
            let tag = prepared.command_tag();
            if tag != "SELECT" {
                response.set_command_tag(&tag);
            }
            Response::Query(response)
        }
        QueryOutput::Command { tag, tx } => match tx {
            TxEffect::Begin => Response::TransactionStart(Tag::new(&tag)),
            TxEffect::End => Response::TransactionEnd(Tag::new(&tag)),
            TxEffect::None | TxEffect::Recover => Response::Execution(Tag::new(&tag)),
        },
        QueryOutput::CopyOut { stream, options } => {
            Response::CopyOut(encode::copy_response(stream, &options)?)
        }
        QueryOutput::Empty => Response::EmptyQuery,
    })
}

/// The receiver that fires when a CancelRequest names this connection.
async fn cancel_signal<C: ClientInfo>(client: &C) -> Option<oneshot::Receiver<()>> {
    let handle = client.session_extensions().get::<Arc<ConnectionHandle>>()?;
    Some(handle.start_query().await)
}

/// Resolves only on a real cancel request (a replaced sender is not one).
async fn cancelled(rx: Option<oneshot::Receiver<()>>) {
    match rx {
        Some(rx) => {
            if rx.await.is_err() {
                std::future::pending::<()>().await
            }
        }
        None => std::future::pending::<()>().await,
    }
}

impl PgConnection {
    /// Run each statement of a simple query to completion, rows streamed to
    /// the client, before planning the next: a later statement never runs
    /// after an earlier one failed, even when the failure surfaces mid-stream.
    async fn run_simple<C>(
        &self,
        client: &mut C,
        sql: &str,
        tx: &mut TransactionStatus,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let options = format_options(client);
        let mut session = self.slot.lock(client).await?;
        let statements = session.parse(sql).map_err(|e| to_pg_error(&e))?;
        for statement in statements {
            let prepared = session
                .prepare_statement(statement)
                .await
                .map_err(|e| to_pg_error(&e))?;
            if *tx == TransactionStatus::Error && !prepared.ends_transaction() {
                return Err(to_pg_error(&QueryError::TransactionAborted));
            }
            let output = session
                .execute(&prepared, None)
                .await
                .map_err(|e| to_pg_error(&e))?;
            if let QueryOutput::Command {
                tx: TxEffect::Recover,
                ..
            } = &output
            {
                if *tx == TransactionStatus::Error {
                    *tx = TransactionStatus::Transaction;
                }
            }
            match to_response(output, &prepared, &Format::UnifiedText, options.clone())? {
                Response::Query(rows) => send_query_response(client, rows, true).await?,
                Response::CopyOut(copy) => send_copy_out_response(client, copy).await?,
                Response::Execution(tag) => send_execution_response(client, tag).await?,
                Response::TransactionStart(tag) => {
                    send_execution_response(client, tag).await?;
                    *tx = tx.to_in_transaction_state();
                }
                Response::TransactionEnd(tag) => {
                    // COMMIT of a failed block rolls back, and says so.
                    let tag = if *tx == TransactionStatus::Error {
                        Tag::new("ROLLBACK")
                    } else {
                        tag
                    };
                    send_execution_response(client, tag).await?;
                    *tx = tx.to_idle_state();
                }
                _ => {
                    client
                        .feed(PgWireBackendMessage::EmptyQueryResponse(
                            EmptyQueryResponse::new(),
                        ))
                        .await?
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SimpleQueryHandler for PgConnection {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        if let Err(e) = self.slot.check_length(&query.query) {
            let what = format!("Query: {}", audit_text(&query.query));
            self.slot.audit(client, what, Err(&e), vec![]);
            return Err(e);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let mut tx = client.transaction_status();
        if query.query.chars().all(|c| c == ';' || c.is_whitespace()) {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
        } else {
            let cancel = cancel_signal(client).await;
            let result = tokio::select! {
                result = self.run_simple(client, &query.query, &mut tx) => result,
                _ = cancelled(cancel) => Err(to_pg_error(&QueryError::Cancelled)),
            };
            // On error pgwire moves this status to "failed" when inside a block.
            client.set_transaction_status(tx);
            result?;
        }
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(tx);
        send_ready_for_query(client, tx).await
    }

    async fn do_query<C>(&self, _client: &mut C, _query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        unreachable!("on_query runs simple queries itself")
    }
}

#[async_trait]
impl ExtendedQueryHandler for PgConnection {
    type Statement = PgStatement;
    type QueryParser = PgParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    /// Execute with `max_rows = 0` (all rows, what libpq and tokio-postgres
    /// send) streams the result straight to the socket. pgwire's portal
    /// would first collect every row of the fetch into memory; only a
    /// bounded `max_rows` fetch (a suspended portal) goes through it.
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let portal_name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let streamable = match client.portal_store().get_portal(portal_name) {
            Some(Entry::Value(portal))
                if message.max_rows == 0
                    && matches!(portal.statement.statement.prepared, Prepared::Query { .. })
                    && portal.statement.statement.prepared.returns_rows()
                    && matches!(*portal.state().lock().await, PortalExecutionState::Initial) =>
            {
                Some(portal)
            }
            _ => None,
        };
        let Some(portal) = streamable else {
            return self._on_execute(client, message).await;
        };
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let cancel = cancel_signal(client).await;
        let run = async {
            match ExtendedQueryHandler::do_query(self, client, portal.as_ref(), 0).await? {
                Response::Query(rows) => send_query_response(client, rows, false).await,
                Response::Execution(tag) => send_execution_response(client, tag).await,
                _ => Ok(()),
            }
        };
        tokio::select! {
            result = run => result?,
            _ = cancelled(cancel) => return Err(to_pg_error(&QueryError::Cancelled)),
        }
        *portal.state().lock().await = PortalExecutionState::Finished;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        Ok(())
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement = &portal.statement.statement;
        if client.transaction_status() == TransactionStatus::Error
            && !statement.prepared.ends_transaction()
        {
            return Err(to_pg_error(&QueryError::TransactionAborted));
        }
        let params = if portal.parameter_len() == 0 && statement.param_types.is_empty() {
            None
        } else {
            let inferred: Vec<Option<&DataType>> =
                statement.param_types.iter().map(Option::as_ref).collect();
            Some(deserialize_parameters(portal, &inferred)?)
        };
        let options = format_options(client);
        let mut session = self.slot.lock(client).await?;
        let output = session
            .execute(&statement.prepared, params)
            .await
            .map_err(|e| to_pg_error(&e))?;
        to_response(
            output,
            &statement.prepared,
            &portal.result_column_format,
            options,
        )
    }
}

pub(crate) struct PgParser {
    slot: Arc<SessionSlot>,
}

#[async_trait]
impl QueryParser for PgParser {
    type Statement = PgStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let what = format!("Parse (prepare statement): {}", audit_text(sql));
        if let Err(e) = self.slot.check_length(sql) {
            self.slot.audit(client, what, Err(&e), vec![]);
            return Err(e);
        }
        let session = match self.slot.lock(client).await {
            Ok(session) => session,
            Err(e) => {
                self.slot.audit(client, what, Err(&e), vec![]);
                return Err(e);
            }
        };
        let parsed = async {
            let prepared = session.prepare(sql).await.map_err(|e| to_pg_error(&e))?;
            let param_types = prepared.parameter_types().map_err(|e| to_pg_error(&e))?;
            let columns = session.describe(&prepared);
            Ok(Some(PgStatement {
                prepared,
                param_types,
                columns,
            }))
        }
        .await;
        let tables = session.explain_access(sql).unwrap_or_default();
        drop(session);
        self.slot
            .audit(client, what, parsed.as_ref().map(|_| ()), tables);
        parsed
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        stmt.param_types
            .iter()
            .map(|t| match t {
                Some(t) => into_pg_type(t),
                // PostgreSQL resolves an unconstrained parameter as text.
                None => Ok(Type::TEXT),
            })
            .collect()
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        if !stmt.prepared.returns_rows() {
            return Ok(vec![]);
        }
        encode::fields(
            &stmt.columns,
            column_format.unwrap_or(&Format::UnifiedText),
            None,
        )
    }
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
