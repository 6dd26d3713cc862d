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
//! - Prepared statements keep their bound parameters in a bounded cache that
//!   forgets entries idle longer than the token lifetime; the handle is
//!   signed and bound to its user.

pub(crate) mod errors;
mod metadata;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
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
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use base64::Engine as _;
use futures::{stream, Stream, TryStreamExt};
use meshgate_planner::datafusion::arrow::array::RecordBatch;
use meshgate_planner::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use meshgate_planner::datafusion::arrow::ipc::writer::IpcWriteOptions;
use meshgate_planner::datafusion::common::{ParamValues, ScalarValue};
use meshgate_planner::{
    Identity, QueryError, QueryOutput, QueryService, QuerySession, SessionOptions,
};
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{looks_like_jwt, TokenError, TokenSigner, UserStore};
use errors::to_status;

type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch, FlightError>> + Send>>;
type DoGetStream =
    Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

const SESSION_TOKEN: &str = "session";
const TICKET: &str = "ticket";
const PREPARED: &str = "prepared";

/// A prepared statement: its SQL, its owner and the last bound parameters.
struct PreparedEntry {
    user: String,
    sql: String,
    param_types: Vec<Option<DataType>>,
    params: Mutex<Option<Vec<ScalarValue>>>,
}

/// Serves Flight SQL over the planner's [`QueryService`].
pub struct FlightSqlFrontend {
    service: Arc<QueryService>,
    users: Arc<UserStore>,
    signer: Arc<TokenSigner>,
    ttl: Duration,
    prepared: moka::future::Cache<String, Arc<PreparedEntry>>,
}

impl FlightSqlFrontend {
    pub fn new(service: Arc<QueryService>, users: Arc<UserStore>, ttl: Duration) -> Self {
        Self {
            service,
            users,
            signer: Arc::new(TokenSigner::default()),
            ttl,
            prepared: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_idle(ttl)
                .build(),
        }
    }

    /// Who is calling: a bearer token from Handshake, or basic credentials.
    fn authenticate(&self, metadata: &MetadataMap) -> Result<Identity, Status> {
        authenticate(metadata, &self.users, &self.signer)
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

    async fn prepared_entry(
        &self,
        identity: &Identity,
        handle: &[u8],
    ) -> Result<Arc<PreparedEntry>, Status> {
        let token = std::str::from_utf8(handle)
            .map_err(|_| Status::invalid_argument("malformed prepared statement handle"))?;
        let claims = self.signer.verify(token, PREPARED).map_err(|e| match e {
            TokenError::Expired => {
                Status::not_found("prepared statement has expired: prepare it again")
            }
            _ => Status::invalid_argument("invalid prepared statement handle"),
        })?;
        if claims.sub != identity.user {
            return Err(Status::permission_denied(
                "this prepared statement belongs to another user",
            ));
        }
        let id = claims.data.unwrap_or_default();
        let entry = self.prepared.get(&id).await.ok_or_else(|| {
            Status::not_found("prepared statement was closed or has expired: prepare it again")
        })?;
        if entry.user != identity.user {
            return Err(Status::permission_denied(
                "this prepared statement belongs to another user",
            ));
        }
        Ok(entry)
    }

    /// Plan and run `sql` for `identity`, streaming the result as Flight data.
    async fn run(
        &self,
        identity: Identity,
        client: Option<std::net::SocketAddr>,
        sql: &str,
        params: Option<Vec<ScalarValue>>,
    ) -> Result<DoGetStream, Status> {
        let mut session = self.session(identity, client)?;
        let prepared = session.prepare(sql).await.map_err(|e| to_status(&e))?;
        let output = session
            .execute(&prepared, params.map(ParamValues::from))
            .await
            .map_err(|e| to_status(&e))?;
        let (schema, batches): (SchemaRef, BatchStream) = match output {
            QueryOutput::Rows(rows) => (
                rows.schema(),
                Box::pin(
                    rows.map_err(|e| FlightError::Tonic(Box::new(to_status(&QueryError::from(e))))),
                ),
            ),
            QueryOutput::CopyOut { .. } => {
                return Err(to_status(&QueryError::FeatureNotSupported(
                    "COPY TO STDOUT is a PostgreSQL protocol feature; Flight SQL streams results directly".into(),
                )))
            }
            QueryOutput::Command { .. } | QueryOutput::Empty => {
                (Arc::new(Schema::empty()), Box::pin(stream::empty()))
            }
        };
        let data = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from);
        Ok(Box::pin(data))
    }
}

