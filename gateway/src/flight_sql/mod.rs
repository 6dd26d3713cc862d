//! The Arrow Flight SQL front end.
//!
//! Every call authenticates (a bearer token from Handshake, or basic
//! credentials in the call's own headers); a call that plans, runs or lists
//! gets a planner session for that identity (the one its Flight SQL
//! session's previous call left, see [`session_pool`]), and results stream
//! as Arrow record batches as the plan produces them. This module only
//! translates; planning, metadata and access decisions are the planner's. The [`FlightSqlService`] implementation below only dispatches,
//! by command family:
//! - [`statements`]: ad-hoc SQL (CommandStatementQuery), with [`tickets`];
//! - [`prepared`]: prepared statements, their parameters and executions;
//! - [`metadata`]: catalogs, schemas, tables, table types, SQL info, XDBC
//!   types and keys, all through one generic GetFlightInfo/DoGet path;
//! - [`sessions`] and [`session_actions`]: options a session sets
//!   (SetSessionOptions, GetSessionOptions, CloseSession, `SET`) and every
//!   later call of it runs with; [`session_pool`]: the planner session
//!   kept for its next call;
//! - [`cancel`] serves CancelFlightInfo.
//!
//! Decisions a newcomer must know:
//! - A statement is planned once per FlightInfo: GetFlightInfo keeps the
//!   plan behind a signed ticket bound to the identity that asked, and the
//!   DoGet that redeems the ticket runs it; a ticket whose plan was
//!   forgotten is planned again from the SQL it carries (see [`tickets`]).
//! - Prepared statements keep their plan and bound parameters in a cache
//!   bounded in bytes per user and in total that forgets entries idle longer
//!   than the token lifetime; the handle is signed and bound to its user.
//!   Statement text, parameter uploads and gRPC messages are bounded by
//!   `[limits]` (see [`crate::request_limits`]) where they arrive.
//! - Statements are audited by the planner; metadata listings, prepared
//!   statements created and requests refused for their size are audited
//!   here (see [`audit`]).

mod audit;
mod cancel;
mod metadata;
mod plans;
mod prepared;
mod results;
pub(crate) use results::as_sent_batch;
mod session_actions;
mod session_pool;
mod sessions;
mod statements;
mod tickets;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetCrossReference,
    CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use futures::{stream, Stream};
use meshgate_planner::datafusion::arrow::datatypes::Schema;
use meshgate_planner::{Identity, QueryError, QueryService, QuerySession};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{authenticate, presented_jwt, TokenSigner, UserStore, SESSION_TOKEN};
use crate::request_limits::RequestLimits;
use crate::status::to_status;
use prepared::PreparedStatements;
use results::DoGetStream;
use tickets::Tickets;

/// Serves Flight SQL over the planner's [`QueryService`].
pub struct FlightSqlFrontend {
    service: Arc<QueryService>,
    users: Arc<UserStore>,
    signer: Arc<TokenSigner>,
    ttl: Duration,
    tickets: Tickets,
    prepared: PreparedStatements,
    limits: RequestLimits,
    /// Options each Flight SQL session set (see [`sessions`]).
    sessions: sessions::FlightSessions,
    /// Planner sessions kept for the next call of their Flight SQL session.
    pool: session_pool::SessionPool,
    /// Which DoGet runs which ticket, for CancelFlightInfo.
    cancels: cancel::Cancels,
}

impl FlightSqlFrontend {
    /// A front end whose tokens, tickets and prepared statements are
    /// signed by `signer` and last `ttl`.
    pub fn new(
        service: Arc<QueryService>,
        users: Arc<UserStore>,
        signer: Arc<TokenSigner>,
        ttl: Duration,
        limits: RequestLimits,
    ) -> Self {
        Self {
            service,
            users,
            tickets: Tickets::new(signer.clone(), ttl),
            signer,
            ttl,
            prepared: PreparedStatements::new(limits, ttl),
            limits,
            sessions: sessions::FlightSessions::new(ttl),
            pool: session_pool::SessionPool::new(),
            cancels: cancel::Cancels::new(ttl),
        }
    }

