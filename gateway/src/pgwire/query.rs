//! Simple and extended query handling for one connection: a thin
//! translation between pgwire's messages and the planner's statement
//! pipeline (see `meshgate_planner::QuerySession`).
//!
//! A simple Query runs the statements of its text one by one
//! (`QuerySession::next_statement`), streaming each result before the next
//! is planned. Parse plans the statement once
//! (`QuerySession::prepare_for_by_shape`: a text differing from one the
//! connection parsed before only in its literals takes that plan); Bind
//! decodes parameters with the types the plan inferred (or the client
//! declared); Execute runs the plan (`QuerySession::execute_statement`) and
//! streams the result, and pgwire suspends and resumes the stream when the
//! client asks for `max_rows` at a time. The transaction state lives where
//! pgwire reports it (ReadyForQuery); the planner decides its transitions.
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
use meshgate_planner::datafusion::common::ParamValues;
use meshgate_planner::{
    audit_text, ColumnOrigin, Notice, Prepared, QueryError, QueryOutput, QueryService,
    TransactionState,
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
use pgwire::messages::extendedquery::{Bind, Close, Describe, Execute, Parse};
use pgwire::messages::response::{EmptyQueryResponse, TransactionStatus};
use pgwire::messages::simplequery::Query;
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;
use tokio::sync::Mutex;

use super::cancel::ConnectionOwners;
use super::encode;
use super::errors::to_pg_error;
use super::replies;
use super::session::SessionSlot;
use crate::request_limits::RequestLimits;

/// A statement after Parse: the plan and the types of its parameters.
#[derive(Debug, Clone)]
pub(crate) struct PgStatement {
    prepared: Prepared,
    param_types: Vec<Option<DataType>>,
    /// The values of its literals when it took the plan of its shape (its
    /// client sees no parameters; see `QuerySession::prepare_for_by_shape`).
    literals: Option<ParamValues>,
    /// The result columns, as the session described them at Parse.
    columns: SchemaRef,
    /// Their tables and column numbers, for the RowDescription.
    origins: Vec<Option<ColumnOrigin>>,
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
        QueryOutput::Command { tag } => Response::Execution(Tag::new(&tag)),
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
        let mut script = session.script(sql).map_err(|e| to_pg_error(&e))?;
        while let Some(next) = session
            .next_statement(&mut script, transaction_state(*tx))
            .await
        {
            let (prepared, result) = next.map_err(|e| to_pg_error(&e))?;
            send_notices(client, &result.notices).await?;
            *tx = transaction_status(result.transaction);
            // Column origins (table OIDs) are sent at Describe only: the
            // clients that use them (pgJDBC, Npgsql) describe, and finding
            // them costs a read of pg_class per session.
            match to_response(
                result.output,
                &prepared,
                &Format::UnifiedText,
                options.clone(),
            )? {
                Response::Query(rows) => send_query_response(client, rows, true).await?,
                Response::CopyOut(copy) => send_copy_out_response(client, copy).await?,
                Response::Execution(tag) => send_execution_response(client, tag).await?,
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

/// The planner's transaction state as pgwire reports it, and back.
fn transaction_status(state: TransactionState) -> TransactionStatus {
    match state {
        TransactionState::Idle => TransactionStatus::Idle,
        TransactionState::InBlock => TransactionStatus::Transaction,
        TransactionState::Failed => TransactionStatus::Error,
    }
}

fn transaction_state(status: TransactionStatus) -> TransactionState {
    match status {
        TransactionStatus::Idle => TransactionState::Idle,
        TransactionStatus::Transaction => TransactionState::InBlock,
        TransactionStatus::Error => TransactionState::Failed,
    }
}

/// The planner's notices as PostgreSQL WARNINGs.
async fn send_notices<C>(client: &mut C, notices: &[Notice]) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    for notice in notices {
        let info = ErrorInfo::new(
            "WARNING".to_owned(),
            notice.sqlstate.to_owned(),
            notice.message.clone(),
        );
        client
            .feed(PgWireBackendMessage::NoticeResponse(info.into()))
            .await?;
    }
    Ok(())
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
            self.slot.audit(client, what, &e);
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

    // Parse, Bind, Describe and Close replies wait for Sync or Flush
    // (see `replies`).
    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        replies::parse(self, client, message).await
    }

    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        replies::bind::<Self, C>(client, message).await
    }

    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        replies::describe(self, client, message).await
    }

    async fn on_close<C>(&self, client: &mut C, message: Close) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        replies::close::<Self, C>(client, message).await
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
        let params = if portal.parameter_len() == 0 && statement.param_types.is_empty() {
            statement.literals.clone()
        } else {
            let inferred: Vec<Option<&DataType>> =
                statement.param_types.iter().map(Option::as_ref).collect();
            Some(deserialize_parameters(portal, &inferred)?)
        };
        let options = format_options(client);
        let before = transaction_state(client.transaction_status());
        let mut session = self.slot.lock(client).await?;
        let result = session
            .execute_statement(&statement.prepared, params, before)
            .await
            .map_err(|e| to_pg_error(&e))?;
        drop(session);
        send_notices(client, &result.notices).await?;
        let response = to_response(
            result.output,
            &statement.prepared,
            &portal.result_column_format,
            options,
        )?;
        // pgwire keeps the block state of an extended-protocol Execute: it
        // follows the start and end of a block from the response.
        Ok(match (response, before, result.transaction) {
            (Response::Execution(tag), TransactionState::Idle, TransactionState::InBlock) => {
                Response::TransactionStart(tag)
            }
            (Response::Execution(tag), previous, TransactionState::Idle)
                if previous != TransactionState::Idle =>
            {
                Response::TransactionEnd(tag)
            }
            (response, _, _) => response,
        })
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
        // Refusals before planning are recorded here; the planner records
        // the Parse itself (see `QuerySession::prepare_for_by_shape`).
        if let Err(e) = self.slot.check_length(sql) {
            self.slot.audit(client, what, &e);
            return Err(e);
        }
        let mut session = match self.slot.lock(client).await {
            Ok(session) => session,
            Err(e) => {
                self.slot.audit(client, what, &e);
                return Err(e);
            }
        };
        // A text that differs from one this connection parsed only in its
        // literals takes that plan, with their values (JDBC and Npgsql send
        // every statement this way).
        let statement = session
            .prepare_for_by_shape("Parse (prepare statement)", sql)
            .await
            .map_err(|e| to_pg_error(&e))?;
        let columns = session.describe(&statement.prepared);
        let origins = session.column_origins(&statement.prepared).await;
        Ok(Some(PgStatement {
            prepared: statement.prepared,
            param_types: statement.param_types,
            literals: statement.literals.map(ParamValues::from),
            columns,
            origins,
        }))
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
            &stmt.origins,
        )
    }
}