/// Who is calling a service of the Flight SQL listener: a bearer token (ours
/// from Handshake, or a JWT), or basic credentials.
pub(crate) fn authenticate(
    metadata: &MetadataMap,
    users: &UserStore,
    signer: &TokenSigner,
) -> Result<Identity, Status> {
    let header = metadata
        .get("authorization")
        .ok_or_else(|| {
            Status::unauthenticated(
                "no credentials: call Handshake with basic credentials and send the bearer token it returns",
            )
        })?
        .to_str()
        .map_err(|_| Status::unauthenticated("authorization header is not ASCII"))?;
    let (scheme, value) = header
        .split_once(' ')
        .ok_or_else(|| Status::unauthenticated("authorization header has no scheme"))?;
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" if users.accepts_jwt() && looks_like_jwt(value.trim()) => users
            .verify_jwt(value.trim())
            .map_err(|e| Status::unauthenticated(e.to_string())),
        "bearer" => signer
            .verify(value.trim(), SESSION_TOKEN)
            .map(|claims| Identity::new(claims.sub))
            .map_err(|e| match e {
                TokenError::Expired => {
                    Status::unauthenticated("bearer token expired: authenticate again")
                }
                _ => Status::unauthenticated("invalid bearer token"),
            }),
        "basic" => {
            let (user, password) = decode_basic(value.trim())?;
            users
                .verify(&user, &password)
                .map_err(|e| Status::unauthenticated(e.to_string()))
        }
        other => Err(Status::unauthenticated(format!(
            "unsupported authorization scheme `{other}` (use Basic or Bearer)"
        ))),
    }
}

/// The JWT a request authenticates with, as a bearer token or as the
/// password of basic credentials.
fn presented_jwt(metadata: &MetadataMap) -> Option<String> {
    let header = metadata.get("authorization")?.to_str().ok()?;
    let (scheme, value) = header.split_once(' ')?;
    let candidate = match scheme.to_ascii_lowercase().as_str() {
        "bearer" => value.trim().to_owned(),
        "basic" => decode_basic(value.trim()).ok()?.1,
        _ => return None,
    };
    looks_like_jwt(&candidate).then_some(candidate)
}

fn decode_basic(value: &str) -> Result<(String, String), Status> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    // Clients differ on padding and alphabet (arrow-go sends unpadded base64).
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(value).ok())
        .ok_or_else(|| Status::unauthenticated("basic credentials are not base64"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Status::unauthenticated("basic credentials are not UTF-8"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| Status::unauthenticated("basic credentials must be user:password"))?;
    Ok((user.to_owned(), password.to_owned()))
}

fn schema_bytes(schema: &Schema) -> Result<prost::bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(
            |e: meshgate_planner::datafusion::arrow::error::ArrowError| {
                Status::internal(format!("cannot encode schema: {e}"))
            },
        )?;
    Ok(bytes)
}

fn one_batch<E: Into<FlightError> + Send + 'static>(
    schema: SchemaRef,
    batch: Result<RecordBatch, E>,
) -> DoGetStream {
    let data = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(stream::once(async move { batch.map_err(Into::into) }))
        .map_err(Status::from);
    Box::pin(data)
}

fn empty_result(schema: SchemaRef) -> DoGetStream {
    let batch = RecordBatch::new_empty(schema.clone());
    one_batch::<FlightError>(schema, Ok(batch))
}