    /// Who is calling: a bearer token from Handshake, or basic credentials;
    /// with `x-meshgate-impersonate`, the user they act as (if the policy
    /// lets them, see `crate::auth::impersonate`).
    fn authenticate(&self, metadata: &MetadataMap) -> Result<Identity, Status> {
        let signed_in = authenticate(metadata, &self.users, &self.signer)?;
        crate::auth::flight_identity(&self.service, signed_in, metadata)
    }

    /// The token signer, shared with the other services of this listener.
    pub fn signer(&self) -> Arc<TokenSigner> {
        self.signer.clone()
    }

    /// A DoGet of `request` started its statement in `session`: its
    /// settings persist for the Flight SQL session (a `SET`), and
    /// CancelFlightInfo of its ticket finds it.
    async fn started(&self, request: &Request<Ticket>, session: &QuerySession) {
        let key = sessions::FlightSessions::key(request.metadata());
        self.sessions.remember(key.as_deref(), session);
        self.cancels
            .started(
                &request.get_ref().ticket,
                &session.identity().user,
                session.last_query_id(),
            )
            .await;
    }
}

/// A FlightInfo describing a result of `schema`, fetched with `ticket`.
fn flight_info(
    schema: &Schema,
    ticket: Vec<u8>,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    flight_info_parts(schema, vec![ticket], descriptor)
}

/// A FlightInfo with an endpoint per ticket: the parts of one result, which
/// a client may fetch at once and in any order (`ordered` is set only for
/// a single endpoint).
fn flight_info_parts(
    schema: &Schema,
    tickets: Vec<Vec<u8>>,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    let single = tickets.len() == 1;
    let mut info = FlightInfo::new()
        .try_with_schema(&as_sent(schema))
        .map_err(|e| Status::internal(format!("cannot encode schema: {e}")))?
        .with_descriptor(descriptor)
        .with_ordered(single);
    for ticket in tickets {
        info = info.with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)));
    }
    Ok(info)
}

/// `schema` as DoGet streams it: dictionary columns as their values (the
/// Flight encoder's way) and string and binary views as plain strings and
/// binaries (cheaper to encode and to read, and what every client reads
/// in full: pyarrow lacks kernels for views), so the schema a FlightInfo or
/// a prepared statement announces says so too (ADBC refuses a stream whose
/// schema differs from the one announced).
pub(crate) fn as_sent(schema: &Schema) -> Schema {
    use meshgate_planner::datafusion::arrow::datatypes::{DataType, Field};
    fn field(f: &Field) -> Field {
        let data_type = match f.data_type() {
            DataType::Dictionary(_, values) => values.as_ref().clone(),
            DataType::Utf8View => DataType::Utf8,
            DataType::BinaryView => DataType::Binary,
            DataType::List(inner) => DataType::List(Arc::new(field(inner))),
            DataType::LargeList(inner) => DataType::LargeList(Arc::new(field(inner))),
            DataType::Struct(fields) => {
                DataType::Struct(fields.iter().map(|f| Arc::new(field(f))).collect())
            }
            other => other.clone(),
        };
        f.clone().with_data_type(data_type)
    }
    Schema::new_with_metadata(
        schema.fields().iter().map(|f| field(f)).collect::<Vec<_>>(),
        schema.metadata().clone(),
    )
}

/// The refusal of any update: meshgate only reads.
fn read_only() -> Status {
    to_status(&QueryError::ReadOnly(
        "meshgate is a read-only gateway: updates are not accepted".into(),
    ))
}

