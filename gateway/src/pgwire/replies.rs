//! The extended protocol's replies wait for Sync or Flush, as PostgreSQL's
//! own output buffer makes them: ParseComplete, BindComplete, the
//! description of a statement or portal and CloseComplete are queued on
//! the connection and leave with the rows, CommandComplete and
//! ReadyForQuery in one socket write when the client's Sync (or Flush)
//! comes. pgwire's defaults send each of them at once, so a prepared
//! point lookup (`Bind`, `Describe`, `Execute`, `Sync` in one packet, as
//! libpq sends it) was answered in two writes, and an unnamed statement
//! (`Parse` first, as psycopg and JDBC send it) in three: each a system
//! call and a wake-up of the client for a reply it cannot use yet.
//!
//! The protocol allows it: a client that wants a reply before its Sync
//! sends Flush (pgwire's `on_flush` flushes), and an error reply is
//! flushed at once, after whatever was queued before it.

use std::fmt::Debug;

use futures::{Sink, SinkExt};
use pgwire::api::portal::Portal;
use pgwire::api::query::ExtendedQueryHandler;
use pgwire::api::results::{DescribePortalResponse, DescribeResponse, DescribeStatementResponse};
use pgwire::api::stmt::StoredStatement;
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, DEFAULT_NAME};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::{NoData, ParameterDescription, RowDescription};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Close, CloseComplete, Describe, Parse, ParseComplete,
    TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};
use pgwire::messages::PgWireBackendMessage;

/// Parse as pgwire does (the handler's parser plans the statement, empty
/// text is kept as an empty statement), its ParseComplete queued.
pub(super) async fn parse<H, C>(handler: &H, client: &mut C, message: Parse) -> PgWireResult<()>
where
    H: ExtendedQueryHandler,
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore<Statement = H::Statement>,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let name = message.name.as_deref().unwrap_or(DEFAULT_NAME).to_owned();
    match StoredStatement::parse(client, &message, handler.query_parser()).await? {
        Some(statement) => client.portal_store().put_statement(statement.into()),
        None => client.portal_store().put_empty_statement(&name),
    }
    client
        .feed(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
        .await?;
    Ok(())
}

/// Bind as pgwire does (a portal over the named statement, its parameters
/// checked against the statement's), its BindComplete queued.
pub(super) async fn bind<H, C>(client: &mut C, message: Bind) -> PgWireResult<()>
where
    H: ExtendedQueryHandler,
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore<Statement = H::Statement>,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let statement_name = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
    let portal_name = message.portal_name.as_deref().unwrap_or(DEFAULT_NAME);
    match client.portal_store().get_statement(statement_name) {
        Some(Entry::Value(statement)) => {
            let portal = Portal::try_new(&message, statement)?;
            client.portal_store().put_portal(portal.into());
        }
        Some(Entry::Empty) if message.parameters.is_empty() => {
            client.portal_store().put_empty_portal(portal_name);
        }
        Some(Entry::Empty) => {
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".to_owned(),
                "08P01".to_owned(),
                format!(
                    "bind message supplies {} parameters, but prepared statement \"{statement_name}\" requires 0",
                    message.parameters.len()
                ),
            ))));
        }
        None => return Err(PgWireError::StatementNotFound(statement_name.to_owned())),
    }
    client
        .feed(PgWireBackendMessage::BindComplete(BindComplete::new()))
        .await?;
    Ok(())
}

/// Describe of a statement (its parameters and columns) or of a portal
/// (its columns) as pgwire answers it, queued.
pub(super) async fn describe<H, C>(
    handler: &H,
    client: &mut C,
    message: Describe,
) -> PgWireResult<()>
where
    H: ExtendedQueryHandler,
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore<Statement = H::Statement>,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
    match message.target_type {
        TARGET_TYPE_BYTE_STATEMENT => match client.portal_store().get_statement(name) {
            Some(Entry::Value(statement)) => {
                let response = handler.do_describe_statement(client, &statement).await?;
                queue_description(client, &response).await
            }
            Some(Entry::Empty) => {
                queue_description(client, &DescribeStatementResponse::no_data()).await
            }
            None => Err(PgWireError::StatementNotFound(name.to_owned())),
        },
        TARGET_TYPE_BYTE_PORTAL => match client.portal_store().get_portal(name) {
            Some(Entry::Value(portal)) => {
                let response = handler.do_describe_portal(client, &portal).await?;
                queue_description(client, &response).await
            }
            Some(Entry::Empty) => {
                queue_description(client, &DescribePortalResponse::no_data()).await
            }
            None => Err(PgWireError::PortalNotFound(name.to_owned())),
        },
        other => Err(PgWireError::InvalidTargetType(other)),
    }
}

/// Close of a statement or portal, its CloseComplete queued.
pub(super) async fn close<H, C>(client: &mut C, message: Close) -> PgWireResult<()>
where
    H: ExtendedQueryHandler,
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore<Statement = H::Statement>,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
    match message.target_type {
        TARGET_TYPE_BYTE_STATEMENT => client.portal_store().rm_statement(name),
        TARGET_TYPE_BYTE_PORTAL => client.portal_store().rm_portal(name),
        _ => {}
    }
    client
        .feed(PgWireBackendMessage::CloseComplete(CloseComplete::new()))
        .await?;
    Ok(())
}

/// ParameterDescription (for a statement) and RowDescription or NoData.
async fn queue_description<C, D>(client: &mut C, response: &D) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    D: DescribeResponse,
{
    if let Some(types) = response.parameters() {
        let oids = types.iter().map(|t| t.oid()).collect();
        client
            .feed(PgWireBackendMessage::ParameterDescription(
                ParameterDescription::new(oids),
            ))
            .await?;
    }
    let message = if response.is_no_data() {
        PgWireBackendMessage::NoData(NoData::new())
    } else {
        let fields = response.fields().iter().map(Into::into).collect();
        PgWireBackendMessage::RowDescription(RowDescription::new(fields))
    };
    client.feed(message).await?;
    Ok(())
}