/// The first row of a parameter batch, as positional values.
fn parameter_row(
    batches: &[RecordBatch],
    types: &[Option<DataType>],
) -> Result<Vec<ScalarValue>, Status> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows != 1 {
        return Err(Status::invalid_argument(format!(
            "bind exactly one row of parameters (got {rows})"
        )));
    }
    let batch = batches.iter().find(|b| b.num_rows() == 1).expect("one row");
    batch
        .columns()
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let value = ScalarValue::try_from_array(column, 0)
                .map_err(|e| Status::invalid_argument(format!("parameter ${}: {e}", i + 1)))?;
            match types.get(i).and_then(Option::as_ref) {
                Some(ty) if value.data_type() != *ty => value.cast_to(ty).map_err(|e| {
                    Status::invalid_argument(format!(
                        "parameter ${} cannot be used as {ty}: {e}",
                        i + 1
                    ))
                }),
                _ => Ok(value),
            }
        })
        .collect()
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
        let identity = self.authenticate(request.metadata())?;
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
        let identity = self.authenticate(request.metadata())?;
        let session = self.session(identity.clone(), request.remote_addr())?;
        let prepared = session
            .prepare(&query.query)
            .await
            .map_err(|e| to_status(&e))?;
        let param_types = prepared.parameter_types().map_err(|e| to_status(&e))?;
        let parameter_schema = Schema::new(
            param_types
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    Field::new(
                        format!("${}", i + 1),
                        t.clone().unwrap_or(DataType::Utf8),
                        true,
                    )
                })
                .collect::<Vec<_>>(),
        );
        let id = format!("{:032x}", rand::random::<u128>());
        self.prepared
            .insert(
                id.clone(),
                Arc::new(PreparedEntry {
                    user: identity.user.clone(),
                    sql: query.query,
                    param_types,
                    params: Mutex::new(None),
                }),
            )
            .await;
        let handle = self
            .signer
            .issue(&identity.user, PREPARED, Some(id), self.ttl);
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            dataset_schema: schema_bytes(&prepared.output_schema())?,
            parameter_schema: schema_bytes(&parameter_schema)?,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let identity = self.authenticate(request.metadata())?;
        let entry = self
            .prepared_entry(&identity, &query.prepared_statement_handle)
            .await?;
        let batches: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(
            request.into_inner().map_err(FlightError::from),
        )
        .try_collect()
        .await
        .map_err(|e| Status::invalid_argument(format!("cannot read parameters: {e}")))?;
        let row = parameter_row(&batches, &entry.param_types)?;
        *entry.params.lock().expect("params lock") = Some(row);
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let identity = self.authenticate(request.metadata())?;
        let entry = self
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
        let entry = self
            .prepared_entry(&identity, &cmd.prepared_statement_handle)
            .await?;
        let params = entry.params.lock().expect("params lock").clone();
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
                    self.prepared.invalidate(&id).await;
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
        let session = self.session(
            self.authenticate(request.metadata())?,
            request.remote_addr(),
        )?;
        let mut builder = query.into_builder();
        for catalog in session.catalog_names() {
            builder.append(catalog);
        }
        let schema = builder.schema();
        Ok(Response::new(one_batch(schema, builder.build())))
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
        let session = self.session(
            self.authenticate(request.metadata())?,
            request.remote_addr(),
        )?;
        let mut builder = query.into_builder();
        for catalog in session.catalog_names() {
            for schema in session.schema_names(&catalog) {
                builder.append(&catalog, schema);
            }
        }
        let schema = builder.schema();
        Ok(Response::new(one_batch(schema, builder.build())))
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
        let session = self.session(
            self.authenticate(request.metadata())?,
            request.remote_addr(),
        )?;
        let catalog = query.catalog.clone().filter(|c| !c.is_empty());
        let tables = session
            .tables(catalog.as_deref())
            .await
            .map_err(|e| to_status(&e))?;
        let mut builder = query.into_builder();
        for t in tables {
            builder
                .append(&t.catalog, &t.schema, &t.table, t.table_type, &t.columns)
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        let schema = builder.schema();
        Ok(Response::new(one_batch(schema, builder.build())))
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
        self.authenticate(request.metadata())?;
        let mut builder = query.into_builder();
        builder.append("TABLE");
        builder.append("VIEW");
        let schema = builder.schema();
        Ok(Response::new(one_batch(schema, builder.build())))
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
        self.authenticate(request.metadata())?;
        let builder = query.into_builder(&metadata::SQL_INFO);
        let schema = builder.schema();
        Ok(Response::new(one_batch(schema, builder.build())))
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
        self.authenticate(request.metadata())?;
        let builder = query.into_builder(&metadata::XDBC_TYPES);
        let schema = builder.schema();
        Ok(Response::new(one_batch(schema, builder.build())))
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
        _query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authenticate(request.metadata())?;
        Ok(Response::new(empty_result(metadata::primary_keys_schema())))
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
        _query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authenticate(request.metadata())?;
        Ok(Response::new(empty_result(metadata::foreign_keys_schema())))
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
        _query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authenticate(request.metadata())?;
        Ok(Response::new(empty_result(metadata::foreign_keys_schema())))
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
        _query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authenticate(request.metadata())?;
        Ok(Response::new(empty_result(metadata::foreign_keys_schema())))
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

/// The tonic service for a frontend.
pub fn service(
    frontend: FlightSqlFrontend,
) -> arrow_flight::flight_service_server::FlightServiceServer<FlightSqlFrontend> {
    arrow_flight::flight_service_server::FlightServiceServer::new(frontend)
        .max_decoding_message_size(64 * 1024 * 1024)
}
