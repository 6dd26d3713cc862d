//! The Arrow Flight SQL front end.
//!
//! Every call authenticates (a bearer token from Handshake, or basic
//! credentials in the call's own headers), opens a planner session for that
//! identity, and streams Arrow record batches as the plan produces them. This
//! module only translates; planning, metadata and (later) access decisions
//! are the planner's.
//!
//! Two decisions a newcomer must know:
//! - Statement tickets are stateless: a ticket is the statement's SQL signed
//!   together with the user it was planned for and an expiry. DoGet re-plans
//!   it for the caller; a ticket replayed by another user or after expiry is
//!   refused, and nothing is kept on the server for tickets never fetched.
//! - Prepared statements keep their bound parameters in a cache bounded in
//!   bytes per user and in total that forgets entries idle longer than the
//!   token lifetime; the handle is signed and bound to its user. Statement
//!   text, parameter uploads and gRPC messages are bounded by `[limits]`
//!   (see [`crate::request_limits`]) where they arrive.
//!
//! Statements are audited by the planner; metadata listings, prepared
//! statements created and requests refused for their size are audited here
//! (see [`audit`]).

mod audit;
mod credentials;
pub(crate) mod errors;
mod listing;
mod metadata;
mod prepared;
mod statements;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::error::FlightError;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetCrossReference,
    CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use futures::{stream, Stream};
use meshgate_planner::datafusion::arrow::array::RecordBatch;
use meshgate_planner::datafusion::arrow::datatypes::Schema;
use meshgate_planner::{Identity, QueryError, QueryService, QuerySession, SessionOptions};
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{TokenError, TokenSigner, UserStore};
use crate::request_limits::RequestLimits;
pub(crate) use credentials::authenticate;
use credentials::presented_jwt;
use errors::to_status;
use listing::one_batch;
use prepared::PreparedStatements;

type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch, FlightError>> + Send>>;
type DoGetStream =
    Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

const SESSION_TOKEN: &str = "session";
const TICKET: &str = "ticket";
const PREPARED: &str = "prepared";

/// Serves Flight SQL over the planner's [`QueryService`].
pub struct FlightSqlFrontend {
    service: Arc<QueryService>,
    users: Arc<UserStore>,
    signer: Arc<TokenSigner>,
    ttl: Duration,
    prepared: PreparedStatements,
    limits: RequestLimits,
}

