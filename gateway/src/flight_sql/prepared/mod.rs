//! Flight SQL prepared statements: CreatePreparedStatement plans the
//! statement and keeps the plan, DoPut binds one row of parameters,
//! GetFlightInfo and DoGet of the statement run the kept plan with them,
//! and ClosePreparedStatement forgets it.
//!
//! Three decisions a newcomer must know:
//! - **The handle is a signed token bound to its user** (kind `prepared`,
//!   valid for the token lifetime) naming the kept entry; a handle of
//!   another user is refused. What is kept is bounded in bytes per user and
//!   in total (see [`store`]). The handle also carries the statement, what
//!   it was planned under and the bound parameters (see [`handles`]), so a
//!   replica that does not keep the entry (another gateway sharing the
//!   signing keys, or this one after the entry expired) prepares it again.
//! - **Planning happens once.** Every execution runs the plan made at
//!   CreatePreparedStatement; the planner binds the parameters into the
//!   optimised plan it keeps with it (`meshgate_planner::PlanCache`). The
//!   policy was applied for one identity when the plan was made, so the plan
//!   is only run for exactly that identity in a session of its own (a
//!   plan does not depend on the session it was made in); the same user
//!   calling as another identity (impersonated, or with a credential
//!   asserting other groups) gets the statement planned for them. A plan
//!   made under an older policy is made again and kept before it runs or
//!   describes its result, so its schema and errors are the current ones.
//! - Creating a statement is audited here, whatever its outcome (including
//!   a refusal by the budgets); each execution is audited by the planner.

mod handles;
mod parameters;
mod store;

use std::sync::Arc;
use std::time::Instant;

use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandPreparedStatementQuery,
    DoPutPreparedStatementResult, ProstMessageExt,
};
use arrow_flight::{FlightDescriptor, FlightInfo, IpcMessage, SchemaAsIpc, Ticket};
use meshgate_planner::datafusion::arrow::datatypes::{DataType, Field, Schema};
use meshgate_planner::datafusion::arrow::error::ArrowError;
use meshgate_planner::datafusion::arrow::ipc::writer::IpcWriteOptions;
use meshgate_planner::datafusion::common::ParamValues;
use meshgate_planner::{AuditRecord, ClientStatement, Identity, Prepared, QuerySession};
use prost::Message;
use tonic::{Request, Response, Status};

use super::audit::statement_text;
use super::results::{self, DoGetStream};
use super::sessions::Planned;
use super::FlightSqlFrontend;
use crate::auth::TokenError;
use crate::status::to_status;
use handles::HandleData;
use parameters::read_parameters;
use store::PreparedEntry;
pub(super) use store::PreparedStatements;

/// The token kind of prepared-statement handles.
const PREPARED: &str = "prepared";

impl FlightSqlFrontend {
    /// CreatePreparedStatement: plan the statement, keep it within the
    /// budgets, and record the attempt whatever its outcome.
    pub(super) async fn create_prepared(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let started = Instant::now();
        let identity = self.authenticate(request.metadata())?;
        let client = request.remote_addr();
        self.check_statement(&identity, client, "CreatePreparedStatement", &query.query)?;
        let mut session = self.session(identity.clone(), client, request.metadata())?;
        // The planner records the request (tables, the policy's decisions,
        // the outcome of planning); a refusal after planning is recorded here.
        // A text with its values written in takes the plan of its shape
        // (ADBC prepares every query it executes): its client sees no
        // parameters, and the entry keeps the values.
        let statement = session
            .prepare_for_by_shape("Flight SQL CreatePreparedStatement", &query.query)
            .await
            .map_err(|e| to_status(&e))?;
        let text = format!(
            "Flight SQL CreatePreparedStatement: {}",
            statement_text(&query.query)
        );
        let planned = Planned::of(&session);
        let result = self
            .keep_prepared(identity.clone(), query.query, planned, statement)
            .await;
        if let Err(status) = &result {
            let mut record = self.access(&identity, client, text).with_duration(started);
            record.decision = AuditRecord::ERROR.into();
            record.error = Some(status.message().to_owned());
            self.audit(record);
        }
        result
    }