type HandshakeStream = Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl FlightSqlService for FlightSqlFrontend {
    type FlightService = FlightSqlFrontend;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<HandshakeStream>, Status> {
        // The token is the signed-in user's own: impersonation is asked for
        // (and audited) on every call, never baked into a token.
        let identity = authenticate(request.metadata(), &self.users, &self.signer)?;
        // A client that signed in with a JWT keeps using it: it carries the
        // groups and attributes a session token of ours would drop.
        let token = match presented_jwt(request.metadata()) {
            Some(jwt) => jwt,
            // Each Handshake is its own session (see `sessions`): the
            // token carries a nonce, so two connections never share one.
            None => self.signer.issue(
                &identity.user,
                SESSION_TOKEN,
                Some(sessions::new_session_id()),
                self.ttl,
            ),
        };
        let bearer = format!("Bearer {token}");
        let response = HandshakeResponse {
            protocol_version: 0,
            payload: token.into_bytes().into(),
        };
        let mut response =
            Response::new(Box::pin(stream::iter(vec![Ok(response)])) as HandshakeStream);
        response.metadata_mut().insert(
            "authorization",
            bearer
                .parse()
                .map_err(|_| Status::internal("token is not a header value"))?,
        );
        Ok(response)
    }

    // ---- statements ----

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.statement_info(query, request).await
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.statement_get(ticket, request).await
    }

    async fn do_put_statement_update(
        &self,
        _ticket: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.authenticate(request.metadata())?;
        Err(read_only())
    }

    // ---- prepared statements ----

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        self.create_prepared(query, request).await
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.bind_parameters(query, request).await
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.prepared_info(cmd, request).await
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.prepared_get(cmd, request).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        self.close_prepared(query, request).await
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.authenticate(request.metadata())?;
        Err(read_only())
    }

    // ---- metadata: FlightInfo points back at the same command as ticket ----

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata::info(self, query, request)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata::get(self, query, request).await
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata::info(self, query, request)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata::get(self, query, request).await
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata::info(self, query, request)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata::get(self, query, request).await
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata::info(self, query, request)
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata::get(self, query, request).await
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata::info(self, query, request)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata::get(self, query, request).await
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata::info(self, query, request)
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata::get(self, query, request).await
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata::info(self, query, request)
    }

    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata::get(self, query, request).await
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata::info(self, query, request)
    }

    async fn do_get_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata::get(self, query, request).await
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata::info(self, query, request)
    }

    async fn do_get_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata::get(self, query, request).await
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata::info(self, query, request)
    }

    async fn do_get_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata::get(self, query, request).await
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authenticate(request.metadata())?;
        Err(Status::invalid_argument(format!(
            "unknown ticket type {}",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}

    // ---- actions beyond Flight SQL's own: sessions, cancel ----

    async fn do_action_fallback(
        &self,
        request: Request<arrow_flight::Action>,
    ) -> Result<Response<session_actions::ActionStream>, Status> {
        if request.get_ref().r#type == cancel::CANCEL_FLIGHT_INFO {
            return self.cancel_flight_info(request).await;
        }
        let kind = request.get_ref().r#type.clone();
        match self.session_action(request).await {
            Some(result) => result,
            None => Err(Status::invalid_argument(format!("unknown action `{kind}`"))),
        }
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<arrow_flight::ActionType, Status>>> {
        let mut actions = session_actions::action_types();
        actions.push(arrow_flight::ActionType {
            r#type: cancel::CANCEL_FLIGHT_INFO.into(),
            description: "Cancel the query behind a FlightInfo".into(),
        });
        Some(actions.into_iter().map(Ok).collect())
    }
}

/// The tonic service for a frontend. No gRPC message may be larger than a
/// statement or a parameter upload can be: a bigger one is refused by tonic
/// before it is buffered.
pub fn service(
    frontend: FlightSqlFrontend,
    limits: &RequestLimits,
) -> arrow_flight::flight_service_server::FlightServiceServer<FlightSqlFrontend> {
    arrow_flight::flight_service_server::FlightServiceServer::new(frontend)
        .max_decoding_message_size(limits.grpc_max_message_bytes())
}