impl FlightSqlFrontend {
    pub fn new(
        service: Arc<QueryService>,
        users: Arc<UserStore>,
        ttl: Duration,
        limits: RequestLimits,
    ) -> Self {
        Self {
            service,
            users,
            signer: Arc::new(TokenSigner::default()),
            ttl,
            prepared: PreparedStatements::new(limits, ttl),
            limits,
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

    fn session(
        &self,
        identity: Identity,
        client: Option<std::net::SocketAddr>,
    ) -> Result<QuerySession, Status> {
        let options = SessionOptions {
            protocol: "flight_sql".into(),
            client: client.map(|a| a.to_string()),
            ..SessionOptions::default()
        };
        self.service
            .open_session(identity, options)
            .map_err(|e| to_status(&e))
    }

    fn descriptor_info(
        &self,
        schema: &Schema,
        ticket: Vec<u8>,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        Ok(FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(format!("cannot encode schema: {e}")))?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
            .with_descriptor(descriptor))
    }

    /// FlightInfo for a metadata command whose ticket is the command itself.
    fn command_info(
        &self,
        request: Request<FlightDescriptor>,
        schema: &Schema,
        command: Any,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authenticate(request.metadata())?;
        let info = self.descriptor_info(schema, command.encode_to_vec(), request.into_inner())?;
        Ok(Response::new(info))
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlFrontend {
    type FlightService = FlightSqlFrontend;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        // The token is the signed-in user's own: impersonation is asked for
        // (and audited) on every call, never baked into a token.
        let identity = authenticate(request.metadata(), &self.users, &self.signer)?;
        // A client that signed in with a JWT keeps using it: it carries the
        // groups and attributes a session token of ours would drop.
        let token = match presented_jwt(request.metadata()) {
            Some(jwt) => jwt,
            None => self
                .signer
                .issue(&identity.user, SESSION_TOKEN, None, self.ttl),
        };
        let bearer = format!("Bearer {token}");
        let response = HandshakeResponse {
            protocol_version: 0,
            payload: token.into_bytes().into(),
        };
        let mut response = Response::new(
            Box::pin(stream::iter(vec![Ok(response)])) as Pin<Box<dyn Stream<Item = _> + Send>>
        );
        response.metadata_mut().insert(
            "authorization",
            bearer
                .parse()
                .map_err(|_| Status::internal("token is not a header value"))?,
        );
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let identity = self.authenticate(request.metadata())?;
        self.check_statement(
            &identity,
            request.remote_addr(),
            "GetFlightInfo",
            &query.query,
        )?;
        let session = self.session(identity.clone(), request.remote_addr())?;
        let prepared = session
            .prepare(&query.query)
            .await
            .map_err(|e| to_status(&e))?;
        let schema = prepared.output_schema();
        let ticket = self
            .signer
            .issue(&identity.user, TICKET, Some(query.query), self.ttl);
        let ticket = TicketStatementQuery {
            statement_handle: ticket.into_bytes().into(),
        };
        let info = self.descriptor_info(
            &schema,
            ticket.as_any().encode_to_vec(),
            request.into_inner(),
        )?;
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let identity = self.authenticate(request.metadata())?;
        let token = std::str::from_utf8(&ticket.statement_handle)
            .map_err(|_| Status::invalid_argument("malformed ticket"))?;
        let claims = self.signer.verify(token, TICKET).map_err(|e| match e {
            TokenError::Expired => {
                Status::unauthenticated("ticket has expired: call GetFlightInfo again")
            }
            _ => Status::permission_denied("invalid ticket"),
        })?;
        if claims.sub != identity.user {
            return Err(Status::permission_denied(
                "this ticket was issued to another user",
            ));
        }
        let sql = claims.data.unwrap_or_default();
        Ok(Response::new(
            self.run(identity, request.remote_addr(), &sql, None)
                .await?,
        ))
    }

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
        let identity = self.authenticate(request.metadata())?;
        let (_, entry) = self
            .prepared_entry(&identity, &cmd.prepared_statement_handle)
            .await?;
        let session = self.session(identity, request.remote_addr())?;
        let prepared = session
            .prepare(&entry.sql)
            .await
            .map_err(|e| to_status(&e))?;
        let info = self.descriptor_info(
            &prepared.output_schema(),
            cmd.as_any().encode_to_vec(),
            request.into_inner(),
        )?;
        Ok(Response::new(info))
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let identity = self.authenticate(request.metadata())?;
        let (_, entry) = self
            .prepared_entry(&identity, &cmd.prepared_statement_handle)
            .await?;
        let params = entry.params.clone();
        if params.is_none() && !entry.param_types.is_empty() {
            return Err(Status::invalid_argument(format!(
                "the statement has {} parameter(s); bind them with DoPut first",
                entry.param_types.len()
            )));
        }
        Ok(Response::new(
            self.run(identity, request.remote_addr(), &entry.sql, params)
                .await?,
        ))
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        let identity = self.authenticate(request.metadata())?;
        let token = std::str::from_utf8(&query.prepared_statement_handle).unwrap_or_default();
        if let Ok(claims) = self.signer.verify(token, PREPARED) {
            if claims.sub == identity.user {
                if let Some(id) = claims.data {
                    self.prepared.close(&id).await;
                }
            }
        }
        Ok(())
    }

    async fn do_put_statement_update(
        &self,
        _ticket: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.authenticate(request.metadata())?;
        Err(to_status(&QueryError::ReadOnly(
            "meshgate is a read-only gateway: updates are not accepted".into(),
        )))
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.authenticate(request.metadata())?;
        Err(to_status(&QueryError::ReadOnly(
            "meshgate is a read-only gateway: updates are not accepted".into(),
        )))
    }

    // ---- metadata: FlightInfo points back at the same command as ticket ----

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.command_info(request, &schema, query.as_any())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.list_catalogs(query, request).await
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.command_info(request, &schema, query.as_any())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.list_schemas(query, request).await
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.command_info(request, &schema, query.as_any())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.list_tables(query, request).await
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.command_info(request, &schema, query.as_any())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.static_listing(&request, "GetTableTypes", || {
            let mut builder = query.into_builder();
            builder.append("TABLE");
            builder.append("VIEW");
            let schema = builder.schema();
            one_batch(schema, builder.build())
        })
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&metadata::SQL_INFO).schema();
        self.command_info(request, &schema, query.as_any())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.static_listing(&request, "GetSqlInfo", || {
            let builder = query.into_builder(&metadata::SQL_INFO);
            let schema = builder.schema();
            one_batch(schema, builder.build())
        })
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder(&metadata::XDBC_TYPES).schema();
        self.command_info(request, &schema, query.as_any())
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.static_listing(&request, "GetXdbcTypeInfo", || {
            let builder = query.into_builder(&metadata::XDBC_TYPES);
            let schema = builder.schema();
            one_batch(schema, builder.build())
        })
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::primary_keys_schema();
        self.command_info(request, &schema, query.as_any())
    }

    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.key_listing(&query, request, metadata::primary_keys_schema())
            .await
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::foreign_keys_schema();
        self.command_info(request, &schema, query.as_any())
    }

    async fn do_get_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.key_listing(&query, request, metadata::foreign_keys_schema())
            .await
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::foreign_keys_schema();
        self.command_info(request, &schema, query.as_any())
    }

    async fn do_get_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.key_listing(&query, request, metadata::foreign_keys_schema())
            .await
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::foreign_keys_schema();
        self.command_info(request, &schema, query.as_any())
    }

    async fn do_get_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.key_listing(&query, request, metadata::foreign_keys_schema())
            .await
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