    /// Keep a statement planned for `identity` and hand out its handle.
    async fn keep_prepared(
        &self,
        identity: Identity,
        sql: String,
        planned: Planned,
        statement: ClientStatement,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let ClientStatement {
            prepared,
            param_types,
            literals,
        } = statement;
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
        let dataset_schema = schema_bytes(&prepared.output_schema())?;
        let id = format!("{:032x}", rand::random::<u128>());
        let handle = self.handle(
            &identity,
            &HandleData::new(id.clone(), sql.clone(), planned),
        );
        let entry = PreparedEntry::new(identity, sql, prepared, param_types, literals);
        self.prepared.insert(id, entry, None).await?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            dataset_schema,
            parameter_schema: schema_bytes(&parameter_schema)?,
        })
    }

    /// DoPut of parameters: read message by message up to
    /// `max_parameter_bytes` (an upload over it is refused without being
    /// buffered), then keep the one row with the statement.
    pub(super) async fn bind_parameters(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let identity = self.authenticate(request.metadata())?;
        let (data, entry) = self
            .prepared_entry(&identity, &query.prepared_statement_handle, &request)
            .await?;
        let row = read_parameters(
            request.into_inner(),
            self.limits.max_parameter_bytes,
            &entry.param_types,
        )
        .await?;
        // The updated handle carries the row, for any replica to run.
        let handle = self.handle(&identity, &data.clone().with_params(&row));
        self.prepared
            .insert(data.id, entry.with_params(row), Some(&entry))
            .await?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle.into_bytes().into()),
        })
    }

    /// GetFlightInfo of a prepared statement: the schema of its plan, and
    /// the command itself as the ticket.
    pub(super) async fn prepared_info(
        &self,
        command: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let identity = self.authenticate(request.metadata())?;
        let (_, entry) = self
            .prepared_entry(&identity, &command.prepared_statement_handle, &request)
            .await?;
        let kept = self.kept_plan(&identity, &entry);
        // A query with parameters planned for this identity needs no
        // session: its one ticket is the command, its schema the plan's.
        if let Some(prepared) = kept
            .as_ref()
            .filter(|p| !entry.param_types.is_empty() && !super::statements::is_setting(p))
        {
            return command_info(prepared, &command, request.into_inner());
        }
        let mut session = self.session(identity, request.remote_addr(), request.metadata())?;
        let planned_here = kept.is_some();
        let prepared = match kept {
            Some(prepared) => prepared,
            None => self.plan_again(&session, &entry).await?,
        };
        self.apply_setting(&mut session, &prepared, request.metadata())
            .await?;
        // Without parameters, a result in parts gets a statement ticket per
        // part (as an ad-hoc statement does); otherwise the command itself
        // is the one ticket.
        if entry.param_types.is_empty() {
            // The values of a text planned by its shape.
            let params = entry.params.clone().map(ParamValues::from);
            let parts = session
                .result_parts(&prepared, params.as_ref())
                .await
                .map_err(|e| to_status(&e))?;
            if parts.count > 1 {
                let identity = session.identity().clone();
                let planned = super::sessions::Planned::of(&session);
                let run = super::statements::Run {
                    prepared,
                    params,
                    parts: Some(std::sync::Arc::new(parts)),
                };
                let info = self
                    .tickets_info(&identity, entry.sql.clone(), planned, run)
                    .await?
                    .with_descriptor(request.into_inner());
                return Ok(Response::new(info));
            }
            // A whole result's plan is kept for the DoGet that follows.
            if planned_here && parts.whole_with_plan() {
                entry.keep_counted(std::sync::Arc::new(parts));
            }
        }
        command_info(&prepared, &command, request.into_inner())
    }

    /// DoGet of a prepared statement: its plan run with the parameters
    /// bound last.
    pub(super) async fn prepared_get(
        &self,
        command: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let identity = self.authenticate(request.metadata())?;
        let (data, entry) = self
            .prepared_entry(&identity, &command.prepared_statement_handle, &request)
            .await?;
        // The row the presented handle carries is the one its client bound
        // (this replica may keep an older one); else the last bound here.
        let bound = data.params();
        let own_values = bound.is_none();
        let params = bound.or_else(|| entry.params.clone());
        if params.is_none() && !entry.param_types.is_empty() {
            return Err(Status::invalid_argument(format!(
                "the statement has {} parameter(s); bind them with DoPut first",
                entry.param_types.len()
            )));
        }
        let kept = self.kept_plan(&identity, &entry);
        self.cancels
            .check(&request.get_ref().ticket, &identity)
            .await?;
        // The whole result GetFlightInfo counted, with the plan made then,
        // when this run has the values it was counted with.
        let counted = (kept.is_some() && own_values)
            .then(|| entry.take_counted())
            .flatten();
        let mut session = self.session(identity, request.remote_addr(), request.metadata())?;
        let prepared = match kept {
            Some(prepared) => prepared,
            None => self.plan_again(&session, &entry).await?,
        };
        let params = params.map(ParamValues::from);
        let stream =
            results::execute(&mut session, &prepared, params, None, counted.as_deref()).await?;
        self.started(&request, &session).await;
        Ok(results::response(stream, &session))
    }

    /// ClosePreparedStatement: forget the statement, if the handle is the
    /// caller's; anything else is ignored.
    pub(super) async fn close_prepared(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        let identity = self.authenticate(request.metadata())?;
        let token = std::str::from_utf8(&query.prepared_statement_handle).unwrap_or_default();
        if let Ok(claims) = self.signer.verify(token, PREPARED) {
            let data = claims
                .data
                .as_deref()
                .and_then(|d| serde_json::from_str::<HandleData>(d).ok());
            if let (true, Some(data)) = (claims.sub == identity.user, data) {
                self.prepared.close(&data.id).await;
            }
        }
        Ok(())
    }

    /// The signed handle of `data`, for `identity`'s user.
    fn handle(&self, identity: &Identity, data: &HandleData) -> String {
        let data = serde_json::to_string(data).expect("handle data serialises");
        self.signer
            .issue(&identity.user, PREPARED, Some(data), self.ttl)
    }

    /// The prepared statement a handle names, if it is the caller's: the
    /// entry kept here, else the statement prepared again from the handle
    /// (it was prepared on another replica, or its entry expired here).
    async fn prepared_entry<T>(
        &self,
        identity: &Identity,
        handle: &[u8],
        request: &Request<T>,
    ) -> Result<(HandleData, Arc<PreparedEntry>), Status> {
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
        let data: HandleData = claims
            .data
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .ok_or_else(|| Status::invalid_argument("invalid prepared statement handle"))?;
        if let Some(entry) = self.prepared.get(&data.id).await {
            if entry.user() != identity.user {
                return Err(Status::permission_denied(
                    "this prepared statement belongs to another user",
                ));
            }
            return Ok((data, entry));
        }
        if self.prepared.is_closed(&data.id) {
            return Err(Status::not_found(
                "prepared statement was closed: prepare it again",
            ));
        }
        let session = self
            .open_session_in(
                identity.clone(),
                request.remote_addr(),
                Some(data.planned.state()),
            )
            .map_err(|e| to_status(&e))?;
        let prepared = session
            .prepare(&data.sql)
            .await
            .map_err(|e| to_status(&e))?;
        let types = prepared.parameter_types().map_err(|e| to_status(&e))?;
        let entry = PreparedEntry::new(
            identity.clone(),
            data.sql.clone(),
            prepared,
            types,
            data.params(),
        );
        self.prepared.insert(data.id.clone(), entry, None).await?;
        let entry = self.prepared.get(&data.id).await.ok_or_else(|| {
            Status::not_found("prepared statement was closed or has expired: prepare it again")
        })?;
        Ok((data, entry))
    }

    /// The kept plan of `entry`, when it may run for `identity` as it is:
    /// it was made for exactly this identity, under the policy in force.
    fn kept_plan(&self, identity: &Identity, entry: &PreparedEntry) -> Option<Prepared> {
        let prepared = entry.plan();
        (entry.identity == *identity && prepared.is_planned_under(self.service.policy().as_ref()))
            .then_some(prepared)
    }

    /// `entry` planned again in `session`, for its identity; kept for the
    /// executions that follow when that is the identity it was prepared by.
    async fn plan_again(
        &self,
        session: &QuerySession,
        entry: &PreparedEntry,
    ) -> Result<Prepared, Status> {
        let prepared = session
            .prepare(&entry.sql)
            .await
            .map_err(|e| to_status(&e))?;
        if entry.identity == *session.identity() {
            entry.replace_plan(prepared.clone());
        }
        Ok(prepared)
    }
}

/// The FlightInfo of a prepared statement fetched whole: its result's
/// schema, and `command` itself as the one ticket.
fn command_info(
    prepared: &Prepared,
    command: &CommandPreparedStatementQuery,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let ticket = command.as_any().encode_to_vec();
    let info = super::flight_info(&prepared.output_schema(), ticket, descriptor)?;
    Ok(Response::new(info))
}

/// `schema` as the IPC message Flight SQL puts in a prepared statement's
/// description.
fn schema_bytes(schema: &Schema) -> Result<prost::bytes::Bytes, Status> {
    let schema = super::as_sent(schema);
    let IpcMessage(bytes) = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: ArrowError| Status::internal(format!("cannot encode schema: {e}")))?;
    Ok(bytes)
}
